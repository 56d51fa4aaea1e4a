"""A scripted upstream conversation for the agents: first a tool call that reads a file, then text.

:class:`Conversation` is a fake's ``responder`` (see tests/fakes/server.py): for each generate request the
proxy sends upstream it reads, in the upstream's own protocol, which tools were offered and which tool
results the last turn carries. A turn with tool results is answered in text quoting them
(``The file says: ...``); a turn that offers a tool able to read the file is answered with a call to it
(Claude Code's ``Read``, Codex's ``exec_command``/``shell``); anything else (an agent's side request) with
plain text. So the secret in the file reaches the agent's final answer only through a full round trip:
upstream call -> proxy -> agent runs the tool -> result -> proxy -> upstream -> text -> proxy -> agent.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes import anthropic_upstream, gemini_upstream, openai_upstream
from fakes.anthropic_upstream import ToolUseSpec
from fakes.gemini_upstream import FunctionCallSpec, GeminiBehaviour
from fakes.openai_upstream import ToolCallSpec
from fakes.responses_upstream import CallSpec, ResponsesBehaviour

FILE = "secret.txt"
REPLY_PREFIX = "The file says: "
SIDE_REPLY = "OK."
CALL_ID = {"anthropic": "toolu_lip_agents_1", "openai": "call_lip_agents_1", "gemini": "call_lip_agents_1"}
# The tools that can read a file, preferred first; matched whole or as a flattened namespace's last part
# (``functions__exec``). ``exec`` is Codex's "code mode" (its default model): JavaScript calling nested tools.
READERS = ("Read", "exec_command", "shell_command", "shell", "exec")
CODE_MODE = f'const r = await tools.exec_command({{cmd: "cat {FILE}"}});\ntext(r);'


def _offered(tools: dict[str, Any], reader: str) -> str | None:
    return next((name for name in tools if name == reader or name.endswith("__" + reader)), None)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text(c.get("text", c.get("content", ""))) if isinstance(c, dict) else str(c)
                         for c in content)
    if isinstance(content, dict):
        return json.dumps(content)
    return "" if content is None else str(content)


# ---- reading each protocol: (offered tools {name: JSON schema}, tool results of the last turn) ----------


def anthropic_view(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    tools = {t["name"]: t.get("input_schema") or {} for t in body.get("tools") or [] if "name" in t}
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    blocks = last.get("content") if isinstance(last.get("content"), list) else []
    results = [_text(b.get("content")) for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
    return tools, results


def openai_view(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    tools = {t["function"]["name"]: t["function"].get("parameters") or {}
             for t in body.get("tools") or [] if t.get("type") == "function"}
    results: list[str] = []
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "tool":
            break
        results.insert(0, _text(message.get("content")))
    return tools, results


def gemini_view(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    tools: dict[str, Any] = {}
    for tool in body.get("tools") or []:
        for decl in tool.get("functionDeclarations") or tool.get("function_declarations") or []:
            tools[decl["name"]] = decl.get("parametersJsonSchema") or decl.get("parameters") or {}
    contents = body.get("contents") or []
    parts = (contents[-1].get("parts") or []) if contents else []
    results = [_text(p["functionResponse"].get("response")) for p in parts
               if isinstance(p, dict) and "functionResponse" in p]
    return tools, results


CUSTOM = {"x-lip-test-custom": True}  # stands for a free-form tool's schema in a Responses view


def responses_view(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    declared = list(body.get("tools") or [])
    for item in body.get("input") or []:  # Codex's default model declares its tools in input items
        if isinstance(item, dict) and item.get("type") == "additional_tools":
            declared += item.get("tools") or []
    tools: dict[str, Any] = {}
    for tool in declared:
        for inner in tool.get("tools") or [] if tool.get("type") == "namespace" else [tool]:
            if inner.get("type") == "custom":
                tools[inner["name"]] = CUSTOM
            elif inner.get("type") == "function":
                tools[inner["name"]] = inner.get("parameters") or {}
    results: list[str] = []
    for item in reversed(body.get("input") or []):
        if not isinstance(item, dict) or item.get("type") not in ("function_call_output", "custom_tool_call_output"):
            break
        results.insert(0, _text(item.get("output")))
    return tools, results


VIEWS = {"anthropic": anthropic_view, "openai": openai_view, "gemini": gemini_view, "openai-responses": responses_view}


def read_call(tools: dict[str, Any], workdir: Path) -> tuple[str, dict[str, Any]] | None:
    """(tool, arguments) that read ``FILE`` with the first offered reader, by its schema."""
    for reader in READERS:
        name = _offered(tools, reader)
        if name is None:
            continue
        if tools[name] is CUSTOM:  # a free-form tool on a Responses upstream: its input is the text itself
            return (name, {"input": CODE_MODE}) if reader == "exec" else None
        props = (tools[name] or {}).get("properties") or {}
        if reader == "exec":  # a custom (free-form) tool: flattened to one text parameter
            text_keys = [k for k, v in props.items() if (v or {}).get("type") == "string"]
            return (name, {text_keys[0]: CODE_MODE}) if len(props) == 1 and text_keys else None
        if "file_path" in props:
            return name, {"file_path": str(workdir / FILE)}
        if "cmd" in props:
            return name, {"cmd": f"cat {FILE}"}
        if (props.get("command") or {}).get("type") == "array":
            return name, {"command": ["bash", "-lc", f"cat {FILE}"]}
        if "command" in props:
            return name, {"command": f"cat {FILE}"}
    return None


@dataclass
class Conversation:
    """The responder of one fake upstream speaking ``protocol``; ``turns`` lists what it answered."""

    protocol: str
    workdir: Path
    turns: list[str] = field(default_factory=list)  # "call:<tool>", "text:<reply>", "side"
    offered: list[list[str]] = field(default_factory=list)  # the tool names each request offered
    custom_tools: dict[str, bool] = field(default_factory=dict)  # of the last request: which are free-form
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, body: Any) -> Any:
        if not isinstance(body, dict):
            return None
        tools, results = VIEWS[self.protocol](body)
        with self._lock:
            self.offered.append(sorted(tools))
            if results:
                reply = REPLY_PREFIX + " | ".join(r.strip() for r in results)
                self.turns.append(f"text:{reply}")
                return self._text(reply)
            self.custom_tools = {name: schema is CUSTOM for name, schema in tools.items()}
            call = read_call(tools, self.workdir)
            if call is not None and not any(t.startswith("call:") for t in self.turns):
                self.turns.append(f"call:{call[0]}")
                return self._call(*call)
            self.turns.append("side")
            return self._text(SIDE_REPLY)

    def _text(self, reply: str) -> Any:
        if self.protocol == "openai-responses":
            return ResponsesBehaviour(reply=reply, chunks=3)
        if self.protocol == "anthropic":
            return anthropic_upstream.Behaviour(reply=reply, chunks=3)
        if self.protocol == "openai":
            return openai_upstream.Behaviour(reply=reply, chunks=3)
        return GeminiBehaviour(reply=reply, chunks=3)

    def _call(self, name: str, args: dict[str, Any]) -> Any:
        text = json.dumps(args)
        if self.protocol == "openai-responses":
            custom = self.custom_tools.get(name, False)
            return ResponsesBehaviour(call=CallSpec(name, args["input"] if custom else text,
                                                    call_id=CALL_ID["openai"], pieces=3, custom=custom))
        if self.protocol == "anthropic":
            return anthropic_upstream.Behaviour(tool_use=ToolUseSpec(name, text, id=CALL_ID["anthropic"], pieces=3))
        if self.protocol == "openai":
            return openai_upstream.Behaviour(tool_call=ToolCallSpec(name, text, id=CALL_ID["openai"], pieces=3))
        return GeminiBehaviour(function_calls=[FunctionCallSpec(name, args)])

    def tool_results(self, body: Any) -> list[str]:
        return VIEWS[self.protocol](body)[1] if isinstance(body, dict) else []


__all__ = ["FILE", "REPLY_PREFIX", "Conversation", "gemini_upstream", "read_call"]
