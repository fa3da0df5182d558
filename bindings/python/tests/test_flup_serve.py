"""fcgi_runtime.flup's servers as real processes answering real FastCGI requests
(target/release/fcgi-client): TCP, a Unix socket with flup's umask, fd 0, the CGI fallback,
GET_VALUES' FCGI_MPXS_CONNS, roles, the debug page, and run()'s return value after SIGHUP,
SIGTERM and SIGINT. Every wait is a bounded poll for a condition."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PACKAGE_ROOT))
DEADLINE = 30.0


def tool(name: str) -> str:
    """A tool of the build: beside FCGI_RUNTIME_LIB, else the checkout's target/release."""
    dirs = [os.path.dirname(os.environ.get("FCGI_RUNTIME_LIB", "")),
            os.path.join(REPO, "target", "release")]
    for d in dirs:
        p = os.path.join(d, name)
        if d and os.access(p, os.X_OK):
            return p
    pytest.fail("%s not found in %s (make build)" % (name, dirs))


def wait_for(cond: Callable[[], bool], what: str, proc: Optional["Server"] = None) -> None:
    deadline = time.monotonic() + DEADLINE
    while not cond():
        if proc is not None and proc.proc.poll() is not None:
            pytest.fail("%s: the server exited (%s) first:\n%s" % (what, proc.proc.returncode, proc.log()))
        if time.monotonic() > deadline:
            pytest.fail("%s: not within %.0f s%s" % (what, DEADLINE, "\n" + proc.log() if proc else ""))
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connects(addr: str) -> bool:
    if addr.startswith("/"):
        s = socket.socket(socket.AF_UNIX)
        target: Any = addr
    else:
        s = socket.socket()
        host, port = addr.rsplit(":", 1)
        target = (host, int(port))
    try:
        s.connect(target)
        return True
    except OSError:
        return False
    finally:
        s.close()


def env_for_server(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT, HERE])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("FCGI_RUNTIME_MPXS_CONNS", None)
    env.update(extra)
    return env


class Server:
    """python flup_serve.py MODULE KWARGS, its output in files."""

    def __init__(self, tmp: str, module: str, kwargs: Dict[str, Any], addr: Optional[str],
                 stdin: Any = subprocess.DEVNULL, env: Optional[Dict[str, str]] = None) -> None:
        os.makedirs(tmp, exist_ok=True)
        self.out = os.path.join(tmp, "server.out")
        self.err = os.path.join(tmp, "server.err")
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "flup_serve.py"), module, json.dumps(kwargs)],
                stdin=stdin, stdout=out, stderr=err, cwd=tmp, env=env or env_for_server(),
            )
        self.addr = addr
        if addr is not None:
            wait_for(lambda: connects(addr), "the server listens on %s" % addr, self)

    def log(self) -> str:
        parts = []
        for p in (self.out, self.err):
            with open(p, errors="replace") as f:
                parts.append(f.read())
        return "--- stdout:\n%s--- stderr:\n%s" % tuple(parts)

    def stdout(self) -> str:
        with open(self.out) as f:
            return f.read()

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("the server did not exit within %.0f s of signal %d:\n%s" % (DEADLINE, sig, self.log()))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def servers() -> Any:
    started: List[Server] = []
    yield started
    for s in started:
        s.kill()


