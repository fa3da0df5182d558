"""WSGI applications of tests/languages/python_flup.rs, served by flup 1.0.3 and by
fcgi_runtime (through fcgi_runtime.flup or python -m fcgi_runtime).

hello  Hello, World! whatever the path: tests/languages/python_wsgi/apps/plain_app.py's
       `hello` (the throughput app; flup derives PATH_INFO differently, so no routing)
app    /env: selected environ values; /post: the body's length and SHA-256; /boom: raises
"""

import hashlib
from typing import Any, Callable, Dict, List

StartResponse = Callable[..., Any]


def hello(environ: Dict[str, Any], start_response: StartResponse) -> List[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!\n"]


def _text(start_response: StartResponse, body: str, status: str = "200 OK") -> List[bytes]:
    data = body.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def app(environ: Dict[str, Any], start_response: StartResponse) -> List[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/env":
        names = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
                 "HTTP_X_TEST", "APP_BASE", "wsgi.url_scheme",
                 "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"]
        lines = ["%s=%s" % (n, environ.get(n, "-")) for n in names]
        return _text(start_response, "\n".join(lines) + "\n")
    if path == "/post":
        inp = environ["wsgi.input"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        h = hashlib.sha256()
        n = 0
        while n < length:
            block = inp.read(min(65536, length - n))
            if not block:
                break
            h.update(block)
            n += len(block)
        return _text(start_response, "size=%d\nsha256=%s\n" % (n, h.hexdigest()))
    if path == "/boom":
        raise ZeroDivisionError("deliberate failure")
    return _text(start_response, "not found\n", "404 Not Found")
