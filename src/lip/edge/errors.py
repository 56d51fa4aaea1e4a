"""The one place errors become replies: a ProxyError in its route's protocol envelope, an unknown URL
(404) and a wrong method (405) in the path's envelope, an unexpected exception as a logged 500."""

from __future__ import annotations

import logging
import math

from lip.core.errors import InvalidRequest, NotFound, ProxyError, wait_seconds
from lip.edge.exchange import Reply
from lip.protocols.base import Surface

log = logging.getLogger("lip.edge")


def error_reply(error: ProxyError, surface: Surface) -> Reply:
    """``error`` in ``surface``'s protocol, with its status and headers (and ``Retry-After`` for a wait)."""
    status, body = surface.render_error(error)
    headers = dict(error.headers)
    wait = wait_seconds(error.retry_after)
    if wait is not None:
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return Reply(status, body, headers=headers)


def unknown_url(method: str, path: str, surface: Surface) -> Reply:
    return error_reply(NotFound(f"Unknown request URL: {method} {path}.", code="unknown_url"), surface)


def method_not_allowed(method: str, path: str, surface: Surface) -> Reply:
    error = InvalidRequest(f"Method {method} is not allowed for {path}.", status=405, code="method_not_allowed")
    return error_reply(error, surface)


def internal(request_id: str, exc: BaseException) -> ProxyError:
    """The 500 a client is told for a bug of ours (logged here with its traceback), never the traceback."""
    log.error("unexpected error in request %s", request_id, exc_info=exc)
    return ProxyError(f"Internal proxy error (request id {request_id}).", status=500)