def client(addr: str, uri: str = "/", *opts: str) -> Tuple[int, str, str]:
    r = subprocess.run([tool("fcgi-client"), *opts, addr, uri], capture_output=True,
                       timeout=DEADLINE, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode("latin-1"), r.stderr.decode("latin-1")


def get_values(addr: str) -> Dict[str, str]:
    rc, out, err = client(addr, "/", "--get-values")
    assert rc == 0, err
    return dict(line.split("=", 1) for line in out.split() if "=" in line)


def start(servers: List[Server], tmp: Any, module: str, addr: Optional[str], **kwargs: Any) -> Server:
    s = Server(os.fspath(tmp), module, kwargs, addr)
    servers.append(s)
    return s


def test_threaded_over_tcp_and_sighup_returns_true(servers: List[Server], tmp_path: Any) -> None:
    port = free_port()
    addr = "127.0.0.1:%d" % port
    s = start(servers, tmp_path, "fcgi", addr, bindAddress=["127.0.0.1", port],
              environ={"APP_BASE": "from-environ"}, maxThreads=3, debug=True)
    rc, out, err = client(addr, "/hello")
    assert rc == 0, err
    assert out.startswith("Status: 200 OK\r\n")
    for line in ["Hello from the flup shim", "path=/hello", "multithread=True",
                 "multiprocess=False", "run_once=False", "base=from-environ"]:
        assert line in out.splitlines(), out
    assert "with 3 threads" in s.log()
    # flup's default: no multiplexing advertised (and a second request refused).
    assert get_values(addr)["FCGI_MPXS_CONNS"] == "0"
    # debug=True: the traceback page, and the traceback on FCGI_STDERR.
    rc, out, err = client(addr, "/boom")
    assert rc == 0
    assert out.startswith("Status: 500 Internal Server Error\r\nContent-Type: text/html\r\n")
    assert "ZeroDivisionError" in out and "deliberate failure" in out
    assert "ZeroDivisionError: deliberate failure" in err
    # A role not in roles (default: responder only).
    rc, out, err = client(addr, "/x", "--role", "authorizer")
    assert out.startswith("Status: 500"), out
    assert "FastCGI role AUTHORIZER is not served" in out
    assert s.stop(signal.SIGHUP) == 0
    assert "run returned True" in s.stdout(), s.log()


def test_threaded_multiplexed_non_debug_and_sigterm_returns_false(servers: List[Server], tmp_path: Any) -> None:
    port = free_port()
    addr = "127.0.0.1:%d" % port
    s = start(servers, tmp_path, "fcgi", addr, bindAddress=["127.0.0.1", port],
              multiplexed=True, multithreaded=False, roles=[1, 2])
    assert get_values(addr)["FCGI_MPXS_CONNS"] == "1"
    rc, out, err = client(addr, "/boom")
    assert out.startswith("Status: 500 Internal Server Error\r\n")
    assert "<h1>Unhandled Exception</h1>" in out and "ZeroDivisionError" not in out
    rc, out, err = client(addr, "/x", "--role", "authorizer")
    assert rc == 0 and "Hello from the flup shim" in out and "multithread=False" in out
    # Several requests on one kept connection.
    rc, out, err = client(addr, "/again", "--keep", "-n", "3")
    assert rc == 0 and out.count("path=/again") == 3, out + err
    assert "with 1 threads" in s.log()
    assert s.stop(signal.SIGTERM) == 0
    assert "run returned False" in s.stdout(), s.log()


def test_unix_socket_with_umask_and_sigint(servers: List[Server], tmp_path: Any) -> None:
    path = os.path.join(os.fspath(tmp_path), "app.sock")
    s = start(servers, tmp_path, "fcgi_single", path, bindAddress=path, umask=0o077)
    assert os.stat(path).st_mode & 0o777 == 0o700
    rc, out, err = client(path, "/unix")
    assert rc == 0 and "path=/unix" in out and "multithread=False" in out, err
    assert s.stop(signal.SIGINT) == 0
    assert "run returned False" in s.stdout(), s.log()


@pytest.mark.parametrize("allowed,served", [("192.0.2.1", False), ("192.0.2.1, 127.0.0.1", True)])
def test_fcgi_web_server_addrs(servers: List[Server], tmp_path: Any, allowed: str, served: bool) -> None:
    """flup's FCGI_WEB_SERVER_ADDRS, applied by the library: other clients are refused."""
    port = free_port()
    addr = "127.0.0.1:%d" % port
    s = Server(os.fspath(tmp_path), "fcgi", {"bindAddress": ["127.0.0.1", port]}, addr,
               env=env_for_server(FCGI_WEB_SERVER_ADDRS=allowed))
    servers.append(s)
    rc, out, err = client(addr, "/allowed")
    if served:
        assert rc == 0 and "path=/allowed" in out, err
    else:
        assert rc != 0 and "Hello" not in out, out


def test_fd0_listening_socket(servers: List[Server], tmp_path: Any) -> None:
    """No bindAddress: the socket the web server (here: the test) left on fd 0."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    addr = "127.0.0.1:%d" % lsock.getsockname()[1]
    try:
        s = Server(os.fspath(tmp_path), "fcgi", {}, None, stdin=lsock.fileno())
        servers.append(s)
    finally:
        lsock.close()
    wait_for(lambda: "serving on fd 0" in s.log(), "the server serves fd 0", s)
    rc, out, err = client(addr, "/fd0")
    assert rc == 0 and "path=/fd0" in out, err
    assert s.stop(signal.SIGTERM) == 0


CGI_ENV = {"REQUEST_METHOD": "GET", "PATH_INFO": "/cgi", "SERVER_NAME": "localhost",
           "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
           "QUERY_STRING": ""}


@pytest.mark.parametrize("how", ["forceCGI", "FCGI_FORCE_CGI", "stdin is a pipe"])
def test_cgi_fallback(tmp_path: Any, how: str) -> None:
    """One CGI request, then exit 0 (flup's CGIRequest): forced with fd 0 a listening socket
    (which would otherwise be served), or because fd 0 is not a socket."""
    env = env_for_server(**CGI_ENV)
    kwargs: Dict[str, Any] = {}
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    stdin: Any = lsock.fileno()
    if how == "forceCGI":
        kwargs["forceCGI"] = True
    elif how == "FCGI_FORCE_CGI":
        env["FCGI_FORCE_CGI"] = "y"
    else:
        stdin = subprocess.PIPE
    io: Dict[str, Any] = {"input": b""} if stdin == subprocess.PIPE else {"stdin": stdin}
    try:
        r = subprocess.run(
            [sys.executable, os.path.join(HERE, "flup_serve.py"), "fcgi", json.dumps(kwargs)],
            capture_output=True, env=env, cwd=os.fspath(tmp_path), timeout=DEADLINE, **io,
        )
    finally:
        lsock.close()
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert out.startswith("Status: 200 OK\r\n"), out
    assert "path=/cgi" in out and "run_once=True" in out and "multiprocess=True" in out
    # sys.exit(0) after the one request, as flup: run() does not return.
    assert "run returned" not in out


def test_prefork_serves_on_worker_processes(servers: List[Server], tmp_path: Any) -> None:
    """flup's fcgi_fork on fcgi_runtime.workers (the pool): needs fcgi_runtime.workers."""
    port = free_port()
    addr = "127.0.0.1:%d" % port
    s = start(servers, tmp_path, "fcgi_fork", addr, bindAddress=["127.0.0.1", port],
              maxChildren=2, minSpare=2, maxSpare=2, environ={"APP_BASE": "forked"})
    pids: Set[str] = set()
    for i in range(4):
        rc, out, err = client(addr, "/fork%d" % i)
        assert rc == 0, err
        assert "path=/fork%d" % i in out and "multiprocess=True" in out and "base=forked" in out
        pids.update(l[4:] for l in out.splitlines() if l.startswith("pid="))
    assert str(s.proc.pid) not in pids, "answered by the parent, not a worker"
    assert s.stop(signal.SIGTERM) == 0
    assert "run returned False" in s.stdout(), s.log()
