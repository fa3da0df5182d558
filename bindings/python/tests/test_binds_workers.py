"""Unit tests of --bind parsing (binds.py) and of how serve_workers maps its arguments onto the
pool's settings and sockets (workers.py); the processes themselves are tested end to end in
tests/languages/python_workers.rs."""

import os
import socket

import pytest

from fcgi_runtime import binds, workers


@pytest.mark.parametrize(
    "text,address,fd",
    [
        ("127.0.0.1:9000", "127.0.0.1:9000", None),
        (":9000", ":9000", None),
        ("9000", "9000", None),
        ("[::1]:9000", "[::1]:9000", None),
        ("unix:/run/app.sock", "/run/app.sock", None),
        ("unix:///run/app.sock", "/run/app.sock", None),
        ("/run/app.sock", "/run/app.sock", None),
        ("fd://3", None, 3),
        ("fd://0", None, 0),
    ],
)
def test_bind_forms(text: str, address: str, fd: int) -> None:
    b = binds.parse(text)
    assert (b.text, b.address, b.fd) == (text, address, fd)


@pytest.mark.parametrize("text", ["fd://", "fd://x", "unix:", ""])
def test_bad_binds(text: str) -> None:
    with pytest.raises(ValueError):
        binds.parse(text)


def test_check_fd_wants_a_listening_socket() -> None:
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    plain = socket.socket()
    try:
        assert binds.check_fd(binds.parse("fd://%d" % lst.fileno())) == lst.fileno()
        with pytest.raises(OSError, match="not a listening socket"):
            binds.check_fd(binds.parse("fd://%d" % plain.fileno()))
    finally:
        lst.close()
        plain.close()


def test_pool_settings() -> None:
    s = workers._pool_settings(
        4, "static", 100, 10, 2.5, 30.0, "/status", None, None, None, None, None
    )
    assert s["pm"] == "static"
    assert s["max_children"] == "4"
    assert s["max_requests"] == "100"
    assert s["max_requests_jitter"] == "10"
    assert s["request_terminate_timeout_ms"] == "2500"
    assert s["graceful_timeout_ms"] == "30000"
    assert s["status_path"] == "/status"
    assert "min_spare_servers" not in s
    # dynamic: spares that fit a pool of 2 (the library's default max is 3).
    d = workers._pool_settings(2, "dynamic", 0, 0, 0, 30.0, None, None, None, None, 5.0, None)
    assert (d["min_spare_servers"], d["max_spare_servers"]) == ("1", "2")
    assert d["process_idle_timeout_ms"] == "5000"
    with pytest.raises(ValueError):
        workers._pool_settings(2, "lazy", 0, 0, 0, 30.0, None, None, None, None, None, None)
    with pytest.raises(ValueError):
        workers._pool_settings(0, "static", 0, 0, 0, 30.0, None, None, None, None, None, None)


class _NoPool:
    """A stand-in for the library: fcgi_pool_listen must not be called."""

    def fcgi_pool_listen(self, *a: object) -> int:
        raise AssertionError("not an address")


def _listener_at(fd: int) -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    os.dup2(s.fileno(), fd)
    return s


def test_an_inherited_fd_the_pool_cannot_take_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """fd://200 alone: not systemd's layout (3, 4, ...) nor fd 0, and no address beside it."""
    monkeypatch.delenv("LISTEN_PID", raising=False)
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    s = _listener_at(200)
    try:
        with pytest.raises(OSError, match="fd://200 is neither"):
            workers._plan_sockets(_NoPool(), 0, [binds.parse("fd://200")], 128, "static")
    finally:
        os.close(200)
        s.close()
