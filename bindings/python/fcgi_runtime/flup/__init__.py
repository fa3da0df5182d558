"""flup 1.0.3's FastCGI entry points on fcgi_runtime, so that a flup deployment switches by
changing an import:

    from flup.server.fcgi import WSGIServer                  # before
    from fcgi_runtime.flup.server.fcgi import WSGIServer     # after (or fcgi_runtime.flup)
    WSGIServer(app, bindAddress=("127.0.0.1", 9000)).run()

``fcgi_runtime.flup.server.fcgi_fork.WSGIServer`` (worker processes) and
``fcgi_runtime.flup.server.fcgi_single.WSGIServer`` (one thread) mirror flup's other two.
What differs from flup: bindings/python/README.md, "Moving from flup"."""

from .server.fcgi import FCGI_AUTHORIZER, FCGI_FILTER, FCGI_RESPONDER, WSGIServer

__all__ = ["WSGIServer", "FCGI_RESPONDER", "FCGI_AUTHORIZER", "FCGI_FILTER"]
