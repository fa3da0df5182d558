"""fcgi_runtime: a WSGI (PEP 3333) and an ASGI 3 server over fcgi-runtime's native C API.

    from fcgi_runtime import serve
    serve(app, bind="127.0.0.1:9000", threads=4)          # WSGI, N threads

    from fcgi_runtime import serve_asgi
    serve_asgi(asgi_app, bind="127.0.0.1:9000")           # ASGI, one asyncio loop

or ``python3 -m fcgi_runtime module:app --bind 127.0.0.1:9000 --threads 4`` (WSGI) and
``python3 -m fcgi_runtime --asgi module:app --bind 127.0.0.1:9000`` (ASGI).
"""

from .server import (
    ClientDisconnected,
    ErrorStream,
    FileWrapper,
    InputStream,
    Server,
    serve,
)
from ._lib import LibraryNotFound, load as load_library
from .asgi import AsgiServer, StartupFailed, serve_asgi

__all__ = [
    "AsgiServer",
    "ClientDisconnected",
    "ErrorStream",
    "FileWrapper",
    "InputStream",
    "LibraryNotFound",
    "Server",
    "load_library",
    "StartupFailed",
    "serve",
    "serve_asgi",
]
__version__ = "0.1.0"
