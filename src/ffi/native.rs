//! The native C API, mirroring PHP 8's `main/fastcgi.h` (see docs/native-api.md). A thin skin
//! over [`fcgi_runtime`]: pointer checks, C conventions, hooks, and the panic boundary.
//!
//! # Safety
//! One contract holds for every `unsafe` function here, so it is stated once: each pointer
//! argument is NULL or valid as its doc comment says (a `fcgi_request *` returned by
//! `fcgi_init_request` and not yet destroyed, a NUL-terminated string, or a buffer of the
//! given length), and a request object is not used by two threads at once.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

use super::client_ip::IpText;
use super::native_types::*;
use super::panic::{guard, guard_or};
use fcgi_runtime::config::{self, Limit};
use fcgi_runtime::io::SendError;
use fcgi_runtime::request::Request;
use fcgi_runtime::server::Stream;
use fcgi_runtime::{self as rt, addr, log};
use fcgi_runtime_protocol::record::{rtype, HEADER_LEN};
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::os::fd::IntoRawFd;
use std::os::raw::{c_char, c_int, c_longlong, c_uint, c_void};
use std::ptr;
use std::sync::atomic::{AtomicI8, Ordering};
use std::sync::Once;

/// The logger PHP's layer calls: a printf-like function. fcgi-runtime calls it with the
/// format `"%s"` and one preformatted message.
/// Ownership: the format and the message are borrowed, valid only during the call.
/// Threads: see fcgi_set_logger.
pub type fcgi_logger = Option<unsafe extern "C" fn(level: c_int, fmt: *const c_char, ...)>;

/// A request object: one per application thread, reused request after request. Opaque.
pub struct fcgi_request {
    pub(super) inner: Request,
    on_accept: fcgi_hook,
    on_read: fcgi_hook,
    on_close: fcgi_hook,
    client_ip: IpText,
    /// The event loop owning this object (native_loop.rs), or NULL.
    pub(super) owner: *mut super::native_loop::fcgi_loop,
    /// The application's pointer (fcgi_set_request_data).
    pub(super) data: *mut c_void,
    /// fcgi_loadenv's NUL-terminated copy of each name, reused from call to call.
    name_buf: Vec<u8>,
}

impl fcgi_request {
    /// The current request's environment (for the calls of `native_embed.rs`).
    pub(super) fn env_mut(&mut self) -> &mut fcgi_runtime::env::Env {
        &mut self.inner.env
    }

    /// A request object of an event loop.
    pub(super) fn for_loop(inner: Request, owner: *mut super::native_loop::fcgi_loop) -> Self {
        fcgi_request {
            inner,
            on_accept: None,
            on_read: None,
            on_close: None,
            client_ip: IpText::new(),
            owner,
            data: ptr::null_mut(),
            name_buf: Vec::new(),
        }
    }

    /// Records the client address of the request just accepted (fcgi_request_client_ip,
    /// fcgi_get_last_client_ip).
    pub(super) fn note_client(&mut self) {
        let ip = self.inner.current().and_then(|t| t.peer.ip());
        LAST_CLIENT_IP.with(|c| c.borrow_mut().set(ip));
        self.client_ip.set(ip);
    }
}

/// -1: not yet determined; 0: not FastCGI; 1: FastCGI.
static IS_FASTCGI: AtomicI8 = AtomicI8::new(-1);

thread_local! {
    static LAST_CLIENT_IP: RefCell<IpText> = const { RefCell::new(IpText::new()) };
}

fn call(hook: fcgi_hook) {
    if let Some(h) = hook {
        // SAFETY: the application registered this function pointer for exactly this call.
        unsafe { h() }
    }
}

/// # Safety
/// `p` is NULL or a pointer returned by fcgi_init_request and not yet destroyed.
pub(super) unsafe fn req<'a>(p: *mut fcgi_request) -> Option<&'a mut fcgi_request> {
    // SAFETY: per the function's contract.
    unsafe { p.as_mut() }
}

/// # Safety
/// `p` is NULL or points at `len` readable bytes.
unsafe fn bytes<'a>(p: *const c_char, len: c_int) -> Option<&'a [u8]> {
    if p.is_null() || len < 0 {
        return None;
    }
    // SAFETY: per the function's contract.
    Some(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len as usize) })
}

/// What PHP's fcgi_init sets up once, whichever of fcgi_init and fcgi_listen comes first: a
/// management table holding FCGI_MPXS_CONNS "0". PHP's SAPIs serve one request at a time per
/// process or thread, and a web server that multiplexed onto them would park requests behind
/// a busy one; so the native face refuses a second request on a connection (FCGI_CANT_MPX_CONN)
/// unless the application opts in (fcgi_set_limit(FCGI_LIMIT_MPXS_CONNS, 1), or
/// FCGI_RUNTIME_MPXS_CONNS=1 for a program that does not).
fn init_mgmt_vars() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| config::set_default(Limit::MpxsConns, 0));
}

