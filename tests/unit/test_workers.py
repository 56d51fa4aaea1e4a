"""lip.workers: the supervisor refuses a port that something already listens on (even another lip)."""

from __future__ import annotations

import socket

import pytest

from lip import workers


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_port_in_use_is_refused_before_any_worker_starts(reuse_port: bool, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # another `lip serve --workers` on that port: sharing it would split its traffic
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert workers.run("127.0.0.1", port, 2, "warning") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in caplog.text
