"""Gemini generateContent wire format ⇄ canonical model, in both directions: the names other code uses.

Shared by the Gemini frontend (client side: ``/v1beta/models/{model}:generateContent`` and kin)
and the Gemini backend codec (upstream side), so the format is written down once. Parsing
validates what a client may get wrong and names the field in an InvalidRequest; rendering trusts
the canonical model. See docs/protocols-gemini.md for the mapping, field by field.

This module only re-exports; the format lives in modules of one direction each:
``gemini_request_parse`` (client request → canonical), ``gemini_request_render`` (canonical →
upstream request), ``gemini_response`` (responses and stream chunks, both directions),
``gemini_errors`` (error envelopes), ``gemini_calls`` (tool call ids and arguments) and
``gemini_common`` (names they share).

Keys are read in Gemini's JSON spelling (``systemInstruction``) and in the proto spelling that
the REST API accepts as well (``system_instruction``). Keys with no canonical meaning are kept
in ``ChatRequest.extensions["gemini"]`` and only a Gemini upstream receives them again.
"""

from __future__ import annotations

from lip.protocols.gemini.calls import SIGNATURE_MARK, arguments_object, join_call_id, split_call_id
from lip.protocols.gemini.common import PROTOCOL, get
from lip.protocols.gemini.errors import STATUS_CODES, STATUS_NAMES, error_body, error_from_wire
from lip.protocols.gemini.request_parse import model_name, parse_request, schema_to_json
from lip.protocols.gemini.request_render import (
    THINKING_BUDGETS,
    contents_to_wire,
    generation_to_wire,
    part_to_wire,
    request_to_wire,
    tool_choice_to_wire,
    tool_to_wire,
)
from lip.protocols.gemini.response import (
    FINISH_FROM_WIRE,
    FINISH_TO_WIRE,
    ResponseReader,
    finish_from_wire,
    function_call_part,
    render_response,
    response_body,
    response_events,
    usage_from_wire,
    usage_to_wire,
)

__all__ = [
    "FINISH_FROM_WIRE",
    "FINISH_TO_WIRE",
    "PROTOCOL",
    "SIGNATURE_MARK",
    "STATUS_CODES",
    "STATUS_NAMES",
    "THINKING_BUDGETS",
    "ResponseReader",
    "arguments_object",
    "contents_to_wire",
    "error_body",
    "error_from_wire",
    "finish_from_wire",
    "function_call_part",
    "generation_to_wire",
    "get",
    "join_call_id",
    "model_name",
    "parse_request",
    "part_to_wire",
    "render_response",
    "request_to_wire",
    "response_body",
    "response_events",
    "schema_to_json",
    "split_call_id",
    "tool_choice_to_wire",
    "tool_to_wire",
    "usage_from_wire",
    "usage_to_wire",
]
