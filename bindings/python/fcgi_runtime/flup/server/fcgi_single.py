"""flup 1.0.3's ``flup.server.fcgi_single.WSGIServer`` (one request at a time) on fcgi_runtime's
WSGI server with one thread."""

from typing import Any, Mapping, Optional, Sequence

from . import fcgi
from .fcgi_base import FCGI_AUTHORIZER, FCGI_FILTER, FCGI_RESPONDER, BindAddress, WSGIApp

__all__ = ["WSGIServer", "FCGI_RESPONDER", "FCGI_AUTHORIZER", "FCGI_FILTER"]


class WSGIServer(fcgi.WSGIServer):
    """flup's single-threaded server: fcgi.WSGIServer with multithreaded=False (one thread),
    multiprocess=False; run() as fcgi.WSGIServer.run()."""

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
        **kw: Any,
    ) -> None:
        # flup's SingleServer takes and ignores any other keyword argument.
        del kw
        fcgi.WSGIServer.__init__(
            self,
            application,
            environ=environ,
            multithreaded=False,
            multiprocess=False,
            bindAddress=bindAddress,
            umask=umask,
            multiplexed=multiplexed,
            debug=debug,
            roles=roles,
            forceCGI=forceCGI,
        )
