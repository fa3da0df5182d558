"""The applications of tests/languages/python_logging.rs's load test.

`application` (WSGI): calls environ["fcgi.aborted"]() on every request (fcgi_is_aborted,
through ctypes.PyDLL with the GIL held, takes the connection's write lock), then answers
"Hello".
`asgi` (ASGI 3, no lifespan): answers "Hello".
"""


def application(environ, start_response):
    aborted = environ["fcgi.aborted"]()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello %d\n" % aborted]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        raise ValueError("no lifespan")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"Hello\n"})
