"""An ASGI 3 server on fcgi-runtime's non-blocking face (``fcgi_loop_*`` in include/fcgi.h).

One thread, one asyncio loop. The runtime (FastCGI records, connections, keep-alive,
multiplexing, limits, timers, abort detection) runs inside that loop: its descriptor
(fcgi_loop_fd) is an asyncio reader, and whenever it is readable, or the time fcgi_loop_work
returned has passed (``loop.call_later``), the server calls fcgi_loop_work, then
fcgi_loop_accept until NULL (each new request becomes one asyncio task running the
application), then fcgi_loop_woken until NULL (the request's task is resumed: input arrived,
room to write came, or the client went away). None of those calls ever waits, so they go
through ctypes.PyDLL and keep the GIL.

- ``receive()`` reads the body with fcgi_loop_read (``http.request`` events); when it would
  block, the task waits on a future that fcgi_loop_woken resolves. After the body, it waits
  until the client is gone or the response is complete, then says ``http.disconnect``. "Gone"
  is fcgi_peer_closed (aborted, connection failed, or the web server closed its side of the
  connection, which is how nginx aborts a request whose client left), or a read or write that
  says -1: the request is then ended at once and send() raises ClientDisconnected (OSError).
- ``send()`` turns ``http.response.start`` into a CGI head (``Status: NNN``), written with the
  first body block; ``http.response.body`` goes out through fcgi_loop_write, handing on the
  rest of a partial write and waiting for room on FCGI_WOULD_BLOCK (the back-pressure);
  ``more_body`` blocks are pushed to the socket at once (fcgi_loop_flush, which says
  FCGI_WOULD_BLOCK too: without it a block smaller than the library's output buffer, 16 KiB,
  would wait there). The last block ends the request (fcgi_loop_finish).
- ``lifespan``: startup before the first request is accepted, shutdown after the last one.

Request objects are keyed by their address (an int) while they are live; fcgi_loop_finish
gives one back and it may come back for a later request, so nothing keeps a request pointer
after that.
"""

import asyncio
import ctypes
import http
import logging
import os
import signal
import threading
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union
from urllib.parse import quote_from_bytes, unquote_to_bytes

from . import _lib
from . import log as _log
from .server import ClientDisconnected, Listeners

__all__ = ["AsgiServer", "StartupFailed", "serve_asgi"]

_WOULD_BLOCK = _lib.FCGI_WOULD_BLOCK
_STDOUT = _lib.FCGI_STDOUT

#: The most fcgi_loop_read asks for in one call (the library holds at most 64 KiB of a
#: request's body by default, so a read returns less).
_READ_SIZE = 256 * 1024
#: The most fcgi_loop_write is handed in one call (it takes what the connection has room for).
_WRITE_MAX = 1 << 30
#: The first size of the environment buffer; it grows to the largest block seen.
_ENV_BUF_SIZE = 16384

_ASGI = {"version": "3.0", "spec_version": "2.3"}

#: The ASGI server's log (see log.py).
logger = logging.getLogger("fcgi_runtime.asgi")

_BODY_HEADERS = (
    (b"CONTENT_TYPE", b"HTTP_CONTENT_TYPE", b"content-type"),
    (b"CONTENT_LENGTH", b"HTTP_CONTENT_LENGTH", b"content-length"),
)

#: Responses that carry no body (and get no Content-Length from the server).
_NO_BODY = frozenset([204, 304])

_REASONS = {s.value: s.phrase for s in http.HTTPStatus}


def _under(path: bytes, prefix: bytes) -> bool:
    """Whether `path` is `prefix` or below it (``/app``, ``/app/x``; not ``/apple``)."""
    return path == prefix or path.startswith(prefix + b"/")


class StartupFailed(RuntimeError):
    """The application answered ``lifespan.startup.failed`` (the message is the argument)."""


def _http_version(proto: str) -> str:
    version = proto.partition("/")[2] or "1.0"
    if version in ("2", "2.0"):
        return "2"
    if version in ("3", "3.0"):
        return "3"
    return version


