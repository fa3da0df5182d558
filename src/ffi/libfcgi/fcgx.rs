//! fcgiapp.h's request side: FCGX_Init, FCGX_Accept_r and friends, on the runtime's reactor.
//!
//! An `FCGX_Request` is the caller's 80 bytes; the runtime's state for it is an [`LfState`]
//! behind `paramsPtr`, attached at accept and detached at finish. Detached states go to a
//! small per-thread cache, so a loop of Accept_r/Finish_r allocates nothing per request, and
//! a program that throws its FCGX_Request away after FCGX_Finish_r (or FCGX_Free) leaks
//! nothing.
//!
//! Unlike libfcgi, connections belong to the reactor, not to the FCGX_Request: a kept
//! connection goes back to the reactor at finish and its next request (pipelined or not) is
//! served by whichever thread accepts next; many threads may sit in FCGX_Accept_r at once
//! without a mutex; requests are multiplexed, limited and aborted as with the native API.

use super::stream::{Backing, Kind, READ_BUF};
use super::types::*;
use crate::ffi::panic::{guard, guard_or};
use fcgi_runtime::request::{AcceptError, Request};
use fcgi_runtime::{self as rt, addr};
use std::cell::RefCell;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI8, Ordering};

/// The runtime's state of one FCGX_Request while it holds a request.
pub struct LfState {
    pub(super) req: Request,
    /// The three streams handed out as `in`, `out`, `err`, and what each is backed by. Raw
    /// allocations (freed in Drop), not Boxes: the streams are used through pointers the C
    /// side holds, while references to this state exist, so the state must not claim them.
    streams: *mut [FCGX_Stream; 3],
    backings: *mut [Backing; 3],
    /// The reader's buffer.
    pub(super) rbuf: Box<[u8]>,
    /// The `envp` vector: pointers into the request's PARAMS (`NAME=VALUE\0`), then NULL.
    envp: Vec<*mut c_char>,
    /// The FCGX_Request this state is attached to.
    fcgx: *mut FCGX_Request,
    /// The Filter's stdin has been switched to FCGI_DATA.
    pub(super) reading_data: bool,
    /// Writers not yet closed with FCGX_FClose.
    open_writers: u8,
    /// Process that made the state: a forked child must not touch the parent's connections.
    pid: u32,
    active: bool,
}

impl LfState {
    fn new(listen_fd: c_int) -> Box<LfState> {
        let mut st = Box::new(LfState {
            req: Request::new(listen_fd),
            streams: Box::into_raw(Box::new([
                FCGX_Stream::zeroed(),
                FCGX_Stream::zeroed(),
                FCGX_Stream::zeroed(),
            ])),
            backings: Box::into_raw(Box::new([
                Backing::Request {
                    owner: ptr::null_mut(),
                    kind: Kind::In,
                },
                Backing::Request {
                    owner: ptr::null_mut(),
                    kind: Kind::Out,
                },
                Backing::Request {
                    owner: ptr::null_mut(),
                    kind: Kind::Err,
                },
            ])),
            rbuf: vec![0u8; READ_BUF].into_boxed_slice(),
            envp: Vec::new(),
            fcgx: ptr::null_mut(),
            reading_data: false,
            open_writers: 0,
            pid: fcgi_runtime::sys::pid(),
            active: false,
        });
        let me: *mut LfState = &mut *st;
        for i in 0..3 {
            // SAFETY: both arrays were just allocated and have 3 elements.
            unsafe {
                let b = (st.backings as *mut Backing).add(i);
                if let Backing::Request { owner, .. } = &mut *b {
                    *owner = me;
                }
                (*st.stream(i)).data = b.cast::<c_void>();
            }
        }
        st
    }

    /// Stream `i` (0 in, 1 out, 2 err).
    fn stream(&self, i: usize) -> *mut FCGX_Stream {
        debug_assert!(i < 3);
        // SAFETY: i < 3, inside the allocation.
        unsafe { (self.streams as *mut FCGX_Stream).add(i) }
    }

    /// True while the state holds a request of this process.
    pub(super) fn is_current(&self) -> bool {
        self.active && self.pid == fcgi_runtime::sys::pid()
    }

    /// FCGX_FClose of a writer: sends what is buffered; the last writer ends the request.
    pub(super) fn close_writer(&mut self) -> Result<(), c_int> {
        if !self.is_current() {
            return Err(FCGX_CALL_SEQ_ERROR);
        }
        self.open_writers = self.open_writers.saturating_sub(1);
        if self.open_writers > 0 {
            return self.req.flush().map_err(super::stream::send_error_code);
        }
        self.sync_status();
        if self.req.end() {
            Ok(())
        } else if self.aborted() {
            Err(libc::ECONNABORTED)
        } else {
            Err(libc::EPIPE)
        }
    }

