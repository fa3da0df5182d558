"""The response side: _Exchange.start_response's checks, the CGI head, Content-Length
(_content_length, never more body than it promises), HEAD, and Server._handle's choices
(a list gets a Content-Length, a generator is flushed block by block, the 500)."""

import sys
from typing import Any, Dict, Iterable, Iterator, List, Optional

import pytest

from fakes import REQ, FakeLib
from fcgi_runtime.server import ClientDisconnected, Server, _content_length, _Exchange


def exchange(head_only: bool = False) -> "tuple[_Exchange, FakeLib]":
    lib = FakeLib()
    ex = _Exchange(lib, REQ)
    ex.head_only = head_only
    return ex, lib


@pytest.mark.parametrize(
    "status,headers,exc",
    [
        (b"200 OK", [], TypeError),
        ("200", [], ValueError),
        ("20x OK", [], ValueError),
        ("200-OK", [], ValueError),
        ("200 OK", (("A", "b"),), TypeError),
        ("200 OK", [("A", "b", "c")], TypeError),
        ("200 OK", [["A", "b"]], TypeError),
        ("200 OK", [("A", b"b")], TypeError),
        ("200 OK", [("A:B", "c")], ValueError),
        ("200 OK", [("A", "b\r\nX: y")], ValueError),
        ("200 OK", [("A\n", "b")], ValueError),
    ],
)
def test_start_response_refuses(status: Any, headers: Any, exc: type) -> None:
    ex, _ = exchange()
    with pytest.raises(exc):
        ex.start_response(status, headers)


def test_start_response_twice_needs_exc_info() -> None:
    ex, lib = exchange()
    ex.start_response("200 OK", [])
    with pytest.raises(AssertionError):
        ex.start_response("500 Oops", [])
    try:
        raise RuntimeError("x")
    except RuntimeError:
        ex.start_response("503 Busy", [("A", "b")], sys.exc_info())
    ex.finish()
    assert lib.stdout() == b"Status: 503 Busy\r\nA: b\r\n\r\n"


def test_exc_info_after_the_head_was_sent_reraises() -> None:
    ex, _ = exchange()
    write = ex.start_response("200 OK", [])
    write(b"x")
    try:
        raise KeyError("late")
    except KeyError:
        with pytest.raises(KeyError, match="late"):
            ex.start_response("500 Oops", [], sys.exc_info())


def test_empty_exc_info_after_the_head_was_sent_is_an_error() -> None:
    """sys.exc_info() outside an except block is (None, None, None): nothing to re-raise,
    and the head cannot be replaced."""
    ex, lib = exchange()
    write = ex.start_response("200 OK", [])
    write(b"x")
    with pytest.raises(AssertionError):
        ex.start_response("500 Oops", [], (None, None, None))
    assert lib.stdout() == b"Status: 200 OK\r\n\r\nx"


