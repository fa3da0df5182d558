"""fcgi_runtime.flup: flup's arguments mapped onto fcgi_runtime (addresses, threads, the
pre-fork pool's settings), the signatures against flup 1.0.3's own, and the application
wrapper (environ, roles, wsgi.multi*, the error pages)."""

import inspect
import os
import sys
import types
from typing import Any, Dict, Iterator, List, Optional

import pytest

from fakes import REQ, FakeLib
from fcgi_runtime.flup import FCGI_AUTHORIZER, FCGI_FILTER, FCGI_RESPONDER, WSGIServer
from fcgi_runtime.flup.server import fcgi, fcgi_fork, fcgi_single
from fcgi_runtime.flup.server.fcgi_base import (
    ERROR_PAGE,
    library_address,
    workers_address,
    wrap_application,
)
from fcgi_runtime.server import ClientDisconnected, Server


def hello(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello\n"]


def need_flup() -> Any:
    """flup 1.0.3 (target/py-venv); under CI=true its absence fails instead of skipping."""
    try:
        import flup.server.fcgi  # noqa: F401
        import flup.server.fcgi_fork  # noqa: F401
        import flup.server.fcgi_single  # noqa: F401
    except ImportError as e:
        if os.environ.get("CI") == "true":
            pytest.fail("flup is not installed (make py-venv installs it): %s" % e)
        pytest.skip("flup is not installed (make py-venv installs it)")
    return sys.modules["flup.server"]


# -- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address,library,workers",
    [
        (None, None, None),
        (("127.0.0.1", 9000), "127.0.0.1:9000", "127.0.0.1:9000"),
        (("", 9000), "*:9000", "*:9000"),
        (("localhost", 80), "localhost:80", "localhost:80"),
        (("::1", 9000), "[::1]:9000", "[::1]:9000"),
        (("::", 9000, 0, 0), "[::]:9000", "[::]:9000"),
        (("", 9000, 0, 0), "[::]:9000", "[::]:9000"),
        ("/run/app.sock", "/run/app.sock", "unix:/run/app.sock"),
        ("app.sock", "app.sock", "unix:app.sock"),
        ("9000", "./9000", "unix:9000"),
    ],
)
def test_bind_address(address: Any, library: Optional[str], workers: Optional[str]) -> None:
    assert library_address(address) == library
    assert workers_address(address) == workers


@pytest.mark.parametrize(
    "address,exc",
    [
        (("127.0.0.1",), ValueError),
        (("127.0.0.1", 1, 2), ValueError),
        (("127.0.0.1", "9000"), TypeError),
        ((9000, 9000), TypeError),
        (("h", True), TypeError),
        ("", ValueError),
        (9000, TypeError),
        (["127.0.0.1", 9000], TypeError),
    ],
)
def test_bad_bind_address_is_refused_at_construction(address: Any, exc: type) -> None:
    with pytest.raises(exc):
        WSGIServer(hello, bindAddress=address)


# -- threads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,threads",
    [
        ({}, 5),  # flup's ThreadPool starts maxSpare=5
        ({"maxThreads": 4}, 4),
        ({"maxThreads": 1}, 1),
        ({"maxThreads": 2, "minSpare": 3}, 3),  # flup: max(minSpare, maxThreads)
        ({"maxSpare": 8}, 8),
        ({"minSpare": 2, "maxSpare": 1}, 2),
        ({"multithreaded": False, "maxThreads": 8}, 1),
        ({"jobClass": object, "jobArgs": ()}, 5),  # ignored, as flup does
    ],
)
def test_thread_count(kwargs: Dict[str, Any], threads: int) -> None:
    assert WSGIServer(hello, bindAddress=("127.0.0.1", 1), **kwargs).threads == threads


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="maxChildren"):
        WSGIServer(hello, maxChildren=3)
    # flup's ThreadPool: max(minSpare, maxThreads).
    assert WSGIServer(hello, maxThreads=0).threads == 1


def test_single_is_one_thread_and_ignores_other_keywords() -> None:
    s = fcgi_single.WSGIServer(hello, bindAddress="x.sock", maxThreads=9, anything=1)
    assert s.threads == 1 and s.multithreaded is False and s.multiprocess is False


def test_top_level_names() -> None:
    assert WSGIServer is fcgi.WSGIServer
    assert (FCGI_RESPONDER, FCGI_AUTHORIZER, FCGI_FILTER) == (1, 2, 3)


