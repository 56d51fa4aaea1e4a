"""lip.access.redact.KeyRedactor: upstream secrets pasted into a request are replaced before it is forwarded."""

from __future__ import annotations

import orjson

from lip.access.redact import MASK, KeyRedactor
from lip.core.model import (
    ChatRequest,
    FilePart,
    Message,
    ProviderPart,
    ProviderState,
    ReasoningPart,
    TextPart,
    Tool,
    ToolCall,
)

KEY = "sk-upstream-secret-0123456789"
LONGER = KEY + "-EXTENDED"
HEADER = "hdr-secret-abcdef"
SIG = ProviderState("anthropic", "sig-1")


def redactor() -> KeyRedactor:
    return KeyRedactor([KEY, LONGER, HEADER, "short"])


def clean_request() -> ChatRequest:
    return ChatRequest(
        model="mock:echo",
        messages=(Message("system", "be brief"), Message("user", "hello")),
        tools=(Tool("lookup", "Look a thing up", {"type": "object", "properties": {"q": {"type": "string"}}}),),
        parameters={"temperature": 0.2},
    )


def test_a_request_without_secrets_is_returned_as_is() -> None:
    request = clean_request()
    assert redactor().request(request) is request
    assert redactor().request(request, orjson.dumps({"model": "mock:echo"})) is request
    assert KeyRedactor([]).request(request.evolve(messages=(Message("user", KEY),))).messages[0].content == KEY


def test_the_raw_body_decides_when_given() -> None:
    dirty = clean_request().evolve(messages=(Message("user", f"my key is {KEY}"),))
    assert redactor().request(dirty, b'{"messages": "nothing secret here"}') is dirty
    cleaned = redactor().request(dirty, f'{{"content": "my key is {KEY}"}}'.encode())
    assert cleaned.messages[0].content == f"my key is {MASK}"


def test_message_text_parts_reasoning_and_tool_calls_are_masked() -> None:
    request = clean_request().evolve(messages=(
        Message("user", f"use {KEY} and {HEADER}"),
        Message("user", (TextPart(f"part {KEY}"), ReasoningPart(f"thinking about {KEY}", SIG))),
        Message("assistant", None, tool_calls=(ToolCall("call_1", "lookup", f'{{"q": "{KEY}"}}'),)),
        Message("user", "unrelated", extensions={"anthropic": {"note": KEY}}),
    ))
    out = redactor().request(request)
    assert out.messages[0].content == f"use {MASK} and {MASK}"
    assert out.messages[1].content == (TextPart(f"part {MASK}"), ReasoningPart(f"thinking about {MASK}", SIG))
    assert out.messages[2].tool_calls == (ToolCall("call_1", "lookup", f'{{"q": "{MASK}"}}'),)
    assert out.messages[3].content == "unrelated" and out.messages[3].extensions == {"anthropic": {"note": MASK}}
    assert out.model == request.model and out.tools == request.tools


def test_the_longer_secret_is_masked_whole() -> None:
    out = redactor().request(clean_request().evolve(messages=(Message("user", f"a {LONGER} b {KEY}"),)))
    assert out.messages[0].content == f"a {MASK} b {MASK}"


def test_tools_parameters_and_extensions_are_masked_keys_included() -> None:
    schema = {"type": "object", "properties": {KEY: {"type": "string", "description": f"not {HEADER}"}}}
    request = clean_request().evolve(
        tools=(Tool("lookup", f"uses {KEY}", schema), Tool("plain", "no secret", None)),
        parameters={"temperature": 0.2, "metadata": {"user": KEY}, "stop": [KEY, "x"]},
        extensions={"anthropic": {"system_note": f"({HEADER})"}},
    )
    out = redactor().request(request)
    assert out.tools[0].description == f"uses {MASK}"
    assert out.tools[0].parameters == {"type": "object",
                                       "properties": {MASK: {"type": "string", "description": f"not {MASK}"}}}
    assert out.tools[1] == request.tools[1]
    assert out.parameters == {"temperature": 0.2, "metadata": {"user": MASK}, "stop": [MASK, "x"]}
    assert out.extensions == {"anthropic": {"system_note": f"({MASK})"}}
    assert out.messages == request.messages


def test_a_value_shorter_than_eight_characters_is_not_a_secret() -> None:
    request = clean_request().evolve(messages=(Message("user", "a short answer"),))
    assert redactor().request(request, b"a short answer") is request


def test_documents_hosted_tool_specs_and_provider_items_are_masked() -> None:
    """Every string of the canonical request counts, not only the fields a list names."""
    document = FilePart("text/plain", text=f"config: {KEY}", filename="notes.txt")
    item = ProviderPart("openai-responses", {"type": "reasoning", "summary": [{"text": f"saw {HEADER}"}]})
    hosted = Tool("web_search", spec={"type": "web_search", "note": f"token {KEY}"})
    dirty = clean_request().evolve(messages=(Message("user", (TextPart("read this"), document, item)),),
                                   tools=(hosted,))
    cleaned = redactor().request(dirty)
    content = cleaned.messages[0].content
    assert isinstance(content, tuple)
    assert content[0] is dirty.messages[0].content[0]  # type: ignore[index]  # untouched parts are kept as they are
    assert isinstance(content[1], FilePart) and content[1].text == f"config: {MASK}"
    assert content[1].filename == "notes.txt"
    assert isinstance(content[2], ProviderPart) and content[2].data["summary"][0]["text"] == f"saw {MASK}"
    assert cleaned.tools[0].spec == {"type": "web_search", "note": f"token {MASK}"}
    assert KEY not in repr(cleaned) and HEADER not in repr(cleaned)
