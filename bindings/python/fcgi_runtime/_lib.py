"""Loading fcgi-runtime's shared library and declaring the native API (include/fcgi.h).

Only the functions the servers use are declared. Those that can block go through
ctypes.CDLL, which releases the GIL for the duration of the foreign call, so a thread blocked
in fcgi_accept_request, fcgi_read, fcgi_write or fcgi_flush does not hold up the other Python
threads; those that never block go through ctypes.PyDLL (see _NON_BLOCKING), among them the
whole non-blocking face (fcgi_loop_*) that the ASGI server drives from its asyncio loop.
"""

import ctypes
import ctypes.util
import os
import types
from typing import Dict, Iterator, List, Optional, Tuple

FCGI_STDOUT = 6
FCGI_STDERR = 7

#: What fcgi_loop_read and fcgi_loop_write return when they would have to wait.
FCGI_WOULD_BLOCK = -2

#: fcgi_set_limit / fcgi_get_limit values used by the bindings.
FCGI_LIMIT_MPXS_CONNS = 3
FCGI_LIMIT_OUTPUT_BUFFER_BYTES = 9
FCGI_LIMIT_WRITE_BEHIND_BYTES = 11

FCGI_RESPONDER = 1
FCGI_AUTHORIZER = 2
FCGI_FILTER = 3

#: Names of the library file, most specific first (the build and the wheel write libfcgi.so;
#: installs add libfcgi.so.0, the SONAME).
_LIB_NAMES = ("libfcgi.so", "libfcgi.so.0")

class LibraryNotFound(OSError):
    """No usable fcgi-runtime library was found."""


def _candidates() -> Iterator[Tuple[str, str]]:
    """The paths tried, in order, with how each was found: FCGI_RUNTIME_LIB (alone, when set),
    the copy the package carries (a wheel or an sdist install puts libfcgi.so beside this
    file), the repository's target/release found relative to this package (a checkout), then
    ctypes.util.find_library("fcgi")."""
    env = os.environ.get("FCGI_RUNTIME_LIB")
    if env:
        # Set explicitly: it is the only candidate (a typo must not silently pick another).
        yield env, "FCGI_RUNTIME_LIB"
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, _LIB_NAMES[0]), "the copy the package carries"
    # bindings/python/fcgi_runtime -> the repository root is three levels up.
    root = os.path.normpath(os.path.join(here, os.pardir, os.pardir, os.pardir))
    for name in _LIB_NAMES:
        yield os.path.join(root, "target", "release", name), "the repository's target/release"
    found = ctypes.util.find_library("fcgi")
    if found:
        yield found, "ctypes.util.find_library('fcgi')"


#: Functions that never block: called through ctypes.PyDLL, which keeps the GIL (releasing
#: and taking it back costs more than these calls, and with several busy threads it means a
#: wait for the GIL each time). Audited against the library's log hook, which takes the GIL
#: from any thread (log.py's docstring): none of these can wait on a lock that a thread holds
#: while it logs, so none had to move to CDLL. A function added here must pass the same audit;
#: fcgi_set_log_func itself must stay on CDLL (log.py calls it so).
_NON_BLOCKING = {
    "fcgi_getenv_all",
    "fcgi_is_aborted",
    "fcgi_request_id",
    "fcgi_request_role",
    "fcgi_set_app_status",
    "fcgi_request_set_keep",
    "fcgi_in_shutdown",
    "fcgi_terminate",
    "fcgi_set_limit",
    "fcgi_get_limit",
}

#: The non-blocking face (fcgi_loop_*), newer than the WSGI server: declared as None when the
#: library lacks them. None of them ever waits, by contract: all are called through PyDLL.
_OPTIONAL = {
    "fcgi_loop_new",
    "fcgi_loop_free",
    "fcgi_loop_fd",
    "fcgi_loop_work",
    "fcgi_loop_accept",
    "fcgi_loop_woken",
    "fcgi_loop_read",
    "fcgi_loop_write",
    "fcgi_loop_finish",
    "fcgi_set_request_data",
    "fcgi_get_request_data",
    "fcgi_peer_closed",
    "fcgi_loop_flush",
}
_NON_BLOCKING |= _OPTIONAL

#: The pool (fcgi_pool_*): through PyDLL too. fcgi_pool_run forks from C and must keep the GIL
#: (the parent then lives in C; a worker calls PyOS_AfterFork_Child on return). Declared as
#: None when the library lacks them (only --workers needs them).
_POOL = {
    "fcgi_pool_new",
    "fcgi_pool_set",
    "fcgi_pool_listen",
    "fcgi_pool_run",
    "fcgi_pool_socket",
    "fcgi_pool_worker_index",
    "fcgi_pool_free",
}
_OPTIONAL |= _POOL
_NON_BLOCKING |= _POOL


