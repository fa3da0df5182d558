"""Plain ASGI 3 applications (no framework) of tests/python_asgi.rs.

`application` (with lifespan: startup puts `started=<pid>` in the lifespan state, shutdown
writes the file `lifespan-shutdown` in the current directory):

/hello        Hello, World!
/scope, /env  selected scope fields, one NAME=value line each
/echo         the request body back (application/octet-stream)
/upload       the body's size and SHA-256, read block by block
/progress     the same, logging once it has read 1 MiB (nginx forwards the body unbuffered)
/stream       n chunks; after the first it waits for the gate file (query gate=PATH)
/slow         concurrency: awaits asyncio.sleep(1), then until /release (or, with gate=PATH,
              until that file exists)
/release      lets every /slow request answer
/stats        JSON counters: in_flight, max_in_flight, slow_served, disconnects, ...
/abort/wait   reads its body, then waits in receive() until http.disconnect; then tries to
              send and records what send() raised
/stream/big   mb=N MiB of the pattern byte i = 'a' + i % 26 in 1 MiB chunks, recording how
              far it got (the back-pressure test reads its progress from /stats)
/error        raises before http.response.start (the server's 500)
/late         raises after the first body chunk (the response is cut short)
/noresponse   returns without sending anything (the server's 500)

`hello`: the hello alone, no lifespan (the benchmark).
`strict`: asserts an http scope, so it raises on lifespan (served without it).
`failing`: answers lifespan.startup.failed.
"""

import asyncio
import hashlib
import json
import os
import sys
import time
from urllib.parse import parse_qs

GATE_WAIT = 30.0
#: How long a /slow request waits for /release at most.
RELEASE_WAIT = 120.0

STATS = {
    "in_flight": 0,
    "max_in_flight": 0,
    "slow_served": 0,
    "disconnects": 0,
    "send_after_disconnect": "",
    "big_sent": 0,
    "big_in_send": False,
    "big_done": False,
}
_release = None


def log(msg):
    sys.stderr.write("app: %s\n" % msg)
    sys.stderr.flush()


def _query(scope):
    q = parse_qs(scope["query_string"].decode("latin-1"))
    return {k: v[0] for k, v in q.items()}


async def _text(send, body, status=200, ctype=b"text/plain"):
    if isinstance(body, str):
        body = body.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _body(receive):
    parts = []
    while True:
        m = await receive()
        if m["type"] == "http.disconnect":
            raise OSError("disconnected while reading the body")
        parts.append(m.get("body", b""))
        if not m.get("more_body", False):
            return b"".join(parts)


async def scope_route(scope, receive, send):
    body = await _body(receive)
    headers = dict(scope["headers"])
    lines = [
        "type=%s" % scope["type"],
        "asgi.version=%s" % scope["asgi"]["version"],
        "asgi.spec_version=%s" % scope["asgi"].get("spec_version"),
        "http_version=%s" % scope["http_version"],
        "method=%s" % scope["method"],
        "scheme=%s" % scope["scheme"],
        "path=%s" % scope["path"],
        "raw_path=%r" % (scope["raw_path"],),
        "query_string=%r" % (scope["query_string"],),
        "root_path=%s" % scope["root_path"],
        "x-test=%r" % (headers.get(b"x-test"),),
        "content-type=%r" % (headers.get(b"content-type"),),
        "content-length=%r" % (headers.get(b"content-length"),),
        "host=%r" % (headers.get(b"host"),),
        # In the client's order (curl sends Host first).
        "first_header=%r" % (scope["headers"][0][0] if scope["headers"] else None,),
        "headers_are_bytes=%s"
        % all(type(n) is bytes and type(v) is bytes and n == n.lower() for n, v in scope["headers"]),
        "client_host=%s" % (scope["client"][0] if scope["client"] else None),
        "client_port_is_int=%s" % (bool(scope["client"]) and type(scope["client"][1]) is int),
        "server=%r" % (scope["server"],),
        "state.started=%s" % scope.get("state", {}).get("started"),
        "body=%r" % (body,),
    ]
    await _text(send, "\n".join(lines) + "\n")


async def echo(scope, receive, send):
    body = await _body(receive)
    await _text(send, body, ctype=b"application/octet-stream")


async def upload(scope, receive, send):
    h = hashlib.sha256()
    size = 0
    chunks = 0
    while True:
        m = await receive()
        if m["type"] != "http.request":
            raise OSError("disconnected during the upload")
        b = m.get("body", b"")
        h.update(b)
        size += len(b)
        chunks += 1
        if not m.get("more_body", False):
            break
    await _text(send, "size=%d\nsha256=%s\nchunks_over_one=%s\n" % (size, h.hexdigest(), chunks > 1))


async def progress(scope, receive, send):
    h = hashlib.sha256()
    size = 0
    said = False
    while True:
        m = await receive()
        if m["type"] != "http.request":
            raise OSError("disconnected during the body")
        b = m.get("body", b"")
        h.update(b)
        size += len(b)
        if size >= 1 << 20 and not said:
            said = True
            log("progress: read 1 MiB of the body")
        if not m.get("more_body", False):
            break
    await _text(send, "size=%d\nsha256=%s\n" % (size, h.hexdigest()))