/// Initialises the library. Returns 1 if the process runs as a FastCGI application (fd 0 is
/// a listening socket: `getpeername(0)` fails with ENOTCONN), else 0. Later calls return the
/// cached answer. In FastCGI mode it installs PHP's handlers for SIGTERM and SIGUSR1 (they
/// request shutdown) and ignores SIGPIPE, each only if the application left it at its default.
/// As PHP's does, it advertises FCGI_MPXS_CONNS=0: a second request on a connection is refused
/// with FCGI_CANT_MPX_CONN unless the application sets FCGI_LIMIT_MPXS_CONNS to 1 (before or
/// after this call) or the environment has FCGI_RUNTIME_MPXS_CONNS=1. Thread-safe.
#[no_mangle]
pub extern "C" fn fcgi_init() -> c_int {
    // Failure value: a yes/no answer ("is this FastCGI?"): a panic answers no.
    guard_or("fcgi_init", 0, || {
        let v = IS_FASTCGI.load(Ordering::Acquire);
        if v >= 0 {
            return v as c_int;
        }
        init_mgmt_vars();
        let is = addr::fd_is_listening_socket(0);
        if is {
            fcgi_runtime::signals::install();
        }
        IS_FASTCGI.store(is as i8, Ordering::Release);
        is as c_int
    })
}

/// Returns 1 in FastCGI mode (see fcgi_init, which it calls if needed), else 0.
#[no_mangle]
pub extern "C" fn fcgi_is_fastcgi() -> c_int {
    let v = IS_FASTCGI.load(Ordering::Acquire);
    if v >= 0 {
        v as c_int
    } else {
        fcgi_init()
    }
}

/// Forgets the management variables and the allowed-clients list, and leaves FastCGI mode.
#[no_mangle]
pub extern "C" fn fcgi_shutdown() {
    guard("fcgi_shutdown", || {
        rt::mgmt::clear();
        rt::set_allowed_clients(None);
        IS_FASTCGI.store(0, Ordering::Release);
    })
}

/// Opens a listening socket. `path` is `port`, `:port`, `*:port`, `host:port`,
/// `[ipv6]:port` (TCP, SO_REUSEADDR; `[::]` is dual-stack) or a Unix socket path (an
/// existing socket file is replaced; mode 0777 unless fcgi_set_socket_permissions or
/// FCGI_RUNTIME_SOCKET_MODE/_OWNER say otherwise). Returns the descriptor (close-on-exec), or
/// -1 after logging the reason. Enters FastCGI mode and installs the handlers of fcgi_init;
/// like PHP's, it initialises what fcgi_init does if that was not called (FCGI_MPXS_CONNS=0).
/// Ownership: `path` is borrowed for the call (copied). The returned descriptor is the
/// caller's: the library never closes it; keep it open as long as request objects or loops
/// serve it.
#[no_mangle]
pub unsafe extern "C" fn fcgi_listen(path: *const c_char, backlog: c_int) -> c_int {
    guard("fcgi_listen", || {
        if path.is_null() {
            return -1;
        }
        // SAFETY: the caller passes a NUL-terminated string.
        let s = unsafe { CStr::from_ptr(path) }
            .to_string_lossy()
            .into_owned();
        let parsed = match addr::parse_listen(&s) {
            Ok(a) => a,
            Err(e) => {
                // PHP's line where PHP's layer logs one (a host that does not resolve, a path
                // too long), else ours.
                match e.php_text() {
                    Some(php) => fcgi_runtime::fcgi_log!(Error, "{php}"),
                    None => fcgi_runtime::fcgi_log!(Error, "Cannot listen on '{s}': {e}"),
                }
                return -1;
            }
        };
        match addr::listen(&parsed, if backlog > 0 { backlog } else { 128 }) {
            Ok(fd) => {
                init_mgmt_vars();
                IS_FASTCGI.store(1, Ordering::Release);
                fcgi_runtime::signals::install();
                fd.into_raw_fd()
            }
            Err(e) => {
                match e.raw_os_error() {
                    // PHP's line for a failed socket/bind/listen.
                    Some(n) => fcgi_runtime::fcgi_log!(
                        Error,
                        "Cannot bind/listen socket - [{n}] {}.",
                        strerror(n)
                    ),
                    None => fcgi_runtime::fcgi_log!(Error, "Cannot listen on '{s}': {e}"),
                }
                -1
            }
        }
    })
}

/// The description of an OS error number, as `strerror` gives it.
fn strerror(errno: c_int) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.strip_suffix(&format!(" (os error {errno})")) {
        Some(t) => t.to_string(),
        None => text,
    }
}

