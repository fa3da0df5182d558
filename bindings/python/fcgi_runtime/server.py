"""A WSGI (PEP 3333) server on fcgi-runtime's native C API.

Every FastCGI detail (records, multiplexing, keep-alive, back-pressure, aborts, limits) is the
library's; this module maps one accepted request onto one WSGI call:

- the request's FastCGI params (fcgi_getenv_all) become ``environ``;
- ``wsgi.input`` reads the body with fcgi_read, ``wsgi.errors`` writes FCGI_STDERR;
- the response goes out through fcgi_write/fcgi_flush as a CGI response (``Status:`` header);
- N Python threads each own a request object and block in fcgi_accept_request concurrently,
  with the GIL released (ctypes releases it for every foreign call).
"""

import ctypes
import logging
import os
import signal
import threading
import traceback
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    NoReturn,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Type,
    Union,
)

from . import _lib, binds
from . import log as _log

__all__ = ["Server", "serve", "ClientDisconnected", "FileWrapper", "InputStream", "ErrorStream"]

#: The most fcgi_read asks for in one call.
_MAX_READ = 1 << 20
#: What readline and the iterator read ahead per call.
_LINE_CHUNK = 64 * 1024
#: wsgi.errors sends what it holds once it has this much (else at a newline or flush()).
_ERRORS_FLUSH = 8 * 1024

#: The WSGI server's log (see log.py; the request's FCGI_STDERR is ``wsgi.errors``).
logger = logging.getLogger("fcgi_runtime.server")

#: What a response block may be (bytes; bytearray and memoryview are copied to bytes).
_Bytes = Union[bytes, bytearray, memoryview]
#: What wsgi.errors takes: text (PEP 3333), or bytes written as they are.
_Text = Union[str, bytes, bytearray, memoryview]
#: A response header: (name, value), both native strings.
_Header = Tuple[str, str]
#: start_response's exc_info: sys.exc_info() (its (None, None, None) form included).
_ExcInfo = Tuple[Type[BaseException], BaseException, Optional[TracebackType]]
_OptExcInfo = Union[_ExcInfo, Tuple[None, None, None]]
#: The write() callable start_response returns.
_Write = Callable[[_Bytes], None]



def open_listener(lib: Any, bind: Optional[str], backlog: int) -> int:
    """The listening socket's descriptor: `bind` opened with fcgi_listen (gunicorn's forms,
    see binds.py: ``unix:PATH`` and ``fd://N`` too), or fd 0 when `bind` is None (a web
    server or spawner started us on it). fcgi_listen and fcgi_init install the library's
    SIGTERM handler when SIGTERM is left at its default. Both servers run requests side by
    side, so they opt in to multiplexing, which fcgi_init and fcgi_listen leave off
    (FCGI_MPXS_CONNS=0, as PHP's layer), unless FCGI_RUNTIME_MPXS_CONNS says otherwise.
    Raises OSError."""
    allow_mpxs(lib)
    if bind is None:
        if not lib.fcgi_is_fastcgi():
            raise OSError("no --bind address, and fd 0 is not a listening socket")
        return 0
    try:
        b = binds.parse(bind)
    except ValueError as e:
        raise OSError(str(e))
    if b.fd is not None:
        return binds.check_fd(b)
    assert b.address is not None
    fd: int = lib.fcgi_listen(os.fsencode(b.address), backlog)
    if fd < 0:
        raise OSError("cannot listen on %r (the library logged why)" % (bind,))
    return fd


def allow_mpxs(lib: Any) -> None:
    """Multiplexing on (FCGI_MPXS_CONNS=1) unless FCGI_RUNTIME_MPXS_CONNS says otherwise."""
    if "FCGI_RUNTIME_MPXS_CONNS" not in os.environ:
        lib.fcgi_set_limit(_lib.FCGI_LIMIT_MPXS_CONNS, 1)


def bind_list(bind: Union[None, str, Sequence[Optional[str]]]) -> List[Optional[str]]:
    """`bind` as a list: None (fd 0), one address, or several."""
    if bind is None or isinstance(bind, str):
        return [bind]
    return list(bind) or [None]