    /// The server aborted the request (as opposed to the connection failing, which marks
    /// its requests aborted too).
    fn aborted(&self) -> bool {
        self.req
            .current()
            .is_some_and(|t| t.shared.is_aborted() && !t.io.is_broken())
    }

    /// The error code of a failed read: ECONNABORTED after an abort, else ECONNRESET.
    pub(super) fn input_error(&self) -> c_int {
        if self.aborted() {
            libc::ECONNABORTED
        } else {
            libc::ECONNRESET
        }
    }

    /// Copies the FCGX_Request's appStatus (FCGX_SetExitStatus or a direct store) to the
    /// runtime.
    fn sync_status(&mut self) {
        // SAFETY: the FCGX_Request outlives the request it holds (the caller's contract).
        if let Some(r) = unsafe { self.fcgx.as_ref() } {
            self.req.set_app_status(r.appStatus as u32);
        }
    }

    /// Points the envp vector at the current PARAMS.
    fn build_envp(&mut self) {
        self.envp.clear();
        let params = &mut self.req.env.params;
        let base = params.base_ptr();
        for e in params.entries() {
            // SAFETY: every entry lies inside the params buffer, which is frozen while the
            // request is held.
            self.envp
                .push(unsafe { base.add(e.off as usize) }.cast::<c_char>());
        }
        self.envp.push(ptr::null_mut());
    }
}

impl Drop for LfState {
    fn drop(&mut self) {
        // SAFETY: allocated with Box::into_raw in new(), freed only here.
        unsafe {
            drop(Box::from_raw(self.streams));
            drop(Box::from_raw(self.backings));
        }
    }
}

thread_local! {
    /// Detached states kept for reuse by this thread (boxed: streams point into them).
    #[allow(clippy::vec_box)]
    static CACHE: RefCell<Vec<Box<LfState>>> = const { RefCell::new(Vec::new()) };
}
const CACHE_MAX: usize = 4;

fn take_state(listen_fd: c_int) -> Box<LfState> {
    let cached = CACHE
        .try_with(|c| {
            let mut c = c.borrow_mut();
            let i = c.iter().position(|s| s.req.listen_fd() == listen_fd)?;
            Some(c.swap_remove(i))
        })
        .ok()
        .flatten();
    match cached {
        Some(s) if s.pid == fcgi_runtime::sys::pid() => s,
        Some(s) => {
            // Inherited across fork: its runtime belongs to the parent.
            std::mem::forget(s);
            LfState::new(listen_fd)
        }
        None => LfState::new(listen_fd),
    }
}

fn give_back(st: Box<LfState>) {
    if st.pid != fcgi_runtime::sys::pid() {
        // A forked child must not run the parent's runtime code paths (drop included).
        std::mem::forget(st);
        return;
    }
    let _ = CACHE.try_with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < CACHE_MAX {
            c.push(st);
        }
    });
}

static INITIALIZED: AtomicBool = AtomicBool::new(false);
/// -1 unknown, 0 CGI, 1 FastCGI.
static IS_FASTCGI: AtomicI8 = AtomicI8::new(-1);

/// The request of FCGX_Accept/FCGX_Finish (libfcgi's `the_request`).
struct TheRequest(std::cell::UnsafeCell<FCGX_Request>);
// SAFETY: like libfcgi's static, it is used by the single-threaded FCGX_Accept API only.
unsafe impl Sync for TheRequest {}
static THE_REQUEST: TheRequest = TheRequest(std::cell::UnsafeCell::new(ZERO_REQUEST));

const ZERO_REQUEST: FCGX_Request = FCGX_Request {
    requestId: 0,
    role: 0,
    r#in: ptr::null_mut(),
    out: ptr::null_mut(),
    err: ptr::null_mut(),
    envp: ptr::null_mut(),
    paramsPtr: ptr::null_mut(),
    ipcFd: -1,
    isBeginProcessed: 0,
    keepConnection: 0,
    appStatus: 0,
    nWriters: 0,
    flags: 0,
    listen_sock: FCGI_LISTENSOCK_FILENO,
    detached: 0,
};