/// Sets the mode and owner of the Unix socket files that `fcgi_listen` (and the libfcgi
/// face's `FCGX_OpenSocket`/`OS_CreateLocalIpcFd`) create from now on. `mode`: permission
/// bits (at most 0777), or -1 for the default (FCGI_RUNTIME_SOCKET_MODE, else 0777 for
/// fcgi_listen and the umask's for the libfcgi face). `owner`: "user", "user:group" or
/// ":group" (names or numeric ids), or NULL for the default (FCGI_RUNTIME_SOCKET_OWNER, else
/// unchanged). Returns 0, or -1 (logged, nothing changed) for a bad mode or unknown name.
/// Ownership: `owner` is borrowed for the call (resolved to ids, which are kept; the caller
/// keeps ownership).
#[no_mangle]
pub unsafe extern "C" fn fcgi_set_socket_permissions(mode: c_int, owner: *const c_char) -> c_int {
    guard("fcgi_set_socket_permissions", || {
        let mode = match mode {
            -1 => None,
            m if (0..=0o777).contains(&m) => Some(m as u32),
            m => {
                fcgi_runtime::fcgi_log!(Error, "invalid socket mode {m:o}: at most 0777");
                return -1;
            }
        };
        let owner = if owner.is_null() {
            None
        } else {
            // SAFETY: the caller passes NULL or a NUL-terminated string.
            Some(
                unsafe { CStr::from_ptr(owner) }
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        match rt::sockperm::set(mode, owner.as_deref()) {
            Ok(()) => 0,
            Err(e) => {
                fcgi_runtime::fcgi_log!(Error, "fcgi_set_socket_permissions: {e}");
                -1
            }
        }
    })
}

/// Sets the clients allowed to connect: a comma-separated list of IPv4 and IPv6 addresses
/// and CIDR ranges. NULL does nothing. Invalid entries are logged and skipped; a list with no
/// valid entry refuses every TCP client. While a list is set, non-TCP clients are refused.
/// Overrides FCGI_WEB_SERVER_ADDRS. Applies to connections accepted afterwards.
/// Ownership: `ip` is borrowed for the call: parsed, never modified (despite `char *`, PHP's
/// prototype) and not kept.
#[no_mangle]
pub unsafe extern "C" fn fcgi_set_allowed_clients(ip: *mut c_char) {
    guard("fcgi_set_allowed_clients", || {
        if ip.is_null() {
            return;
        }
        // SAFETY: the caller passes a NUL-terminated string.
        let s = unsafe { CStr::from_ptr(ip) }.to_string_lossy();
        rt::set_allowed_clients(Some(&s));
    })
}

/// Creates a request object serving `listen_socket` (from fcgi_listen, or 0). Create one per
/// application thread; any number of threads may accept on the same socket at once. The
/// hooks (NULL for none) are called: `on_accept` before waiting for a request, `on_read` when
/// a request has been received, `on_close` when the request's connection is closed. No thread
/// or poll exists until the first fcgi_accept_request, so a process may fork after this.
/// Returns NULL on failure. Free with fcgi_destroy_request.
/// Ownership: the caller owns the returned object until fcgi_destroy_request frees it. The
/// hooks are stored as given and must stay callable as long as the object lives.
/// `listen_socket` stays the caller's: the library never closes it (it makes it non-blocking
/// when it starts serving it); keep it open as long as the object lives.
/// Threads: each hook runs on the thread that calls fcgi_accept_request (all three),
/// fcgi_finish_request or fcgi_close (`on_close`) with this object, inside that call;
/// fcgi_destroy_request calls none. A hook must not call the library with this object.
#[no_mangle]
pub extern "C" fn fcgi_init_request(
    listen_socket: c_int,
    on_accept: fcgi_hook,
    on_read: fcgi_hook,
    on_close: fcgi_hook,
) -> *mut fcgi_request {
    guard("fcgi_init_request", || {
        if listen_socket < 0 {
            return ptr::null_mut();
        }
        let mut inner = Request::new(listen_socket);
        // PHP's fcgi_close waits for the web server to close a connection it did not keep, and
        // the hooks (FPM's scoreboard) see the thread busy until then. Without hooks nothing
        // observes it, and the wait would only cost a poll and a wake-up per connection.
        inner.wait_for_peer_close(on_accept.is_some() || on_read.is_some() || on_close.is_some());
        Box::into_raw(Box::new(fcgi_request {
            inner,
            on_accept,
            on_read,
            on_close,
            client_ip: IpText::new(),
            owner: ptr::null_mut(),
            data: ptr::null_mut(),
            name_buf: Vec::new(),
        }))
    })
}

/// Frees a request object, finishing its request first if one is in progress and waiting
/// (at most the write timeout) until its output has left. The listening socket is not closed.
/// NULL is ignored.
/// Ownership: takes back `req` (from fcgi_init_request) and frees it: `req` and the pointers
/// fcgi_getenv, fcgi_putenv and fcgi_request_client_ip returned for it are invalid afterwards.
/// The pointer given to fcgi_set_request_data is not freed (it stays the caller's). A request
/// object of an event loop is refused (logged, nothing freed): fcgi_loop_finish gives it back.
#[no_mangle]
pub unsafe extern "C" fn fcgi_destroy_request(req: *mut fcgi_request) {
    guard("fcgi_destroy_request", || {
        if req.is_null() {
            return;
        }
        // SAFETY: caller's contract (valid if not NULL).
        if unsafe { (*req).inner.is_loop() } {
            fcgi_runtime::fcgi_log!(
                Error,
                "fcgi_destroy_request on a request of an event loop ignored: fcgi_loop_finish \
                 gives it back to its loop"
            );
            return;
        }
        // SAFETY: req came from fcgi_init_request (caller's contract) and is freed once.
        let mut b = unsafe { Box::from_raw(req) };
        b.inner.finish_and_drain();
    })
}

/// Finishes the current request (if the application did not), then blocks until the next
/// request has arrived with all its PARAMS. Returns the descriptor of its connection (>= 0),
/// or -1 on shutdown (fcgi_terminate, SIGTERM, SIGUSR1) or error. Thread-safe across request
/// objects; a request object must not be used by two threads at once.
/// Ownership: `req` is borrowed for the call. Finishing the previous request makes the pointers
/// fcgi_getenv, fcgi_putenv and fcgi_request_client_ip returned for it invalid; the
/// fcgi_set_request_data pointer is kept. The returned descriptor belongs to the library: do
/// not close it; it is valid until the request is finished.
#[no_mangle]
pub unsafe extern "C" fn fcgi_accept_request(req: *mut fcgi_request) -> c_int {
    guard("fcgi_accept_request", || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        let Some(r) = (unsafe { self::req(req) }) else {
            return -1;
        };
        if r.inner.is_loop() {
            fcgi_runtime::fcgi_log!(
                Error,
                "fcgi_accept_request on a request of an event loop: use fcgi_loop_accept"
            );
            return -1;
        }
        if r.inner.current().is_some() {
            let (_, closed) = r.inner.finish(false);
            if closed {
                call(r.on_close);
            }
        }
        // The runtime is up before `on_accept` says "accepting": PHP-FPM's ondemand manager
        // forks a child for a new connection only when no child says so (Request::prepare).
        r.inner.prepare();
        call(r.on_accept);
        match r.inner.accept() {
            Ok(fd) => {
                r.note_client();
                call(r.on_read);
                fd
            }
            Err(rt::request::AcceptError::Shutdown) => -1,
            Err(rt::request::AcceptError::Io(e)) => {
                fcgi_runtime::fcgi_log!(
                    Error,
                    "cannot serve listening socket {}: {e}",
                    r.inner.listen_fd()
                );
                -1
            }
        }
    })
}

/// Ends the current request (fcgi_end) and lets go of it (fcgi_close with destroy=1).
/// `force_close` closes the connection at once, aborting any other request multiplexed on
/// it. Returns 1 on success or when no request is in progress, 0 if the output could not be
/// written.
/// Ownership: `req` is borrowed for the call and stays the caller's (for the next
/// fcgi_accept_request). Ending the request makes the pointers fcgi_getenv and fcgi_putenv
/// returned for it invalid, as fcgi_close(req, _, 1) does.
#[no_mangle]
pub unsafe extern "C" fn fcgi_finish_request(req: *mut fcgi_request, force_close: c_int) -> c_int {
    // Failure value: PHP's 1 success / 0 failure: a panic is a failure.
    guard_or("fcgi_finish_request", 0, || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        let Some(r) = (unsafe { self::req(req) }) else {
            return 0;
        };
        let (ok, closed) = r.inner.finish(force_close != 0);
        if closed {
            call(r.on_close);
        }
        ok as c_int
    })
}