def _port(value: Optional[bytes]) -> Optional[int]:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class _Request(object):
    """One request: its receive() and send() callables, and what the loop wakes."""

    __slots__ = (
        "server",
        "lib",
        "req",
        "left",
        "body_eof",
        "disconnected",
        "complete",
        "head",
        "has_length",
        "status",
        "out_started",
        "head_only",
        "scope",
        "_read_w",
        "_write_w",
        "_end",
    )

    def __init__(
        self,
        server: "AsgiServer",
        req: int,
        length: Optional[int],
        head_only: bool,
        scope: Dict[str, Any],
    ) -> None:
        self.server = server
        self.lib: Any = server.lib
        self.req: Optional[int] = req  # None once given back to the loop
        self.left = length  # body bytes still due by CONTENT_LENGTH; None: to the end
        self.body_eof = False  # the last http.request was returned
        self.disconnected = False  # the client went away (abort, connection lost)
        self.complete = False  # the whole response was handed to the library
        self.head: Optional[bytes] = None  # the CGI head, not written yet
        self.has_length = False  # the application gave a Content-Length
        self.status: Optional[int] = None
        self.out_started = False  # a byte of the response was handed to the library
        self.head_only = head_only
        self.scope = scope
        # What the request's task waits on (see _wait): input, room to write, the end.
        self._read_w: Optional["asyncio.Future[None]"] = None
        self._write_w: Optional["asyncio.Future[None]"] = None
        self._end: Optional["asyncio.Future[None]"] = None

    @property
    def what(self) -> str:
        """``METHOD /path?query``, for the log."""
        sc = self.scope
        qs = sc["query_string"]
        return "%s %s%s" % (
            sc["method"],
            sc["path"],
            "?" + qs.decode("latin-1") if qs else "",
        )

    # -- what the loop calls ----------------------------------------------------------------

    def woken(self) -> None:
        """fcgi_loop_woken returned this request: resume whoever waits (maybe spuriously)."""
        if self.req is None:
            return
        if self.server._client_gone(self.req):
            self.gone()
            return
        for w in (self._read_w, self._write_w):
            if w is not None and not w.done():
                w.set_result(None)

    def gone(self) -> None:
        """The client went away: the request object goes back to the loop now (its pointer
        may serve another request), and every wait of the application ends."""
        self.disconnected = True
        self.release()

    def release(self) -> None:
        """Ends the request in the library (END_REQUEST), once, and wakes every waiter."""
        req = self.req
        if req is not None:
            self.req = None
            self.server._give_back(req)
        for w in (self._read_w, self._write_w, self._end):
            if w is not None and not w.done():
                w.set_result(None)

    def _wait(self, which: str) -> "asyncio.Future[None]":
        """The future in slot `which` (``_read_w``, ``_write_w``, ``_end``), a new one if
        there is none pending."""
        fut: Optional["asyncio.Future[None]"] = getattr(self, which)
        if fut is None or fut.done():
            loop = self.server._loop
            assert loop is not None  # requests exist only while serve() runs
            fut = loop.create_future()
            setattr(self, which, fut)
        return fut

    # -- receive ----------------------------------------------------------------------------

    async def receive(self) -> Dict[str, Any]:
        lib = self.lib
        while not self.body_eof:
            if self.left == 0:
                self.body_eof = True
                return {"type": "http.request", "body": b"", "more_body": False}
            req = self.req
            if req is None:
                break
            buf = self.server._read_buf
            want = _READ_SIZE if self.left is None else min(self.left, _READ_SIZE)
            n = lib.fcgi_loop_read(req, buf, want)
            if n > 0:
                data = ctypes.string_at(buf, n)
                if self.left is not None:
                    self.left -= n
                    if self.left <= 0:
                        self.body_eof = True
                return {"type": "http.request", "body": data, "more_body": not self.body_eof}
            if n == 0:
                self.body_eof = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if n == _WOULD_BLOCK:
                await self._wait("_read_w")
                continue
            # -1: aborted, connection lost, or the body was cut short.
            self.gone()
            break
        # After the body: nothing more comes until the client goes or the response ends.
        if not (self.disconnected or self.complete):
            await self._wait("_end")
        return {"type": "http.disconnect"}

    # -- send -------------------------------------------------------------------------------

    async def send(self, message: Dict[str, Any]) -> None:
        kind = message["type"]
        if self.disconnected:
            raise ClientDisconnected("%s: the client disconnected" % self.what)
        if kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("http.response.body before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body after the response was complete")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if type(body) is not bytes:
                body = bytes(body)
            if self.head_only or self.status in _NO_BODY:
                body = b""
            head = self.head
            if head is not None:
                # The first block: the head goes with it, in one write. A whole body in one
                # message gets its Content-Length (nginx then keeps the client connection
                # without chunking).
                self.head = None
                if not more and not self.has_length and not self.head_only:
                    if self.status not in _NO_BODY and self.status >= 200:
                        head = head[:-2] + b"Content-Length: %d\r\n\r\n" % len(body)
                data = head + body if body else head
            else:
                data = body
            if data:
                await self._write(data)
            if more:
                if data:
                    # A block that fitted the library's output buffer would wait there for
                    # more: push it out now, waiting for room like a write (a head sent with
                    # an empty block goes out too: an application announcing a stream).
                    await self._flush()
            else:
                self.complete = True
                self.release()
            return
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("http.response.start sent twice")
            status = int(message["status"])
            if not 100 <= status <= 999:
                raise ValueError("bad status %r" % (status,))
            reason = _REASONS.get(status)
            lines = [
                b"Status: %d %s\r\n" % (status, reason.encode("latin-1"))
                if reason
                else b"Status: %d\r\n" % status
            ]
            has_length = False
            for name, value in message.get("headers", ()):
                if type(name) is str:
                    name = name.encode("latin-1")
                if type(value) is str:
                    value = value.encode("latin-1")
                name = bytes(name)
                value = bytes(value)
                if b"\n" in name or b"\r" in name or b":" in name or b"\n" in value or b"\r" in value:
                    raise ValueError("invalid header %r: %r" % (name, value))
                if name.lower() == b"content-length":
                    has_length = True
                lines.append(name + b": " + value + b"\r\n")
            lines.append(b"\r\n")
            self.status = status
            self.has_length = has_length
            self.head = b"".join(lines)
            return
        raise RuntimeError("unexpected ASGI message %r in an http scope" % (kind,))

    async def _flush(self) -> None:
        """Sends what the library buffered, waiting for room as long as it says so."""
        while True:
            req = self.req
            r = -1 if req is None else self.lib.fcgi_loop_flush(req)
            if r == 0:
                return
            if r == _WOULD_BLOCK:
                await self._wait("_write_w")
                continue
            self.gone()
            raise ClientDisconnected("%s: the client disconnected" % self.what)

    async def _write(self, data: bytes) -> None:
        """Hands `data` to the library, waiting for room as long as it says so."""
        lib = self.lib
        total = len(data)
        off = 0
        arg: Union[bytes, int] = data  # the bytes, then the address of the rest
        while True:
            req = self.req
            if req is None:
                raise ClientDisconnected("%s: the client disconnected" % self.what)
            n = lib.fcgi_loop_write(req, _STDOUT, arg, min(total - off, _WRITE_MAX))
            if n > 0:
                self.out_started = True
                off += n
                if off >= total:
                    return
                # A partial write: the rest, from where the library stopped.
                arg = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value + off
                continue
            if n == _WOULD_BLOCK:
                await self._wait("_write_w")
                continue
            self.gone()
            raise ClientDisconnected("%s: the response could not be written" % self.what)


