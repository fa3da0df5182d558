"""flup 1.0.3's ``flup.server.fcgi.WSGIServer`` (threads) on fcgi_runtime's WSGI server:

    from fcgi_runtime.flup.server.fcgi import WSGIServer   # was: from flup.server.fcgi import ...
    WSGIServer(app, bindAddress=("127.0.0.1", 9000)).run()

The FastCGI protocol is the library's; this module maps flup's arguments onto
``fcgi_runtime.Server`` (see bindings/python/README.md, "Moving from flup")."""

import os
import signal
import threading
from types import FrameType
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Union

from ... import _lib
from .fcgi_base import (
    FCGI_AUTHORIZER,
    FCGI_FILTER,
    FCGI_RESPONDER,
    BaseFCGIServer,
    BindAddress,
    WSGIApp,
    logger,
)

__all__ = ["WSGIServer", "FCGI_RESPONDER", "FCGI_AUTHORIZER", "FCGI_FILTER"]

#: flup's ThreadPool defaults (minSpare=1, maxSpare=5, maxThreads=sys.maxsize).
_POOL_DEFAULTS = {"minSpare": 1, "maxSpare": 5}

_SignalHandler = Union[Callable[[int, Optional[FrameType]], Any], int, signal.Handlers, None]


def thread_count(multithreaded: bool, kw: Mapping[str, Any]) -> int:
    """How many threads serve requests for flup's arguments.

    flup's ThreadPool starts maxSpare threads and adds one per connection up to maxThreads
    (default: no limit); fcgi_runtime runs a fixed number, each taking whole requests:
    ``max(minSpare, maxThreads)`` when maxThreads is given, else ``max(minSpare, maxSpare)``
    (5 by default). multithreaded=False (flup: one application call at a time): 1."""
    if not multithreaded:
        return 1
    min_spare = int(kw.get("minSpare", _POOL_DEFAULTS["minSpare"]))
    if "maxThreads" in kw:
        n = max(min_spare, int(kw["maxThreads"]))
    else:
        n = max(min_spare, int(kw.get("maxSpare", _POOL_DEFAULTS["maxSpare"])))
    if n < 1:
        raise ValueError("maxThreads must be at least 1")
    return n


class WSGIServer(BaseFCGIServer):
    """flup's threaded FastCGI WSGI server, served by fcgi_runtime.Server.

    Keyword arguments beyond flup's BaseFCGIServer ones: flup's ThreadPool's ``minSpare``,
    ``maxSpare``, ``maxThreads`` (see thread_count); ``jobClass``/``jobArgs`` are ignored as
    flup ignores them; anything else is a TypeError (as flup's ThreadPool raises)."""

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
        **kw: Any,
    ) -> None:
        BaseFCGIServer.__init__(
            self,
            application,
            environ=environ,
            multithreaded=multithreaded,
            multiprocess=multiprocess,
            bindAddress=bindAddress,
            umask=umask,
            multiplexed=multiplexed,
            debug=debug,
            roles=roles,
            forceCGI=forceCGI,
        )
        for key in ("jobClass", "jobArgs"):
            kw.pop(key, None)
        unknown = sorted(set(kw) - {"minSpare", "maxSpare", "maxThreads"})
        if unknown:
            raise TypeError("WSGIServer got unexpected keyword arguments: %s" % ", ".join(unknown))
        self.threads = thread_count(multithreaded, kw)
        self._hupReceived = False
        self._stopping = False
        self._server: Any = None

    def run(self) -> bool:
        """Serves until SIGHUP, SIGINT or SIGTERM (or SIGUSR1, the library's), finishing the
        requests in progress; returns True if SIGHUP ended it, else False (flup's contract).
        Without bindAddress, serves the socket on fd 0, or, when fd 0 is not a socket (or
        forceCGI / FCGI_FORCE_CGI=Y), answers one CGI request and exits 0 as flup does.

        Differences from flup: a second signal exits the process at once (status 128+N);
        flup's ``FCGI_WEB_SERVER_ADDRS`` is applied by the library."""
        if self._cgi_mode():
            self._run_cgi()
        from ...server import Server

        server = Server(
            self.wsgi_application(),
            bind=self.bind,
            threads=self.threads,
            backlog=self.backlog(),
        )
        self._server = server
        self._hupReceived = False
        self._stopping = False
        old = self._install_signals()
        try:
            self._listen(server)
            # handle_signals=False: the handlers are ours (SIGHUP as well), and the main thread
            # waits with a timeout, so it runs them whichever thread the kernel picked.
            server.serve_forever(handle_signals=False)
        finally:
            self._restore_signals(old)
            self._server = None
        return self._hupReceived

    def _listen(self, server: Any) -> None:
        mpxs = self.multiplexed
        if "FCGI_RUNTIME_MPXS_CONNS" not in os.environ:
            # flup advertises FCGI_MPXS_CONNS=multiplexed and refuses a second request on a
            # connection otherwise (FCGI_CANT_MPX_CONN): so does the library. Through the
            # environment, so that the server does not turn multiplexing on when it listens
            # (it does unless the variable is set).
            os.environ["FCGI_RUNTIME_MPXS_CONNS"] = "1" if mpxs else "0"
        else:
            mpxs = os.environ["FCGI_RUNTIME_MPXS_CONNS"] == "1"
        mode = self._socket_mode()
        if mode is not None:
            self._set_socket_mode(server.lib, mode)
        try:
            server.listen()
        finally:
            if mode is not None:
                self._set_socket_mode(server.lib, None)
        server.lib.fcgi_set_limit(_lib.FCGI_LIMIT_MPXS_CONNS, 1 if mpxs else 0)

    # -- signals (flup: SIGHUP, SIGINT, SIGTERM end run(); restored afterwards) ------------

    def _on_signal(self, signum: int, _frame: Optional[FrameType]) -> None:
        if self._stopping:
            logger.warning("signal %d again: exiting at once", signum)
            os._exit(128 + signum)
        self._stopping = True
        if signum == signal.SIGHUP:
            self._hupReceived = True
        logger.info("signal %d: stopping after the requests in progress", signum)
        if self._server is not None:
            self._server.shutdown()

    def _install_signals(self) -> List[Tuple[int, _SignalHandler]]:
        old: List[Tuple[int, _SignalHandler]] = []
        if threading.current_thread() is not threading.main_thread():
            return old  # signal.signal works in the main thread only: stop with shutdown()
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            old.append((sig, signal.getsignal(sig)))
            signal.signal(sig, self._on_signal)
        return old

    @staticmethod
    def _restore_signals(old: List[Tuple[int, _SignalHandler]]) -> None:
        for sig, handler in old:
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def shutdown(self) -> None:
        """Stops a running run() (from another thread): requests in progress finish."""
        self._stopping = True
        if self._server is not None:
            self._server.shutdown()