/// PHP's fcgi_close: `destroy` forgets the environment (pointers from fcgi_getenv become
/// invalid); if `force` or the connection is not kept, the request is let go and its
/// connection closed (at once with `force`, else after the output is sent). A kept
/// connection without `force` is left as it is.
/// Ownership: `req` is borrowed for the call; see `destroy` for the environment's pointers.
#[no_mangle]
pub unsafe extern "C" fn fcgi_close(req: *mut fcgi_request, force: c_int, destroy: c_int) {
    guard("fcgi_close", || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        let Some(r) = (unsafe { self::req(req) }) else {
            return;
        };
        if r.inner.close(force != 0, destroy != 0) {
            call(r.on_close);
        }
    })
}

/// Returns 1 when the request object holds no request (or is NULL), else 0.
/// Ownership: `req` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_is_closed(req: *mut fcgi_request) -> c_int {
    // Failure value: a yes/no answer: a panic answers "closed" (1), so the caller stops using the request.
    guard_or("fcgi_is_closed", 1, || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        unsafe { self::req(req) }.is_none_or(|r| r.inner.current().is_none()) as c_int
    })
}

/// Sends the remaining output, the end of the output streams and END_REQUEST (with the status
/// set by fcgi_set_app_status), once per request. Returns 1, or 0 if the output could not be
/// written (the request was aborted or the connection failed).
/// Ownership: `req` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_end(req: *mut fcgi_request) -> c_int {
    // Failure value: PHP's 1 success / 0 failure: a panic is a failure.
    guard_or("fcgi_end", 0, || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        let Some(r) = (unsafe { self::req(req) }) else {
            return 0;
        };
        r.inner.end() as c_int
    })
}