def test_cgi_head_goes_with_the_first_block_and_write_flushes() -> None:
    ex, lib = exchange()
    write = ex.start_response("404 Not Found", [("Content-Type", "text/plain"), ("X-A", "\xe9")])
    ex.send(b"", True)  # an empty block sends nothing, not even the head
    assert lib.writes == []
    write(b"abc")
    assert lib.writes == [
        (6, b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-A: \xe9\r\n\r\nabc")
    ]
    assert lib.flushes == 1
    ex.finish()
    assert len(lib.writes) == 1


def test_empty_body_sends_the_head_at_finish() -> None:
    ex, lib = exchange()
    ex.start_response("204 No Content", [])
    ex.finish()
    assert lib.stdout() == b"Status: 204 No Content\r\n\r\n"


def test_finish_without_start_response_is_an_error() -> None:
    ex, _ = exchange()
    with pytest.raises(AssertionError):
        ex.finish()
    with pytest.raises(AssertionError):
        ex.send(b"x", False)


def test_body_must_be_bytes() -> None:
    ex, lib = exchange()
    ex.start_response("200 OK", [])
    with pytest.raises(TypeError):
        ex.send("text", False)  # type: ignore[arg-type]  # the check under test
    ex.send(bytearray(b"ab"), False)
    ex.send(memoryview(b"cd"), False)
    assert lib.stdout().endswith(b"\r\n\r\nabcd")


@pytest.mark.parametrize(
    "headers,want",
    [
        ([("Content-Length", "12")], 12),
        ([("content-length", "0"), ("X", "y")], 0),
        ([("CONTENT-LENGTH", "x")], None),
        ([("X", "y")], None),
        ([], None),
    ],
)
def test_content_length(headers: List[Any], want: Optional[int]) -> None:
    assert _content_length(headers) == want


def test_never_more_body_than_content_length_and_no_flush_once_complete() -> None:
    ex, lib = exchange()
    ex.start_response("200 OK", [("Content-Length", "5")])
    ex.send(b"abc", True)
    assert lib.flushes == 1
    ex.send(b"defgh", True)
    ex.send(b"ijk", True)
    assert lib.stdout().split(b"\r\n\r\n", 1)[1] == b"abcde"
    # The last piece completed the Content-Length: no flush (END_REQUEST carries the end).
    assert lib.flushes == 1


def test_head_request_sends_the_head_only() -> None:
    ex, lib = exchange(head_only=True)
    ex.start_response("200 OK", [("Content-Length", "5")])
    ex.send(b"hello", True)
    ex.send(b"more", True)
    ex.finish()
    assert lib.stdout() == b"Status: 200 OK\r\nContent-Length: 5\r\n\r\n"


def test_write_to_a_gone_client_raises_client_disconnected() -> None:
    ex, lib = exchange()
    ex.start_response("200 OK", [])
    lib.fail_writes = True
    with pytest.raises(ClientDisconnected):
        ex.send(b"x", False)
    assert issubclass(ClientDisconnected, OSError)


def test_write_after_the_request_ended_is_a_value_error() -> None:
    ex, _ = exchange()
    ex.start_response("200 OK", [])
    ex.req = None
    with pytest.raises(ValueError):
        ex.send(b"x", False)
    assert ex.aborted() is True


# -- Server._handle: one request through an application ----------------------------------


def handle(app: Any, params: Optional[Dict[str, str]] = None) -> "tuple[int, FakeLib]":
    lib = FakeLib(params or {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/x"})
    srv = object.__new__(Server)
    srv.script_name = ""
    setattr(srv, "multiprocess", False)  # read by _environ in the workers branch
    srv.app = app
    srv.lib = lib
    return srv._handle(REQ), lib


def test_list_result_gets_a_content_length_and_no_flush() -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"Hello, ", b"World!\n"]

    rc, lib = handle(app)
    assert rc == 0
    assert lib.stdout() == (
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n"
        b"Hello, World!\n"
    )
    assert lib.flushes == 0


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified", "101 Switching"])
def test_no_content_length_added_for_bodyless_statuses(status: str) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response(status, [])
        return []

    _, lib = handle(app)
    assert b"Content-Length" not in lib.stdout()


def test_head_request_through_handle() -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("200 OK", [])
        return [b"body"]

    _, lib = handle(app, {"REQUEST_METHOD": "HEAD"})
    assert lib.stdout() == b"Status: 200 OK\r\nContent-Length: 4\r\n\r\n"


def test_generator_is_flushed_per_block_and_closed() -> None:
    closed: List[bool] = []

    def app(environ: Dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])

        def gen() -> Iterator[bytes]:
            try:
                yield b"a"
                yield b"b"
            finally:
                closed.append(True)

        return gen()

    _, lib = handle(app)
    assert lib.stdout() == b"Status: 200 OK\r\n\r\nab"
    assert lib.flushes == 2
    assert closed == [True]


def test_exception_before_the_head_answers_500_and_logs_on_wsgi_errors() -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise ValueError("deliberate")

    rc, lib = handle(app)
    assert rc == 0
    assert lib.stdout().startswith(b"Status: 500 Internal Server Error\r\n")
    assert b"ValueError: deliberate" in lib.stderr()


def test_exception_after_the_head_asks_to_close_the_connection() -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        raise KeyError("late")

    rc, lib = handle(app)
    assert rc == 1
    assert lib.stdout() == b"Status: 200 OK\r\n\r\nfirst"
