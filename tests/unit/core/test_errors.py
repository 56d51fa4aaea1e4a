"""The error tree: a ProxyError is immutable, and ``but`` makes a changed copy of the same class."""

from __future__ import annotations

import copy
import pickle

import pytest

from lip.core.errors import (
    FIELDS,
    MAX_RETRY_AFTER,
    InvalidRequest,
    ProxyError,
    RateLimited,
    UpstreamStatus,
    UpstreamTimeout,
)


def _full() -> UpstreamStatus:
    return UpstreamStatus("slow down", status=429, code="rate_limit_exceeded", param="model", retry_after=7.0,
                          details={"limit": 3}, headers={"x-ratelimit-remaining": "0"},
                          origin=("b", "m", "upstream-m"))


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_field_is_read_only_after_construction(name: str) -> None:
    error = _full()
    with pytest.raises(AttributeError, match="immutable"):
        setattr(error, name, getattr(error, name))
    with pytest.raises(AttributeError, match="immutable"):
        delattr(error, name)


def test_no_new_attribute_can_be_added() -> None:
    error = InvalidRequest("bad")
    with pytest.raises(AttributeError, match="immutable"):
        error.error_type = "invalid_request_error"  # type: ignore[attr-defined]


def test_headers_cannot_be_changed_in_place_nor_through_what_was_passed() -> None:
    given = {"retry-after": "3"}
    error = RateLimited("later", headers=given)
    given["connection"] = "close"
    with pytest.raises(TypeError):
        error.headers["connection"] = "close"  # type: ignore[index]
    assert dict(error.headers) == {"retry-after": "3"}


def test_details_are_the_errors_own_copy() -> None:
    given = {"limit": 3}
    error = InvalidRequest("bad", details=given)
    given["limit"] = 4
    assert error.details == {"limit": 3}


def test_python_may_still_attach_its_own_chaining_and_notes() -> None:
    cause = OSError("reset")
    with pytest.raises(UpstreamTimeout) as caught:
        try:
            raise cause
        except OSError as exc:
            raise UpstreamTimeout("slow") from exc
    error = caught.value
    error.add_note("while calling b")
    assert (error.__cause__, error.__notes__) == (cause, ["while calling b"])
    assert error.__traceback__ is not None


def test_but_changes_only_what_it_is_told_and_keeps_the_class() -> None:
    error = _full()
    changed = error.but(retry_after=0.0)
    assert type(changed) is UpstreamStatus
    assert changed is not error
    assert changed.retry_after == 0.0 and error.retry_after == 7.0
    for name in FIELDS - {"retry_after"}:
        assert getattr(changed, name) == getattr(error, name), name


def test_but_of_a_message_changes_what_str_and_args_say() -> None:
    changed = _full().but(message="backend 'b': slow down")
    assert (changed.message, str(changed), changed.args) == (
        "backend 'b': slow down", "backend 'b': slow down", ("backend 'b': slow down",))


def test_but_keeps_the_cause_and_notes_without_sharing_them() -> None:
    cause = ConnectionResetError("peer")
    error = _full()
    try:
        raise error from cause
    except UpstreamStatus:
        error.add_note("first")
        changed = error.but(code="other")
    changed.add_note("second")
    assert changed.__cause__ is cause and changed.__suppress_context__
    assert (error.__notes__, changed.__notes__) == (["first"], ["first", "second"])


def test_the_copy_is_immutable_too() -> None:
    changed = _full().but(retryable=False)
    with pytest.raises(AttributeError, match="immutable"):
        changed.retryable = True


def test_but_normalises_as_the_constructor_does() -> None:
    changed = InvalidRequest("bad").but(retry_after=float("inf"), headers={"a": "b"}, details={})
    assert changed.retry_after == MAX_RETRY_AFTER
    assert dict(changed.headers) == {"a": "b"}
    assert changed.details is None
    assert InvalidRequest("bad").but(retry_after=float("nan")).retry_after is None


def test_but_refuses_a_field_the_error_does_not_have() -> None:
    with pytest.raises(TypeError, match="error_type"):
        InvalidRequest("bad").but(error_type="x")  # type: ignore[call-arg]


def test_class_defaults_and_explicit_values() -> None:
    assert (UpstreamTimeout("t").retryable, UpstreamTimeout("t", retryable=False).retryable) == (True, False)
    assert UpstreamStatus("x", status=503).retryable and not UpstreamStatus("x", status=400).retryable
    assert not UpstreamStatus("x", status=503, retryable=False).retryable
    assert ProxyError("x", origin=("b", "m", "u")).origin == ("b", "m", "u")
    assert ProxyError("x").origin is None and ProxyError("x").headers == {}


def test_a_subclass_keeps_its_class_when_copied_or_pickled() -> None:
    error = _full()
    for other in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert type(other) is UpstreamStatus
        assert {name: getattr(other, name) for name in FIELDS} == {name: getattr(error, name) for name in FIELDS}
        with pytest.raises(AttributeError):
            other.code = "x"
