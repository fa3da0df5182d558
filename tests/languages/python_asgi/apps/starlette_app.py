"""A Starlette application of tests/languages/python_asgi.rs (current Starlette from PyPI, in
target/py-venv).

/                         index page
/users/{name}/{id:int}    path parameters and the query, as JSON
/items (POST)             a JSON body: answers 201 with the sum of its numbers
/state                    what the lifespan context put in the state
/stream?n=N&gate=PATH     StreamingResponse; after the first chunk it waits for the gate file
/boom                     raises (Starlette's ServerErrorMiddleware answers 500)
"""

import asyncio
import contextlib
import os
import time

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

GATE_WAIT = 30.0


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"greeting": "hello from the lifespan"}


async def index(request):
    return PlainTextResponse("index page\n")


async def user(request):
    return JSONResponse(
        {
            "name": request.path_params["name"],
            "id": request.path_params["id"],
            "q": request.query_params.get("q"),
            "path": request.url.path,
        }
    )


async def items(request):
    data = await request.json()
    return JSONResponse({"count": len(data["numbers"]), "sum": sum(data["numbers"])}, status_code=201)


async def state(request):
    return PlainTextResponse(request.state.greeting + "\n")


async def stream(request):
    n = int(request.query_params.get("n", "5"))
    gate = request.query_params.get("gate")

    async def gen():
        for i in range(n):
            yield ("chunk %d\n" % i).encode()
            if i == 0 and gate:
                deadline = time.monotonic() + GATE_WAIT
                while not os.path.exists(gate) and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
        yield b"end\n"

    return StreamingResponse(gen(), media_type="text/plain")


async def boom(request):
    raise RuntimeError("boom from a Starlette endpoint")


app = Starlette(
    routes=[
        Route("/", index),
        Route("/users/{name}/{id:int}", user),
        Route("/items", items, methods=["POST"]),
        Route("/state", state),
        Route("/stream", stream),
        Route("/boom", boom),
    ],
    lifespan=lifespan,
)
