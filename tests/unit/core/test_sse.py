"""lip.core.sse: the incremental SSE decoder and the encoder."""

from __future__ import annotations

import pytest

from lip.core.sse import LONG, SSEDecoder, SSEEvent, encode

STREAM = (
    b": keep-alive comment\n"
    b"data: {\"a\":1}\n"
    b"\n"
    b"event: message_start\n"
    b"data: first line\n"
    b"data: second line\n"
    b"\n"
    b"id: 7\n"
    b"retry: 1000\n"
    b"data:no-space\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    SSEEvent(b'{"a":1}'),
    SSEEvent(b"first line\nsecond line", "message_start"),
    SSEEvent(b"no-space"),
    SSEEvent(b"[DONE]"),
]


def decode_in_pieces(data: bytes, cuts: list[int]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    start = 0
    for cut in [*cuts, len(data)]:
        events.extend(decoder.feed(data[start:cut]))
        start = cut
    events.extend(decoder.finish())
    return events


def test_whole_stream_at_once() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(STREAM) == EXPECTED
    assert decoder.finish() == []




@pytest.mark.parametrize(
    "newline", [b"\n", b"\r\n", b"\r"]
)
def test_split_at_every_byte_boundary(newline: bytes) -> None:
    data = STREAM.replace(b"\n", newline)
    for cut in range(len(data) + 1):
        assert decode_in_pieces(data, [cut]) == EXPECTED, f"split at byte {cut}"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_one_byte_at_a_time(newline: bytes) -> None:
    data = STREAM.replace(b"\n", newline)
    assert decode_in_pieces(data, list(range(1, len(data)))) == EXPECTED


def test_events_come_out_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n") == []
    assert decoder.feed(b"\n") == [SSEEvent(b"one")]
    assert decoder.feed(b"data: tw") == []
    assert decoder.feed(b"o\r\n\r\ndata: three\r\n") == [SSEEvent(b"two")]
    assert decoder.feed(b"\r\n") == [SSEEvent(b"three")]


def test_crlf_split_between_cr_and_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [SSEEvent(b"x")]


def test_multi_line_data_keeps_inner_newlines_and_empty_lines() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\ndata:\ndata:  b\n\n") == [SSEEvent(b"a\n\n b")]


def test_comments_and_blank_lines_alone_produce_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": ping\n\n:\n\n\n") == []
    assert decoder.finish() == []


def test_event_name_applies_to_one_event_only() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"event: ping\ndata: 1\n\ndata: 2\n\n")
    assert events == [SSEEvent(b"1", "ping"), SSEEvent(b"2", None)]


def test_event_without_data_is_not_dispatched_and_its_name_is_reset() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: lonely\n\ndata: x\n\n") == [SSEEvent(b"x", None)]


def test_unknown_fields_are_ignored() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"foo: bar\nid: 3\ndata: y\n\n") == [SSEEvent(b"y")]


def test_finish_flushes_a_last_event_without_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: last") == [SSEEvent(b"a")]
    assert decoder.finish() == [SSEEvent(b"last")]
    assert decoder.finish() == []


def test_finish_flushes_a_complete_line_without_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: done\ndata: tail\n") == []
    assert decoder.finish() == [SSEEvent(b"tail", "done")]


def test_cr_line_ends_mid_stream() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\rdata: b\r") == []  # held back: the last '\r' may precede '\n'
    assert decoder.feed(b"\rdata: c\r\rdata: d") == [SSEEvent(b"a"), SSEEvent(b"b"), SSEEvent(b"c")]
    assert decoder.finish() == [SSEEvent(b"d")]


def test_finish_after_a_trailing_cr() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.finish() == [SSEEvent(b"x")]


def test_decoder_is_reusable_after_finish() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: partial")
    decoder.finish()
    assert decoder.feed(b"data: next\n\n") == [SSEEvent(b"next")]


def test_utf8_split_inside_a_character() -> None:
    data = "data: héllo ✓\n\n".encode()
    cut = data.index("✓".encode()) + 1
    assert decode_in_pieces(data, [cut]) == [SSEEvent("héllo ✓".encode())]


def test_encode() -> None:
    assert encode(b'{"x":1}') == b'data: {"x":1}\n\n'
    assert encode(b"[DONE]") == b"data: [DONE]\n\n"
    assert encode(b"{}", "message_stop") == b"event: message_stop\ndata: {}\n\n"


@pytest.mark.parametrize(("data", "event"), [(b'{"a":"b"}', None), (b"x", "content_block_delta"), (b"", None)])
def test_encode_decode_round_trip(data: bytes, event: str | None) -> None:
    decoder = SSEDecoder()
    out = decoder.feed(encode(data, event))
    if data:
        assert out == [SSEEvent(data, event)]
    else:  # an empty data line is still a data field: one event with empty data
        assert out == [SSEEvent(b"", event)]


def test_an_event_that_never_ends_is_kept_in_pieces_and_counted() -> None:
    decoder = SSEDecoder()
    for _ in range(1000):
        assert decoder.feed(b"data: " + b"x" * 100) == []
    assert decoder.pending == 106_000
    assert decoder.feed(b"\n\ndata: next") == [SSEEvent(b"x" * 100 + (b"data: " + b"x" * 100) * 999)]
    assert decoder.pending == len(b"data: next")


def test_a_blank_line_split_over_three_reads() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: y\r\n") == []
    assert decoder.feed(b"\r") == []
    assert decoder.feed(b"\n") == [SSEEvent(b"y")]
    assert decoder.pending == 0


def test_a_long_event_ending_in_cr_is_read_up_to_it() -> None:
    decoder = SSEDecoder()
    big = b"x" * (LONG + 10)
    assert decoder.feed(b"data: " + big + b"\r") == []
    assert decoder.pending == len(big) + 7
    assert decoder.feed(b"\r") == [SSEEvent(big)]
    assert decoder.feed(b"\ndata: y\n\n") == [SSEEvent(b"y")]  # that \n ended the blank line's \r
    assert decoder.pending == 0


def test_a_long_event_split_between_cr_and_lf() -> None:
    decoder = SSEDecoder()
    big = b"x" * (LONG + 10)
    assert decoder.feed(b"event: e\r\ndata: " + big + b"\r") == []
    assert decoder.feed(b"\n") == []  # the \r\n of the data line, not a blank line
    assert decoder.feed(b"\r\n") == [SSEEvent(big, "e")]


def test_chunks_that_each_end_in_cr_after_a_blank_line_stay_linear() -> None:
    decoder = SSEDecoder()
    body = b"z" * (LONG + 1)
    for _ in range(50):
        events = decoder.feed(b"\n\ndata: " + body + b"\r")
        assert decoder.pending <= len(body) + 8  # only the newest event waits, never the history
    assert events == [SSEEvent(body)] or events == []
