"""The server's log, through Python's ``logging``: loggers under ``fcgi_runtime``.

- ``fcgi_runtime.library``: the library's own lines (protocol errors from a web server, refused
  clients, accept failures, timeouts...), received through ``fcgi_set_log_func`` and logged at
  the level mapped from the library's (FCGI_DEBUG -> DEBUG, NOTICE -> INFO, WARNING -> WARNING,
  ERROR -> ERROR, ALERT -> CRITICAL);
- ``fcgi_runtime.server`` (the WSGI server), ``fcgi_runtime.asgi`` (the ASGI server),
  ``fcgi_runtime.workers`` (the worker processes), ``fcgi_runtime`` (the command line).

The servers install the library's hook when they load the library (:func:`attach`), so an
application that embeds ``serve()``/``serve_asgi()`` and configures ``logging`` itself gets the
library's lines too. :func:`configure` is what the command line calls once at start
(``--log-level``, ``--log-config``). ``wsgi.errors`` is not a logger: it stays the request's
FCGI_STDERR, which the web server writes to its error log.

Deadlocks (audit for issue 23). The hook is a ctypes callback: it takes the GIL, and the
library calls it from any thread, possibly while holding its own locks (the hook runs under
the read lock of crates/runtime/src/log.rs's LOGGER; a ``fcgi_log!`` site may hold a
connection's slot lock, the reactor's timers, a loop's queue...). A library call made through
ctypes.PyDLL keeps the GIL (``_NON_BLOCKING`` in _lib.py): if it could wait on a lock another
thread holds while that thread waits for the GIL in this hook, both would wait forever. What
was checked (the library as of this commit):

- The WSGI server's PyDLL calls. fcgi_getenv_all, fcgi_request_id, fcgi_request_role,
  fcgi_set_app_status and fcgi_request_set_keep touch only the caller's own request object;
  fcgi_in_shutdown, fcgi_terminate, fcgi_set_limit and fcgi_get_limit only atomics (and
  eventfd writes: fcgi_terminate is async-signal-safe). fcgi_is_aborted (and fcgi_peer_closed)
  take one lock, a connection's write state (``ConnIo::st``, io.rs), and no ``fcgi_log!`` site
  runs with it held: io.rs logs only in ``wait_writable``, after dropping it, and what runs
  under it (``flush_locked``, ``wake_room_waiters``) does not log. So none of them can wait on
  a lock held by a thread that is logging, whichever thread that is (the library's standby
  and relay threads, or a Python thread inside a blocking CDLL call such as
  fcgi_accept_request, whose locks are the slot/timer ones above).
- The non-blocking face (fcgi_loop_*, all PyDLL) takes those slot, timer, queue and write
  locks, and logs under some of them (pump.rs's protocol errors, under the connection's slot
  lock). It is safe because in the ASGI server's process no other thread ever enters the
  library: the loop thread makes every call, no blocking call is made, and the library starts
  no thread of its own for a loop (its standby thread starts at the first blocking accept; the
  relay threads from the standby). Lines logged inside those calls reach this hook on the
  thread that already holds the GIL (PyGILState_Ensure nests). A process that mixed blocking
  WSGI threads and an ASGI loop on one listener would have to move the loop calls to CDLL.
- LOGGER's read lock itself: every line takes it, and fcgi_set_log_func takes it for writing,
  waiting for the hooks in progress, which may wait for the GIL. So fcgi_set_log_func goes
  through CDLL (the GIL released while it waits), and is called twice per process: when the
  library is first attached (before any server thread runs) and at interpreter exit (atexit,
  when the servers have returned; after it the library's own threads write to stderr again,
  and no line can reach a finalized interpreter).
- No function had to move to CDLL. A ``logging`` handler attached to ``fcgi_runtime.library``
  runs inside the library's call, so it must not call into the library (write to a request's
  ``wsgi.errors``, for instance).
"""

import atexit
import ctypes
import json
import logging
import logging.config
import os
import threading
from typing import Any, Dict, Optional

#: The package's root logger; every logger of the package is under it.
logger = logging.getLogger("fcgi_runtime")

#: The library's lines (fcgi_set_log_func).
LIBRARY = "fcgi_runtime.library"
library_logger = logging.getLogger(LIBRARY)

#: The library's levels (include/fcgi.h: FCGI_DEBUG .. FCGI_ALERT) as logging's.
LEVELS: Dict[int, int] = {
    1: logging.DEBUG,
    2: logging.INFO,
    3: logging.WARNING,
    4: logging.ERROR,
    5: logging.CRITICAL,
}

