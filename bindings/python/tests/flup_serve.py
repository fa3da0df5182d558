"""Runs one of fcgi_runtime.flup's servers for test_flup_serve.py:

    python flup_serve.py MODULE JSON_KWARGS

MODULE: fcgi, fcgi_fork or fcgi_single (under fcgi_runtime.flup.server); JSON_KWARGS: the
WSGIServer's keyword arguments (a list bindAddress becomes a tuple). Prints what run()
returned."""

import json
import logging
import os
import sys
import threading
from importlib import import_module
from typing import Any, Dict, List


def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/boom":
        raise ZeroDivisionError("deliberate failure")
    lines = [
        "Hello from the flup shim",
        "path=%s" % path,
        "pid=%d" % os.getpid(),
        "multithread=%s" % environ["wsgi.multithread"],
        "multiprocess=%s" % environ["wsgi.multiprocess"],
        "run_once=%s" % environ["wsgi.run_once"],
        "base=%s" % environ.get("APP_BASE", "-"),
        "threads=%d" % threading.active_count(),
    ]
    body = ("\n".join(lines) + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def main() -> None:
    # The servers log through `logging` (as flup does): a deployment that wants the lines
    # configures it; the tests read the start line.
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    module = import_module("fcgi_runtime.flup.server." + sys.argv[1])
    kwargs = json.loads(sys.argv[2])
    if isinstance(kwargs.get("bindAddress"), list):
        kwargs["bindAddress"] = tuple(kwargs["bindAddress"])
    ret = module.WSGIServer(app, **kwargs).run()
    print("run returned %r" % (ret,), flush=True)


if __name__ == "__main__":
    main()
