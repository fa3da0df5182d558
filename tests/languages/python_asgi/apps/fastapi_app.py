"""A FastAPI application of tests/languages/python_asgi.rs (FastAPI and Starlette from PyPI, in
target/py-venv): what a framework of today makes of `path` and `root_path`.

/                       `home`: the scope's path and root_path, request.url and url_for
/api/items/{item_id}    `item`, on an APIRouter included with prefix="/api": the same, with
                        url_for of itself, of `home` and of the sub-application's route
/sub/hello              `sub_hello`, on a FastAPI sub-application mounted at /sub: the same

Each answers JSON: {"route", "path", "root_path", "url", "url_for": {...}}.
"""

from typing import Any, Dict

from fastapi import APIRouter, FastAPI, Request


def where(request: Request, route: str, **names: Any) -> Dict[str, Any]:
    return {
        "route": route,
        "path": request.scope["path"],
        "root_path": request.scope["root_path"],
        "url": str(request.url),
        "url_for": {
            key: str(request.url_for(name, **params)) for key, (name, params) in names.items()
        },
    }


app = FastAPI()
router = APIRouter()
sub = FastAPI()


@app.get("/", name="home")
async def home(request: Request) -> Dict[str, Any]:
    return where(request, "home", home=("home", {}))


@router.get("/items/{item_id}", name="item")
async def item(item_id: int, request: Request) -> Dict[str, Any]:
    return where(
        request,
        "item %d" % item_id,
        item=("item", {"item_id": item_id + 1}),
        home=("home", {}),
        sub_hello=("sub_hello", {}),
    )


@sub.get("/hello", name="sub_hello")
async def sub_hello(request: Request) -> Dict[str, Any]:
    return where(request, "sub hello", sub_hello=("sub_hello", {}))


app.include_router(router, prefix="/api")
app.mount("/sub", sub)