#: The library's names for its levels, for FCGI_RUNTIME_LOG_LEVEL (crates/runtime/src/log.rs).
_LIBRARY_LEVEL_NAMES = {1: "debug", 2: "notice", 3: "warning", 4: "error", 5: "alert"}

#: The environment variable the library reads its threshold from, at its first log line.
LEVEL_ENV = "FCGI_RUNTIME_LOG_LEVEL"

#: void (*fcgi_log_func)(int level, const char *msg, size_t len, void *arg)
_LOG_FUNC = ctypes.CFUNCTYPE(
    None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p
)


def _on_library_line(level: int, msg: Optional[int], length: int, _arg: Optional[int]) -> None:
    """The hook: one line of the library. Never raises (ctypes would only print it)."""
    try:
        pylevel = LEVELS.get(level, logging.WARNING)
        if not library_logger.isEnabledFor(pylevel):
            return
        text = ctypes.string_at(msg, length).decode("utf-8", "replace") if msg else ""
        library_logger.log(pylevel, "%s", text)
    except BaseException:  # noqa: BLE001 - nothing may unwind into the library
        pass


#: The ctypes callback, kept alive for the process (the library keeps its address).
_HOOK = _LOG_FUNC(_on_library_line)
#: A NULL fcgi_log_func: the library's default logger.
_NULL_HOOK = _LOG_FUNC()
_attached: Optional[Any] = None
_attach_lock = threading.Lock()


def library_threshold(level: int) -> str:
    """The library's level name below which its lines would be dropped by `level` (a logging
    level): the lowest library level whose mapped level `level` lets through."""
    for lib_level in sorted(LEVELS):
        if LEVELS[lib_level] >= level:
            return _LIBRARY_LEVEL_NAMES[lib_level]
    return "alert"


def attach(lib: Any) -> None:
    """Sends the library's lines to ``fcgi_runtime.library`` (once per process; the servers
    call it when they load the library). Unless FCGI_RUNTIME_LOG_LEVEL is set, it is set to
    what that logger's effective level lets through, so the library formats no line that
    would be dropped (it reads the variable at its first line: configure ``logging`` before
    starting a server)."""
    global _attached
    with _attach_lock:
        if _attached is not None:
            return
        fn = getattr(lib.cdll, "fcgi_set_log_func", None)
        if fn is None:
            # An older library: its lines go to stderr as they always did.
            return
        if LEVEL_ENV not in os.environ:
            os.environ[LEVEL_ENV] = library_threshold(library_logger.getEffectiveLevel())
        # Through CDLL (see the module's doc): the GIL is released while it waits for hooks
        # in progress.
        fn.restype = None
        fn.argtypes = [_LOG_FUNC, ctypes.c_void_p]
        fn(_HOOK, None)
        _attached = fn
        atexit.register(_detach)


def _detach() -> None:
    """At interpreter exit: the library's default logger (stderr) again, so that no line of a
    thread still running reaches the finalized interpreter."""
    global _attached
    with _attach_lock:
        fn = _attached
        if fn is None:
            return
        fn(_NULL_HOOK, None)
        _attached = None


class _CommandLineFormatter(logging.Formatter):
    """The command line's stderr lines: ``fcgi_runtime: message`` for the servers', and the
    library's as the library itself writes them, ``fcgi-runtime: LEVEL: message``."""

    def __init__(self) -> None:
        super().__init__("fcgi_runtime: %(message)s")
        self._library = logging.Formatter("fcgi-runtime: %(levelname)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.name == LIBRARY:
            return self._library.format(record)
        return super().format(record)


def configure(level: Optional[str] = None, config_file: Optional[str] = None) -> None:
    """Sets up ``logging`` for the command line: `config_file` (``.json``: a dictConfig
    dictionary, with ``disable_existing_loggers`` false unless it says otherwise; else an INI
    file for fileConfig) when given, else one stderr handler on the package's logger at
    `level` (default ``info``). `level` (debug, info, warning, error, critical) sets the
    package's logger's level either way."""
    if config_file:
        if config_file.endswith(".json"):
            with open(config_file) as f:
                cfg = json.load(f)
            cfg.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(cfg)
        else:
            logging.config.fileConfig(config_file, disable_existing_loggers=False)
    elif not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(_CommandLineFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    if level:
        logger.setLevel(level.upper())
    elif logger.level == logging.NOTSET and not config_file:
        logger.setLevel(logging.INFO)