# -- the pre-fork pool -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,want",
    [
        (
            {},
            {"pm": "dynamic", "workers": 50, "start_workers": 5, "min_spare": 1, "max_spare": 5,
             "max_requests": 0, "timeout": 0},
        ),
        ({"maxChildren": 2, "minSpare": 2, "maxSpare": 2}, {"pm": "static", "workers": 2}),
        ({"maxChildren": 3, "maxSpare": 5}, {"pm": "static", "workers": 5}),
        (
            {"maxChildren": 10, "minSpare": 2, "maxSpare": 4, "maxRequests": 100},
            {"pm": "dynamic", "workers": 10, "start_workers": 4, "min_spare": 2, "max_spare": 4,
             "max_requests": 100},
        ),
        ({"maxChildren": 1, "minSpare": 1, "maxSpare": 1, "sockTimeout": 0.5}, {"workers": 1}),
    ],
)
def test_prefork_options(kwargs: Dict[str, Any], want: Dict[str, Any]) -> None:
    got = fcgi_fork.WSGIServer(hello, bindAddress=("127.0.0.1", 1), **kwargs).options
    assert got["threads"] == 1
    for k, v in want.items():
        assert got[k] == v, k
    if got["pm"] == "static":
        assert not {"start_workers", "min_spare", "max_spare"} & set(got)


def test_prefork_timeout_and_ignored_keywords() -> None:
    s = fcgi_fork.WSGIServer(hello, timeout=30, multithreaded=True, multiprocess=False, jobClass=1)
    assert s.options["timeout"] == 30.0
    assert s.multithreaded is False and s.multiprocess is True


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        ({"minSpare": 0}, ValueError),
        ({"minSpare": 3, "maxSpare": 2}, ValueError),
        ({"sockTimeout": -1}, ValueError),
        ({"sockTimeout": "1"}, ValueError),
        ({"maxThreads": 4}, TypeError),
    ],
)
def test_prefork_refuses_what_flup_refuses(kwargs: Dict[str, Any], exc: type) -> None:
    with pytest.raises(exc):
        fcgi_fork.WSGIServer(hello, **kwargs)


def test_prefork_run_calls_serve_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """run() hands the wrapped application and the mapped settings to
    fcgi_runtime.workers.serve_workers (a stand-in here: the real one is another module's)."""
    calls: List[Dict[str, Any]] = []

    def serve_workers(app: Any, **kw: Any) -> int:
        calls.append(dict(kw, app=app))
        return 0

    fake = types.ModuleType("fcgi_runtime.workers")
    fake.serve_workers = serve_workers  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fcgi_runtime.workers", fake)
    # setenv first, so that the variable run() sets is removed again afterwards.
    monkeypatch.setenv("FCGI_RUNTIME_MPXS_CONNS", "")
    monkeypatch.delenv("FCGI_RUNTIME_MPXS_CONNS")
    s = fcgi_fork.WSGIServer(hello, bindAddress="/tmp/x.sock", maxChildren=2, minSpare=2,
                             maxSpare=2, maxRequests=7)
    assert s.run() is False
    (call,) = calls
    assert call["binds"] == ["unix:/tmp/x.sock"]
    assert (call["workers"], call["threads"], call["pm"], call["max_requests"]) == (2, 1, "static", 7)
    assert call["asgi"] is False and call["preload"] is True
    assert os.environ["FCGI_RUNTIME_MPXS_CONNS"] == "0"
    # The application is wrapped: flup's wsgi.multiprocess=True, multithread=False.
    env = {"fcgi.role": "RESPONDER", "wsgi.errors": sys.stderr}
    assert call["app"](env, lambda s, h, e=None: None) == [b"Hello\n"]
    assert (env["wsgi.multithread"], env["wsgi.multiprocess"]) == (False, True)

    fake.serve_workers = lambda app, **kw: 3  # type: ignore[attr-defined]
    with pytest.raises(SystemExit) as e:
        fcgi_fork.WSGIServer(hello, bindAddress=("127.0.0.1", 1)).run()
    assert e.value.code == 3


# -- the same signatures as flup 1.0.3 -------------------------------------------------------


@pytest.mark.parametrize("module", ["fcgi", "fcgi_fork", "fcgi_single"])
def test_signature_matches_flup(module: str) -> None:
    flup_server = need_flup()
    theirs = inspect.signature(getattr(flup_server, module).WSGIServer.__init__)
    ours = inspect.signature(getattr(sys.modules["fcgi_runtime.flup.server." + module], "WSGIServer").__init__)
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()
    ]
    assert flup_server.fcgi.FCGI_RESPONDER == FCGI_RESPONDER


# -- the application wrapper ---------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: List[Any] = []
        self.written: List[bytes] = []

    def __call__(self, status: str, headers: List[Any], exc_info: Any = None) -> Any:
        self.calls.append((status, headers, exc_info is not None))
        return self.written.append


