"""A fake of the library object _lib.load() returns, for the unit tests of server.py: the
few native calls the WSGI server makes, on in-memory data, each call recorded."""

import ctypes
from typing import Any, Dict, List, Optional, Tuple

FCGI_STDOUT = 6
FCGI_STDERR = 7


class FakeLib:
    """One request: `params` (what fcgi_getenv_all returns), `body` (FCGI_STDIN, read with
    fcgi_read; `cut` makes a read after the body fail with -1, as a request aborted mid-body),
    the writes (fcgi_write) per stream, flushes, and write failures on demand."""

    path = "fake"

    def __init__(
        self,
        params: Optional[Dict[str, str]] = None,
        body: bytes = b"",
        cut: bool = False,
        role: int = 1,
    ) -> None:
        self.params = params or {}
        self.body = body
        self.pos = 0
        self.cut = cut
        self.role = role
        self.writes: List[Tuple[int, bytes]] = []
        self.reads: List[int] = []
        self.flushes = 0
        self.fail_writes = False
        self.aborted = 0
        self.getenv_calls: List[int] = []

    # fcgi_getenv_all(req, buf, size): NAME\0VALUE\0..., the size the block needs.
    def block(self) -> bytes:
        return b"".join(
            k.encode("latin-1") + b"\0" + v.encode("latin-1") + b"\0"
            for k, v in self.params.items()
        )

    def fcgi_getenv_all(self, req: Any, buf: Any, size: int) -> int:
        self.getenv_calls.append(size)
        data = self.block()
        if len(data) <= size:
            ctypes.memmove(buf, data, len(data))
        return len(data)

    def fcgi_read(self, req: Any, cbuf: Any, want: int) -> int:
        self.reads.append(want)
        chunk = self.body[self.pos : self.pos + want]
        if not chunk and self.cut:
            return -1
        ctypes.memmove(cbuf, chunk, len(chunk))
        self.pos += len(chunk)
        return len(chunk)

    def fcgi_write(self, req: Any, stream: int, data: bytes, n: int) -> int:
        if self.fail_writes:
            return -1
        self.writes.append((stream, bytes(data[:n])))
        return n

    def fcgi_flush(self, req: Any, close: int) -> int:
        self.flushes += 1
        return 0 if self.fail_writes else 1

    def fcgi_is_aborted(self, req: Any) -> int:
        return self.aborted

    def fcgi_request_id(self, req: Any) -> int:
        return 1

    def fcgi_request_role(self, req: Any) -> int:
        return self.role

    def stdout(self) -> bytes:
        return b"".join(d for s, d in self.writes if s == FCGI_STDOUT)

    def stderr(self) -> bytes:
        return b"".join(d for s, d in self.writes if s == FCGI_STDERR)


#: A request pointer: the fakes ignore it, the server only passes it on.
REQ: Any = object()
