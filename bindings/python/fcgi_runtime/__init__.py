"""fcgi_runtime: a WSGI (PEP 3333) server over fcgi-runtime's native C API.

    from fcgi_runtime import serve
    serve(app, bind="127.0.0.1:9000", threads=4)

or ``python3 -m fcgi_runtime module:app --bind 127.0.0.1:9000 --threads 4``.
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

__all__ = [
    "ClientDisconnected",
    "ErrorStream",
    "FileWrapper",
    "InputStream",
    "LibraryNotFound",
    "Server",
    "load_library",
    "serve",
]
__version__ = "0.1.0"