def request(role: str = "RESPONDER", **extra: Any) -> Dict[str, Any]:
    env: Dict[str, Any] = {"fcgi.role": role, "REQUEST_METHOD": "GET", "REQUEST_URI": "/x",
                           "HTTP_HOST": "web", "wsgi.multithread": True}
    lib = FakeLib()
    from fcgi_runtime.server import ErrorStream

    env["wsgi.errors"] = ErrorStream(lib, REQ)
    env["_lib"] = lib
    env.update(extra)
    return env


def test_base_environ_is_copied_over_the_params_but_not_over_wsgi_keys() -> None:
    seen: Dict[str, Any] = {}

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        seen.update(environ)
        return hello(environ, start_response)

    wrapped = wrap_application(app, {"APP_MODE": "prod", "HTTP_HOST": "forced",
                                     "wsgi.multithread": "x", "fcgi.role": "x"},
                               multithreaded=False, multiprocess=True)
    assert wrapped(request(), Recorder()) == [b"Hello\n"]
    assert seen["APP_MODE"] == "prod" and seen["HTTP_HOST"] == "forced"
    assert seen["wsgi.multithread"] is False and seen["wsgi.multiprocess"] is True
    assert seen["fcgi.role"] == "RESPONDER"


@pytest.mark.parametrize("role", ["AUTHORIZER", "FILTER"])
def test_roles_not_served_get_500(role: str) -> None:
    called: List[bool] = []

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        called.append(True)
        return hello(environ, start_response)

    rec = Recorder()
    env = request(role)
    body = b"".join(wrap_application(app)(env, rec))
    assert called == []
    assert rec.calls[0][0] == "500 Internal Server Error"
    assert role.encode() in body
    assert b"is not served" in env["_lib"].stderr()
    # Served when listed.
    rec = Recorder()
    roles = (FCGI_RESPONDER, FCGI_AUTHORIZER, FCGI_FILTER)
    assert wrap_application(app, roles=roles)(request(role), rec) == [b"Hello\n"]
    assert called == [True]


def failing(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    raise ZeroDivisionError("deliberate <b>")


@pytest.mark.parametrize("debug", [False, True])
def test_exception_in_the_call_gives_flups_page(debug: bool) -> None:
    rec = Recorder()
    env = request()
    page = b"".join(wrap_application(failing, debug=debug)(env, rec))
    status, headers, with_exc = rec.calls[-1]
    assert status == "500 Internal Server Error" and with_exc
    assert ("Content-Type", "text/html") in headers
    assert ("Content-Length", str(len(page))) in headers
    if debug:
        assert b"ZeroDivisionError" in page and b"deliberate &lt;b&gt;" in page
        assert b"failing" in page  # the traceback's frame
    else:
        assert page == ERROR_PAGE
    assert b"ZeroDivisionError: deliberate" in env["_lib"].stderr()


def test_exception_while_iterating_before_any_byte_gives_the_page_and_closes() -> None:
    closed: List[bool] = []

    def app(environ: Dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])

        def gen() -> Iterator[bytes]:
            try:
                yield b""
                raise KeyError("in the generator")
            finally:
                closed.append(True)

        return gen()

    rec = Recorder()
    body = b"".join(wrap_application(app, debug=True)(request(), rec))
    assert [c[0] for c in rec.calls] == ["200 OK", "500 Internal Server Error"]
    assert b"KeyError" in body and closed == [True]


def test_exception_after_a_body_byte_goes_on_to_the_server() -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        raise KeyError("late")

    it = iter(wrap_application(app, debug=True)(request(), Recorder()))
    assert next(it) == b"first"
    with pytest.raises(KeyError):
        next(it)


def test_exception_after_write_goes_on_to_the_server() -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response("200 OK", [])(b"written")
        raise KeyError("late")

    rec = Recorder()
    with pytest.raises(KeyError):
        wrap_application(app)(request(), rec)
    assert rec.written == [b"written"]


def test_client_disconnected_is_not_turned_into_a_page() -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        raise ClientDisconnected("gone")

    with pytest.raises(ClientDisconnected):
        wrap_application(app)(request(), Recorder())


def test_list_result_is_passed_through() -> None:
    result = [b"a", b"b"]
    assert wrap_application(lambda e, s: result)(request(), Recorder()) is result


def test_the_wrapper_through_the_server() -> None:
    """Server._handle with the wrapped application: flup's page reaches the web server."""
    lib = FakeLib({"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/x"})
    srv = object.__new__(Server)
    srv.script_name = ""
    setattr(srv, "multiprocess", False)  # read by _environ in the workers branch
    srv.app = wrap_application(failing)
    srv.lib = lib
    assert srv._handle(REQ) == 0
    out = lib.stdout()
    assert out.startswith(b"Status: 500 Internal Server Error\r\nContent-Type: text/html\r\n")
    assert out.endswith(ERROR_PAGE)
