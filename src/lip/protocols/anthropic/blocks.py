"""Anthropic client request pieces beyond text, images and function tools: documents (PDF, text),
server-tool blocks in the history, and server tools (web search, code execution, ...).

Each keeps the client's own object, so an Anthropic upstream receives it unchanged; the canonical
fields say what other protocols can be given (see docs/protocols-anthropic.md, "Beyond text").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lip.core.model import FilePart, Part, ProviderPart, TextPart, Tool
from lip.protocols.anthropic.common import PROTOCOL, cache_control_of, fail, missing

# Blocks the Anthropic API itself produces for server tools and that clients send back in later turns
# (any ``*_tool_result`` is one as well). They are carried to an Anthropic upstream as they are.
SERVER_BLOCKS = frozenset({"server_tool_use", "mcp_tool_use", "mcp_tool_result", "container_upload",
                           "search_result", "tool_reference"})
# Server tools by the ``type`` prefix of their version (web_search_20250305 → web_search): the
# canonical name other protocols map from (docs/protocols-anthropic.md).
HOSTED_NAMES = ("web_search", "web_fetch", "code_execution", "tool_search_tool", "memory", "bash",
                "text_editor", "computer")


def is_server_block(kind: str) -> bool:
    return kind in SERVER_BLOCKS or kind.endswith("_tool_result")


def server_block(block: Mapping[str, Any]) -> ProviderPart:
    """A server-tool block, carried whole; its text (search results, ...) is not read."""
    return ProviderPart(PROTOCOL, block)


def parse_document(block: Mapping[str, Any], where: str) -> Part:
    """A ``document`` block: a PDF or text by base64, URL, inline text or content blocks."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise missing(f"{where}.source")
    kind = source.get("type")
    title = block.get("title")
    common: dict[str, Any] = {"filename": title if isinstance(title, str) else None,
                              "cache_control": cache_control_of(block, where), "spec": block, "protocol": PROTOCOL}
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str):
            raise fail(f"{where}.source.media_type", "a media type such as 'application/pdf'")
        if not isinstance(data, str):
            raise fail(f"{where}.source.data", "base64 text")
        return FilePart(media, data=data, **common)
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise fail(f"{where}.source.url", "a URL string")
        return FilePart("application/pdf", url=url, **common)
    if kind == "text":
        data = source.get("data")
        if not isinstance(data, str):
            raise fail(f"{where}.source.data", "the document's text")
        media = source.get("media_type")
        return FilePart(media if isinstance(media, str) else "text/plain", text=data, **common)
    if kind == "content":
        content = source.get("content")
        if isinstance(content, str):
            return FilePart("text/plain", text=content, **common)
        if not isinstance(content, list):
            raise fail(f"{where}.source.content", "a string or an array of text blocks")
        texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return FilePart("text/plain", text="\n".join(t for t in texts if isinstance(t, str)), **common)
    if kind == "file":
        raise fail(f"{where}.source.type", "'base64', 'url', 'text' or 'content' (file ids of the Files API "
                   "are not supported by this proxy)")
    raise fail(f"{where}.source.type", "'base64', 'url', 'text' or 'content'")


def parse_system_message(raw: Mapping[str, Any], where: str) -> str | tuple[Part, ...]:
    """The content of a ``role: "system"`` message in ``messages``: a string, or its text blocks."""
    content = raw.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise fail(f"{where}.content", "a string or an array of text blocks")
    parts: list[Part] = []
    for i, block in enumerate(content):
        at = f"{where}.content.{i}"
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise fail(at, "a text block (a system message holds text only)")
        parts.append(TextPart(block["text"], cache_control_of(block, at)))
    return tuple(parts)


def hosted_name(kind: str) -> str:
    """``web_search_20250305`` → ``web_search``: the tool family a server tool type belongs to."""
    for name in HOSTED_NAMES:
        if kind.startswith(name):
            return name
    return kind


def parse_server_tool(tool: Mapping[str, Any], kind: str, where: str) -> Tool:
    """A server tool or Anthropic-defined tool (``type: web_search_20250305`` ...), kept whole."""
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise missing(f"{where}.name")
    return Tool(name=name, kind="hosted", spec=tool, protocol=PROTOCOL, extensions={"family": hosted_name(kind)},
                cache_control=cache_control_of(tool, where))