/// Sends buffered output; with `end` also ends the request as fcgi_end does. Returns 1 or 0.
/// Ownership: `req` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_flush(req: *mut fcgi_request, end: c_int) -> c_int {
    // Failure value: PHP's 1 success / 0 failure: a panic is a failure.
    guard_or("fcgi_flush", 0, || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        let Some(r) = (unsafe { self::req(req) }) else {
            return 0;
        };
        if end != 0 {
            r.inner.end() as c_int
        } else {
            r.inner.flush().is_ok() as c_int
        }
    })
}

fn read_stream(req: *mut fcgi_request, s: *mut c_char, len: c_int, which: Stream) -> c_int {
    // SAFETY: req is NULL or valid (caller's contract).
    let Some(r) = (unsafe { self::req(req) }) else {
        return -1;
    };
    if len <= 0 {
        return 0;
    }
    if s.is_null() {
        return -1;
    }
    // SAFETY: the caller provides len writable bytes at s.
    let buf = unsafe { std::slice::from_raw_parts_mut(s.cast::<u8>(), len as usize) };
    r.inner.read(which, buf) as c_int
}

/// Reads up to `len` bytes of the request body (STDIN) into `str`, blocking until at least one
/// byte is there. Returns the count, 0 at the end of the body or if `len <= 0`, -1 if the
/// request was aborted, its connection failed or the body was cut short (and for a NULL
/// request, or a NULL `str` with `len > 0`).
/// Ownership: `req` and `str` are borrowed for the call: at most `len` bytes are written into
/// the caller's buffer, and no reference to it is kept.
#[no_mangle]
pub unsafe extern "C" fn fcgi_read(req: *mut fcgi_request, str: *mut c_char, len: c_int) -> c_int {
    guard("fcgi_read", || read_stream(req, str, len, Stream::Stdin))
}

/// Filter role: reads the DATA stream like fcgi_read, once STDIN has been read to its end
/// (-1 before that, and -1 for a request of another role, which has no DATA stream).
/// Ownership: as for fcgi_read: `req` and `str` are borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_read_data(
    req: *mut fcgi_request,
    str: *mut c_char,
    len: c_int,
) -> c_int {
    guard("fcgi_read_data", || {
        read_stream(req, str, len, Stream::Data)
    })
}

/// The size of PHP's per-request output buffer (`fcgi_request.out_buf`).
const PHP_OUT_BUF: usize = 8192;

/// Writes `len` bytes to the request's STDOUT (`type` FCGI_STDOUT) or STDERR (FCGI_STDERR).
/// Small writes are buffered (see FCGI_LIMIT_OUTPUT_BUFFER_BYTES); a writer blocks while the
/// connection's socket and write-behind buffer are full. Returns `len`, 0 if `len <= 0`, or -1
/// if the request was aborted or the connection failed (the connection is then not kept).
/// With no request in progress (before the first, after `fcgi_finish_request`), a write
/// shorter than PHP's 8 KiB output buffer returns `len` and its bytes are dropped, as in PHP's
/// layer; a longer one returns -1.
/// Ownership: `req` and `str` are borrowed for the call: before fcgi_write returns, the bytes
/// are copied (into the output buffer or the connection's write-behind buffer), written to the
/// socket, or dropped as above; no reference to `str` is kept.
#[no_mangle]
pub unsafe extern "C" fn fcgi_write(
    req: *mut fcgi_request,
    r#type: fcgi_request_type,
    str: *const c_char,
    len: c_int,
) -> c_int {
    guard("fcgi_write", || {
        if len <= 0 {
            return 0;
        }
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        let Some(r) = (unsafe { self::req(req) }) else {
            return -1;
        };
        if r.inner.is_loop() {
            return super::native_loop::loop_write(req, r#type, str, len);
        }
        let rt_ = match r#type {
            FCGI_STDOUT => rtype::STDOUT,
            FCGI_STDERR => rtype::STDERR,
            _ => return -1,
        };
        // SAFETY: the caller provides len readable bytes at str.
        let Some(data) = (unsafe { bytes(str, len) }) else {
            return -1;
        };
        if !r.inner.in_request() && (len as usize) < PHP_OUT_BUF - HEADER_LEN {
            // No request in progress: PHP's layer copies a small write into its output
            // buffer, returns `len`, and drops the bytes at the next request. PHP-FPM relies
            // on it: its log handler writes every log line to the last request's STDERR, and
            // takes -1 for an aborted connection (it bails out of the worker).
            return len;
        }
        match r.inner.write(rt_, data) {
            Ok(()) => len,
            // A broken connection cannot be kept (as in PHP); an aborted request leaves its
            // connection, which the server owns under KEEP_CONN, as it is.
            Err(SendError::Broken) => {
                r.inner.set_keep(false);
                -1
            }
            Err(SendError::Aborted) => -1,
        }
    })
}

