"""What flup 1.0.3's three FastCGI servers share (flup's ``flup/server/fcgi_base.py``):
the role constants, the address forms of ``bindAddress``, the application wrapper that gives
``environ``, ``roles``, ``debug`` and the ``wsgi.multi*`` flags flup's meaning, and the CGI
fallback (``forceCGI``, ``FCGI_FORCE_CGI``, fd 0 not a socket)."""

import html
import logging
import os
import socket
import stat
import sys
import traceback
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
)

from ... import _lib
from ...server import ClientDisconnected

__all__ = [
    "FCGI_RESPONDER",
    "FCGI_AUTHORIZER",
    "FCGI_FILTER",
    "BaseFCGIServer",
    "BindAddress",
    "WSGIApp",
    "library_address",
    "workers_address",
    "wrap_application",
]

FCGI_RESPONDER = _lib.FCGI_RESPONDER
FCGI_AUTHORIZER = _lib.FCGI_AUTHORIZER
FCGI_FILTER = _lib.FCGI_FILTER

#: environ["fcgi.role"] (fcgi_runtime.server) for each role number.
ROLE_NAMES = {FCGI_RESPONDER: "RESPONDER", FCGI_AUTHORIZER: "AUTHORIZER", FCGI_FILTER: "FILTER"}

ExcInfo = Tuple[Type[BaseException], BaseException, Optional[TracebackType]]
WriteCallable = Callable[[bytes], Any]
StartResponse = Callable[..., WriteCallable]
WSGIApp = Callable[[Dict[str, Any], StartResponse], Iterable[bytes]]
#: flup's bindAddress: None (fd 0), a Unix socket path, or a (host, port) tuple (4 items: IPv6).
BindAddress = Union[None, str, Tuple[Any, ...]]

logger = logging.getLogger("fcgi_runtime.flup")

#: flup's page for an exception when debug is off (fcgi_base.BaseFCGIServer.error).
ERROR_PAGE = b"""<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>Unhandled Exception</title>
</head><body>
<h1>Unhandled Exception</h1>
<p>An unhandled exception was thrown by the application.</p>
</body></html>
"""


# ---------------------------------------------------------------------------------------------
# bindAddress
# ---------------------------------------------------------------------------------------------


def _tcp(address: Tuple[Any, ...]) -> str:
    if len(address) not in (2, 4):
        raise ValueError("bindAddress tuple must be (host, port) or an IPv6 4-tuple: %r" % (address,))
    host, port = address[0], address[1]
    if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool):
        raise TypeError("bindAddress must be (host: str, port: int): %r" % (address,))
    if host == "":
        host = "::" if len(address) == 4 else "*"
    if ":" in host:
        return "[%s]:%d" % (host, port)
    return "%s:%d" % (host, port)


def library_address(address: BindAddress) -> Optional[str]:
    """flup's bindAddress in the library's syntax (fcgi_listen, ``Server(bind=...)``).

    ``(host, port)``: ``host:port`` (``""`` is every IPv4 interface, as flup's ``AF_INET``
    socket bound to ``""``); a 4-tuple or a host with ``:`` is IPv6 (``[host]:port``). A string
    is a Unix socket path (one made of digits only gets ``./``, else the library would read it
    as a port). None: fd 0."""
    if address is None:
        return None
    if isinstance(address, str):
        if not address:
            raise ValueError("bindAddress is an empty socket path")
        return "./" + address if address.isdigit() else address
    if isinstance(address, tuple):
        return _tcp(address)
    raise TypeError("bindAddress must be None, a str (Unix socket) or a tuple, not %r"
                    % (type(address).__name__,))


def workers_address(address: BindAddress) -> Optional[str]:
    """flup's bindAddress in fcgi_runtime.workers' (gunicorn's) syntax: ``HOST:PORT`` or
    ``unix:PATH``; None for fd 0."""
    if isinstance(address, str):
        library_address(address)  # the same checks
        return "unix:" + address
    return library_address(address)


# ---------------------------------------------------------------------------------------------
# The application wrapper
# ---------------------------------------------------------------------------------------------


