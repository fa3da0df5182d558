"""flup 1.0.3's ``flup.server.fcgi_fork.WSGIServer`` (pre-forked processes) on fcgi_runtime's
worker processes (``fcgi_runtime.workers.serve_workers``, the library's pool):

    from fcgi_runtime.flup.server.fcgi_fork import WSGIServer
    WSGIServer(app, bindAddress=("127.0.0.1", 9000), maxChildren=4).run()

Each worker runs one thread, as flup's children do. See prefork_options for how flup's pool
arguments map onto the pool's."""

import importlib
import os
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from .fcgi_base import (
    FCGI_AUTHORIZER,
    FCGI_FILTER,
    FCGI_RESPONDER,
    BaseFCGIServer,
    BindAddress,
    WSGIApp,
    workers_address,
)

__all__ = ["WSGIServer", "FCGI_RESPONDER", "FCGI_AUTHORIZER", "FCGI_FILTER", "prefork_options"]

#: flup's PreforkServer defaults.
_DEFAULTS: Dict[str, Any] = {
    "minSpare": 1,
    "maxSpare": 5,
    "maxChildren": 50,
    "maxRequests": 0,
    "sockTimeout": 0,
}


def prefork_options(kw: Mapping[str, Any], timeout: Optional[float] = None) -> Dict[str, Any]:
    """serve_workers' keyword arguments for flup's PreforkServer arguments (checked as flup
    checks them: ValueError).

    flup keeps between maxSpare and maxChildren children (``maxChildren`` raised to
    ``maxSpare``), starting maxSpare, with minSpare..maxSpare of them idle:

    - maxSpare >= maxChildren (the count never moves): ``pm="static"``, ``workers`` =
      maxChildren;
    - else ``pm="dynamic"``, ``workers`` (the pool's max_children) = maxChildren,
      ``start_workers`` = maxSpare, ``min_spare`` = minSpare, ``max_spare`` = maxSpare;
    - ``maxRequests`` -> ``max_requests`` (flup counts connections, the pool requests);
    - ``timeout`` (flup: SIGALRM raises in the application after that many seconds) ->
      ``timeout`` (the pool kills the worker whose request runs longer; 0: none);
    - ``sockTimeout`` is checked and ignored (the library's sockets are non-blocking)."""
    unknown = sorted(set(kw) - set(_DEFAULTS))
    if unknown:
        raise TypeError("WSGIServer got unexpected keyword arguments: %s" % ", ".join(unknown))
    opts = dict(_DEFAULTS)
    opts.update(kw)
    min_spare = int(opts["minSpare"])
    max_spare = int(opts["maxSpare"])
    if min_spare < 1:
        raise ValueError("minSpare must be at least 1!")
    if max_spare < min_spare:
        raise ValueError("maxSpare must be greater than, or equal to, minSpare!")
    sock_timeout = opts["sockTimeout"]
    if type(sock_timeout) not in (int, float) or sock_timeout < 0:
        raise ValueError("sockTimeout must be an int or float, greater than or equal to 0")
    children = max(max_spare, int(opts["maxChildren"]))
    out: Dict[str, Any] = {
        "workers": children,
        "threads": 1,
        "max_requests": max(0, int(opts["maxRequests"])),
        "timeout": float(timeout) if timeout else 0,
    }
    if max_spare >= children:
        out["pm"] = "static"
    else:
        out["pm"] = "dynamic"
        out["start_workers"] = max_spare
        out["min_spare"] = min_spare
        out["max_spare"] = max_spare
    return out


def _serve_workers() -> Callable[..., int]:
    """fcgi_runtime.workers.serve_workers, imported when run() needs it."""
    module = importlib.import_module("fcgi_runtime.workers")
    fn: Callable[..., int] = getattr(module, "serve_workers")
    return fn


class WSGIServer(BaseFCGIServer):
    """flup's pre-forking FastCGI WSGI server on fcgi_runtime's worker processes."""

    def __init__(
        self,
        application: WSGIApp,
        environ: Optional[Mapping[str, Any]] = None,
        bindAddress: BindAddress = None,
        umask: Optional[int] = None,
        multiplexed: bool = False,
        debug: bool = False,
        roles: Sequence[int] = (FCGI_RESPONDER,),
        forceCGI: bool = False,
        timeout: Optional[float] = None,
        **kw: Any,
    ) -> None:
        BaseFCGIServer.__init__(
            self,
            application,
            environ=environ,
            multithreaded=False,
            multiprocess=True,
            bindAddress=bindAddress,
            umask=umask,
            multiplexed=multiplexed,
            debug=debug,
            roles=roles,
            forceCGI=forceCGI,
        )
        for key in ("multithreaded", "multiprocess", "jobClass", "jobArgs"):
            kw.pop(key, None)
        self.options = prefork_options(kw, timeout)

    def run(self) -> bool:
        """Serves until the pool stops (SIGTERM, SIGINT, SIGQUIT: see fcgi_runtime.workers) and
        returns False. Differences from flup: SIGHUP reloads the workers (the pool's graceful
        reload) instead of ending run() with True; a pool that fails (e.g. cannot listen)
        raises SystemExit with its status. Without bindAddress: the socket on fd 0, or one CGI
        request when fd 0 is not a socket (as flup)."""
        if self._cgi_mode():
            self._run_cgi()
        serve_workers = _serve_workers()
        address = workers_address(self._bindAddress)
        mode = self._socket_mode()
        lib = None
        if mode is not None:
            from ... import _lib

            lib = _lib.load()
            self._set_socket_mode(lib, mode)
        if "FCGI_RUNTIME_MPXS_CONNS" not in os.environ:
            # Read by the library in each worker (flup's fcgi_fork never multiplexes unless
            # asked: FCGI_MPXS_CONNS=multiplexed).
            os.environ["FCGI_RUNTIME_MPXS_CONNS"] = "1" if self.multiplexed else "0"
        try:
            rc = serve_workers(
                self.wsgi_application(),
                binds=None if address is None else [address],
                asgi=False,
                preload=True,
                backlog=self.backlog(),
                **self.options,
            )
        finally:
            if lib is not None:
                self._set_socket_mode(lib, None)
        if rc:
            raise SystemExit(rc)
        return False
