"""wsgi.input (InputStream) and wsgi.errors (ErrorStream) over the fake library."""

import logging

import pytest

from fakes import REQ, FakeLib
from fcgi_runtime import server
from fcgi_runtime.server import ClientDisconnected, ErrorStream, FileWrapper, InputStream

BODY = b"line one\nline two\n\nlast line without newline"


def stream(body: bytes = BODY, length: "int | None" = None, cut: bool = False) -> InputStream:
    return InputStream(FakeLib(body=body, cut=cut), REQ, length)


def test_read_all_and_then_eof() -> None:
    s = stream()
    assert s.read() == BODY
    assert s.read() == b""
    assert s.read(10) == b""


def test_read_n_in_pieces() -> None:
    s = stream()
    got = []
    while True:
        block = s.read(7)
        if not block:
            break
        assert len(block) <= 7
        got.append(block)
    assert b"".join(got) == BODY


def test_never_reads_past_content_length() -> None:
    lib = FakeLib(body=BODY)
    s = InputStream(lib, REQ, 8)
    assert s.read() == b"line one"
    assert s.read(100) == b""
    assert lib.pos == 8 and max(lib.reads) <= 8


def test_zero_content_length_reads_nothing() -> None:
    lib = FakeLib(body=BODY)
    s = InputStream(lib, REQ, 0)
    assert s.read() == b""
    assert lib.reads == []


def test_readline_readlines_and_iteration() -> None:
    s = stream()
    assert s.readline() == b"line one\n"
    assert s.readline(4) == b"line"
    assert s.readline() == b" two\n"
    assert s.readlines() == [b"\n", b"last line without newline"]
    assert s.readline() == b""
    assert list(stream()) == BODY.splitlines(keepends=True)
    assert stream().readlines(10) == [b"line one\n", b"line two\n"]


def test_readline_larger_than_one_chunk() -> None:
    big = b"x" * (server._LINE_CHUNK * 2 + 5) + b"\nrest"
    s = stream(big)
    assert s.readline() == big[: big.index(b"\n") + 1]
    assert s.read() == b"rest"


def test_body_cut_short_raises_client_disconnected() -> None:
    s = stream(b"partial", cut=True)
    with pytest.raises(ClientDisconnected):
        s.read()
    # Then the stream is at its end.
    assert s.read() == b""


def test_read_after_the_request_ended() -> None:
    s = stream()
    s._detach()
    with pytest.raises(ValueError):
        s.read(1)


def test_error_stream_sends_at_newline_and_flush() -> None:
    lib = FakeLib()
    e = ErrorStream(lib, REQ)
    e.write("no newline yet")
    assert lib.writes == []
    e.write(" - now\n")
    assert lib.writes == [(7, b"no newline yet - now\n")]
    e.write(b"bytes too")
    e.flush()
    e.writelines(["a", "b\n"])
    assert lib.stderr() == b"no newline yet - now\nbytes tooab\n"
    e.write("")
    e.flush()
    assert len(lib.writes) == 3


def test_error_stream_sends_at_8_kib() -> None:
    lib = FakeLib()
    e = ErrorStream(lib, REQ)
    e.write("x" * (server._ERRORS_FLUSH - 1))
    assert lib.writes == []
    e.write("y")
    assert len(lib.writes) == 1 and len(lib.writes[0][1]) == server._ERRORS_FLUSH


def test_error_stream_encodes_utf8_with_backslashreplace() -> None:
    lib = FakeLib()
    e = ErrorStream(lib, REQ)
    e.write("\xe9\udcff\n")
    assert lib.stderr() == b"\xc3\xa9\\udcff\n"


def test_error_stream_after_the_request_goes_to_the_server_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fcgi_runtime.server")
    lib = FakeLib()
    e = ErrorStream(lib, REQ)
    e.write("pending")
    e._detach()
    assert lib.stderr() == b"pending"
    e.write("late\n")
    assert lib.stderr() == b"pending"
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("fcgi_runtime.server", "WARNING", "wsgi.errors after the request ended: late\n")
    ]


def test_error_stream_has_no_other_attributes() -> None:
    e = ErrorStream(FakeLib(), REQ)
    assert not hasattr(e, "fileno")


def test_file_wrapper_blocks_and_close() -> None:
    import io

    f = io.BytesIO(b"abcdefg")
    w = FileWrapper(f, 3)
    assert list(w) == [b"abc", b"def", b"g"]
    w.close()
    assert f.closed
