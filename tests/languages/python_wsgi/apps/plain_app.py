"""Plain WSGI applications of tests/languages/python_wsgi.rs, each wrapped in wsgiref.validate.

/env       selected environ values, one NAME=value line each
/gate      concurrency: records that it entered, waits for a gate file, reports the most
           requests seen in the application at once
/abort     streams until the client is gone, then logs what it saw
/abort-write  writes with write() until it raises (the client is gone)
/error     raises before start_response (the server's 500)
/late      raises after the first block was sent (the response is cut short)
/write     the write() callable
/file      wsgi.file_wrapper
/lines     readline/readlines/iteration over wsgi.input
/read      wsgi.input.read(n) in small pieces: length and SHA-256
/progress  reads the body in blocks, logging when it has 1 MiB
/excinfo   start_response again with exc_info before anything was sent
/invalid   breaks PEP 3333 (the validator must catch it)
/overlong  more body than its Content-Length (only the promised bytes go out)
/no_content 204 with an empty body (no Content-Length is added)
/hello     Hello, World! (the throughput app)
"""

import hashlib
import os
import sys
import threading
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator

GATE_WAIT = 30.0
_lock = threading.Lock()
_inside = 0
_most = 0


def log(msg):
    sys.stderr.write("app: %s\n" % msg)
    sys.stderr.flush()


def _text(start_response, body, status="200 OK"):
    data = body.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def _wait_for(path):
    deadline = time.monotonic() + GATE_WAIT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def env(environ, start_response):
    keys = [
        "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
        "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "HTTP_X_TEST",
        "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
        "wsgi.version", "fcgi.role",
    ]
    lines = ["%s=%s" % (k, environ.get(k, "<absent>")) for k in keys]
    lines.append("HTTP_CONTENT_LENGTH present=%s" % ("HTTP_CONTENT_LENGTH" in environ))
    lines.append("aborted=%s" % environ["fcgi.aborted"]())
    lines.append("file_wrapper=%s" % ("wsgi.file_wrapper" in environ))
    return _text(start_response, "\n".join(lines) + "\n")


def gate(environ, start_response):
    global _inside, _most
    q = parse_qs(environ["QUERY_STRING"])
    d, ident = q["dir"][0], q["id"][0]
    with _lock:
        _inside += 1
        _most = max(_most, _inside)
    try:
        open(os.path.join(d, "entered-" + ident), "w").close()
        opened = _wait_for(os.path.join(d, "open"))
        with _lock:
            most = _most
    finally:
        with _lock:
            _inside -= 1
    return _text(start_response, "id=%s\nopened=%s\nmost=%d\n" % (ident, opened, most))


def abort(environ, start_response):
    aborted = environ["fcgi.aborted"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    block = b"x" * 16384

    def generate():
        sent = 0
        deadline = time.monotonic() + GATE_WAIT
        try:
            while not aborted() and time.monotonic() < deadline:
                yield block
                sent += 1
        finally:
            # Runs when the loop saw the abort, or when the server closes the generator after
            # a write failed.
            log("abort stream ended after %d blocks, aborted=%s" % (sent, aborted()))

    return generate()


def abort_write(environ, start_response):
    w = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    block = b"y" * 16384
    sent = 0
    deadline = time.monotonic() + GATE_WAIT
    try:
        while time.monotonic() < deadline:
            w(block)
            sent += 1
    except OSError as e:
        # fcgi_runtime.ClientDisconnected: the application sees it, the server logs it.
        log("abort-write: write() raised %s after %d blocks" % (type(e).__name__, sent))
        raise
    return []


def error(environ, start_response):
    raise ValueError("deliberate error before start_response")


def late(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def generate():
        yield b"first block\n"
        raise KeyError("deliberate error after the head was sent")

    return generate()


def write(environ, start_response):
    w = start_response("200 OK", [("Content-Type", "text/plain")])
    w(b"written ")
    w(b"by write()\n")
    return [b"then returned\n"]


def file_(environ, start_response):
    q = parse_qs(environ["QUERY_STRING"])
    f = open(q["path"][0], "rb")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 32768)


def lines(environ, start_response):
    inp = environ["wsgi.input"]
    first = inp.readline()
    limited = inp.readline(4)
    rest_line = inp.readline()
    two = inp.readlines(1)
    others = [line for line in inp]
    out = [
        "first=%r" % first,
        "limited=%r" % limited,
        "rest=%r" % rest_line,
        "two=%r" % two,
        "others=%d" % len(others),
        "last=%r" % (others[-1] if others else b""),
        "eof=%r" % inp.read(10),
    ]
    return _text(start_response, "\n".join(out) + "\n")


def read(environ, start_response):
    inp = environ["wsgi.input"]
    h = hashlib.sha256()
    n = 0
    while True:
        block = inp.read(1000)
        if not block:
            break
        h.update(block)
        n += len(block)
    return _text(start_response, "size=%d\nsha256=%s\n" % (n, h.hexdigest()))


def progress(environ, start_response):
    # Reads the body in 64 KiB blocks and logs once it has read 1 MiB: with nginx forwarding
    # the body unbuffered, that line appears before the client has sent the whole body.
    inp = environ["wsgi.input"]
    h = hashlib.sha256()
    n = 0
    logged = False
    while True:
        block = inp.read(65536)
        if not block:
            break
        h.update(block)
        n += len(block)
        if n >= 1048576 and not logged:
            log("progress: read 1 MiB of the body")
            logged = True
    return _text(start_response, "size=%d\nsha256=%s\n" % (n, h.hexdigest()))


def excinfo(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise RuntimeError("handled")
    except RuntimeError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"replaced by exc_info\n"]


def invalid(environ, start_response):
    # A tuple of headers: PEP 3333 wants a list, and wsgiref.validate asserts it.
    start_response("200 OK", (("Content-Type", "text/plain"),))
    return [b"never sent\n"]


def overlong(environ, start_response):
    # More body than the Content-Length: the server sends only what the header promises.
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [b"short\n", b"and more than promised\n"]


def no_content(environ, start_response):
    # 204: the server adds no Content-Length to the empty list (RFC 9110 forbids it).
    start_response("204 No Content", [])
    return []


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!\n"]


ROUTES = {
    "/env": env,
    "/gate": gate,
    "/abort": abort,
    "/abort-write": abort_write,
    "/error": error,
    "/late": late,
    "/write": write,
    "/file": file_,
    "/lines": lines,
    "/read": read,
    "/progress": progress,
    "/excinfo": excinfo,
    "/invalid": invalid,
    "/overlong": overlong,
    "/no_content": no_content,
    "/hello": hello,
}


def dispatch(environ, start_response):
    route = ROUTES.get(environ["PATH_INFO"])
    if route is None:
        return _text(start_response, "not found\n", "404 Not Found")
    return route(environ, start_response)


application = validator(dispatch)
#: Without the validator: the throughput measurement only.
bare = dispatch