fn getenv(req: *mut fcgi_request, var: *const c_char, var_len: c_int) -> *mut c_char {
    // SAFETY: caller's contract (NULL or valid).
    let Some(r) = (unsafe { self::req(req) }) else {
        return ptr::null_mut();
    };
    // SAFETY: var points at var_len readable bytes (caller's contract).
    let Some(name) = (unsafe { bytes(var, var_len) }) else {
        return ptr::null_mut();
    };
    r.inner.env.get_ptr(name).cast()
}

/// Returns the value of the request variable `var` (`var_len` bytes), or NULL. The value is
/// NUL-terminated and may be modified in place.
/// Ownership: `var` is borrowed for the call. The value is owned by the request object (never
/// free it) and stays valid, even if fcgi_putenv replaces it, until the next
/// fcgi_accept_request, fcgi_finish_request, fcgi_close(req, _, 1) or fcgi_destroy_request on
/// this request (for a request of an event loop: fcgi_loop_finish or fcgi_loop_free).
#[no_mangle]
pub unsafe extern "C" fn fcgi_getenv(
    req: *mut fcgi_request,
    var: *const c_char,
    var_len: c_int,
) -> *mut c_char {
    guard("fcgi_getenv", || getenv(req, var, var_len))
}

/// fcgi_getenv for the FCGI_GETENV macro. `hash_value` is ignored (so binaries built with
/// PHP's hash macro work too).
/// Ownership: as for fcgi_getenv: `var` is borrowed for the call; the value is owned by the
/// request object and valid until the request is finished.
#[no_mangle]
pub unsafe extern "C" fn fcgi_quick_getenv(
    req: *mut fcgi_request,
    var: *const c_char,
    var_len: c_int,
    hash_value: c_uint,
) -> *mut c_char {
    let _ = hash_value;
    guard("fcgi_quick_getenv", || getenv(req, var, var_len))
}

fn putenv(
    req: *mut fcgi_request,
    var: *const c_char,
    var_len: c_int,
    val: *const c_char,
) -> *mut c_char {
    // SAFETY: caller's contract (NULL or valid).
    let Some(r) = (unsafe { self::req(req) }) else {
        return ptr::null_mut();
    };
    // SAFETY: var points at var_len readable bytes (caller's contract).
    let Some(name) = (unsafe { bytes(var, var_len) }) else {
        return ptr::null_mut();
    };
    let value = if val.is_null() {
        None
    } else {
        // SAFETY: val is NUL-terminated (caller's contract).
        Some(unsafe { CStr::from_ptr(val) }.to_bytes())
    };
    r.inner.env.put(name, value).cast()
}

/// Sets the request variable `var` to a copy of the NUL-terminated `val` and returns the copy;
/// `val == NULL` deletes the variable and returns NULL.
/// Ownership: `var` and `val` are borrowed for the call (copied; neither is modified, despite
/// `char *`, PHP's prototype). The returned copy is owned by the request object and valid as
/// for fcgi_getenv (until the request is finished), as are the values it replaced.
#[no_mangle]
pub unsafe extern "C" fn fcgi_putenv(
    req: *mut fcgi_request,
    var: *mut c_char,
    var_len: c_int,
    val: *mut c_char,
) -> *mut c_char {
    guard("fcgi_putenv", || putenv(req, var, var_len, val))
}

/// fcgi_putenv for the FCGI_PUTENV macro; `hash_value` is ignored.
/// Ownership: as for fcgi_putenv: `var` and `val` are borrowed for the call and copied; the
/// result is owned by the request object, valid as for fcgi_getenv.
#[no_mangle]
pub unsafe extern "C" fn fcgi_quick_putenv(
    req: *mut fcgi_request,
    var: *mut c_char,
    var_len: c_int,
    hash_value: c_uint,
    val: *mut c_char,
) -> *mut c_char {
    let _ = hash_value;
    guard("fcgi_quick_putenv", || putenv(req, var, var_len, val))
}

/// Returns 1 when a request's variables are loaded, else 0 (also for NULL).
/// Ownership: `req` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_has_env(req: *mut fcgi_request) -> c_int {
    // Failure value: a yes/no answer: a panic answers no.
    guard_or("fcgi_has_env", 0, || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        unsafe { self::req(req) }.is_some_and(|r| r.inner.has_env()) as c_int
    })
}

