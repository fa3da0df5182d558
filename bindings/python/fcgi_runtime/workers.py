"""Worker processes on the library's pre-fork pool (fcgi_pool_* in include/fcgi.h).

The calling process becomes the pool's supervisor: fcgi_pool_run forks the workers and lives
in C (its signals: SIGHUP/SIGUSR2 reload, SIGQUIT graceful stop, SIGTERM/SIGINT fast stop)
until the pool stops. Each worker serves every listening socket with the WSGI Server
(`threads` threads per socket) or one ASGI loop, until the library ends it (max_requests, a
reload, a stop): then it finishes, flushes its logging and leaves with os._exit, never
returning into the supervisor's Python code.

fcgi_pool_run is called through ctypes.PyDLL: the GIL stays held across the fork, and in the
worker PyOS_AfterFork_Child runs before any Python code (CPython's thread state and locks,
and the os.register_at_fork hooks, such as random's reseeding).
"""

import asyncio
import ctypes
import logging
import os
import socket
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import _lib, binds as _binds

__all__ = ["serve_workers"]

logger = logging.getLogger("fcgi_runtime.workers")

#: The pool's modes (its `pm` setting, FPM's names).
MODES = ("static", "dynamic", "ondemand")


def _pool_settings(
    workers: int,
    pm: str,
    max_requests: int,
    max_requests_jitter: int,
    timeout: float,
    graceful_timeout: float,
    status_path: Optional[str],
    min_spare: Optional[int],
    max_spare: Optional[int],
    start_workers: Optional[int],
    idle_timeout: Optional[float],
    name: Optional[str],
) -> Dict[str, str]:
    """The pool's settings (fcgi_pool_set's names and values) for serve_workers' arguments."""
    if pm not in MODES:
        raise ValueError("pm must be one of %s, not %r" % (", ".join(MODES), pm))
    if workers < 1:
        raise ValueError("workers must be at least 1")
    s = {
        "pm": pm,
        "max_children": str(workers),
        "max_requests": str(max_requests),
        "max_requests_jitter": str(max_requests_jitter),
        "request_terminate_timeout_ms": str(int(timeout * 1000)),
        "graceful_timeout_ms": str(int(graceful_timeout * 1000)),
    }
    if pm == "dynamic":
        # The library's own defaults (1 and 3) do not fit a pool of fewer than 3 workers.
        lo = 1 if min_spare is None else min_spare
        hi = max(lo, min(3, workers)) if max_spare is None else max_spare
        s["min_spare_servers"] = str(lo)
        s["max_spare_servers"] = str(hi)
    else:
        if min_spare is not None:
            s["min_spare_servers"] = str(min_spare)
        if max_spare is not None:
            s["max_spare_servers"] = str(max_spare)
    if start_workers is not None:
        s["start_servers"] = str(start_workers)
    if idle_timeout is not None:
        s["process_idle_timeout_ms"] = str(int(idle_timeout * 1000))
    if status_path:
        s["status_path"] = status_path
    if name:
        s["name"] = name
    return s


def _plan_sockets(
    lib: Any, pool: int, binds: Sequence[_binds.Bind], backlog: int, pm: str
) -> List[int]:
    """Gives the pool its sockets; returns the inherited descriptors the workers serve beside
    the pool's own.

    Addresses are opened by the pool (fcgi_pool_listen). An inherited socket (``fd://N``) can
    be the pool's only as the library takes inherited sockets: systemd's layout (fds 3, 4, ...
    in a row, LISTEN_FDS, which this sets for the descriptors named) or fd 0. Beside
    addresses, inherited sockets are served by the workers directly (they inherit every
    descriptor); only the on-demand mode needs to see them, so it refuses that."""
    addrs = [b for b in binds if b.address is not None]
    fds = [_binds.check_fd(b) for b in binds if b.fd is not None]
    for b in addrs:
        assert b.address is not None
        if lib.fcgi_pool_listen(pool, os.fsencode(b.address), backlog) < 0:
            raise OSError("cannot listen on %r (the library logged why)" % (b.text,))
    if not fds:
        return []
    if addrs:
        if pm == "ondemand":
            raise OSError(
                "--pm ondemand starts workers for connections waiting on the pool's own "
                "sockets: fd:// binds beside addresses are not its own; use static or dynamic, "
                "or pass only fd:// binds in systemd's layout (fd://3, fd://4, ...)"
            )
        return sorted(set(fds))
    want = sorted(set(fds))
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    if want == [0]:
        return []  # the pool's fallback: the listening socket on fd 0
    if want == list(range(3, 3 + len(want))):
        # systemd's layout: the pool takes them as passed by socket activation.
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.environ["LISTEN_FDS"] = str(len(want))
        return []
    raise OSError(
        "--workers takes inherited sockets the way systemd passes them: fd://3, fd://4, ... "
        "(from 3, in a row) or fd://0, and %s is neither; pass the socket as fd 3 (or fd 0), "
        "or add an address --bind for the pool" % ", ".join("fd://%d" % fd for fd in want)
    )


