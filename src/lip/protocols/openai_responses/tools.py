"""Responses tools beyond plain functions, and the items that call them, in both directions.

Codex CLI sends ``namespace`` tools (functions grouped under a name), ``custom`` tools (free-form
text input, e.g. ``apply_patch`` with a Lark grammar), a client-run ``tool_search``, and hosted tools
(``web_search`` ...). Canonically (docs/protocols-responses.md, "Tools"):

- a namespaced function is a function named ``<namespace>__<name>`` (``Tool.namespace`` set), the
  flat name upstreams that only know functions see; a call of it comes back to the client as a
  ``function_call`` with ``name`` and ``namespace`` apart again;
- a custom tool is a function taking ``{"input": "<text>"}`` (its grammar is put in the description
  for other upstreams); a call comes back as a ``custom_tool_call`` with the text as ``input``;
- ``tool_search`` (``execution: client``) is a function of its own parameters; a call comes back as a
  ``tool_search_call``;
- a hosted tool is kept as the client sent it (``Tool.spec``), for a Responses upstream.

The client's tool objects are kept in ``Tool.spec``, so a Responses upstream receives them as sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from lip.core.model import EMPTY, Message, ProviderPart, Tool, ToolCall
from lip.protocols.openai_envelope import invalid_value, missing_parameter
from lip.protocols.openai_responses.common import PROTOCOL

SEPARATOR = "__"  # between a namespace and a function name: function names allow [A-Za-z0-9_-]
# The model's default function space (``functions.exec`` in OpenAI's own prompt format): its members keep
# their own names, and their calls come back without a namespace, as Codex expects them.
ROOT_NAMESPACE = "functions"
ADDITIONAL = "additional_tools"  # an input item that brings tools mid-input (Codex's default model)
CUSTOM_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's input, as free-form text."}},
    "required": ["input"],
    "additionalProperties": False,
}
TOOL_SEARCH = "tool_search"
# Hosted tools by type: run by OpenAI, kept whole for a Responses upstream (family: portable.family).
HOSTED_FAMILIES = {"web_search": "web_search", "web_search_preview": "web_search",
                   "web_search_2025_08_26": "web_search", "web_search_preview_2025_03_11": "web_search"}
# Output items of hosted tools (and other items only Responses knows) that clients send back in ``input``.
PROVIDER_ITEMS = frozenset({"web_search_call", "file_search_call", "code_interpreter_call", "image_generation_call",
                            "computer_call", "computer_call_output", "mcp_call", "mcp_list_tools",
                            "mcp_approval_request", "mcp_approval_response", "local_shell_call",
                            "local_shell_call_output", "shell_call", "shell_call_output", "apply_patch_call",
                            "apply_patch_call_output", "compaction", "compaction_summary"})


def _name(tool: Mapping[str, Any], where: str) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise missing_parameter(f"{where}.name")
    return name


def _description(tool: Mapping[str, Any], where: str) -> str | None:
    description = tool.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid_value(f"{where}.description", "a string")
    return description


def _schema(tool: Mapping[str, Any], where: str) -> Mapping[str, Any] | None:
    params = tool.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise invalid_value(f"{where}.parameters", "a JSON schema object")
    return params


def function_tool(tool: Mapping[str, Any], where: str, group: Mapping[str, Any] | None = None) -> Tool:
    """A function; in a namespace (``group``, the namespace object without its tools) its name is
    ``<namespace>__<name>`` and ``spec`` keeps both objects: ``{"namespace": group, "tool": tool}``."""
    name = _name(tool, where)
    strict = tool.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise invalid_value(f"{where}.strict", "a boolean")
    namespace = group["name"] if group is not None else None
    return Tool(name=_flat(namespace, name), description=_with_group(_description(tool, where), group),
                parameters=_schema(tool, where), extensions={"strict": strict} if strict is not None else EMPTY,
                namespace=namespace, spec=_spec(tool, group), protocol=PROTOCOL)


def _spec(tool: Mapping[str, Any], group: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return tool if group is None else {"namespace": group, "tool": tool}


def _group_note(group: Mapping[str, Any] | None) -> str:
    about = group.get("description") if group is not None else None
    return f"\n\n({group['name']}: {about})" if group is not None and isinstance(about, str) and about else ""


def _with_group(description: str | None, group: Mapping[str, Any] | None) -> str | None:
    """A namespaced member's description, with what its namespace is for after it: upstreams that only
    know functions have no other place for the namespace's description."""
    note = _group_note(group)
    return (description or "") + note if note else description


def _flat(namespace: str | None, name: str) -> str:
    return f"{namespace}{SEPARATOR}{name}" if namespace and namespace != ROOT_NAMESPACE else name


def member_spec(tool: Tool) -> Mapping[str, Any] | None:
    """The client's own object of a tool (the member itself for a namespaced one)."""
    if tool.spec is None or (tool.namespace is None and "item" not in tool.spec):
        return tool.spec
    member = tool.spec.get("tool")
    return member if isinstance(member, Mapping) else None