/// Returns 1 if the program runs as plain CGI (fd 0 is not a listening socket), 0 under
/// FastCGI. The answer is computed once.
#[no_mangle]
pub extern "C" fn FCGX_IsCGI() -> c_int {
    // Failure value: a yes/no answer: a panic answers "CGI" (1), libfcgi's answer when nothing is known.
    guard_or("FCGX_IsCGI", 1, || {
        let v = IS_FASTCGI.load(Ordering::Acquire);
        if v >= 0 {
            return (v == 0) as c_int;
        }
        FCGX_Init();
        let fcgi = addr::fd_is_listening_socket(0);
        let _ = IS_FASTCGI.compare_exchange(-1, fcgi as i8, Ordering::AcqRel, Ordering::Acquire);
        (IS_FASTCGI.load(Ordering::Acquire) == 0) as c_int
    })
}

/// Initialises the library (idempotent): the request of FCGX_Accept on fd 0, the signal
/// handlers (SIGTERM and SIGUSR1 request shutdown and wake blocked accepts; SIGPIPE is made
/// harmless; each only if left at its default), FCGI_WEB_SERVER_ADDRS. Returns 0.
#[no_mangle]
pub extern "C" fn FCGX_Init() -> c_int {
    // Failure value: libfcgi's FCGX_Init returns 0 and has no failure value programs check.
    guard_or("FCGX_Init", 0, || {
        if INITIALIZED.swap(true, Ordering::AcqRel) {
            return 0;
        }
        // SAFETY: first initialisation; FCGX_Accept is not running yet.
        unsafe { FCGX_InitRequest(THE_REQUEST.0.get(), FCGI_LISTENSOCK_FILENO, 0) };
        fcgi_runtime::signals::install();
        rt::load_web_server_addrs();
        0
    })
}

/// Opens a listening socket, as libfcgi does, through OS_CreateLocalIpcFd: `host:port`,
/// `:port`, `*:port`, `[ipv6]:port`, or a Unix socket path (anything else, `9000` included;
/// mode from the umask; an existing socket file there is replaced). Returns the descriptor
/// (close-on-exec), or -1 after reporting why. Unlike libfcgi it never exits the process.
#[no_mangle]
pub unsafe extern "C" fn FCGX_OpenSocket(path: *const c_char, backlog: c_int) -> c_int {
    guard("FCGX_OpenSocket", || {
        // SAFETY: forwarded contract (NULL-safe).
        let fd = unsafe { super::os::OS_CreateLocalIpcFd(path, backlog) };
        if fd == 0 {
            IS_FASTCGI.store(1, Ordering::Release);
        }
        fd
    })
}

/// Prepares a caller-allocated request to accept on `sock`. Returns 0.
#[no_mangle]
pub unsafe extern "C" fn FCGX_InitRequest(
    request: *mut FCGX_Request,
    sock: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller passes NULL or sizeof(FCGX_Request) writable bytes.
    let Some(r) = (unsafe { request.as_mut() }) else {
        return -1;
    };
    *r = FCGX_Request {
        listen_sock: sock,
        flags,
        ..ZERO_REQUEST
    };
    0
}

/// Finishes the previous request of `request` if any, then waits for the next one. Returns 0
/// with `in`, `out`, `err` and `envp` set; -EINTR after SIGTERM/SIGUSR1, -9999 after
/// FCGX_ShutdownPending, or -errno if the listening socket cannot be served.
#[no_mangle]
pub unsafe extern "C" fn FCGX_Accept_r(request: *mut FCGX_Request) -> c_int {
    // Failure value: what this face returns when the runtime shuts down, -9999.
    guard_or("FCGX_Accept_r", -9999, || {
        if request.is_null() {
            return -libc::EINVAL;
        }
        // libfcgi returns -9998 here when FCGX_Init was never called; initialising is what
        // every caller wants.
        FCGX_Init();
        // SAFETY: the caller's request.
        unsafe { FCGX_Finish_r(request) };
        // SAFETY: the caller's request, not used by another thread during this call.
        let r = unsafe { &mut *request };
        let mut st = take_state(r.listen_sock);
        match st.req.accept() {
            Ok(fd) => {
                let (id, role, keep) = match st.req.current() {
                    Some(t) => (t.id, t.role as c_int, t.keep_conn),
                    None => (0, 0, false),
                };
                st.active = true;
                st.reading_data = false;
                st.open_writers = 2;
                st.fcgx = request;
                st.build_envp();
                let buf = st.rbuf.as_mut_ptr();
                // SAFETY: the state's own streams; no application holds them between
                // requests.
                unsafe {
                    (*st.stream(0)).reset(true, buf);
                    (*st.stream(1)).reset(false, ptr::null_mut());
                    (*st.stream(2)).reset(false, ptr::null_mut());
                }
                r.requestId = id as c_int;
                r.role = role;
                r.r#in = st.stream(0);
                r.out = st.stream(1);
                r.err = st.stream(2);
                r.envp = st.envp.as_mut_ptr();
                r.ipcFd = fd;
                r.isBeginProcessed = 1;
                r.keepConnection = keep as c_int;
                r.appStatus = 0;
                r.nWriters = 2;
                r.detached = 0;
                r.paramsPtr = Box::into_raw(st).cast::<c_void>();
                0
            }
            Err(e) => {
                give_back(st);
                match e {
                    AcceptError::Shutdown if fcgi_runtime::signals::signalled() => -libc::EINTR,
                    AcceptError::Shutdown => -9999,
                    AcceptError::Io(e) => -e.raw_os_error().unwrap_or(9999),
                }
            }
        }
    })
}

