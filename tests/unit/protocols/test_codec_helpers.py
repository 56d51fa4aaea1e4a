"""lip.protocols.codecs' shared helpers: Google's RetryInfo in an error body, model names as one path segment."""

from __future__ import annotations

import orjson
import pytest

from lip.core.errors import MAX_RETRY_AFTER
from lip.protocols.codecs import path_segment, retry_delay_in_body


def retry_info(delay: object) -> bytes:
    return orjson.dumps({"error": {"code": 429, "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED"},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})


def test_geminis_retry_delay_in_the_body() -> None:
    assert retry_delay_in_body(retry_info("12s")) == 12.0
    assert retry_delay_in_body(retry_info("0.25s")) == 0.25
    assert retry_delay_in_body(b"[" + retry_info("3s") + b"]") == 3.0
    assert retry_delay_in_body(retry_info("1e400s")) == MAX_RETRY_AFTER
    assert retry_delay_in_body(retry_info("-4s")) == 0.0


@pytest.mark.parametrize("raw", [retry_info("12m"), retry_info(12), retry_info("soons"), retry_info("nans"),
                                 b'{"retryDelay": "5s"}', b'{"error": {"details": {"retryDelay": "5s"}}}',
                                 b"retryDelay: 5s", b"", b'["retryDelay"]', b'{"error": {"details": "retryDelay"}}'])
def test_no_retry_delay_where_the_body_does_not_give_one(raw: bytes) -> None:
    assert retry_delay_in_body(raw) is None


# BUG (found writing these tests): an error that is a string or null, beside the word retryDelay,
# raises AttributeError out of retry_delay_in_body, so such a 429 / 5xx fails the request with an
# internal error instead of the upstream's status. Strict: the mark must go when it is fixed.
@pytest.mark.parametrize("raw", [b'{"error": "retryDelay"}', b'[{"error": null, "retryDelay": "1s"}]'])
def test_an_error_that_is_not_an_object_has_no_retry_delay(raw: bytes) -> None:
    assert retry_delay_in_body(raw) is None


@pytest.mark.parametrize(("name", "segment"), [
    ("gemini-2.5-flash", "gemini-2.5-flash"), ("a@b~c_d.e", "a@b~c_d.e"), ("x/../../etc", "x%2F..%2F..%2Fetc"),
    ("a:b?c#d%", "a%3Ab%3Fc%23d%25"), ("oké", "ok%C3%A9"), ("two words", "two%20words"),
])
def test_path_segment_encodes_everything_but_unreserved(name: str, segment: str) -> None:
    assert path_segment(name) == segment