class Listeners(object):
    """A server's listening sockets: the addresses it was given, opened once (open_listener),
    or descriptors already open (a pool's worker serves the pool's)."""

    def __init__(
        self,
        lib: Any,
        bind: Union[None, str, Sequence[Optional[str]]],
        backlog: int,
        fds: Optional[Sequence[int]],
    ) -> None:
        self.lib = lib
        self.binds = bind_list(bind)
        self.backlog = backlog
        self.fds: Optional[List[int]] = list(fds) if fds else None

    def open(self) -> List[int]:
        """Opens the sockets (once); returns their descriptors. Raises OSError."""
        if self.fds is None:
            self.fds = [open_listener(self.lib, b, self.backlog) for b in self.binds]
        else:
            allow_mpxs(self.lib)
        return self.fds

    def where(self) -> str:
        """The sockets, for the log: the addresses, else the descriptors."""
        if self.binds != [None]:
            return ", ".join(str(b) for b in self.binds)
        return ", ".join("fd %d" % fd for fd in self.fds or [0])


class ClientDisconnected(OSError):
    """The request was aborted by the web server, or its connection failed: the request body
    was cut short (wsgi.input) or the response can no longer be written (write(), iteration)."""


# ---------------------------------------------------------------------------------------------
# environ
# ---------------------------------------------------------------------------------------------

_tls = threading.local()

#: The first size of each thread's environment buffer; it grows to the largest block seen.
_ENV_BUF_SIZE = 16384


def _load_params(lib: Any, req: int) -> Dict[str, str]:
    """The request's params as a dict of native strings (PEP 3333: the bytes as latin-1).
    fcgi_getenv_all copies them all in one call as NAME NUL VALUE NUL pairs; the split and
    the decoding then run in C inside Python, with no call back per param."""
    buf = getattr(_tls, "env_buf", None)
    if buf is None:
        buf = _tls.env_buf = ctypes.create_string_buffer(_ENV_BUF_SIZE)
    n = lib.fcgi_getenv_all(req, buf, len(buf))
    if n > len(buf):
        buf = _tls.env_buf = ctypes.create_string_buffer(n)
        n = lib.fcgi_getenv_all(req, buf, len(buf))
    if n <= 0:
        return {}
    parts = buf.raw[: n - 1].decode("latin-1").split("\0")
    return dict(zip(parts[0::2], parts[1::2]))


def _unquote_path(path: str) -> str:
    """Percent-decodes a URL path into a WSGI string (the bytes as latin-1)."""
    if "%" not in path:
        return path
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(path.encode("latin-1")).decode("latin-1")


def _url_scheme(env: Mapping[str, str]) -> str:
    https = env.get("HTTPS", "").lower()
    if https in ("on", "1", "yes"):
        return "https"
    scheme = env.get("REQUEST_SCHEME", "").lower()
    if scheme in ("http", "https"):
        return scheme
    return "http"


# ---------------------------------------------------------------------------------------------
# wsgi.input, wsgi.errors, wsgi.file_wrapper
# ---------------------------------------------------------------------------------------------