def _declare(path: str, cdll: ctypes.CDLL) -> types.SimpleNamespace:
    """The namespace load() returns: `path`, `cdll`, and each function of the native API with
    its prototype (restype, argtypes), or None for an optional one the library lacks."""
    c_int, c_char_p, c_void_p = ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
    # name -> (restype, argtypes): ctypes types, restype None for a void function.
    sigs: Dict[str, Tuple[Optional[type], List[type]]] = {
        "fcgi_init": (c_int, []),
        "fcgi_is_fastcgi": (c_int, []),
        "fcgi_listen": (c_int, [c_char_p, c_int]),
        "fcgi_init_request": (c_void_p, [c_int, c_void_p, c_void_p, c_void_p]),
        "fcgi_destroy_request": (None, [c_void_p]),
        "fcgi_accept_request": (c_int, [c_void_p]),
        "fcgi_finish_request": (c_int, [c_void_p, c_int]),
        "fcgi_flush": (c_int, [c_void_p, c_int]),
        "fcgi_close": (None, [c_void_p, c_int, c_int]),
        "fcgi_read": (c_int, [c_void_p, c_void_p, c_int]),
        "fcgi_write": (c_int, [c_void_p, c_int, c_void_p, c_int]),
        "fcgi_getenv_all": (ctypes.c_long, [c_void_p, c_void_p, ctypes.c_size_t]),
        "fcgi_terminate": (None, []),
        "fcgi_in_shutdown": (c_int, []),
        "fcgi_is_aborted": (c_int, [c_void_p]),
        "fcgi_request_id": (c_int, [c_void_p]),
        "fcgi_request_role": (c_int, [c_void_p]),
        "fcgi_set_app_status": (None, [c_void_p, c_int]),
        "fcgi_request_set_keep": (None, [c_void_p, c_int]),
        "fcgi_set_limit": (c_int, [c_int, ctypes.c_longlong]),
        "fcgi_get_limit": (ctypes.c_longlong, [c_int]),
        "fcgi_loop_new": (c_void_p, [c_int]),
        "fcgi_loop_free": (None, [c_void_p]),
        "fcgi_loop_fd": (c_int, [c_void_p]),
        "fcgi_loop_work": (c_int, [c_void_p]),
        "fcgi_loop_accept": (c_void_p, [c_void_p]),
        "fcgi_loop_woken": (c_void_p, [c_void_p]),
        "fcgi_loop_read": (c_int, [c_void_p, c_void_p, c_int]),
        "fcgi_loop_write": (c_int, [c_void_p, c_int, c_void_p, c_int]),
        "fcgi_loop_finish": (c_int, [c_void_p]),
        "fcgi_set_request_data": (None, [c_void_p, c_void_p]),
        "fcgi_get_request_data": (c_void_p, [c_void_p]),
        "fcgi_peer_closed": (c_int, [c_void_p]),
        "fcgi_loop_flush": (c_int, [c_void_p]),
        "fcgi_pool_new": (c_void_p, []),
        "fcgi_pool_set": (c_int, [c_void_p, c_char_p, c_char_p]),
        "fcgi_pool_listen": (c_int, [c_void_p, c_char_p, c_int]),
        "fcgi_pool_run": (c_int, [c_void_p]),
        "fcgi_pool_socket": (c_int, [c_void_p, c_int]),
        "fcgi_pool_worker_index": (c_int, [c_void_p]),
        "fcgi_pool_free": (None, [c_void_p]),
    }
    pydll = ctypes.PyDLL(path)
    lib = types.SimpleNamespace(path=path, cdll=cdll)
    for name, (restype, argtypes) in sigs.items():
        if name in _OPTIONAL and not hasattr(cdll, name):
            # A build from before the non-blocking face: the WSGI server still works; the
            # ASGI server says what is missing.
            setattr(lib, name, None)
            continue
        fn = getattr(pydll if name in _NON_BLOCKING else cdll, name)
        fn.restype = restype
        fn.argtypes = argtypes
        setattr(lib, name, fn)
    return lib


_LIB: Optional[types.SimpleNamespace] = None


def load() -> types.SimpleNamespace:
    """Loads (once) and returns the library, with the native API's prototypes declared.

    Raises LibraryNotFound if no candidate loads or the one that loads lacks the native API
    (Debian's libfcgi has the same file name but only the FCGX_* face)."""
    global _LIB
    if _LIB is not None:
        return _LIB
    tried: List[str] = []
    for path, how in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append("%s (%s): no such file" % (path, how))
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s): %s" % (path, how, e))
            continue
        if not hasattr(lib, "fcgi_accept_request"):
            tried.append("%s (%s): not fcgi-runtime (no fcgi_accept_request)" % (path, how))
            continue
        _LIB = _declare(path, lib)
        return _LIB
    raise LibraryNotFound(
        "cannot load fcgi-runtime's library; set FCGI_RUNTIME_LIB to the path of libfcgi.so. "
        "Tried:\n  " + "\n  ".join(tried or ["nothing"])
    )
