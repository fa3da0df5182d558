"""The WSGI application of tests/languages/python_workers.rs: every answer names the worker
process (PID=), the first random number that process drew (FIRST_RANDOM=: equal in two
workers if the fork did not reseed `random`) and the module's VERSION (the reload test
rewrites a copy of this file).

- ``?hold=PATH``: logs ``holding PATH in PID`` and answers once the file PATH exists (the
  timeout test's gate never appears);
- every request starts and joins a thread and logs a line through ``logging``, in the
  worker after the fork."""

import logging
import os
import random
import sys
import threading
import time

VERSION = "1"

_first = []
_log = logging.getLogger("workers_app")
if not _log.handlers:
    _h = logging.StreamHandler(sys.stderr)
    _h.setFormatter(logging.Formatter("workers_app: %(message)s"))
    _log.addHandler(_h)
    _log.setLevel(logging.INFO)
    _log.propagate = False


def app(environ, start_response):
    qs = environ.get("QUERY_STRING", "")
    if qs.startswith("hold="):
        gate = qs[len("hold="):]
        _log.info("holding %s in %d", gate, os.getpid())
        while not os.path.exists(gate):
            time.sleep(0.01)
    if not _first:
        _first.append(random.random())
    box = []
    t = threading.Thread(target=lambda: box.append(threading.get_ident()))
    t.start()
    t.join()
    _log.info("served by %d (thread ran: %s)", os.getpid(), bool(box))
    body = "PID=%d\nFIRST_RANDOM=%r\nVERSION=%s\nMULTIPROCESS=%s\n" % (
        os.getpid(),
        _first[0],
        VERSION,
        environ["wsgi.multiprocess"],
    )
    data = body.encode()
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))]
    )
    return [data]