class InputStream(object):
    """``wsgi.input``: the request body (FCGI_STDIN), read on demand with fcgi_read.

    Nothing is read before the application asks, so the library's back-pressure holds: an
    upload the application reads slowly is not buffered whole anywhere. Never reads past
    CONTENT_LENGTH when it is set; without it, reads to the end of FCGI_STDIN (which always
    has one), and ``wsgi.input_terminated`` is then set. A body cut short or an aborted request
    raises ClientDisconnected."""

    def __init__(self, lib: Any, req: Optional[int], length: Optional[int]) -> None:
        self._lib = lib
        self._req = req
        self._remaining = length  # None: to the end of the stream
        self._buf = bytearray()
        self._eof = False

    def _read_into(self, out: bytearray, want: int) -> int:
        """Appends at most `want` bytes of the body to bytearray `out`; returns how many
        (0 at the end)."""
        if self._eof:
            return 0
        if self._req is None:
            raise ValueError("wsgi.input read after the request ended")
        if self._remaining is not None:
            want = min(want, self._remaining)
        want = min(want, _MAX_READ)
        if want <= 0:
            self._eof = True
            return 0
        start = len(out)
        out += bytes(want)
        cbuf = (ctypes.c_char * want).from_buffer(out, start)
        n: int = self._lib.fcgi_read(self._req, cbuf, want)
        del cbuf  # release the export before resizing `out`
        del out[start + max(n, 0):]
        if n < 0:
            self._eof = True
            raise ClientDisconnected("request body cut short (aborted or connection lost)")
        if n == 0:
            self._eof = True
        elif self._remaining is not None:
            self._remaining -= n
        return n

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0:
            out = self._buf
            self._buf = bytearray()
            while self._read_into(out, _MAX_READ):
                pass
            return bytes(out)
        if size <= len(self._buf):
            data = bytes(self._buf[:size])
            del self._buf[:size]
            return data
        out = self._buf
        self._buf = bytearray()
        while len(out) < size and self._read_into(out, size - len(out)):
            pass
        return bytes(out)

    def readline(self, size: Optional[int] = -1) -> bytes:
        if size is not None and size < 0:
            size = None
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if size is not None and len(self._buf) >= size:
                end = size
                break
            start = len(self._buf)
            if not self._read_into(self._buf, _LINE_CHUNK):
                end = len(self._buf)
                break
        if size is not None:
            end = min(end, size)
        data = bytes(self._buf[:end])
        del self._buf[:end]
        return data

    def readlines(self, hint: Optional[int] = -1) -> List[bytes]:
        lines: List[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> "InputStream":
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    next = __next__

    def close(self) -> None:
        pass

    def _detach(self) -> None:
        """At the end of the request: the request object goes on to serve other requests."""
        self._req = None


class ErrorStream(object):
    """``wsgi.errors``: text written here goes to the request's FCGI_STDERR (nginx logs it in
    its error log). Sent at each newline, at 8 KiB and at flush(); errors while sending are
    ignored (an aborted request has nowhere to log)."""

    def __init__(self, lib: Any, req: Optional[int]) -> None:
        self._lib = lib
        self._req = req
        self._parts: List[bytes] = []
        self._size = 0

    def write(self, s: _Text) -> None:
        if isinstance(s, str):
            data = s.encode("utf-8", "backslashreplace")
        else:
            data = bytes(s)
        if not data:
            return
        self._parts.append(data)
        self._size += len(data)
        if self._size >= _ERRORS_FLUSH or data.endswith(b"\n"):
            self.flush()

    def writelines(self, seq: Iterable[_Text]) -> None:
        for s in seq:
            self.write(s)

    def flush(self) -> None:
        if not self._parts:
            return
        data = b"".join(self._parts)
        self._parts = []
        self._size = 0
        if self._req is None:
            logger.warning(
                "wsgi.errors after the request ended: %s", data.decode("utf-8", "replace")
            )
        else:
            self._lib.fcgi_write(self._req, _lib.FCGI_STDERR, data, len(data))

    def _detach(self) -> None:
        """At the end of the request: later writes go to the server's stderr."""
        self.flush()
        self._req = None

    def __getattr__(self, name: str) -> NoReturn:
        raise AttributeError(name)


class _Readable(Protocol):
    """What wsgi.file_wrapper wraps: an object with read(size) (a file opened in binary mode,
    io.BytesIO...); its close(), if it has one, is the wrapper's."""

    def read(self, __size: int) -> bytes: ...


class FileWrapper(object):
    """``wsgi.file_wrapper``: iterates a file-like object in blocks and closes it."""

    def __init__(self, filelike: _Readable, blksize: int = 64 * 1024) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> "FileWrapper":
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    next = __next__


# ---------------------------------------------------------------------------------------------
# One request
# ---------------------------------------------------------------------------------------------


class _Exchange(object):
    """The response side of one request: start_response, write(), the CGI head."""

    def __init__(self, lib: Any, req: Optional[int]) -> None:
        self.lib = lib
        self.req = req
        # Set together by start_response (and by the server's error response).
        self.status: Optional[str] = None
        self.headers: Optional[List[_Header]] = None
        self.headers_sent = False
        self.head_only = False
        # Body bytes still due by the application's Content-Length (None: not given).
        self.left: Optional[int] = None

    def aborted(self) -> bool:
        """``environ['fcgi.aborted']``: whether the web server aborted the request or its
        connection failed. True once the request has ended."""
        req = self.req
        return req is None or bool(self.lib.fcgi_is_aborted(req))

    def start_response(
        self, status: str, headers: List[_Header], exc_info: Optional[_OptExcInfo] = None
    ) -> _Write:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    if exc_info[1] is None:
                        # sys.exc_info() outside an except block: nothing to re-raise.
                        raise AssertionError("start_response called after the head was sent")
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        if type(status) is not str:
            raise TypeError("status must be a str, not %r" % (type(status).__name__,))
        if len(status) < 4 or not status[:3].isdigit() or status[3] != " ":
            raise ValueError("status %r is not 'NNN Reason'" % (status,))
        if type(headers) is not list:
            raise TypeError("headers must be a list, not %r" % (type(headers).__name__,))
        for h in headers:
            if type(h) is not tuple or len(h) != 2:
                raise TypeError("each header must be a (name, value) tuple: %r" % (h,))
            name, value = h
            if type(name) is not str or type(value) is not str:
                raise TypeError("header names and values must be str: %r" % (h,))
            if "\r" in name or "\n" in name or ":" in name or "\r" in value or "\n" in value:
                raise ValueError("invalid header %r" % (h,))
        self.status = status
        self.headers = headers
        return self.write

    def _head(self) -> bytes:
        headers = self.headers
        assert headers is not None  # start_response set it with the status
        lines = ["Status: %s\r\n" % self.status]
        for name, value in headers:
            lines.append("%s: %s\r\n" % (name, value))
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def _out(self, data: bytes) -> None:
        if self.req is None:
            raise ValueError("response written after the request ended")
        n = len(data)
        if n and self.lib.fcgi_write(self.req, _lib.FCGI_STDOUT, data, n) < 0:
            raise ClientDisconnected("the response could not be written (client gone)")

    def send(self, data: _Bytes, flush: bool) -> None:
        """Sends a body block (the head first, once). PEP 3333: the head waits for the first
        non-empty block."""
        if type(data) is not bytes:
            if isinstance(data, (bytearray, memoryview)):
                data = bytes(data)
            else:
                raise TypeError(
                    "the application must produce bytes, not %r" % (type(data).__name__,)
                )
        if not data:
            return
        if self.status is None or self.headers is None:  # start_response sets both
            raise AssertionError("response body before start_response()")
        head = b""
        if not self.headers_sent:
            self.headers_sent = True
            self.left = _content_length(self.headers)
            head = self._head()
            if self.head_only:
                data = b""
        elif self.head_only:
            return
        if self.left is not None:
            # PEP 3333: never more than the application's Content-Length says.
            if len(data) > self.left:
                data = data[: max(self.left, 0)]
            self.left -= len(data)
        self._out(head + data if head else data)
        # Once the whole Content-Length is out, the rest goes with END_REQUEST: a flush here
        # would let the client see the complete response and close before END_REQUEST
        # arrives, and nginx then drops its kept upstream connection.
        if self.left is not None and self.left <= 0:
            return
        if flush and self.lib.fcgi_flush(self.req, 0) == 0:
            raise ClientDisconnected("the response could not be flushed (client gone)")

    def write(self, data: _Bytes) -> None:
        """The write() callable returned by start_response: unbuffered."""
        self.send(data, True)

    def finish(self) -> None:
        """The end of the body: a head not sent yet (empty body) goes now."""
        if self.status is None:
            raise AssertionError("the application returned without calling start_response()")
        if not self.headers_sent:
            self.headers_sent = True
            self._out(self._head())


#: Statuses whose responses carry no body and must not carry Content-Length (RFC 9110 8.6;
#: 1xx as well).
_NO_BODY_STATUS = ("204", "304")


def _content_length(headers: Iterable[_Header]) -> Optional[int]:
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _has_header(headers: Iterable[_Header], name: str) -> bool:
    name = name.lower()
    return any(h[0].lower() == name for h in headers)


class Server(object):
    """A WSGI server: `threads` Python threads per listening socket serving `app`.

    `bind`: an address (``host:port``, ``:port``, ``port``, ``[v6]:port``, ``unix:PATH``,
    ``fd://N``, a Unix socket path), a list of them (each served by `threads` threads), or
    None to serve the listening socket on fd 0 (started by a web server or spawn-fcgi).
    `fds`: listening descriptors already open (a pool worker's), served instead of `bind`.
    `script_name`: the mount point, when the web server sends no PATH_INFO (see README)."""

    def __init__(
        self,
        app: Any,
        bind: Union[None, str, Sequence[Optional[str]]] = None,
        threads: int = 4,
        backlog: int = 128,
        script_name: str = "",
        fds: Optional[Sequence[int]] = None,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.app = app
        self.threads = threads
        self.script_name = script_name.rstrip("/")
        # The library (_lib.load()'s namespace of ctypes functions), or a stand-in with the
        # same functions (the tests' fake): used by duck typing.
        self.lib: Any = _lib.load()
        _log.attach(self.lib)
        self._listeners = Listeners(self.lib, bind, backlog, fds)
        #: ``wsgi.multiprocess``: True in a pool's workers.
        self.multiprocess = False
        self._workers: List[threading.Thread] = []
        self._alive = 0
        self._alive_lock = threading.Lock()
        self._done = threading.Event()
        self._stopping = False

    # -- listening --------------------------------------------------------------------------

    def listen(self) -> int:
        """Opens the listening sockets (once); returns the first one's descriptor."""
        return self.listen_all()[0]

    def listen_all(self) -> List[int]:
        """Opens the listening sockets (once); returns their descriptors."""
        return self._listeners.open()

    def where(self) -> str:
        """The sockets served, for the log."""
        return self._listeners.where()

    # -- running ----------------------------------------------------------------------------

    def serve_forever(self, handle_signals: Optional[bool] = None) -> None:
        """Serves until shutdown() (or SIGTERM/SIGINT when `handle_signals`, the default in
        the main thread). Requests in progress are finished, then the threads end."""
        if handle_signals is None:
            handle_signals = threading.current_thread() is threading.main_thread()
        if handle_signals:
            self._install_signals()
        fds = self.listen_all()
        stops = {signal.SIGINT, signal.SIGTERM}
        # The worker threads (and the library's threads, which they start) inherit a mask
        # blocking SIGINT/SIGTERM, so the signals reach the main thread, whose handler runs
        # even while it waits below.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, stops) if handle_signals else None
        try:
            for fd in fds:
                for i in range(self.threads):
                    t = threading.Thread(
                        target=self._worker, args=(fd,), name="fcgi-worker-%d-%d" % (fd, i)
                    )
                    t.daemon = True
                    with self._alive_lock:
                        self._alive += 1
                    self._workers.append(t)
                    t.start()
        finally:
            if old is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        logger.info(
            "serving on %s with %d threads%s (library %s)",
            self.where(),
            self.threads,
            " each" if len(fds) > 1 else "",
            self.lib.path,
        )
        try:
            while not self._done.wait(None if handle_signals else 1.0):
                pass
        except KeyboardInterrupt:
            self.shutdown()
            self._done.wait()
        for t in self._workers:
            t.join()
        logger.info("stopped")

    def shutdown(self) -> None:
        """Wakes every thread blocked in fcgi_accept_request (fcgi_terminate); each ends after
        its current request. Process-wide: the library has one shutdown flag."""
        self._stopping = True
        self.lib.fcgi_terminate()

    def _install_signals(self) -> None:
        def on_signal(signum: int, _frame: Any) -> None:
            if self._stopping:
                logger.warning("signal %d again: exiting at once", signum)
                os._exit(128 + signum)
            logger.info("signal %d: stopping after the requests in progress", signum)
            self.shutdown()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _worker(self, fd: int) -> None:
        lib = self.lib
        req = lib.fcgi_init_request(fd, None, None, None)
        try:
            if not req:
                logger.error("fcgi_init_request failed")
                return
            while lib.fcgi_accept_request(req) >= 0:
                force_close = 0
                try:
                    force_close = self._handle(req)
                except BaseException:  # never let one request end the thread
                    logger.error("internal error", exc_info=True)
                    force_close = 1
                if force_close:
                    # Closed without END_REQUEST: the web server sees the response cut short
                    # (fcgi_finish_request would end it and make it look complete).
                    lib.fcgi_close(req, 1, 1)
                else:
                    lib.fcgi_finish_request(req, 0)
            if not lib.fcgi_in_shutdown():
                logger.error("fcgi_accept_request failed (the library logged why): thread ends")
        finally:
            if req:
                lib.fcgi_destroy_request(req)
            with self._alive_lock:
                self._alive -= 1
                if self._alive == 0:
                    self._done.set()

    # -- one request ------------------------------------------------------------------------

    def _environ(self, lib: Any, req: int, ex: _Exchange) -> Dict[str, Any]:
        env: Dict[str, Any] = _load_params(lib, req)
        # nginx passes Content-Type/-Length both as CGI variables and as HTTP_ headers;
        # PEP 3333 wants only the CGI ones.
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            dup = env.pop("HTTP_" + name, None)
            if dup is not None and name not in env:
                env[name] = dup
        env.setdefault("REQUEST_METHOD", "GET")
        env.setdefault("SERVER_PROTOCOL", "HTTP/1.0")
        env.setdefault("QUERY_STRING", "")
        if not env.get("SERVER_NAME"):
            env["SERVER_NAME"] = env.get("SERVER_ADDR") or "localhost"
        if not env.get("SERVER_PORT"):
            env["SERVER_PORT"] = "443" if _url_scheme(env) == "https" else "80"
        if "PATH_INFO" not in env or self.script_name:
            # The web server did not split the path (nginx's default: SCRIPT_NAME is the whole
            # path): the application is mounted at script_name and routes on the rest.
            path = env.get("DOCUMENT_URI") or env.get("SCRIPT_NAME") or ""
            if not path:
                path = _unquote_path(env.get("REQUEST_URI", "").split("?", 1)[0])
            if "PATH_INFO" in env and self.script_name:
                path = env.get("SCRIPT_NAME", "") + env["PATH_INFO"]
            prefix = self.script_name
            if prefix and (path == prefix or path.startswith(prefix + "/")):
                path = path[len(prefix):]
            env["SCRIPT_NAME"] = prefix
            env["PATH_INFO"] = path
        elif env.get("SCRIPT_NAME") == "/":
            env["SCRIPT_NAME"] = ""
        length = env.get("CONTENT_LENGTH", "")
        try:
            length = int(length) if length else None
            if length is not None and length < 0:
                length = None
        except ValueError:
            length = None
        env["wsgi.version"] = (1, 0)
        env["wsgi.url_scheme"] = _url_scheme(env)
        env["wsgi.input"] = InputStream(lib, req, length)
        if length is None:
            # No CONTENT_LENGTH (nginx forwarding a chunked body unbuffered): the extension
            # that tells frameworks to read to the end instead of assuming an empty body.
            env["wsgi.input_terminated"] = True
        env["wsgi.errors"] = ErrorStream(lib, req)
        env["wsgi.multithread"] = True
        env["wsgi.multiprocess"] = self.multiprocess
        env["wsgi.run_once"] = False
        env["wsgi.file_wrapper"] = FileWrapper
        env["fcgi.aborted"] = ex.aborted
        env["fcgi.request_id"] = lib.fcgi_request_id(req)
        env["fcgi.role"] = {1: "RESPONDER", 2: "AUTHORIZER", 3: "FILTER"}.get(
            lib.fcgi_request_role(req), "UNKNOWN"
        )
        return env

    def _handle(self, req: int) -> int:
        """Serves one accepted request. Returns 1 if its connection must be closed (a response
        cut short after its head was sent: the web server then sees it as incomplete)."""
        lib = self.lib
        ex = _Exchange(lib, req)
        environ = self._environ(lib, req, ex)
        # Our own objects: middleware (wsgiref.validate) may replace them in environ.
        errors = environ["wsgi.errors"]
        inp = environ["wsgi.input"]
        ex.head_only = environ["REQUEST_METHOD"] == "HEAD"
        result = None
        what = "%s %s" % (environ["REQUEST_METHOD"], environ.get("REQUEST_URI", ""))
        force_close = 0
        try:
            try:
                result = self.app(environ, ex.start_response)
                if isinstance(result, (list, tuple)):
                    # Everything is there already: one write, no flush per block, and a
                    # Content-Length when the application gave none.
                    if (
                        ex.status is not None
                        and ex.headers is not None
                        and not ex.headers_sent
                        and ex.status[:3] not in _NO_BODY_STATUS
                        and ex.status[0] != "1"
                        and not _has_header(ex.headers, "Content-Length")
                        and all(type(b) is bytes for b in result)
                    ):
                        ex.headers.append(("Content-Length", str(sum(map(len, result)))))
                    for block in result:
                        ex.send(block, False)
                else:
                    # A generator or other iterable: each block goes out as it is produced.
                    for block in result:
                        ex.send(block, True)
                ex.finish()
            finally:
                if result is not None and hasattr(result, "close"):
                    result.close()
        except ClientDisconnected as e:
            logger.info("%s: client disconnected: %s", what, e)
        except Exception:
            tb = traceback.format_exc()
            logger.error("%s: application error", what, exc_info=True)
            errors.write("application error in %s\n%s" % (what, tb))
            if ex.headers_sent:
                force_close = 1  # the response is cut short: let the web server see it
            else:
                body = b"Internal Server Error\n"
                ex.status = "500 Internal Server Error"
                ex.headers = [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                ]
                try:
                    ex.send(body, False)
                except ClientDisconnected:
                    pass
        finally:
            errors._detach()
            inp._detach()
            ex.req = None
        return force_close


def serve(
    app: Any,
    bind: Union[None, str, Sequence[Optional[str]]] = None,
    threads: int = 4,
    backlog: int = 128,
    script_name: str = "",
    handle_signals: Optional[bool] = None,
) -> None:
    """Serves `app` until shutdown (SIGTERM/SIGINT when called in the main thread). `bind`:
    one address, a list of them, or None (fd 0)."""
    server = Server(app, bind=bind, threads=threads, backlog=backlog, script_name=script_name)
    server.serve_forever(handle_signals=handle_signals)
