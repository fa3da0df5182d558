"""python3 -m fcgi_runtime module:app --bind ADDRESS --threads N   (WSGI)
python3 -m fcgi_runtime --asgi module:app --bind ADDRESS          (ASGI 3, one thread)
python3 -m fcgi_runtime module:app --bind ADDRESS --workers N     (N processes, the pool)"""

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from typing import Any, List, Optional

from . import log as _log
from ._lib import LibraryNotFound
from .server import serve


def load_app(spec: str) -> Any:
    """`module:attr` (attr may be dotted), or `module` alone for its `application` or `app`."""
    mod_name, _, attr = spec.partition(":")
    module = importlib.import_module(mod_name)
    if not attr:
        for name in ("application", "app"):
            if hasattr(module, name):
                return getattr(module, name)
        raise SystemExit("%s has neither `application` nor `app`; use module:name" % mod_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise SystemExit("%s is not callable" % spec)
    return obj


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m fcgi_runtime",
        description="Serve a WSGI application (default) or, with --asgi, an ASGI 3 application "
        "over FastCGI with fcgi-runtime: in this process, or with --workers in worker "
        "processes of the library's pool.",
    )
    p.add_argument("app", help="module:callable (the current directory is on sys.path)")
    p.add_argument(
        "--asgi",
        action="store_true",
        help="APP is an ASGI 3 application: served by one asyncio loop in one thread "
        "(per worker) over the library's non-blocking face",
    )
    p.add_argument(
        "--bind",
        "-b",
        action="append",
        default=None,
        metavar="ADDRESS",
        help="HOST:PORT, :PORT, PORT, [V6]:PORT, unix:PATH, fd://N or a Unix socket path; "
        "repeat it to serve several (default: the listening socket on fd 0)",
    )
    p.add_argument(
        "--threads",
        "-t",
        type=int,
        default=None,
        help="accepting threads per listening socket (WSGI only; default 4)",
    )
    p.add_argument(
        "--backlog", type=int, default=None, help="listen backlog (default 128; ASGI 1024)"
    )
    p.add_argument(
        "--script-name",
        "--root-path",
        dest="script_name",
        default="",
        help="the mount point, when the web server sends no PATH_INFO (default: the root); "
        "ASGI's root_path",
    )
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error", "critical"),
        default=None,
        help="the level of the fcgi_runtime loggers (default info)",
    )
    p.add_argument(
        "--log-config",
        default=None,
        metavar="FILE",
        help="logging configuration: a .json file (logging.config.dictConfig) or an INI "
        "file (logging.config.fileConfig)",
    )
    w = p.add_argument_group("workers (the library's pool; without --workers: one process)")
    w.add_argument(
        "--workers", "-w", type=int, default=None, help="worker processes (pm dynamic, "
        "ondemand: at most this many)"
    )
    w.add_argument(
        "--pm",
        choices=("static", "dynamic", "ondemand"),
        default="static",
        help="static: --workers at all times (default); dynamic: between --min-spare-workers "
        "and --max-spare-workers idle ones; ondemand: forked when a connection waits, ended "
        "after --idle-timeout",
    )
    w.add_argument("--min-spare-workers", type=int, default=None, help="pm dynamic (default 1)")
    w.add_argument(
        "--max-spare-workers", type=int, default=None, help="pm dynamic (default min(3, N))"
    )
    w.add_argument(
        "--start-workers", type=int, default=None, help="pm dynamic: workers at start"
    )
    w.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="pm dynamic/ondemand: an idle worker above the spares is ended after this "
        "(default 10)",
    )
    w.add_argument(
        "--max-requests",
        type=int,
        default=0,
        help="a worker is replaced after this many requests (default 0: never)",
    )
    w.add_argument(
        "--max-requests-jitter",
        type=int,
        default=0,
        help="plus a random 0..this per worker, so they are not all replaced at once",
    )
    w.add_argument(
        "--timeout",
        type=float,
        default=0,
        metavar="SECONDS",
        help="a request running longer gets its worker killed and replaced, with every "
        "request that worker holds (default 0: no limit)",
    )
    w.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a draining worker (reload, SIGQUIT, recycling) may finish its "
        "requests before it is killed (default 30)",
    )
    w.add_argument(
        "--preload",
        action="store_true",
        help="load the application in the supervisor before forking (without it each worker "
        "imports it, so a reload, SIGHUP, picks up changed code)",
    )
    w.add_argument(
        "--status-path",
        default=None,
        metavar="PATH",
        help="the pool's status page at this path (e.g. /status; ?json, ?full)",
    )
    return p