def _error_page(debug: bool, exc: ExcInfo) -> bytes:
    if not debug:
        return ERROR_PAGE
    # flup renders cgitb.html(exc_info); cgitb is deprecated (removed in Python 3.13): the
    # same information, the traceback with the exception, as an HTML page.
    text = "".join(traceback.format_exception(*exc))
    return (
        "<!DOCTYPE html>\n<html><head><title>Unhandled Exception</title></head><body>\n"
        "<h1>Unhandled Exception: %s</h1>\n<pre>%s</pre>\n</body></html>\n"
        % (html.escape(exc[0].__name__), html.escape(text))
    ).encode("utf-8")


class _Guard:
    """One request's error handling: what flup's Request.run does when the handler raises
    (the traceback on wsgi.errors, and flup's error page if no body byte went out yet)."""

    __slots__ = ("environ", "start_response", "debug", "sent")

    def __init__(self, environ: Dict[str, Any], start_response: StartResponse, debug: bool):
        self.environ = environ
        self.start_response = start_response
        self.debug = debug
        self.sent = False

    def wrapped_start_response(
        self, status: str, headers: List[Tuple[str, str]], exc_info: Optional[ExcInfo] = None
    ) -> WriteCallable:
        write = self.start_response(status, headers, exc_info)

        def guarded_write(data: bytes) -> Any:
            if data:
                self.sent = True
            return write(data)

        return guarded_write

    def failed(self) -> List[bytes]:
        """In an ``except`` block: the error page (or re-raises when it is too late)."""
        exc = sys.exc_info()
        assert exc[0] is not None and exc[1] is not None
        if self.sent or isinstance(exc[1], ClientDisconnected):
            # The head is out: the server closes the connection without END_REQUEST, so the
            # web server sees the response cut short (flup ends it as if complete).
            raise
        what = "%s %s" % (self.environ.get("REQUEST_METHOD", ""), self.environ.get("REQUEST_URI", ""))
        tb = traceback.format_exc()
        errors = self.environ.get("wsgi.errors")
        if errors is not None:
            errors.write("application error in %s\n%s" % (what, tb))
            errors.flush()
        logger.error("%s: application error\n%s", what, tb.rstrip("\n"))
        page = _error_page(self.debug, (exc[0], exc[1], exc[2]))
        self.start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/html"), ("Content-Length", str(len(page)))],
            (exc[0], exc[1], exc[2]),
        )
        return [page]

    def iterate(self, result: Iterable[bytes]) -> Iterator[bytes]:
        """The application's iterable, block by block, with its errors turned into the page;
        closes it."""
        try:
            try:
                for block in result:
                    if block:
                        self.sent = True
                    yield block
            except Exception:
                yield from self.failed()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def wrap_application(
    application: WSGIApp,
    environ: Optional[Mapping[str, Any]] = None,
    multithreaded: bool = True,
    multiprocess: bool = False,
    debug: bool = False,
    roles: Sequence[int] = (FCGI_RESPONDER,),
) -> WSGIApp:
    """`application` as flup's BaseFCGIServer.handler would call it on fcgi_runtime's server:

    - a request of a role not in `roles` gets ``500`` and a line on wsgi.errors (flup ends it
      with FCGI_UNKNOWN_ROLE, which the library does not let an application send);
    - `environ`'s items are copied into each request's environ, over the web server's params
      (as flup does), except the ``wsgi.*`` and ``fcgi.*`` keys the server sets;
    - ``wsgi.multithread`` and ``wsgi.multiprocess`` say `multithreaded` and `multiprocess`;
    - an exception before any body byte was sent answers ``500`` with flup's page (with
      `debug`, a page with the traceback), the traceback on wsgi.errors and the
      ``fcgi_runtime.flup`` logger; after that, it goes on to the server, which cuts the
      response short."""
    base = {
        k: v for k, v in (environ or {}).items() if not k.startswith(("wsgi.", "fcgi."))
    }
    served = frozenset(ROLE_NAMES.get(r, "UNKNOWN") for r in roles)
    multithread = bool(multithreaded)
    multiproc = bool(multiprocess)

    def flup_application(env: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        role = env.get("fcgi.role", "RESPONDER")
        if role not in served:
            msg = "FastCGI role %s is not served (roles=%r)\n" % (role, tuple(roles))
            env["wsgi.errors"].write(msg)
            body = msg.encode("latin-1")
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if base:
            env.update(base)
        env["wsgi.multithread"] = multithread
        env["wsgi.multiprocess"] = multiproc
        guard = _Guard(env, start_response, debug)
        try:
            result = application(env, guard.wrapped_start_response)
        except Exception:
            return guard.failed()
        if isinstance(result, (list, tuple)):
            # Complete already: nothing can raise while the server iterates it (and the server
            # sends it in one write, with a Content-Length).
            return result
        return guard.iterate(result)

    flup_application.__wrapped__ = application  # type: ignore[attr-defined]
    return flup_application


# ---------------------------------------------------------------------------------------------
# What the three servers share
# ---------------------------------------------------------------------------------------------


def _fd0_is_socket() -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(0).st_mode)
    except OSError:
        return False


