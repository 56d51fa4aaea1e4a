"""Anthropic Messages wire format ⇄ canonical model, in both directions: the names other code uses.

Shared by the Anthropic frontend (client side: parse requests, render messages, events and errors)
and the Anthropic backend (upstream side: render requests, read messages and events) so the format
is written down once. Parsing of client requests validates what a client may get wrong and names
the field the way Anthropic does (``messages.1.content.0.type``); everything else trusts the
canonical model. See docs/protocols-anthropic.md for the mapping, field by field.

This module only re-exports; the format lives in modules of one direction each:
``anthropic_request_parse`` (client request → canonical), ``anthropic_request_render`` (canonical
→ upstream request), ``anthropic_response`` (responses and stream events, both directions),
``anthropic_errors`` (error envelopes) and ``anthropic_common`` (names they share).

Usage: Anthropic's ``input_tokens`` excludes cache reads and cache writes; the canonical
``Usage.input_tokens`` (OpenAI's ``prompt_tokens``) includes them, and ``cached_tokens`` is the
cache-read part. Reading adds them up; rendering subtracts the cache reads again.
"""

from __future__ import annotations

from lip.protocols.anthropic.common import PROTOCOL, REDACTED, VERSION
from lip.protocols.anthropic.errors import ERROR_STATUSES, ERROR_TYPES, error_body, error_from_wire, error_type
from lip.protocols.anthropic.request_parse import (
    STRUCTURAL,
    parse_messages,
    parse_parameters,
    parse_request,
    parse_system,
    parse_tool_choice,
    parse_tools,
)
from lip.protocols.anthropic.request_render import (
    DEFAULT_MAX_TOKENS,
    EFFORTS,
    NATIVE_PARAMETERS,
    arguments_object,
    image_to_wire,
    messages_to_wire,
    request_to_wire,
    tool_choice_to_wire,
    tool_to_wire,
)
from lip.protocols.anthropic.response import (
    STOP_FROM_WIRE,
    STOP_TO_WIRE,
    StreamParser,
    message_events,
    message_id,
    response_to_wire,
    stop_reason_from_wire,
    stop_reason_to_wire,
    tool_input,
    usage_from_wire,
    usage_to_wire,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EFFORTS",
    "ERROR_STATUSES",
    "ERROR_TYPES",
    "NATIVE_PARAMETERS",
    "PROTOCOL",
    "REDACTED",
    "STOP_FROM_WIRE",
    "STOP_TO_WIRE",
    "STRUCTURAL",
    "VERSION",
    "StreamParser",
    "arguments_object",
    "error_body",
    "error_from_wire",
    "error_type",
    "image_to_wire",
    "message_events",
    "message_id",
    "messages_to_wire",
    "parse_messages",
    "parse_parameters",
    "parse_request",
    "parse_system",
    "parse_tool_choice",
    "parse_tools",
    "request_to_wire",
    "response_to_wire",
    "stop_reason_from_wire",
    "stop_reason_to_wire",
    "tool_choice_to_wire",
    "tool_input",
    "tool_to_wire",
    "usage_from_wire",
    "usage_to_wire",
]