/// Calls `load_func(var, var_len, val, val_len, array)` for every request variable, in the
/// order of PHP's layer: newest first. That is the variables fcgi_putenv created (the last one
/// first), then the received PARAMS from the last to arrive to the first, `FCGI_ROLE` last. A
/// name received twice is visited once, where it first arrived, with its last value; a value
/// replaced by fcgi_putenv keeps its place; a deleted variable is skipped, and one set again
/// after its deletion counts as created then. `var` is NUL-terminated and valid during the
/// call; `val` is the stored value (as fcgi_getenv returns it). `array` is passed through
/// (PHP passes a zval). Allocates nothing once the request object has seen its longest name.
/// Ownership: `req`, `load_func` and `array` are borrowed for the call: `array` is passed
/// through untouched (never dereferenced), and none of them is kept afterwards. For `var` and
/// `val`, see fcgi_apply_func.
/// Threads: `load_func` runs on the calling thread, before fcgi_loadenv returns; it must not
/// call the library with this request object.
#[no_mangle]
pub unsafe extern "C" fn fcgi_loadenv(
    req: *mut fcgi_request,
    load_func: fcgi_apply_func,
    array: *mut c_void,
) {
    guard("fcgi_loadenv", || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        let (Some(r), Some(f)) = (unsafe { self::req(req) }, load_func) else {
            return;
        };
        let name_buf = &mut r.name_buf;
        r.inner.env.for_each(|name, val, len| {
            name_buf.clear();
            name_buf.extend_from_slice(name);
            name_buf.push(0);
            // SAFETY: the callback receives a NUL-terminated name valid during the call and
            // the stored value, as documented.
            unsafe {
                f(
                    name_buf.as_ptr().cast(),
                    name.len() as c_uint,
                    val.cast(),
                    len as c_uint,
                    array,
                )
            };
        });
    })
}

/// Defines a management variable reported by GET_VALUES (the first definition of a name
/// wins). FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS set the corresponding limits, so
/// that what is reported is what is enforced.
/// Ownership: `name` and `value` are borrowed for the call (copied, or parsed for the three
/// names above; the caller keeps ownership). NULL for either is ignored.
#[no_mangle]
pub unsafe extern "C" fn fcgi_set_mgmt_var(
    name: *const c_char,
    name_len: usize,
    value: *const c_char,
    value_len: usize,
) {
    guard("fcgi_set_mgmt_var", || {
        if name.is_null()
            || value.is_null()
            || name_len > i32::MAX as usize
            || value_len > i32::MAX as usize
        {
            return;
        }
        // SAFETY: the caller provides the given number of readable bytes at each pointer.
        let (n, v) = unsafe {
            (
                std::slice::from_raw_parts(name.cast::<u8>(), name_len),
                std::slice::from_raw_parts(value.cast::<u8>(), value_len),
            )
        };
        if !rt::mgmt::set(n, v) {
            fcgi_runtime::fcgi_log!(
                Warning,
                "invalid value for management variable {}",
                String::from_utf8_lossy(n)
            );
        }
    })
}

/// Kept for link compatibility with PHP's header; does nothing.
/// Ownership: `ptr` is borrowed for the call and neither read nor freed (PHP's frees a
/// management variable's value; the library's own copies live until fcgi_shutdown).
#[no_mangle]
pub extern "C" fn fcgi_free_mgmt_var_cb(ptr: *mut c_void) {
    let _ = ptr;
}

/// Returns 1 once shutdown was requested, else 0.
#[no_mangle]
pub extern "C" fn fcgi_in_shutdown() -> c_int {
    rt::in_shutdown() as c_int
}

/// Sets or clears the shutdown flag (without waking blocked threads).
#[no_mangle]
pub extern "C" fn fcgi_set_in_shutdown(new_value: c_int) {
    rt::set_in_shutdown(new_value != 0)
}

/// Requests shutdown: threads blocked in fcgi_accept_request return -1 at once; requests in
/// progress are not interrupted. Async-signal-safe.
#[no_mangle]
pub extern "C" fn fcgi_terminate() {
    rt::terminate()
}

/// Overrides whether the request's connection is kept after it (initially the server's
/// KEEP_CONN flag).
/// Ownership: `req` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_set_keep(req: *mut fcgi_request, new_value: c_int) {
    guard("fcgi_request_set_keep", || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        if let Some(r) = unsafe { self::req(req) } {
            r.inner.set_keep(new_value != 0);
        }
    })
}