/// Ends the current request (rest of the output, end of streams, END_REQUEST with the exit
/// status) and lets it go. NULL-safe; does nothing without a request.
#[no_mangle]
pub unsafe extern "C" fn FCGX_Finish_r(request: *mut FCGX_Request) {
    guard("FCGX_Finish_r", || {
        // SAFETY: the caller's request or NULL.
        let Some(r) = (unsafe { request.as_mut() }) else {
            return;
        };
        // SAFETY: paramsPtr is NULL or an LfState this library attached.
        if let Some(st) = unsafe { (r.paramsPtr as *mut LfState).as_mut() } {
            if st.is_current() {
                st.sync_status();
                st.req.set_keep(r.keepConnection != 0 && st.req.keep());
                st.req.finish(false);
            }
        }
        // SAFETY: the caller's request.
        unsafe { FCGX_Free(request, 0) };
    })
}

/// Lets go of the request's streams and parameters. With `close` set, a request that has not
/// finished is dropped without END_REQUEST and its connection closed (libfcgi's behaviour);
/// a finished request's kept connection stays with the runtime either way.
#[no_mangle]
pub unsafe extern "C" fn FCGX_Free(request: *mut FCGX_Request, close: c_int) {
    guard("FCGX_Free", || {
        // SAFETY: the caller's request or NULL.
        let Some(r) = (unsafe { request.as_mut() }) else {
            return;
        };
        let p = r.paramsPtr as *mut LfState;
        r.paramsPtr = ptr::null_mut();
        r.r#in = ptr::null_mut();
        r.out = ptr::null_mut();
        r.err = ptr::null_mut();
        r.envp = ptr::null_mut();
        r.ipcFd = -1;
        r.isBeginProcessed = 0;
        r.detached = 0;
        if p.is_null() {
            return;
        }
        // SAFETY: made by Box::into_raw in FCGX_Accept_r and detached just above.
        let mut st = unsafe { Box::from_raw(p) };
        if st.is_current() {
            st.req.close(close != 0, true);
        }
        st.active = false;
        st.fcgx = ptr::null_mut();
        give_back(st);
    })
}

/// FCGX_Accept_r on the library's own request (listening on fd 0).
#[no_mangle]
pub unsafe extern "C" fn FCGX_Accept(
    r#in: *mut *mut FCGX_Stream,
    out: *mut *mut FCGX_Stream,
    err: *mut *mut FCGX_Stream,
    envp: *mut *mut *mut c_char,
) -> c_int {
    // Failure value: what this face returns when the runtime shuts down, -9999.
    guard_or("FCGX_Accept", -9999, || {
        FCGX_Init();
        let req = THE_REQUEST.0.get();
        // SAFETY: the library's request; FCGX_Accept is single-threaded by contract.
        let rc = unsafe { FCGX_Accept_r(req) };
        // SAFETY: as above; the out-pointers are the caller's (NULL allowed).
        unsafe {
            let r = &*req;
            if let Some(p) = r#in.as_mut() {
                *p = r.r#in;
            }
            if let Some(p) = out.as_mut() {
                *p = r.out;
            }
            if let Some(p) = err.as_mut() {
                *p = r.err;
            }
            if let Some(p) = envp.as_mut() {
                *p = r.envp;
            }
        }
        rc
    })
}

/// FCGX_Finish_r on the library's own request.
#[no_mangle]
pub extern "C" fn FCGX_Finish() {
    if INITIALIZED.load(Ordering::Acquire) {
        // SAFETY: the library's request.
        unsafe { FCGX_Finish_r(THE_REQUEST.0.get()) };
    }
}

