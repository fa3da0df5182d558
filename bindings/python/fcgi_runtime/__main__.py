"""python3 -m fcgi_runtime module:app --bind ADDRESS --threads N   (WSGI)
python3 -m fcgi_runtime --asgi module:app --bind ADDRESS          (ASGI 3, one thread)"""

import argparse
import importlib
import os
import sys

from . import log
from ._lib import LibraryNotFound
from .server import serve


def load_app(spec):
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


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python3 -m fcgi_runtime",
        description="Serve a WSGI application (default) or, with --asgi, an ASGI 3 application "
        "over FastCGI with fcgi-runtime.",
    )
    p.add_argument("app", help="module:callable (the current directory is on sys.path)")
    p.add_argument(
        "--asgi",
        action="store_true",
        help="APP is an ASGI 3 application: served by one asyncio loop in one thread "
        "over the library's non-blocking face",
    )
    p.add_argument(
        "--bind",
        "-b",
        default=None,
        help="host:port, :port, port, [v6]:port or a Unix socket path "
        "(default: the listening socket on fd 0)",
    )
    p.add_argument(
        "--threads",
        "-t",
        type=int,
        default=None,
        help="accepting threads (WSGI only; default 4)",
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
    args = p.parse_args(argv)
    log.configure(args.log_level, args.log_config)
    if args.asgi and args.threads is not None:
        p.error("--threads is for WSGI: the ASGI server runs one thread")
    threads = 4 if args.threads is None else args.threads
    if threads < 1:
        p.error("--threads must be at least 1")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app = load_app(args.app)
    try:
        if args.asgi:
            from .asgi import StartupFailed, serve_asgi

            try:
                serve_asgi(
                    app,
                    bind=args.bind,
                    backlog=1024 if args.backlog is None else args.backlog,
                    root_path=args.script_name,
                )
            except StartupFailed as e:
                log.logger.error("lifespan startup failed: %s", e)
                return 1
        else:
            serve(
                app,
                bind=args.bind,
                threads=threads,
                backlog=128 if args.backlog is None else args.backlog,
                script_name=args.script_name,
            )
    except (LibraryNotFound, OSError) as e:
        log.logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
