"""The ASGI application of tests/languages/python_workers.rs: answers ``PID=<pid>`` and the
module's ``VERSION`` (the reload test rewrites a copy of this file); its lifespan logs
``lifespan startup <pid>`` and ``lifespan shutdown <pid>`` on stderr."""

import os
import sys

VERSION = "1"

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                print("lifespan startup %d" % os.getpid(), file=sys.stderr, flush=True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                print("lifespan shutdown %d" % os.getpid(), file=sys.stderr, flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b"PID=%d\nVERSION=%s\n" % (os.getpid(), VERSION.encode())
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})