#: Options that only mean something with --workers (dest, default).
_WORKER_ONLY = (
    ("pm", "static"),
    ("min_spare_workers", None),
    ("max_spare_workers", None),
    ("start_workers", None),
    ("idle_timeout", None),
    ("max_requests", 0),
    ("max_requests_jitter", 0),
    ("timeout", 0),
    ("graceful_timeout", 30.0),
    ("preload", False),
    ("status_path", None),
)


def main(argv: Optional[List[str]] = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    try:
        _log.configure(level=args.log_level, config_file=args.log_config)
    except (OSError, ValueError, KeyError, TypeError) as e:
        p.error("--log-config/--log-level: %s" % e)
    if args.asgi and args.threads is not None:
        p.error("--threads is for WSGI: the ASGI server runs one thread")
    threads = 4 if args.threads is None else args.threads
    if threads < 1:
        p.error("--threads must be at least 1")
    if args.workers is None:
        for dest, default in _WORKER_ONLY:
            if getattr(args, dest) != default:
                p.error("--%s needs --workers" % dest.replace("_", "-"))
    elif args.workers < 1:
        p.error("--workers must be at least 1")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if args.workers is not None:
        return _main_workers(args, threads)
    app = load_app(args.app)
    bind = args.bind
    try:
        if args.asgi:
            from .asgi import StartupFailed, serve_asgi

            try:
                serve_asgi(
                    app,
                    bind=bind,
                    backlog=1024 if args.backlog is None else args.backlog,
                    root_path=args.script_name,
                )
            except StartupFailed as e:
                _log.logger.error("lifespan startup failed: %s", e)
                return 1
        else:
            serve(
                app,
                bind=bind,
                threads=threads,
                backlog=128 if args.backlog is None else args.backlog,
                script_name=args.script_name,
            )
    except (LibraryNotFound, OSError) as e:
        _log.logger.error("%s", e)
        return 1
    return 0


def _main_workers(args: argparse.Namespace, threads: int) -> int:
    """--workers: the pool (workers.py); this process becomes its supervisor."""
    from .workers import serve_workers

    spec = args.app
    if args.preload:
        app = load_app(spec)
    else:
        # Imported in each worker; a name that cannot be found is said at once.
        top = spec.partition(":")[0].split(".")[0]
        if importlib.util.find_spec(top) is None:
            raise SystemExit("no module named %r (from %r)" % (top, spec))
        app = None
    try:
        return serve_workers(
            app,
            binds=args.bind,
            workers=args.workers,
            threads=threads,
            asgi=args.asgi,
            preload=args.preload,
            app_loader=lambda: load_app(spec),
            pm=args.pm,
            max_requests=args.max_requests,
            max_requests_jitter=args.max_requests_jitter,
            timeout=args.timeout,
            graceful_timeout=args.graceful_timeout,
            status_path=args.status_path,
            backlog=(1024 if args.asgi else 128) if args.backlog is None else args.backlog,
            script_name=args.script_name,
            min_spare=args.min_spare_workers,
            max_spare=args.max_spare_workers,
            start_workers=args.start_workers,
            idle_timeout=args.idle_timeout,
        )
    except (LibraryNotFound, OSError, ValueError) as e:
        logging.getLogger("fcgi_runtime.workers").error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