def in_input(tool: Tool) -> Mapping[str, Any] | None:
    """The ``additional_tools`` item (without its tools) that brought ``tool``, if one did."""
    item = tool.spec.get("item") if tool.protocol == PROTOCOL and tool.spec is not None else None
    return item if isinstance(item, Mapping) else None


def additional_tools(raw: Any) -> list[Tool]:
    """The tools of ``additional_tools`` items anywhere in ``input``; each remembers its item."""
    if not isinstance(raw, list):
        return []
    out: list[Tool] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or item.get("type") != ADDITIONAL:
            continue
        listed = item.get("tools")
        if not isinstance(listed, list):
            raise invalid_value(f"input[{i}].tools", "an array of tools")
        header = {k: v for k, v in item.items() if k != "tools"}
        for j, tool in enumerate(listed):
            where = f"input[{i}].tools[{j}]"
            kind = tool.get("type") if isinstance(tool, dict) else None
            if not isinstance(kind, str) or not isinstance(tool, dict):
                raise invalid_value(f"{where}.type", "a tool type such as 'function', 'custom' or 'namespace'")
            made = [function_tool(tool, where)] if kind == "function" else parse_tool(tool, kind, where)
            for t in made:
                wrapper = dict(t.spec) if t.namespace and t.spec is not None else {"tool": t.spec}
                out.append(dataclasses.replace(t, spec={**wrapper, "item": header}))
    return out


def custom_tool(tool: Mapping[str, Any], where: str, group: Mapping[str, Any] | None = None) -> Tool:
    """A free-form tool as a function of one string, its format told in the description."""
    name = _name(tool, where)
    description = _description(tool, where) or ""
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        description += (f"\n\nPut the whole input in the 'input' string; it must follow this "
                        f"{fmt.get('syntax') or 'grammar'} grammar:\n{fmt['definition']}")
    namespace = group["name"] if group is not None else None
    return Tool(name=_flat(namespace, name), description=_with_group(description or None, group),
                parameters=CUSTOM_SCHEMA, kind="custom", namespace=namespace, spec=_spec(tool, group),
                protocol=PROTOCOL)


def parse_tool(tool: Mapping[str, Any], kind: str, where: str) -> list[Tool]:
    """A tool that is not a plain function, as canonical tools (a namespace gives one per member)."""
    if kind == "custom":
        return [custom_tool(tool, where)]
    if kind == "namespace":
        _name(tool, where)
        group = {k: v for k, v in tool.items() if k != "tools"}
        members = tool.get("tools")
        if not isinstance(members, list):
            raise invalid_value(f"{where}.tools", "an array of function or custom tools")
        out = []
        for j, member in enumerate(members):
            at = f"{where}.tools[{j}]"
            member_kind = member.get("type") if isinstance(member, dict) else None
            if member_kind == "function" and isinstance(member, dict):
                out.append(function_tool(member, at, group))
            elif member_kind == "custom" and isinstance(member, dict):
                out.append(custom_tool(member, at, group))
            else:
                raise invalid_value(f"{at}.type", "'function' or 'custom'")
        return out
    if kind == TOOL_SEARCH and tool.get("execution") == "client":
        return [Tool(name=TOOL_SEARCH, description=_description(tool, where), parameters=_schema(tool, where),
                     spec=tool, protocol=PROTOCOL)]
    family = HOSTED_FAMILIES.get(kind, kind)
    return [Tool(name=kind, kind="hosted", spec=tool, protocol=PROTOCOL, extensions={"family": family})]


def call_of(item: Mapping[str, Any], kind: str, where: str) -> ToolCall:
    """A ``function_call`` (namespaced or not), ``custom_tool_call`` or ``tool_search_call`` item."""
    call_id = item.get("call_id")
    if not isinstance(call_id, str):
        raise missing_parameter(f"{where}.call_id")
    if kind == TOOL_SEARCH + "_call":
        arguments = item.get("arguments")
        text = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()
        return ToolCall(id=call_id, name=TOOL_SEARCH, arguments=text)
    name = _name(item, where)
    if kind == "custom_tool_call":
        given = item.get("input")
        if not isinstance(given, str):
            raise invalid_value(f"{where}.input", "a string")
        namespace = item.get("namespace")
        full = _flat(namespace if isinstance(namespace, str) else None, name)
        return ToolCall(id=call_id, name=full, arguments=orjson.dumps({"input": given}).decode())
    arguments = item.get("arguments", "")
    if not isinstance(arguments, str):
        raise invalid_value(f"{where}.arguments", "a JSON string")
    namespace = item.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise invalid_value(f"{where}.namespace", "a string")
    return ToolCall(id=call_id, name=_flat(namespace, name), arguments=arguments)


def tool_search_output(item: Mapping[str, Any], where: str) -> Message:
    """A ``tool_search_output`` item as the result of its call: the tools found, as JSON text."""
    call_id = item.get("call_id")
    if not isinstance(call_id, str):
        raise missing_parameter(f"{where}.call_id")
    return Message(role="tool", content=orjson.dumps(item.get("tools") or []).decode(), tool_call_id=call_id)