def _watch_drain(lib: Any, server: Any) -> None:
    """For an ASGI worker: blocks in fcgi_accept_request on a private socket nobody connects
    to, which returns -1 once the worker drains (or shuts down), and tells the server."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind("\0fcgi-runtime-drain-%d" % os.getpid())
        sock.listen(1)
        req = lib.fcgi_init_request(sock.fileno(), None, None, None)
        if not req:
            logger.warning("cannot watch for the worker's drain (fcgi_init_request failed)")
            return
        while lib.fcgi_accept_request(req) >= 0:
            lib.fcgi_finish_request(req, 0)
        server.drain()
    except OSError as e:
        logger.warning("cannot watch for the worker's drain: %s", e)
    # The socket and the request object stay until the process exits (os._exit).
    _keep.append(sock)


_keep: List[Any] = []


def _serve_in_worker(
    lib: Any,
    app: Any,
    fds: List[int],
    threads: int,
    asgi: bool,
    script_name: str,
) -> int:
    """Serves until the library ends this worker; returns its exit status."""
    if asgi:
        from .asgi import AsgiServer, StartupFailed, _raise_nofile_limit

        _raise_nofile_limit()
        aserver = AsgiServer(app, root_path=script_name, fds=fds)
        t = threading.Thread(target=_watch_drain, args=(lib, aserver), name="fcgi-drain-watch")
        t.daemon = True
        t.start()
        try:
            asyncio.run(aserver.serve(handle_signals=True))
        except StartupFailed as e:
            logger.error("lifespan startup failed: %s", e)
            return 1
        return 0
    from .server import Server

    server = Server(app, threads=threads, script_name=script_name, fds=fds)
    server.multiprocess = True
    server.serve_forever(handle_signals=True)
    return 0


def _flush_all() -> None:
    """Flushes what Python buffers for stdout, stderr and logging's handlers (before a fork,
    which would copy it into every worker, and before os._exit, which would drop it)."""
    for h in list(logging.getLogger().handlers) + list(logging.getLogger("fcgi_runtime").handlers):
        try:
            h.flush()
        except Exception:
            pass
    for f in (sys.stdout, sys.stderr):
        try:
            if f is not None:
                f.flush()
        except Exception:
            pass


def _worker_main(
    lib: Any,
    pool: int,
    app: Any,
    app_loader: Optional[Callable[[], Any]],
    extra_fds: List[int],
    threads: int,
    asgi: bool,
    script_name: str,
) -> None:
    """A worker's life after fcgi_pool_run returned 1. Never returns."""
    code = 1
    try:
        index = lib.fcgi_pool_worker_index(pool)
        fds: List[int] = []
        while True:
            fd = lib.fcgi_pool_socket(pool, len(fds))
            if fd < 0:
                break
            fds.append(fd)
        fds += [fd for fd in extra_fds if fd not in fds]
        if app is None:
            assert app_loader is not None
            app = app_loader()
        logger.info("worker %d (pid %d) serving %s", index, os.getpid(), _describe(fds))
        code = _serve_in_worker(lib, app, fds, threads, asgi, script_name)
        logger.info("worker %d (pid %d) exits", index, os.getpid())
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if e.code not in (None, 0) and not isinstance(e.code, int):
            logger.error("worker (pid %d): %s", os.getpid(), e.code)
    except BaseException:
        logger.exception("worker (pid %d) failed", os.getpid())
        code = 1
    finally:
        try:
            logging.shutdown()
        except Exception:
            pass
        _flush_all()
        os._exit(code)


def _after_fork_child() -> Any:
    """PyOS_AfterFork_Child, declared (before the fork): what os.fork does in the child (the
    GIL, thread states, locks, the threading module, os.register_at_fork's after_in_child
    hooks such as random's reseeding)."""
    fn = ctypes.pythonapi.PyOS_AfterFork_Child
    fn.restype = None
    fn.argtypes = []
    return fn