class BaseFCGIServer:
    """flup's BaseFCGIServer arguments, kept for the servers of fcgi.py, fcgi_fork.py and
    fcgi_single.py."""

    def __init__(
        self,
        application: WSGIApp,
        environ: Optional[Mapping[str, Any]] = None,
        multithreaded: bool = True,
        multiprocess: bool = False,
        bindAddress: BindAddress = None,
        umask: Optional[int] = None,
        multiplexed: bool = False,
        debug: bool = False,
        roles: Sequence[int] = (FCGI_RESPONDER,),
        forceCGI: bool = False,
    ) -> None:
        self.application = application
        self.environ: Mapping[str, Any] = {} if environ is None else environ
        self.multithreaded = multithreaded
        self.multiprocess = multiprocess
        self.debug = debug
        self.roles = tuple(roles)
        self.forceCGI = forceCGI
        self.multiplexed = multiplexed
        self._bindAddress = bindAddress
        self._umask = umask
        # Checked now (flup checks when run() binds).
        self.bind = library_address(bindAddress)

    def wsgi_application(self) -> WSGIApp:
        """The application as the server calls it (see wrap_application)."""
        return wrap_application(
            self.application,
            self.environ,
            multithreaded=self.multithreaded,
            multiprocess=self.multiprocess,
            debug=self.debug,
            roles=self.roles,
        )

    def _cgi_mode(self) -> bool:
        """flup's test: no bindAddress, and forceCGI, FCGI_FORCE_CGI=Y..., or fd 0 that is
        not a socket."""
        if self._bindAddress is not None:
            return False
        if self.forceCGI or os.environ.get("FCGI_FORCE_CGI", "N").upper().startswith("Y"):
            return True
        return not _fd0_is_socket()

    def _run_cgi(self) -> None:
        """One CGI request with wsgiref's CGIHandler, then exit 0 (flup's CGIRequest)."""
        from wsgiref.handlers import CGIHandler

        app = wrap_application(
            self.application, self.environ, multithreaded=False, multiprocess=True,
            debug=self.debug, roles=tuple(ROLE_NAMES),
        )

        def cgi_app(env: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            env["wsgi.run_once"] = True
            return app(env, start_response)

        CGIHandler().run(cgi_app)
        sys.exit(0)

    def _socket_mode(self) -> Optional[int]:
        """The Unix socket's permission bits flup's umask gives (None: the library's default,
        0777 or FCGI_RUNTIME_SOCKET_MODE)."""
        if self._umask is None or not isinstance(self._bindAddress, str):
            return None
        return 0o777 & ~self._umask

    @staticmethod
    def _set_socket_mode(lib: Any, mode: Optional[int]) -> None:
        """fcgi_set_socket_permissions (not declared by _lib): `mode`, or -1 for the
        default."""
        fn = getattr(lib.cdll, "fcgi_set_socket_permissions", None)
        if fn is None:
            if mode is not None:
                raise OSError("the library has no fcgi_set_socket_permissions: umask unsupported")
            return
        import ctypes

        if fn(ctypes.c_int(-1 if mode is None else mode), ctypes.c_char_p(None)) != 0:
            raise OSError("fcgi_set_socket_permissions(%r) failed" % (mode,))

    @staticmethod
    def backlog() -> int:
        """flup listens with socket.SOMAXCONN."""
        return int(socket.SOMAXCONN)