class AsgiServer(object):
    """An ASGI 3 server: `app` on its listening sockets, in one asyncio loop, one thread.

    `bind`: an address (``host:port``, ``:port``, ``port``, ``[v6]:port``, ``unix:PATH``,
    ``fd://N``, a Unix socket path), a list of them, or None for the listening socket on fd 0.
    `fds`: listening descriptors already open (a pool worker's), served instead of `bind`.
    `root_path`: the mount point, as ``--script-name`` of the WSGI server (scope
    ``root_path``; ``path`` is what follows it)."""

    def __init__(
        self,
        app: Any,
        bind: Union[None, str, Sequence[Optional[str]]] = None,
        backlog: int = 1024,
        root_path: str = "",
        fds: Optional[Sequence[int]] = None,
    ) -> None:
        self.app = app
        # The library (_lib.load()'s namespace of ctypes functions), or a stand-in with the
        # same functions: used by duck typing.
        self.lib: Any = _lib.load()
        _log.attach(self.lib)
        if self.lib.fcgi_loop_new is None:
            raise _lib.LibraryNotFound(
                "%s lacks the non-blocking face (fcgi_loop_new): the ASGI server needs a newer "
                "build of fcgi-runtime" % self.lib.path
            )
        self.root_path = root_path.rstrip("/")
        self._root_prefix = self.root_path.encode("utf-8")
        self.state: Dict[str, Any] = {}
        self._listeners = Listeners(self.lib, bind, backlog, fds)
        self._evloops: List[int] = []  # one fcgi_loop per listening socket
        self._loop: Optional[asyncio.AbstractEventLoop] = None  # the running asyncio loop
        # request address -> _Request, while the library holds it
        self._reqs: Dict[int, _Request] = {}
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._stopping = False
        self._draining = False  # a pool worker draining: serve what comes, end when idle
        self._timers: Dict[int, asyncio.TimerHandle] = {}  # fcgi_loop -> its asyncio timer
        self._idle: Optional["asyncio.Future[None]"] = None  # stopping and no request left
        self._read_buf = ctypes.create_string_buffer(_READ_SIZE)
        self._env_buf = ctypes.create_string_buffer(_ENV_BUF_SIZE)
        self._sigint = False
        self._gone_check: Callable[[int], int] = (
            self.lib.fcgi_peer_closed or self.lib.fcgi_is_aborted
        )
        # lifespan (set by _lifespan_startup; the task None: the application has none)
        self._ls_task: Optional["asyncio.Task[None]"] = None
        self._ls_queue: Optional["asyncio.Queue[Dict[str, Any]]"] = None
        # The startup's outcome: None (complete, or no lifespan) or the failure's message.
        self._ls_startup: Optional["asyncio.Future[Optional[str]]"] = None
        self._ls_shutdown: Optional["asyncio.Future[None]"] = None
        self._ls_started = False

    # -- listening --------------------------------------------------------------------------

    def listen(self) -> int:
        """Opens the listening sockets (once); returns the first one's descriptor."""
        return self.listen_all()[0]

    def listen_all(self) -> List[int]:
        """Opens the listening sockets (once); returns their descriptors (server.Listeners)."""
        return self._listeners.open()

    # -- running ----------------------------------------------------------------------------

    async def serve(self, handle_signals: Optional[bool] = None) -> None:
        """Serves until shutdown: SIGTERM (the library's handler), SIGINT (when
        `handle_signals`, the default in the main thread) or shutdown(). Requests in progress
        (and the tasks of their applications) are finished first, then lifespan shutdown."""
        loop = self._loop = asyncio.get_running_loop()
        if handle_signals is None:
            handle_signals = threading.current_thread() is threading.main_thread()
        if handle_signals and signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
            # Python code set its own SIGTERM handler, so the library will not install one:
            # take SIGTERM here and stop through the library's flag.
            loop.add_signal_handler(signal.SIGTERM, self._on_signal, signal.SIGTERM)
        fds = self.listen_all()
        await self._lifespan_startup()
        if handle_signals:
            loop.add_signal_handler(signal.SIGINT, self._on_signal, signal.SIGINT)
        lib = self.lib
        self._idle = loop.create_future()
        readers = []
        try:
            for fd in fds:
                ev = lib.fcgi_loop_new(fd)
                if not ev:
                    raise OSError("fcgi_loop_new failed (the library logged why)")
                self._evloops.append(ev)
                lfd = lib.fcgi_loop_fd(ev)
                loop.add_reader(lfd, self._pump, ev)
                readers.append(lfd)
            logger.info(
                "serving ASGI on %s, one thread (library %s)", self._listeners.where(), lib.path
            )
            for ev in self._evloops:
                self._pump(ev)
            await self._idle
            # Applications that go on after their response (background tasks).
            while self._tasks:
                await asyncio.wait(list(self._tasks))
        finally:
            for lfd in readers:
                loop.remove_reader(lfd)
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            evs, self._evloops = self._evloops, []
            for ev in evs:
                lib.fcgi_loop_free(ev)
            if handle_signals:
                loop.remove_signal_handler(signal.SIGINT)
        await self._lifespan_shutdown()
        logger.info("stopped")

    def shutdown(self) -> None:
        """Stops accepting; the server ends once the requests in progress are done.
        Process-wide: the library has one shutdown flag (fcgi_terminate)."""
        self.lib.fcgi_terminate()

    def drain(self) -> None:
        """A pool worker's drain began (SIGQUIT, max_requests, a reload): the library stops
        accepting connections and closes each after its current request, but a loop is not
        told when that is done (docs/native-api.md), so the server serves what still comes and
        ends once no request is left. Thread-safe (workers.py calls it from its watcher)."""
        loop = self._loop
        if loop is None:
            # Before serve(): it starts draining (and ends once its sockets are set up).
            self._draining = True
        else:
            loop.call_soon_threadsafe(self._begin_drain)

    def _begin_drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        logger.info(
            "worker draining: stopping after the requests in progress (%d)", len(self._reqs)
        )
        for ev in list(self._evloops):
            self._pump(ev)

    def _on_signal(self, signum: int) -> None:
        if self._sigint:
            logger.warning("signal %d again: exiting at once", signum)
            os._exit(128 + signum)
        self._sigint = True
        logger.info("signal %d received", signum)
        # The library's flag wakes the loop's descriptor; _pump sees fcgi_in_shutdown.
        self.shutdown()

    def _client_gone(self, req: int) -> int:
        """fcgi_peer_closed: the request was aborted, its connection failed, or the web
        server closed its side of the connection, which is how nginx aborts a request when
        its client goes away (FastCGI's way on an unmultiplexed connection). A library
        without fcgi_peer_closed only reports the first two (fcgi_is_aborted)."""
        return self._gone_check(req)

    def _pump(self, ev: int) -> None:
        """The loop protocol: work, accept until NULL, woken until NULL, re-arm the timer."""
        if ev not in self._evloops:
            return
        lib = self.lib
        wait = lib.fcgi_loop_work(ev)
        if not self._stopping and lib.fcgi_in_shutdown():
            self._stopping = True
            logger.info(
                "shutdown requested: stopping after the requests in progress (%d)",
                len(self._reqs),
            )
        reqs = self._reqs
        if not self._stopping:
            accept = lib.fcgi_loop_accept
            while True:
                r = accept(ev)
                if not r:
                    break
                self._start(r)
        woken = lib.fcgi_loop_woken
        while True:
            r = woken(ev)
            if not r:
                break
            st = reqs.get(r)
            if st is not None:
                st.woken()
        # When fcgi_loop_work must run again without the descriptor becoming readable (-1:
        # never). A deadline set later by a request's task (a write waiting for room arms the
        # write timeout, an end arms keep-alive or linger) makes the descriptor readable if it
        # comes first. A timer due no later than that is kept (firing early costs one round).
        if wait >= 0:
            delay = wait / 1000.0
            loop = self._loop
            assert loop is not None  # serve() set it before adding the readers
            timer = self._timers.get(ev)
            if timer is None or timer.when() > loop.time() + delay:
                if timer is not None:
                    timer.cancel()
                self._timers[ev] = loop.call_later(delay, self._on_timer, ev)
        self._check_idle()

    def _on_timer(self, ev: int) -> None:
        self._timers.pop(ev, None)
        self._pump(ev)

    def _check_idle(self) -> None:
        stopping = self._stopping or self._draining
        if stopping and not self._reqs and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _give_back(self, req: int) -> None:
        """fcgi_loop_finish: END_REQUEST, and the object goes back to the loop."""
        del self._reqs[req]
        self.lib.fcgi_loop_finish(req)
        if self._stopping or self._draining:
            self._check_idle()

    # -- one request ------------------------------------------------------------------------

    def _params(self, req: int) -> Dict[bytes, bytes]:
        """The request's params as a dict of bytes (one fcgi_getenv_all call)."""
        lib = self.lib
        buf = self._env_buf
        n = lib.fcgi_getenv_all(req, buf, len(buf))
        if n > len(buf):
            buf = self._env_buf = ctypes.create_string_buffer(n)
            n = lib.fcgi_getenv_all(req, buf, len(buf))
        if n <= 0:
            return {}
        parts = ctypes.string_at(buf, n - 1).split(b"\0")
        # fcgi_getenv_all gives PHP's order, the last param to arrive first: reversed, the
        # params (and so the headers) are in the web server's order.
        return dict(zip(parts[-2::-2], parts[-1::-2]))

    def _paths(self, env: Dict[bytes, bytes]) -> Tuple[bytes, str, str]:
        """``raw_path``, ``path`` and ``root_path`` as the ASGI spec has them since its 2023
        clarification, and as uvicorn and Starlette >= 0.33 do: ``path`` is the whole path
        (``root_path`` included, decoded), ``raw_path`` the whole path as received, and
        ``root_path`` the mount point, which a framework strips from ``path`` to route.

        - The web server split the path (PATH_INFO sent, no ``--root-path``): SCRIPT_NAME is
          the mount point and the path is SCRIPT_NAME + PATH_INFO.
        - Otherwise (nginx's default: no PATH_INFO, SCRIPT_NAME and DOCUMENT_URI the whole
          path) the path is the web server's, and ``root_path`` is ``--root-path``. A path
          that is not under it had the prefix stripped by the web server (a rewrite): it is
          put back in front, in ``raw_path`` too, as uvicorn's ``--root-path`` does behind a
          proxy that strips it."""
        g = env.get
        raw_path = (g(b"REQUEST_URI") or b"").split(b"?", 1)[0]
        root = self.root_path
        path_info = g(b"PATH_INFO")
        script = g(b"SCRIPT_NAME") or b""
        if path_info is not None and not root:
            mount = b"" if script == b"/" else script
            path = mount + path_info
            root_path = mount.decode("utf-8", "replace")
        else:
            if path_info is not None:
                path = script + path_info
            else:
                path = g(b"DOCUMENT_URI") or script or unquote_to_bytes(raw_path)
            prefix = self._root_prefix
            if prefix:
                if not _under(path, prefix):
                    path = prefix + path
                if raw_path and not _under(raw_path, prefix):
                    raw_path = quote_from_bytes(prefix, safe="/").encode("ascii") + raw_path
            root_path = root
        if not path:
            path = b"/"
        return raw_path, path.decode("utf-8", "replace"), root_path

    def _scope(self, env: Dict[bytes, bytes]) -> Dict[str, Any]:
        g = env.get
        # The request's headers, in the web server's order; nginx passes Content-Type and
        # Content-Length both as HTTP_ params and as the CGI ones, which are the fallback.
        headers = [
            (name[5:].lower().replace(b"_", b"-"), value)
            for name, value in env.items()
            if name[:5] == b"HTTP_"
        ]
        for cgi, http_name, name in _BODY_HEADERS:
            value = g(cgi)
            if value and http_name not in env:
                headers.append((name, value))
        raw_path, path, root_path = self._paths(env)
        https = (g(b"HTTPS") or b"").lower()
        if https in (b"on", b"1", b"yes"):
            scheme = "https"
        else:
            scheme = (g(b"REQUEST_SCHEME") or b"http").decode("latin-1").lower()
            if scheme not in ("http", "https"):
                scheme = "http"
        remote = g(b"REMOTE_ADDR")
        host = g(b"SERVER_NAME") or g(b"SERVER_ADDR")
        return {
            "type": "http",
            "asgi": _ASGI,
            "http_version": _http_version((g(b"SERVER_PROTOCOL") or b"HTTP/1.0").decode("latin-1")),
            "method": (g(b"REQUEST_METHOD") or b"GET").decode("latin-1").upper(),
            "scheme": scheme,
            "path": path,
            "raw_path": raw_path or None,
            "query_string": g(b"QUERY_STRING") or b"",
            "root_path": root_path,
            "headers": headers,
            "client": (remote.decode("latin-1"), _port(g(b"REMOTE_PORT")) or 0) if remote else None,
            "server": (host.decode("latin-1"), _port(g(b"SERVER_PORT"))) if host else None,
            "state": dict(self.state),
        }

    def _start(self, req: int) -> None:
        """A request fcgi_loop_accept handed out: its state, its scope, its task."""
        try:
            env = self._params(req)
            scope = self._scope(env)
            cl = env.get(b"CONTENT_LENGTH") or env.get(b"HTTP_CONTENT_LENGTH")
            length: Optional[int]
            try:
                length = int(cl) if cl else None
                if length is not None and length < 0:
                    length = None
            except ValueError:
                length = None
            st = _Request(self, req, length, scope["method"] == "HEAD", scope)
        except Exception:
            logger.error("internal error on a new request", exc_info=True)
            self.lib.fcgi_loop_finish(req)
            return
        self._reqs[req] = st
        loop = self._loop
        assert loop is not None  # _pump runs only while serve() does
        task = loop.create_task(self._run(st, scope))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)

    async def _run(self, st: "_Request", scope: Dict[str, Any]) -> None:
        try:
            await self.app(scope, st.receive, st.send)
        except ClientDisconnected as e:
            logger.info("%s: client disconnected: %s", st.what, e)
        except BaseException as e:
            cancelled = isinstance(e, asyncio.CancelledError)
            logger.error("%s: application error", st.what, exc_info=True)
            self._error_response(st)
            if cancelled or not isinstance(e, Exception):
                raise
        else:
            if not st.complete and not st.disconnected:
                if st.out_started:
                    logger.warning(
                        "%s: the application returned before its response was complete", st.what
                    )
                else:
                    logger.error("%s: the application returned without a response", st.what)
                    self._error_response(st)
        finally:
            st.release()

    def _error_response(self, st: _Request) -> None:
        """A 500 if no byte of the response went out yet; else the response ends where it is
        (the loop face has no way to end a request without END_REQUEST: nginx sees the
        response end early but well formed, so a client only notices a short body)."""
        if st.out_started or st.req is None:
            return
        body = b"Internal Server Error\n"
        data = (
            b"Status: 500 Internal Server Error\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        if not st.head_only:
            data += body
        # Small: the library takes it whole into its output buffer (never would-block).
        if self.lib.fcgi_loop_write(st.req, _STDOUT, data, len(data)) == len(data):
            st.out_started = True
            st.complete = True

    # -- lifespan ---------------------------------------------------------------------------

    async def _lifespan_startup(self) -> None:
        loop = self._loop
        assert loop is not None  # serve() set it
        self._ls_queue = asyncio.Queue()
        self._ls_startup = loop.create_future()
        self._ls_shutdown = loop.create_future()
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        self._ls_task = loop.create_task(self._lifespan_main(scope))
        self._ls_queue.put_nowait({"type": "lifespan.startup"})
        failed = await self._ls_startup
        if failed is not None:
            raise StartupFailed(failed)

    async def _lifespan_main(self, scope: Dict[str, Any]) -> None:
        # _lifespan_startup set them before it started this task.
        assert self._ls_queue is not None
        assert self._ls_startup is not None and self._ls_shutdown is not None
        try:
            await self.app(scope, self._ls_queue.get, self._ls_send)
        except BaseException as e:
            if self._ls_started:
                logger.error("lifespan: application error after startup", exc_info=True)
            else:
                # uvicorn's "auto": an application without lifespan support raises on the
                # unknown scope type; serve without it.
                logger.info(
                    "lifespan unsupported by the application (%s: %s): serving without it",
                    type(e).__name__,
                    e,
                )
                self._ls_task = None
            if not isinstance(e, Exception):
                raise
        finally:
            for fut in (self._ls_startup, self._ls_shutdown):
                if not fut.done():
                    fut.set_result(None)

    async def _ls_send(self, message: Dict[str, Any]) -> None:
        # _lifespan_startup set them before the application got this callable.
        assert self._ls_startup is not None and self._ls_shutdown is not None
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._ls_started = True
            if not self._ls_startup.done():
                self._ls_startup.set_result(None)
        elif kind == "lifespan.startup.failed":
            if not self._ls_startup.done():
                self._ls_startup.set_result(message.get("message", "") or "(no message)")
        elif kind == "lifespan.shutdown.complete":
            if not self._ls_shutdown.done():
                self._ls_shutdown.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            logger.error("lifespan shutdown failed: %s", message.get("message", ""))
            if not self._ls_shutdown.done():
                self._ls_shutdown.set_result(None)
        else:
            raise RuntimeError("unexpected ASGI message %r in a lifespan scope" % (kind,))

    async def _lifespan_shutdown(self) -> None:
        task = self._ls_task
        if task is None or task.done():
            return
        # _lifespan_startup set them with the task.
        assert self._ls_queue is not None and self._ls_shutdown is not None
        self._ls_queue.put_nowait({"type": "lifespan.shutdown"})
        await self._ls_shutdown
        if not task.done():
            # It answered; let it return (a lifespan context manager's exit).
            await asyncio.wait([task], timeout=5)
            if not task.done():
                task.cancel()


def _raise_nofile_limit() -> None:
    """Thousands of connections need thousands of descriptors: the soft limit goes up to the
    hard one (as c-examples/evloop.c does)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def serve_asgi(
    app: Any,
    bind: Union[None, str, Sequence[Optional[str]]] = None,
    backlog: int = 1024,
    root_path: str = "",
    handle_signals: Optional[bool] = None,
) -> None:
    """Serves the ASGI 3 application `app` until shutdown (SIGTERM; SIGINT too when called in
    the main thread), in a new asyncio loop on this thread. Raises StartupFailed when the
    application answers lifespan.startup.failed, OSError when it cannot listen."""
    _raise_nofile_limit()
    server = AsgiServer(app, bind=bind, backlog=backlog, root_path=root_path)
    asyncio.run(server.serve(handle_signals=handle_signals))