async def stream(scope, receive, send):
    q = _query(scope)
    n = int(q.get("n", "5"))
    gate = q.get("gate")
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
    )
    for i in range(n):
        await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
        if i == 0 and gate:
            deadline = time.monotonic() + GATE_WAIT
            while not os.path.exists(gate) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": b"end\n", "more_body": False})


async def slow(scope, receive, send):
    global _release
    if _release is None:
        _release = asyncio.Event()
    STATS["in_flight"] += 1
    STATS["max_in_flight"] = max(STATS["max_in_flight"], STATS["in_flight"])
    try:
        await asyncio.sleep(1)
        gate = _query(scope).get("gate")
        if gate:
            # A few requests held over a SIGTERM (no /release gets through after it).
            deadline = time.monotonic() + GATE_WAIT
            while not os.path.exists(gate) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        else:
            try:
                await asyncio.wait_for(_release.wait(), RELEASE_WAIT)
            except asyncio.TimeoutError:
                pass
    finally:
        STATS["in_flight"] -= 1
    STATS["slow_served"] += 1
    await _text(send, "slow %s done\n" % _query(scope).get("i", "?"))


async def release(scope, receive, send):
    global _release
    if _release is None:
        _release = asyncio.Event()
    _release.set()
    await _text(send, "released\n")


async def stats(scope, receive, send):
    await _text(send, json.dumps(STATS) + "\n", ctype=b"application/json")


async def abort_wait(scope, receive, send):
    body = await _body(receive)
    log("abort-wait: read %d bytes, waiting in receive()" % len(body))
    m = await receive()
    STATS["disconnects"] += m["type"] == "http.disconnect"
    log("abort-wait: receive() said %s" % m["type"])
    try:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"too late\n"})
        STATS["send_after_disconnect"] = "no error"
    except OSError as e:
        STATS["send_after_disconnect"] = "OSError:" + type(e).__name__
    log("abort-wait: send after disconnect: %s" % STATS["send_after_disconnect"])


def _pattern(start, n):
    # 'a' + i % 26 for i in [start, start + n)
    alphabet = b"abcdefghijklmnopqrstuvwxyz"
    off = start % 26
    reps = (n + off) // 26 + 2
    return (alphabet * reps)[off:off + n]


async def big(scope, receive, send):
    mib = int(_query(scope).get("mb", "64"))
    total = mib << 20
    STATS["big_sent"] = 0
    STATS["big_done"] = False
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(total).encode()),
            ],
        }
    )
    # 1 MiB blocks by default (?chunk=N: blocks of N bytes; small ones stay below the
    # library's output buffer and go out through fcgi_loop_flush). The pattern repeats every
    # 26 bytes, so each block is built from its offset.
    chunk = int(_query(scope).get("chunk", str(1 << 20)))
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        STATS["big_in_send"] = True
        await send(
            {"type": "http.response.body", "body": _pattern(sent, n), "more_body": sent + n < total}
        )
        STATS["big_in_send"] = False
        sent += n
        STATS["big_sent"] = sent
    STATS["big_done"] = True


async def error(scope, receive, send):
    raise ValueError("deliberate error before http.response.start")


async def late(scope, receive, send):
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": b"x" * 100000, "more_body": True})
    raise KeyError("deliberate error after the head was sent")


async def noresponse(scope, receive, send):
    return None


async def hello_route(scope, receive, send):
    await _text(send, b"Hello, World!\n")


ROUTES = {
    "/hello": hello_route,
    "/scope": scope_route,
    "/env": scope_route,
    "/echo": echo,
    "/upload": upload,
    "/progress": progress,
    "/stream": stream,
    "/slow": slow,
    "/release": release,
    "/stats": stats,
    "/abort/wait": abort_wait,
    "/stream/big": big,
    "/error": error,
    "/late": late,
    "/noresponse": noresponse,
}


async def lifespan(scope, receive, send):
    while True:
        m = await receive()
        if m["type"] == "lifespan.startup":
            scope["state"]["started"] = str(os.getpid())
            log("lifespan: startup")
            await send({"type": "lifespan.startup.complete"})
        elif m["type"] == "lifespan.shutdown":
            with open("lifespan-shutdown", "w") as f:
                f.write("shutdown after %d slow requests\n" % STATS["slow_served"])
            log("lifespan: shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


def route_path(scope):
    """The path below the mount point: `path` includes `root_path` (the ASGI spec; what
    Starlette's get_route_path strips)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root):] or "/"
    return path


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send)
    route = ROUTES.get(route_path(scope))
    if route is None:
        await _text(send, "no route %s\n" % route_path(scope), status=404)
        return
    await route(scope, receive, send)


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, World!\n"})


async def strict(scope, receive, send):
    assert scope["type"] == "http", "only http scopes here"
    await hello_route(scope, receive, send)


async def failing(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "deliberate startup failure"})
        return
    await hello_route(scope, receive, send)
