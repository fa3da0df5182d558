//! The pool's C API (docs/pool-design.md, docs/native-api.md): a thin skin over
//! [`fcgi_runtime::pool::Pool`]. Every function checks its pointers and runs inside the panic
//! boundary; bad settings give -1 and a log line.
//!
//! # Safety
//! Each pointer argument is NULL or valid as its doc comment says: a `fcgi_pool *` returned by
//! fcgi_pool_new and not yet freed, or a NUL-terminated string. A pool is not used by two
//! threads at once.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

use super::panic::guard;
use fcgi_runtime::pool::{Pool, Role};
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

/// A pre-fork process pool: settings, listening sockets, and after fcgi_pool_run the
/// worker's identity. Opaque; create with fcgi_pool_new, free with fcgi_pool_free.
pub struct fcgi_pool {
    inner: Pool,
}

/// # Safety
/// `p` is NULL or a pointer returned by fcgi_pool_new and not yet freed.
unsafe fn pool<'a>(p: *mut fcgi_pool) -> Option<&'a mut fcgi_pool> {
    // SAFETY: per the function's contract.
    unsafe { p.as_mut() }
}

/// # Safety
/// `s` is NULL or a NUL-terminated string.
unsafe fn text(s: *const c_char) -> Option<String> {
    // SAFETY: per the function's contract.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

/// Creates a pool with the default settings: a static pool of one worker per CPU, or of
/// PHP_FCGI_CHILDREN workers when that variable is a number above 0; max_requests from
/// PHP_FCGI_MAX_REQUESTS (else 0: workers are not recycled). No socket, no process, no thread
/// is created. Returns NULL on failure. Free with fcgi_pool_free.
/// Ownership: the caller owns the returned pool until fcgi_pool_free frees it (after
/// fcgi_pool_run, each worker holds its own copy, made by fork).
/// Threads: a pool must not be used by two threads at once.
#[no_mangle]
pub extern "C" fn fcgi_pool_new() -> *mut fcgi_pool {
    guard("fcgi_pool_new", || {
        Box::into_raw(Box::new(fcgi_pool { inner: Pool::new() }))
    })
}

/// Changes one setting; `name` and `value` are strings (FPM's names):
/// `pm` (static, dynamic, ondemand), `max_children`, `start_servers`, `min_spare_servers`,
/// `max_spare_servers`, `process_idle_timeout_ms`, `max_requests` (0: no limit),
/// `max_memory` (resident bytes, 0: no limit), `graceful_timeout_ms` (0: no limit),
/// `reuseport` (0 or 1; applies to sockets fcgi_pool_listen opens afterwards),
/// `name` (the pool's name in the status page and logs; default "www"),
/// `status_path` (e.g. "/status": a request whose SCRIPT_NAME, else REQUEST_URI's path, is
/// this gets the status page from the runtime, never reaching the application; `?json`,
/// `?openmetrics` and `&full` choose the format and the per-worker part),
/// `slowlog` (a file; empty: the log on stderr), `slowlog_timeout_ms` (0: no slow log;
/// requests running longer are logged by the parent while they run and by the worker when
/// they end), `request_terminate_timeout_ms` (0: none; the worker of a request running
/// longer is killed with SIGKILL, logged, and replaced).
/// Returns 0, or -1 (logged, nothing changed) for an unknown name, a bad value, a NULL
/// argument, or a pool that already ran. Settings are checked together by fcgi_pool_run.
/// Ownership: `p`, `name` and `value` are borrowed for the call (the strings are copied; the
/// caller keeps ownership).
#[no_mangle]
pub unsafe extern "C" fn fcgi_pool_set(
    p: *mut fcgi_pool,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    guard("fcgi_pool_set", || {
        // SAFETY: the caller passes NULL or a live pool from fcgi_pool_new (as `pool` requires)
        // and NULL or NUL-terminated strings (as `text` requires).
        let (Some(p), Some(name), Some(value)) =
            (unsafe { pool(p) }, unsafe { text(name) }, unsafe {
                text(value)
            })
        else {
            return -1;
        };
        if p.inner.worker_index().is_some() {
            fcgi_runtime::fcgi_log!(Error, "fcgi_pool_set: the pool already runs");
            return -1;
        }
        match p.inner.settings.set(&name, &value) {
            Ok(()) => 0,
            Err(e) => {
                fcgi_runtime::fcgi_log!(Error, "{e}");
                -1
            }
        }
    })
}

/// Opens a listening socket for the pool (`addr` as for fcgi_listen; `backlog` <= 0 means
/// 128), with SO_REUSEPORT on TCP sockets when `reuseport` is set. Call it before
/// fcgi_pool_run, as often as needed. Returns the socket's index (0, 1, ...), or -1 after
/// logging the reason. Without any fcgi_pool_listen, fcgi_pool_run serves the sockets of
/// systemd socket activation (LISTEN_FDS/LISTEN_PID), else fd 0 if it is a listening socket.
/// Ownership: `p` and `addr` are borrowed for the call (`addr` is copied). The socket belongs
/// to the pool until fcgi_pool_free (see fcgi_pool_socket).
#[no_mangle]
pub unsafe extern "C" fn fcgi_pool_listen(
    p: *mut fcgi_pool,
    addr: *const c_char,
    backlog: c_int,
) -> c_int {
    guard("fcgi_pool_listen", || {
        // SAFETY: the caller passes NULL or a live pool from fcgi_pool_new (as `pool` requires)
        // and NULL or a NUL-terminated string (as `text` requires).
        let (Some(p), Some(addr)) = (unsafe { pool(p) }, unsafe { text(addr) }) else {
            return -1;
        };
        match p.inner.listen(&addr, backlog) {
            Ok(i) => i as c_int,
            Err(e) => {
                fcgi_runtime::fcgi_log!(Error, "{e}");
                -1
            }
        }
    })
}

/// Starts the pool: the calling process becomes its supervisor and forks the workers.
/// Returns 1 in each worker: serve the pool's sockets (fcgi_pool_socket) with
/// fcgi_init_request/fcgi_accept_request and return from main when fcgi_accept_request gives
/// -1 (recycling, reload, stop). Returns 0 in the parent once the pool has stopped (SIGTERM,
/// SIGINT: fast stop; SIGQUIT: graceful stop; SIGHUP/SIGUSR2 reload the workers; SIGUSR1 is
/// forwarded to them and reopens the slow log). Returns -1 (logged, nothing started) for inconsistent settings, no
/// listening socket, a second call, or a process that already has threads (the parent must
/// be single-threaded: call it before the first fcgi_accept_request and before starting
/// threads). The parent's signal dispositions are restored when it returns 0.
/// Ownership: `p` is borrowed for the call; it stays the caller's in the parent, and each
/// worker has its own copy (made by fork) until it frees it or exits.
#[no_mangle]
pub unsafe extern "C" fn fcgi_pool_run(p: *mut fcgi_pool) -> c_int {
    guard("fcgi_pool_run", || {
        // SAFETY: the caller passes NULL or a live pool from fcgi_pool_new, as `pool` requires.
        let Some(p) = (unsafe { pool(p) }) else {
            return -1;
        };
        match p.inner.run() {
            Ok(Role::Worker(_)) => 1,
            Ok(Role::Stopped) => 0,
            Err(e) => {
                fcgi_runtime::fcgi_log!(Error, "{e}");
                -1
            }
        }
    })
}

/// The listening descriptor at `index` (from fcgi_pool_listen, or the inherited sockets in
/// their order once fcgi_pool_run has started), in the parent and in workers; -1 for a NULL
/// pool or an index out of range.
/// Ownership: `p` is borrowed for the call. The descriptor belongs to the pool (never close
/// it): one fcgi_pool_listen opened is valid until fcgi_pool_free in the parent, and until the
/// worker exits in a worker; an inherited one (systemd, fd 0) is never closed by the library.
#[no_mangle]
pub unsafe extern "C" fn fcgi_pool_socket(p: *mut fcgi_pool, index: c_int) -> c_int {
    guard("fcgi_pool_socket", || {
        // SAFETY: the caller passes NULL or a live pool from fcgi_pool_new, as `pool` requires.
        let Some(p) = (unsafe { pool(p) }) else {
            return -1;
        };
        usize::try_from(index)
            .ok()
            .and_then(|i| p.inner.socket(i))
            .unwrap_or(-1)
    })
}

/// In a worker, its index: 0 .. max_children-1 (a replacement takes the index of the worker
/// it replaces). -1 in the parent, before fcgi_pool_run, and for NULL.
/// Ownership: `p` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_pool_worker_index(p: *mut fcgi_pool) -> c_int {
    guard("fcgi_pool_worker_index", || {
        // SAFETY: the caller passes NULL or a live pool from fcgi_pool_new, as `pool` requires.
        unsafe { pool(p) }
            .and_then(|p| p.inner.worker_index())
            .map_or(-1, |i| i as c_int)
    })
}

/// Frees a pool. In the parent (or before fcgi_pool_run) it also closes the sockets
/// fcgi_pool_listen opened; in a worker the sockets stay open (request objects serve them).
/// NULL is ignored.
/// Ownership: takes back `p` (from fcgi_pool_new) and frees it: `p` is invalid afterwards, and
/// so, in the parent, are the descriptors of the sockets fcgi_pool_listen opened.
#[no_mangle]
pub unsafe extern "C" fn fcgi_pool_free(p: *mut fcgi_pool) {
    guard("fcgi_pool_free", || {
        if p.is_null() {
            return;
        }
        // SAFETY: p came from fcgi_pool_new (caller's contract) and is freed once.
        let mut b = unsafe { Box::from_raw(p) };
        b.inner.close_sockets();
    })
}