def provider_item(item: Mapping[str, Any]) -> ProviderPart:
    return ProviderPart(PROTOCOL, item)


# ---- canonical → wire ---------------------------------------------------------------------------


def call_item(item_id: str, call: ToolCall, tool: Tool | None, status: str) -> dict[str, Any]:
    """A canonical tool call as the output item the client's own tool expects."""
    if tool is not None and is_tool_search(tool):
        return {"id": item_id, "type": "tool_search_call", "status": status, "call_id": call.id,
                "execution": "client", "arguments": _object(call.arguments)}
    name = call.name
    namespace = tool.namespace if tool is not None else None
    if namespace == ROOT_NAMESPACE:
        namespace = None  # the default function space: calls come back without one
    if namespace and name.startswith(namespace + SEPARATOR):
        name = name[len(namespace) + len(SEPARATOR):]
    if tool is not None and tool.kind == "custom":
        item: dict[str, Any] = {"id": item_id, "type": "custom_tool_call", "status": status, "call_id": call.id,
                                "name": name, "input": custom_input(call.arguments)}
    else:
        item = {"id": item_id, "type": "function_call", "status": status, "call_id": call.id, "name": name,
                "arguments": call.arguments}
    if namespace:
        item["namespace"] = namespace
    return item


def is_tool_search(tool: Tool) -> bool:
    """The client-run ``tool_search`` tool (its calls are ``tool_search_call`` items)."""
    spec = member_spec(tool) if tool.protocol == PROTOCOL else None
    return tool.name == TOOL_SEARCH and spec is not None and spec.get("type") == TOOL_SEARCH


def custom_input(arguments: str) -> str:
    """The free-form text of a custom tool's call (its ``input``; the arguments themselves if they
    are not the object the flat function asks for)."""
    value = _object(arguments)
    text = value.get("input")
    return text if isinstance(text, str) else arguments


def _object(arguments: str) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def tools_to_wire(tools: tuple[Tool, ...]) -> list[dict[str, Any]]:
    """Tools as Responses tool objects: the client's own where it sent them (namespaces regrouped),
    else functions; hosted tools of other protocols become Responses' own where there is one."""
    out: list[dict[str, Any]] = []
    namespaces: dict[str, dict[str, Any]] = {}
    for tool in tools:
        if tool.namespace:
            group = namespaces.get(tool.namespace)
            if group is None:
                header = tool.spec.get("namespace") if tool.protocol == PROTOCOL and tool.spec else None
                own = dict(header) if isinstance(header, Mapping) else {"type": "namespace", "name": tool.namespace}
                group = namespaces[tool.namespace] = {**own, "tools": []}
                out.append(group)
            group["tools"].append(_own(tool))
        elif tool.kind == "hosted":
            wired = _hosted(tool)
            if wired is not None:
                out.append(wired)
        else:
            out.append(_own(tool))
    return out


def _own(tool: Tool) -> dict[str, Any]:
    member = member_spec(tool) if tool.protocol == PROTOCOL else None
    if member is not None:
        spec = dict(member)
        if tool.kind == "function" and spec.get("type") == "function":
            description = tool.description  # as redaction left it, without the namespace's note
            note = _group_note(tool.spec.get("namespace") if tool.namespace and tool.spec else None)
            if note and description is not None and description.endswith(note):
                description = description[:-len(note)] if description != note else member.get("description")
            spec["description"] = description
            spec["parameters"] = tool.parameters
        return spec
    return {"type": "function", "name": tool.name, "description": tool.description,
            "parameters": tool.parameters, "strict": tool.extensions.get("strict", False)}


def _hosted(tool: Tool) -> dict[str, Any] | None:
    if tool.protocol == PROTOCOL and tool.spec is not None:
        return dict(tool.spec)
    if tool.extensions.get("family") == "web_search" or tool.name == "web_search":
        return {"type": "web_search"}
    return None


def additional_items(tools: tuple[Tool, ...]) -> list[dict[str, Any]]:
    """The ``additional_tools`` items the client sent, rebuilt from the tools they brought."""
    items: dict[str, tuple[dict[str, Any], list[Tool]]] = {}
    for tool in tools:
        header = in_input(tool)
        if header is not None:
            key = str(header.get("id") or len(items))
            items.setdefault(key, (dict(header), []))[1].append(tool)
    return [{**header, "tools": tools_to_wire(tuple(members))} for header, members in items.values()]


def top_level(tools: tuple[Tool, ...]) -> tuple[Tool, ...]:
    """The tools of the request's ``tools`` (not those of ``additional_tools`` items)."""
    return tuple(t for t in tools if in_input(t) is None)


def parse_tools(raw: Any) -> tuple[Tool, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise invalid_value("tools", "an array of tool objects")
    tools = []
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise invalid_value(where, "a tool object")
        kind = tool.get("type")
        if kind == "function":
            tools.append(function_tool(tool, where))
        elif isinstance(kind, str):
            tools.extend(parse_tool(tool, kind, where))
        else:
            raise invalid_value(f"{where}.type",
                                "a tool type such as 'function', 'custom', 'namespace' or 'web_search'")
    return tuple(tools)