/// The client address of the last request accepted by the calling thread (fcgi_accept_request
/// or fcgi_loop_accept; IPv4-mapped addresses shown as IPv4), or NULL for a Unix-socket peer
/// and before the thread's first request from a TCP client.
/// Ownership: the text is owned by the library (a buffer of the calling thread; never free it).
/// It is valid until that thread's next fcgi_accept_request or fcgi_loop_accept (which may
/// rewrite it in place), and not after the thread exits.
#[no_mangle]
pub extern "C" fn fcgi_get_last_client_ip() -> *const c_char {
    guard("fcgi_get_last_client_ip", || {
        LAST_CLIENT_IP.with(|c| c.borrow().as_ptr())
    })
}

/// Sets the function that receives the library's log messages, of every level (called as
/// `lg(level, "%s", message)`). NULL restores the default: messages of level FCGI_NOTICE and
/// above to stderr. Replaces a function set by fcgi_set_log_func, and the reverse.
/// Ownership: `lg` is kept and must stay callable until a later fcgi_set_logger or
/// fcgi_set_log_func replaces it; once that call returns, `lg` is no longer running or called.
/// The format and the message are borrowed, valid only during each call.
/// Threads: `lg` is called from the application's threads only, inside their calls into the
/// library, possibly on several threads at once; lines of the library's own threads go to
/// stderr as by default (PHP-FPM's hook writes to the current request). It must not call back
/// into the library.
#[no_mangle]
pub extern "C" fn fcgi_set_logger(lg: fcgi_logger) {
    guard("fcgi_set_logger", || match lg {
        None => log::set_logger(None, true),
        Some(f) => log::set_logger(
            Some(Box::new(move |level, msg| {
                let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
                // SAFETY: a printf-like function called with "%s" and a NUL-terminated string.
                unsafe { f(level as c_int, c"%s".as_ptr(), c.as_ptr()) };
            })),
            false,
        ),
    })
}

/// Returns 1 if the server aborted the current request (ABORT_REQUEST) or its connection
/// failed; output is then discarded and END_REQUEST was sent by the library. Else 0.
/// Ownership: `req` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_is_aborted(req: *mut fcgi_request) -> c_int {
    // Failure value: a yes/no answer: a panic answers no.
    guard_or("fcgi_is_aborted", 0, || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        unsafe { self::req(req) }.is_some_and(|r| r.inner.is_aborted()) as c_int
    })
}

/// The FastCGI request id of the current request, or -1.
/// Ownership: `req` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_id(req: *mut fcgi_request) -> c_int {
    guard("fcgi_request_id", || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        unsafe { self::req(req) }
            .and_then(|r| r.inner.id())
            .map_or(-1, c_int::from)
    })
}

/// The role of the current request (FCGI_RESPONDER, FCGI_AUTHORIZER, FCGI_FILTER), or -1.
/// Ownership: `req` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_role(req: *mut fcgi_request) -> c_int {
    guard("fcgi_request_role", || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        unsafe { self::req(req) }
            .and_then(|r| r.inner.role())
            .map_or(-1, |r| r as c_int)
    })
}

/// Sets the application status sent in END_REQUEST (the CGI exit status; 0 by default).
/// Ownership: `req` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_set_app_status(req: *mut fcgi_request, status: c_int) {
    guard("fcgi_set_app_status", || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        if let Some(r) = unsafe { self::req(req) } {
            r.inner.set_app_status(status as u32);
        }
    })
}

/// The client address of the current request's connection, or NULL (Unix peer or no request).
/// Ownership: the text is owned by the request object (never free it). It is valid until the
/// next fcgi_accept_request on this request (for a request of an event loop: until
/// fcgi_loop_finish), and not after the object is freed.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_client_ip(req: *mut fcgi_request) -> *const c_char {
    guard("fcgi_request_client_ip", || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        unsafe { self::req(req) }
            .filter(|r| r.inner.current().is_some())
            .map_or(ptr::null(), |r| r.client_ip.as_ptr())
    })
}

/// Sets a limit (FCGI_LIMIT_*). Takes effect for connections and requests that start
/// afterwards (timeouts: at once). Returns 0, or -1 for an unknown limit or a value out of
/// range.
#[no_mangle]
pub extern "C" fn fcgi_set_limit(which: fcgi_limit, value: c_longlong) -> c_int {
    guard("fcgi_set_limit", || {
        let (Some(l), Ok(v)) = (
            u32::try_from(which).ok().and_then(Limit::from_u32),
            u64::try_from(value),
        ) else {
            return -1;
        };
        if config::set(l, v).is_ok() {
            0
        } else {
            -1
        }
    })
}

/// The current value of a limit (FCGI_LIMIT_*), or -1 for an unknown limit.
#[no_mangle]
pub extern "C" fn fcgi_get_limit(which: fcgi_limit) -> c_longlong {
    guard("fcgi_get_limit", || {
        u32::try_from(which)
            .ok()
            .and_then(Limit::from_u32)
            .map_or(-1, |l| config::get(l) as c_longlong)
    })
}