def _describe(fds: Sequence[int]) -> str:
    return ", ".join("fd %d" % fd for fd in fds)


def serve_workers(
    app: Any,
    *,
    binds: Optional[Sequence[str]],
    workers: int,
    threads: int = 4,
    asgi: bool = False,
    preload: bool = True,
    app_loader: Optional[Callable[[], Any]] = None,
    pm: str = "static",
    max_requests: int = 0,
    max_requests_jitter: int = 0,
    timeout: float = 0,
    graceful_timeout: float = 30.0,
    status_path: Optional[str] = None,
    backlog: int = 128,
    script_name: str = "",
    min_spare: Optional[int] = None,
    max_spare: Optional[int] = None,
    start_workers: Optional[int] = None,
    idle_timeout: Optional[float] = None,
    name: Optional[str] = None,
) -> int:
    """Serves `app` (WSGI, or ASGI 3 with `asgi`) in `workers` processes of the library's pool;
    the calling process becomes the supervisor. Returns the supervisor's exit status once the
    pool stopped (0), or 1 when it could not start (logged).

    `binds`: addresses as ``--bind`` takes them (binds.py), or None for the inherited
    listening socket (systemd's LISTEN_FDS, else fd 0). `threads`: WSGI threads per socket in
    each worker. `preload`: `app` is loaded already (in this process, before the fork);
    otherwise each worker calls `app_loader()` after the fork, so a reload (SIGHUP) picks up
    changed code. `pm`: static (`workers` processes), dynamic (`min_spare`..`max_spare` idle
    ones, at most `workers`) or ondemand (forked when a connection waits, ended after
    `idle_timeout` seconds idle). `max_requests` (+ a random 0..`max_requests_jitter`): a
    worker is replaced after that many requests. `timeout` (seconds, 0: none): a request
    running longer gets its worker killed (SIGKILL) and replaced. `graceful_timeout`: how
    long a draining worker (reload, stop, recycling) may take before it is killed.
    `status_path`: the pool's status page (``?json``, ``?full``). Must be called in a
    process that has no other thread yet."""
    lib = _lib.load()
    if lib.fcgi_pool_run is None:
        raise _lib.LibraryNotFound("%s lacks the pool (fcgi_pool_run)" % lib.path)
    if threads < 1:
        raise ValueError("threads must be at least 1")
    if not preload and app_loader is None:
        raise ValueError("preload=False needs app_loader")
    if preload and app is None:
        if app_loader is None:
            raise ValueError("no app and no app_loader")
        app = app_loader()
    settings = _pool_settings(
        workers,
        pm,
        max_requests,
        max_requests_jitter,
        timeout,
        graceful_timeout,
        status_path,
        min_spare,
        max_spare,
        start_workers,
        idle_timeout,
        name,
    )
    parsed = [_binds.parse(b) for b in binds or []]
    if threading.active_count() > 1:
        logger.error(
            "cannot start workers: the process already runs %d threads (%s); the pool forks "
            "and must start before any thread (an application that starts threads at import "
            "time needs workers without --preload)",
            threading.active_count(),
            ", ".join(t.name for t in threading.enumerate()),
        )
        return 1
    pool = lib.fcgi_pool_new()
    if not pool:
        logger.error("fcgi_pool_new failed")
        return 1
    try:
        for key, value in settings.items():
            if lib.fcgi_pool_set(pool, key.encode(), value.encode()) < 0:
                logger.error("pool setting %s=%s refused (the library logged why)", key, value)
                return 1
        try:
            extra_fds = _plan_sockets(lib, pool, parsed, backlog, pm)
        except OSError as e:
            logger.error("%s", e)
            return 1
        where = ", ".join(b.text for b in parsed) if parsed else "the inherited socket"
        logger.info(
            "starting %d %s worker(s) (pm %s) on %s%s",
            workers,
            "ASGI" if asgi else "WSGI",
            pm,
            where,
            "" if asgi else ", %d thread(s) per socket" % threads,
        )
        after_fork = _after_fork_child()
        _flush_all()
        rc = lib.fcgi_pool_run(pool)
        if rc == 1:
            # A worker: CPython's state after a fork, before any other Python code.
            after_fork()
            _worker_main(
                lib,
                pool,
                app if preload else None,
                None if preload else app_loader,
                extra_fds,
                threads,
                asgi,
                script_name,
            )
        if rc < 0:
            logger.error("the pool did not start (the library logged why)")
            return 1
        logger.info("stopped")
        return 0
    finally:
        lib.fcgi_pool_free(pool)