/// Switches a Filter's input from FCGI_STDIN (read to its end) to FCGI_DATA. Returns 0, or
/// -1 with FCGX_CALL_SEQ_ERROR on the stream when that is not possible.
#[no_mangle]
pub unsafe extern "C" fn FCGX_StartFilterData(stream: *mut FCGX_Stream) -> c_int {
    guard("FCGX_StartFilterData", || {
        // SAFETY: a stream of this library or NULL.
        let Some(s) = (unsafe { stream.as_mut() }) else {
            return -1;
        };
        // SAFETY: data is NULL or a live Backing.
        let owner = match unsafe { (s.data as *mut Backing).as_mut() } {
            Some(Backing::Request {
                owner,
                kind: Kind::In,
            }) => *owner,
            _ => ptr::null_mut(),
        };
        // SAFETY: the state owns the stream.
        let ok = match unsafe { owner.as_mut() } {
            Some(st) => {
                st.is_current()
                    && st.req.role() == Some(fcgi_runtime_protocol::Role::Filter)
                    && !st.reading_data
                    && s.isClosed != 0
                    && s.FCGI_errno == 0
            }
            None => false,
        };
        if !ok {
            s.set_error(FCGX_CALL_SEQ_ERROR);
            return -1;
        }
        // SAFETY: checked non-NULL above.
        let st = unsafe { &mut *owner };
        st.reading_data = true;
        let buf = st.rbuf.as_mut_ptr();
        s.reset(true, buf);
        0
    })
}

/// Sets the exit status sent in END_REQUEST for the request `stream` belongs to.
#[no_mangle]
pub unsafe extern "C" fn FCGX_SetExitStatus(status: c_int, stream: *mut FCGX_Stream) {
    guard("FCGX_SetExitStatus", || {
        // SAFETY: a stream of this library or NULL.
        let Some(s) = (unsafe { stream.as_mut() }) else {
            return;
        };
        // SAFETY: data is NULL or a live Backing.
        if let Some(Backing::Request { owner, .. }) = unsafe { (s.data as *mut Backing).as_mut() } {
            // SAFETY: the state owns the stream; its FCGX_Request is the caller's.
            if let Some(st) = unsafe { owner.as_mut() } {
                // SAFETY: `st.fcgx` is NULL or the FCGX_Request that FCGX_Accept_r attached
                // this state to, which the caller keeps alive while it uses the request's
                // streams (it is set back to NULL when the state is detached).
                if let Some(r) = unsafe { st.fcgx.as_mut() } {
                    r.appStatus = status;
                }
                st.req.set_app_status(status as u32);
            }
        }
    })
}

/// The value of `name` in `envp` (the first `name=` entry), or NULL.
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetParam(name: *const c_char, envp: *mut *mut c_char) -> *mut c_char {
    if name.is_null() || envp.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: name is NUL-terminated; envp is a NULL-terminated vector of NUL-terminated
    // strings (the caller's contract).
    unsafe {
        let len = libc::strlen(name);
        let mut p = envp;
        while !(*p).is_null() {
            let e = *p;
            if libc::strncmp(e, name, len) == 0 && *e.add(len) == b'=' as c_char {
                return e.add(len + 1);
            }
            p = p.add(1);
        }
    }
    ptr::null_mut()
}

/// Asks every blocked and future FCGX_Accept_r to return (-9999). Async-signal-safe.
#[no_mangle]
pub extern "C" fn FCGX_ShutdownPending() {
    rt::terminate();
}

/// Re-attaches a request detached with FCGX_Detach. Returns 0, or -1 for NULL (libfcgi crashes).
#[no_mangle]
pub unsafe extern "C" fn FCGX_Attach(r: *mut FCGX_Request) -> c_int {
    // SAFETY: the caller's request or NULL.
    match unsafe { r.as_mut() } {
        Some(r) => {
            r.detached = 0;
            0
        }
        None => -1,
    }
}

/// Marks a request detached (Perl's FCGI does this around fork). Returns -1 without a
/// connection. A forked child never touches the parent's connections in any case: the
/// runtime's state is bound to the process that accepted.
#[no_mangle]
pub unsafe extern "C" fn FCGX_Detach(r: *mut FCGX_Request) -> c_int {
    // SAFETY: the caller's request or NULL.
    match unsafe { r.as_mut() } {
        Some(r) if r.ipcFd > 0 => {
            r.detached = 1;
            0
        }
        _ => -1,
    }
}
