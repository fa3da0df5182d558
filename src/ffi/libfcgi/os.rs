//! fcgios.h: libfcgi's OS_* layer, the 18 functions Debian's libfcgi.so.0 exports. cgi-fcgi is
//! its main user (`-connect`, `-start` spawning, the asynchronous loop of [`os_async`]); the
//! FCGX_* face of this crate runs on the runtime instead.
//!
//! Address syntax (`OS_CreateLocalIpcFd`, `OS_FcgiConnect`), libfcgi's plus IPv6:
//!
//! | text | meaning |
//! |---|---|
//! | `:9000`, `*:9000` | TCP port 9000 on every IPv4 address (connect: 127.0.0.1) |
//! | `127.0.0.1:9000`, `localhost:9000` | TCP on that address (names resolve, IPv4 preferred) |
//! | `[::1]:9000`, `[::]:9000` | TCP over IPv6 (`[::]` listens dual-stack; connect: `::1`) |
//! | anything else | a Unix socket path: `/run/app.sock`, `9000`, `/x/foo:bar`, `/x/a:0` |
//!
//! Differences from libfcgi 2.4.2, all deliberate:
//! - no function `exit()`s or asserts: where libfcgi ends the process (bind/listen failure, bad
//!   host, fork failure, select failure, fcntl failure) these print the reason to stderr (the
//!   library log) and return -1 with `errno` set, or just return (`OS_SetFlags`);
//! - the port after `:` must be a decimal number in 1..=65535, else the text is a Unix path
//!   (libfcgi uses atoi into a short: `h:9000x` was port 9000, `h:70000` port 4464); IPv6 forms;
//! - `OS_CreateLocalIpcFd` unlinks an existing file at a Unix path only if it is a socket, and
//!   all sockets this layer creates or accepts are close-on-exec (they do not leak into programs
//!   the application runs; `OS_SpawnChild` hands the listening socket over through `dup2`,
//!   which clears the flag on fd 0);
//! - `OS_Read`/`OS_Write` retry on EINTR; `OS_Write` uses `send(MSG_NOSIGNAL)` on sockets;
//! - `OS_Accept`: allow-list (FCGI_WEB_SERVER_ADDRS syntax) entries may be IPv4, IPv6 or CIDR
//!   and are trimmed; IPv6 peers are checked and get TCP_NODELAY; when a list is given,
//!   non-TCP peers (Unix sockets) are refused as the FastCGI specification says; a blocked
//!   accept also wakes on `OS_ShutdownPending`/`FCGX_ShutdownPending` from another thread;
//! - `OS_SpawnChild` keeps the listening socket when it already is fd 0 (libfcgi closed it);
//! - global state is thread-safe; `OS_CloseRead` before `OS_LibInit` does not crash.

use crate::ffi::panic::{guard, guard_or};
use fcgi_runtime::acl::AllowList;
use fcgi_runtime::addr::{self, parse_port, ListenAddr, Peer};
use fcgi_runtime::sys;
use parking_lot::Mutex;
use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{IntoRawFd, RawFd};
use std::os::raw::{c_char, c_int, c_void};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

#[path = "os_async.rs"]
mod os_async;
pub use os_async::{OS_AsyncRead, OS_AsyncReadStdin, OS_AsyncWrite, OS_DoIo};

/// fcgios.h's `ClientData`.
pub type ClientData = *mut c_void;
/// fcgios.h's `OS_AsyncProc`: called with the client data and the operation's result.
pub type OS_AsyncProc = Option<unsafe extern "C" fn(ClientData, c_int)>;

/// libfcgi's default for both LIBFCGI_* poll timeouts, in milliseconds.
const DEFAULT_POLL_TIMEOUT_MS: c_int = 2000;
/// How long `OS_Close(fd, 1)` waits for each chunk while draining (LIBFCGI_OS_CLOSE_POLL_TIMEOUT).
static CLOSE_POLL_TIMEOUT: AtomicI32 = AtomicI32::new(DEFAULT_POLL_TIMEOUT_MS);
/// How long `OS_Accept` waits for a Unix-socket client's first byte
/// (LIBFCGI_IS_AF_UNIX_KEEPER_POLL_TIMEOUT).
static KEEPER_POLL_TIMEOUT: AtomicI32 = AtomicI32::new(DEFAULT_POLL_TIMEOUT_MS);
/// OS_LibInit's flag.
static INITIALIZED: Mutex<bool> = Mutex::new(false);

pub(crate) use sys::{errno, set_errno};

/// The errno an `io::Error` stands for (EINVAL for errors made up by Rust code).
fn errno_of(e: &io::Error) -> c_int {
    e.raw_os_error().unwrap_or(libc::EINVAL)
}

/// A C result: the value, or -1 with errno set from the error.
fn c_result<T: Into<c_int>>(r: io::Result<T>) -> c_int {
    match r {
        Ok(v) => v.into(),
        Err(e) => {
            set_errno(errno_of(&e));
            -1
        }
    }
}

/// Logs to the library log (stderr by default) without disturbing errno.
fn report(args: std::fmt::Arguments<'_>) {
    let e = errno();
    fcgi_runtime::log::log(fcgi_runtime::log::Level::Error, args);
    set_errno(e);
}

/// C's atoi: optional blanks and sign, then digits; anything else ends the number (0 if none).
fn atoi(s: &str) -> c_int {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = (v * 10 + i64::from(b - b'0')).min(i64::from(c_int::MAX) + 1);
    }
    let v = if neg { -v } else { v };
    v.clamp(i64::from(c_int::MIN), i64::from(c_int::MAX)) as c_int
}

/// One environment variable as a millisecond timeout (atoi, as libfcgi), or the default.
fn env_timeout(name: &str) -> c_int {
    std::env::var(name).map_or(DEFAULT_POLL_TIMEOUT_MS, |v| atoi(&v))
}

// ---------------------------------------------------------------------------------------------
// Initialisation and shutdown

/// Initialises the layer; `stdioFds` is ignored, as in libfcgi. Idempotent. The first call
/// reads LIBFCGI_OS_CLOSE_POLL_TIMEOUT and LIBFCGI_IS_AF_UNIX_KEEPER_POLL_TIMEOUT (milliseconds,
/// default 2000 each) and installs the signal handlers (SIGTERM and SIGUSR1 request shutdown,
/// SIGPIPE gets a no-op handler; each only where the disposition is the default). Returns 0.
#[no_mangle]
pub unsafe extern "C" fn OS_LibInit(stdioFds: *mut c_int) -> c_int {
    let _ = stdioFds;
    guard("OS_LibInit", || {
        let mut init = INITIALIZED.lock();
        if !*init {
            CLOSE_POLL_TIMEOUT.store(
                env_timeout("LIBFCGI_OS_CLOSE_POLL_TIMEOUT"),
                Ordering::Relaxed,
            );
            KEEPER_POLL_TIMEOUT.store(
                env_timeout("LIBFCGI_IS_AF_UNIX_KEEPER_POLL_TIMEOUT"),
                Ordering::Relaxed,
            );
            fcgi_runtime::signals::install();
            *init = true;
        }
        0
    })
}

/// Frees the asynchronous I/O table (pending operations are dropped) and clears the
/// initialised flag. Signal handlers stay installed, as in libfcgi.
#[no_mangle]
pub extern "C" fn OS_LibShutdown() {
    guard("OS_LibShutdown", || {
        let mut init = INITIALIZED.lock();
        os_async::clear();
        *init = false;
    })
}

/// Requests shutdown: `OS_Accept` (and the runtime's accepts, FCGX_Accept_r included) fail
/// from now on, and those blocked wake at once. Async-signal-safe.
#[no_mangle]
pub extern "C" fn OS_ShutdownPending() {
    // No guard: terminate() cannot panic (atomics and write(2)), and a guard is not
    // async-signal-safe.
    fcgi_runtime::terminate();
}

// ---------------------------------------------------------------------------------------------
// Addresses, listening and connecting

/// Parses the address syntax of the module documentation. `Err` is a message.
fn parse_address(s: &str) -> Result<ListenAddr, String> {
    if s.is_empty() {
        return Err("empty address".to_string());
    }
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:") {
            if let (Ok(ip), Some(port)) = (host.parse::<Ipv6Addr>(), parse_port(port)) {
                return Ok(ListenAddr::Tcp(SocketAddr::new(IpAddr::V6(ip), port)));
            }
        }
    } else if let Some((_, port)) = s.split_once(':') {
        if parse_port(port).is_some() {
            // host:port with a valid port: the runtime's parser resolves the host ("" and "*"
            // mean 0.0.0.0).
            return addr::parse_listen(s).map_err(|e| e.to_string());
        }
    }
    if s.len() >= 108 {
        return Err(format!(
            "socket path '{s}' is too long ({} bytes, at most 107)",
            s.len()
        ));
    }
    Ok(ListenAddr::Unix(PathBuf::from(s)))
}

/// The address argument as a Rust string (invalid UTF-8 is replaced).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn c_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the function's contract.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Creates a listening socket for `bindPath` (see the module documentation for the syntax)
/// with the given backlog, and returns its descriptor (close-on-exec; hand it to a child with
/// `OS_SpawnChild` or `dup2`).
///
/// On failure it writes the reason to stderr (the library log) and returns -1 with errno set
/// (ENAMETOOLONG or EINVAL for a bad address, else the failing call's). libfcgi instead
/// `exit()`s on most failures (with errno after a failed bind or listen). cgi-fcgi's only use,
/// `-start`, does `exit(errno)` itself when this returns -1, so it ends with the same status
/// and a similar message; a program that can recover from a taken port is no longer killed.
#[no_mangle]
pub unsafe extern "C" fn OS_CreateLocalIpcFd(bindPath: *const c_char, backlog: c_int) -> c_int {
    guard("OS_CreateLocalIpcFd", || {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let Some(s) = (unsafe { c_str(bindPath) }) else {
            set_errno(libc::EINVAL);
            return -1;
        };
        let parsed = match parse_address(&s) {
            Ok(a) => a,
            Err(e) => {
                let code = if e.contains("too long") {
                    libc::ENAMETOOLONG
                } else {
                    libc::EINVAL
                };
                report(format_args!("OS_CreateLocalIpcFd('{s}'): {e}"));
                set_errno(code);
                return -1;
            }
        };
        // The runtime's listener, with libfcgi's defaults: no SO_REUSEPORT, and a Unix
        // socket's mode from the umask unless configured.
        match addr::listen_steps(&parsed, backlog, false, None) {
            Ok(fd) => fd.into_raw_fd(),
            Err((what, e)) => {
                report(format_args!("OS_CreateLocalIpcFd('{s}'): {what}: {e}"));
                set_errno(errno_of(&e));
                -1
            }
        }
    })
}

/// Connects to `bindPath` (the syntax of the module documentation; an empty, `*` or
/// unspecified host means the loopback address). Returns the connected descriptor (blocking,
/// close-on-exec, TCP_NODELAY for TCP), or -1 with errno set (ECONNREFUSED, ENOENT, ...: no
/// message, cgi-fcgi then starts the application or reports the failure itself).
#[no_mangle]
pub unsafe extern "C" fn OS_FcgiConnect(bindPath: *mut c_char) -> c_int {
    guard("OS_FcgiConnect", || {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let Some(s) = (unsafe { c_str(bindPath) }) else {
            set_errno(libc::EINVAL);
            return -1;
        };
        let parsed = match parse_address(&s) {
            Ok(a) => a,
            Err(e) => {
                report(format_args!("OS_FcgiConnect('{s}'): {e}"));
                set_errno(libc::EINVAL);
                return -1;
            }
        };
        let r = match parsed {
            ListenAddr::Tcp(mut sa) => {
                if sa.ip().is_unspecified() {
                    sa.set_ip(match sa.ip() {
                        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    });
                }
                TcpStream::connect(sa).map(|s| {
                    let _ = s.set_nodelay(true);
                    s.into_raw_fd()
                })
            }
            ListenAddr::Unix(p) => UnixStream::connect(p).map(IntoRawFd::into_raw_fd),
        };
        r.unwrap_or_else(|e| {
            set_errno(errno_of(&e));
            -1
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Reading, writing, closing

/// One read(2) of at most `len` bytes (capped at INT_MAX), retried on EINTR. Returns the
/// count, or -1 with errno as read(2) set it.
///
/// # Safety
/// `buf` is valid for writes of `len` bytes.
pub(crate) unsafe fn read_fd(fd: c_int, buf: *mut u8, len: usize) -> c_int {
    let len = len.min(c_int::MAX as usize);
    // SAFETY: per the function's contract; `len` only shrank.
    let r = unsafe { sys::read_raw(fd, buf, len) };
    // The count is at most `len`, which fits a c_int.
    c_result(r.map(|n| n as c_int))
}

/// One send(2) with MSG_NOSIGNAL, or write(2) when `fd` is not a socket, of at most `len`
/// bytes (capped at INT_MAX), retried on EINTR. Returns the count, or -1 with errno as the
/// failing call set it.
///
/// # Safety
/// `buf` is valid for reads of `len` bytes.
pub(crate) unsafe fn write_fd(fd: c_int, buf: *const u8, len: usize) -> c_int {
    let len = len.min(c_int::MAX as usize);
    // SAFETY: per the function's contract; `len` only shrank.
    let r = unsafe { sys::send_raw(fd, buf, len) };
    c_result(r.map(|n| n as c_int))
}

/// Reads at most `len` bytes: one read(2), retried when a signal interrupts it (libfcgi is not,
/// which turns a signal into a stream error). Returns the count, 0 at end of file, or -1.
#[no_mangle]
pub unsafe extern "C" fn OS_Read(fd: c_int, buf: *mut c_char, len: usize) -> c_int {
    // SAFETY: the caller passes a buffer of `len` writable bytes.
    guard("OS_Read", || unsafe { read_fd(fd, buf.cast(), len) })
}

/// Writes at most `len` bytes: one write, retried when a signal interrupts it; on a socket it
/// is `send(MSG_NOSIGNAL)`, so a vanished peer gives -1/EPIPE instead of SIGPIPE.
#[no_mangle]
pub unsafe extern "C" fn OS_Write(fd: c_int, buf: *mut c_char, len: usize) -> c_int {
    // SAFETY: the caller passes a buffer of `len` readable bytes.
    guard("OS_Write", || unsafe {
        write_fd(fd, buf.cast_const().cast(), len)
    })
}

/// Reads and discards what `fd` receives until end of file, an error, or `timeout_ms` without
/// data (negative: no limit). Returns the number of bytes discarded.
fn drain(fd: c_int, timeout_ms: c_int) -> usize {
    let mut total = 0;
    let mut trash = [0u8; 1024];
    loop {
        match sys::poll_one(fd, libc::POLLIN, timeout_ms) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // An error, or the time ran out (no event).
            Err(_) | Ok(0) => return total,
            Ok(_) => {}
        }
        // SAFETY: `trash` is a local buffer of its length.
        let n = unsafe { read_fd(fd, trash.as_mut_ptr(), trash.len()) };
        if n <= 0 {
            return total;
        }
        total += n as usize;
    }
}

/// Closes `fd` after cancelling its asynchronous operations. With `shutdown` non-zero it
/// first half-closes the socket (`shutdown(SHUT_WR)`: the peer sees end of file) and, if that
/// worked, reads and discards until the peer closes, an error, or LIBFCGI_OS_CLOSE_POLL_TIMEOUT
/// ms (default 2000) pass without data, so unread input does not turn the close into a reset.
/// Returns close()'s result; fd -1 returns 0.
#[no_mangle]
pub extern "C" fn OS_Close(fd: c_int, shutdown: c_int) -> c_int {
    guard("OS_Close", || {
        if fd == -1 {
            return 0;
        }
        os_async::cancel_fd(fd);
        if shutdown != 0 && sys::shutdown(fd, libc::SHUT_WR).is_ok() {
            drain(fd, CLOSE_POLL_TIMEOUT.load(Ordering::Relaxed));
        }
        c_result(sys::close(fd).map(|()| 0))
    })
}

/// The same as [`OS_Close`].
#[no_mangle]
pub extern "C" fn OS_IpcClose(ipcFd: c_int, shutdown: c_int) -> c_int {
    OS_Close(ipcFd, shutdown)
}

/// Cancels a pending asynchronous read of `fd` and shuts down its reading side. Returns
/// shutdown()'s result.
#[no_mangle]
pub extern "C" fn OS_CloseRead(fd: c_int) -> c_int {
    guard("OS_CloseRead", || {
        os_async::cancel(fd, os_async::Dir::Read);
        c_result(sys::shutdown(fd, libc::SHUT_RD).map(|()| 0))
    })
}

/// Adds `flags` to the file status flags of `fd` (F_GETFL, then F_SETFL). On failure it logs
/// the error and returns with errno set; libfcgi `exit()`s.
#[no_mangle]
pub extern "C" fn OS_SetFlags(fd: c_int, flags: c_int) {
    guard("OS_SetFlags", || {
        if let Err(e) = sys::add_status_flags(fd, flags) {
            report(format_args!("OS_SetFlags({fd}, {flags:#x}): {e}"));
        }
    })
}

/// 1 if `sock` is a listening socket (getpeername fails with ENOTCONN), else 0.
#[no_mangle]
pub extern "C" fn OS_IsFcgi(sock: c_int) -> c_int {
    // Failure value: a yes/no answer: a panic answers no.
    guard_or("OS_IsFcgi", 0, || {
        set_errno(0);
        addr::fd_is_listening_socket(sock) as c_int
    })
}

// ---------------------------------------------------------------------------------------------
// Spawning

/// Starts `execPath` as a FastCGI application: fork; the child gets `listenFd` as fd 0 (the
/// FastCGI listening socket), has fds 1 and 2 closed, and runs `execl(execPath, execPath,
/// NULL)` with the current environment, or `_exit(errno)`s if that fails. The parent returns 0,
/// or -1 with errno set if fork fails (libfcgi `exit()`s) or `execPath` is NULL. The child is
/// not waited for.
#[no_mangle]
pub unsafe extern "C" fn OS_SpawnChild(execPath: *mut c_char, listenFd: c_int) -> c_int {
    guard("OS_SpawnChild", || {
        if execPath.is_null() {
            set_errno(libc::EINVAL);
            return -1;
        }
        // SAFETY: checked non-NULL above; the caller passes a NUL-terminated path.
        let path = unsafe { CStr::from_ptr(execPath) };
        c_result(sys::spawn_on_fd0(path, listenFd).map(|_| 0))
    })
}

// ---------------------------------------------------------------------------------------------
// Accepting

/// The allow-list of the last `webServerAddrs` string seen, so each accept does not re-parse
/// (and re-log) it.
static ALLOW_CACHE: Mutex<Option<(String, Arc<AllowList>)>> = Mutex::new(None);

/// The parsed allow-list for `list`; bad entries are logged the first time.
fn allow_list(list: &str) -> Arc<AllowList> {
    let mut c = ALLOW_CACHE.lock();
    if let Some((s, l)) = c.as_ref() {
        if s == list {
            return l.clone();
        }
    }
    let (parsed, bad) = AllowList::parse(list);
    for b in bad {
        report(format_args!(
            "OS_Accept: ignoring invalid address '{b}' in the allowed addresses"
        ));
    }
    let parsed = Arc::new(parsed);
    *c = Some((list.to_string(), parsed.clone()));
    parsed
}

/// This process's eventfd that `fcgi_runtime::terminate` writes to, waking a blocked
/// `OS_Accept`; -1 if none could be made. A forked child makes its own.
fn accept_wake_fd() -> RawFd {
    static WAKE: Mutex<Option<(u32, RawFd)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut w = WAKE.lock();
    if let Some((p, fd)) = *w {
        if p == pid {
            return fd;
        }
    }
    let Ok(efd) = sys::EventFd::new() else {
        return -1;
    };
    // Never closed: the runtime keeps writing to it on shutdown.
    let fd = efd.into_raw_fd();
    fcgi_runtime::register_wake_fd(fd);
    *w = Some((pid, fd));
    fd
}

/// accept() errors after which libfcgi (and this) accepts again: the failed connection's own.
fn is_reasonable_accept_errno(e: c_int) -> bool {
    matches!(
        e,
        libc::EPROTO
            | libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::ETIMEDOUT
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
    )
}

/// Waits for and accepts one connection (close-on-exec, blocking). `Err` is the errno to
/// report: EINTR when a signal interrupted and `fail_on_intr` is set, or shutdown is pending.
fn accept_one(listen: c_int, fail_on_intr: bool) -> Result<RawFd, c_int> {
    let wake = accept_wake_fd();
    loop {
        if fcgi_runtime::in_shutdown() {
            return Err(libc::EINTR);
        }
        // A negative `wake` (no eventfd) is ignored by poll.
        let (listen_ev, wake_ev) =
            match sys::poll_two((listen, libc::POLLIN), (wake, libc::POLLIN), -1) {
                Ok(r) => r,
                Err(e) => {
                    let e = errno_of(&e);
                    if e == libc::EINTR && !fail_on_intr {
                        continue;
                    }
                    return Err(e);
                }
            };
        if wake_ev != 0 {
            if fcgi_runtime::in_shutdown() {
                return Err(libc::EINTR);
            }
            // A stale wake-up (the flag was cleared since): consume it (non-blocking eventfd).
            let mut b = [0u8; 8];
            let _ = sys::read(wake, &mut b);
        }
        if listen_ev == 0 {
            continue;
        }
        let e = match sys::accept_blocking(listen) {
            Ok(fd) => return Ok(fd.into_raw_fd()),
            Err(e) => errno_of(&e),
        };
        match e {
            libc::EINTR if !fail_on_intr => {}
            // Another process took the connection, or the listener is non-blocking.
            libc::EAGAIN => {}
            _ if is_reasonable_accept_errno(e) => {}
            _ => return Err(e),
        }
    }
}

/// Whether a Unix-socket client sends something (or closes) within the keeper timeout;
/// libfcgi drops connections that stay silent that long.
fn unix_client_speaks(fd: RawFd) -> bool {
    let t = KEEPER_POLL_TIMEOUT.load(Ordering::Relaxed);
    loop {
        match sys::poll_one(fd, libc::POLLIN, t) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && !fcgi_runtime::in_shutdown() => {
                continue
            }
            Err(_) => return false,
            Ok(revents) => return revents & libc::POLLIN != 0,
        }
    }
}

/// Accepts a connection on `listen_sock`, blocking; returns its descriptor (close-on-exec), or
/// -1 with errno set.
///
/// As libfcgi: accept is retried after EINTR unless `fail_on_intr` is set or shutdown is
/// pending (`OS_ShutdownPending`, SIGTERM, SIGUSR1: then -1 at once, errno EINTR), and after
/// the errors of a failed incoming connection (EPROTO, ECONNABORTED, ECONNRESET, ETIMEDOUT,
/// EHOSTUNREACH, ENETUNREACH); other errors return -1. TCP peers get TCP_NODELAY. If
/// `webServerAddrs` is a non-empty comma-separated list (FCGI_WEB_SERVER_ADDRS: IPv4 or IPv6
/// addresses, CIDR allowed), connections from other addresses, and from anything but TCP, are
/// closed and the next one is awaited. A Unix-socket client that sends nothing within
/// LIBFCGI_IS_AF_UNIX_KEEPER_POLL_TIMEOUT ms (default 2000) is dropped, as libfcgi does (kept:
/// programs that call this directly may count on never getting a silent connection).
#[no_mangle]
pub unsafe extern "C" fn OS_Accept(
    listen_sock: c_int,
    fail_on_intr: c_int,
    webServerAddrs: *const c_char,
) -> c_int {
    guard("OS_Accept", || {
        if listen_sock < 0 {
            set_errno(libc::EBADF);
            return -1;
        }
        // Not a listening socket (a pipe, a file, a connected socket): fail as accept(2)
        // would, instead of polling for connections that never come.
        if let Err(e) = fcgi_runtime::sys::check_listening(listen_sock) {
            set_errno(e.raw_os_error().unwrap_or(libc::EINVAL));
            return -1;
        }
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let list = unsafe { c_str(webServerAddrs) }
            .filter(|s| !s.is_empty())
            .map(|s| allow_list(&s));
        loop {
            let fd = match accept_one(listen_sock, fail_on_intr != 0) {
                Ok(fd) => fd,
                Err(e) => {
                    set_errno(e);
                    return -1;
                }
            };
            let keep = match addr::peer_of(fd) {
                peer @ Peer::Tcp(_) => {
                    fcgi_runtime::sys::set_nodelay(fd);
                    list.as_ref().is_none_or(|l| l.allows(&peer))
                }
                Peer::Unix => list.is_none() && unix_client_speaks(fd),
                Peer::Other => list.is_none(),
            };
            if keep {
                return fd;
            }
            // The refused connection is ours to close.
            let _ = sys::close(fd);
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::os_async::tests::TABLE_LOCK;
    use super::*;
    use std::ffi::CString;
    use std::io::{Read, Write};
    use std::mem;
    use std::net::{Shutdown, TcpListener};
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::os::unix::net::UnixListener;
    use std::os::unix::thread::JoinHandleExt;
    use std::process::{Command, Stdio};
    use std::ptr;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// An owned raw descriptor, closed on drop.
    pub(crate) struct Fd(pub c_int);

    impl Drop for Fd {
        fn drop(&mut self) {
            if self.0 >= 0 {
                // SAFETY: the test owns this descriptor.
                unsafe { libc::close(self.0) };
            }
        }
    }

    impl Fd {
        /// Gives the descriptor up (someone else closes it).
        fn release(mut self) -> c_int {
            mem::replace(&mut self.0, -1)
        }
    }

    pub(crate) fn pipe() -> (Fd, Fd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a writable array of two c_ints.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        (Fd(fds[0]), Fd(fds[1]))
    }

    pub(crate) fn socketpair() -> (Fd, Fd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a writable array of two c_ints.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0);
        (Fd(fds[0]), Fd(fds[1]))
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fcgi-os-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn cstr(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    fn create(s: &str, backlog: c_int) -> c_int {
        let c = cstr(s);
        // SAFETY: a NUL-terminated string.
        unsafe { OS_CreateLocalIpcFd(c.as_ptr(), backlog) }
    }

    fn connect(s: &str) -> c_int {
        let c = cstr(s);
        // SAFETY: a NUL-terminated string; OS_FcgiConnect does not write to it.
        unsafe { OS_FcgiConnect(c.as_ptr().cast_mut()) }
    }

    fn os_write(fd: c_int, data: &[u8]) -> c_int {
        // SAFETY: `data` is readable for its length; OS_Write does not write to it.
        unsafe { OS_Write(fd, data.as_ptr().cast_mut().cast(), data.len()) }
    }

    fn os_read(fd: c_int, buf: &mut [u8]) -> c_int {
        // SAFETY: `buf` is writable for its length.
        unsafe { OS_Read(fd, buf.as_mut_ptr().cast(), buf.len()) }
    }

    fn accept(fd: c_int, fail_on_intr: c_int, list: Option<&str>) -> (c_int, c_int) {
        let l = list.map(cstr);
        // SAFETY: NULL or a NUL-terminated string.
        let r = unsafe {
            OS_Accept(
                fd,
                fail_on_intr,
                l.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
            )
        };
        (r, errno())
    }

    fn cloexec(fd: c_int) -> bool {
        // SAFETY: fcntl on a descriptor.
        unsafe { libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
    }

    fn int_opt(fd: c_int, level: c_int, name: c_int) -> c_int {
        let mut v: c_int = -1;
        let mut len = mem::size_of::<c_int>() as libc::socklen_t;
        // SAFETY: `v`/`len` describe a writable c_int.
        let r =
            unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut c_int).cast(), &mut len) };
        assert_eq!(r, 0, "getsockopt: {}", io::Error::last_os_error());
        v
    }

    /// Creates a TCP listener with `form(port)` on some free port; returns (fd, port).
    fn create_on_free_port(form: impl Fn(u16) -> String, v6: bool) -> (c_int, u16) {
        for _ in 0..50 {
            let probe = if v6 {
                std::net::TcpListener::bind("[::]:0")
            } else {
                std::net::TcpListener::bind("0.0.0.0:0")
            }
            .unwrap();
            let port = probe.local_addr().unwrap().port();
            drop(probe);
            let fd = create(&form(port), 16);
            if fd >= 0 {
                return (fd, port);
            }
        }
        panic!("no free port for {}", form(0));
    }

    /// Connects with OS_FcgiConnect(`to`), accepts on `l`, and sends a byte through.
    fn check_connect(l: &TcpListener, to: &str) {
        let c = connect(to);
        assert!(c >= 0, "connect {to}: {}", io::Error::last_os_error());
        assert!(cloexec(c));
        let (mut s, _) = l.accept().unwrap();
        assert_eq!(os_write(c, b"x"), 1);
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
        assert_eq!(OS_Close(c, 0), 0);
    }

    /// SO_RCVTIMEO, so a read that should not block fails instead of hanging.
    fn set_read_timeout(fd: c_int, secs: i64) {
        let tv = libc::timeval {
            tv_sec: secs as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: a pointer to a live timeval and its size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                mem::size_of_val(&tv) as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
    }

    fn ipv6_available() -> bool {
        std::net::TcpListener::bind("[::1]:0").is_ok()
    }

    #[test]
    fn address_syntax() {
        let tcp = |s: &str| match parse_address(s) {
            Ok(ListenAddr::Tcp(a)) => a,
            other => panic!("{s}: {other:?}"),
        };
        let unix = |s: &str| match parse_address(s) {
            Ok(ListenAddr::Unix(p)) => p,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(tcp(":9000"), "0.0.0.0:9000".parse().unwrap());
        assert_eq!(tcp("*:9000"), "0.0.0.0:9000".parse().unwrap());
        assert_eq!(tcp("127.0.0.1:9000"), "127.0.0.1:9000".parse().unwrap());
        assert!(tcp("localhost:9000").ip().is_loopback());
        assert_eq!(tcp("[::1]:9000"), "[::1]:9000".parse().unwrap());
        assert_eq!(tcp("[::]:65535"), "[::]:65535".parse().unwrap());
        // libfcgi: no colon, or no valid port after it, means a Unix path.
        assert_eq!(unix("9000"), PathBuf::from("9000"));
        assert_eq!(unix("/x/foo:bar"), PathBuf::from("/x/foo:bar"));
        assert_eq!(unix("/x/a:0"), PathBuf::from("/x/a:0"));
        assert_eq!(unix("h:70000"), PathBuf::from("h:70000"));
        assert_eq!(unix("h:9000x"), PathBuf::from("h:9000x"));
        assert_eq!(unix("[::1]:0"), PathBuf::from("[::1]:0"));
        assert_eq!(unix("[::1]"), PathBuf::from("[::1]"));
        assert_eq!(unix("[nope]:80"), PathBuf::from("[nope]:80"));
        assert!(parse_address("").is_err());
        assert!(parse_address(&format!("/{}", "a".repeat(107))).is_err());
        assert!(parse_address(&format!("/{}", "a".repeat(106))).is_ok());
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("123"), 123);
        assert_eq!(atoi("  45xyz"), 45);
        assert_eq!(atoi("-7"), -7);
        assert_eq!(atoi("+8"), 8);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi(""), 0);
        assert_eq!(atoi("99999999999"), c_int::MAX);
        assert_eq!(atoi("-99999999999"), c_int::MIN);
    }

    #[test]
    fn create_and_connect_tcp_v4() {
        for (form, connect_form, expect_ip) in [
            (":", ":", Ipv4Addr::UNSPECIFIED),
            ("*:", "*:", Ipv4Addr::UNSPECIFIED),
            ("127.0.0.1:", "127.0.0.1:", Ipv4Addr::LOCALHOST),
            ("localhost:", "localhost:", Ipv4Addr::LOCALHOST),
        ] {
            let (fd, port) = create_on_free_port(|p| format!("{form}{p}"), false);
            assert_eq!(OS_IsFcgi(fd), 1, "{form}");
            assert!(cloexec(fd));
            assert_eq!(int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR), 1);
            // SAFETY: the listener takes over the descriptor.
            let l = unsafe { TcpListener::from_raw_fd(fd) };
            let local = l.local_addr().unwrap();
            assert_eq!(
                local,
                SocketAddr::new(IpAddr::V4(expect_ip), port),
                "{form}"
            );
            check_connect(&l, &format!("{connect_form}{port}"));
        }
    }

    #[test]
    fn create_and_connect_tcp_v6() {
        if !ipv6_available() {
            eprintln!("no IPv6 loopback, skipping");
            return;
        }
        let (fd, port) = create_on_free_port(|p| format!("[::1]:{p}"), true);
        // SAFETY: the listener takes over the descriptor.
        let l = unsafe { TcpListener::from_raw_fd(fd) };
        assert_eq!(
            l.local_addr().unwrap(),
            format!("[::1]:{port}").parse().unwrap()
        );
        check_connect(&l, &format!("[::1]:{port}"));

        // [::] is dual-stack: IPv4 clients reach it too; connecting to [::] means ::1.
        let (fd, port) = create_on_free_port(|p| format!("[::]:{p}"), true);
        assert_eq!(int_opt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY), 0);
        // SAFETY: the listener takes over the descriptor.
        let l = unsafe { TcpListener::from_raw_fd(fd) };
        check_connect(&l, &format!("[::]:{port}"));
        check_connect(&l, &format!("127.0.0.1:{port}"));
    }

    #[test]
    fn create_and_connect_unix() {
        let dir = temp_dir("unix");
        let path = dir.join("a.sock");
        // A stale socket file is replaced.
        drop(UnixListener::bind(&path).unwrap());
        let p = path.to_str().unwrap();
        let fd = create(p, 4);
        assert!(fd >= 0, "{}", io::Error::last_os_error());
        assert_eq!(OS_IsFcgi(fd), 1);
        assert!(cloexec(fd));
        // SAFETY: the listener takes over the descriptor.
        let l = unsafe { UnixListener::from_raw_fd(fd) };
        let c = connect(p);
        assert!(c >= 0);
        let (mut s, _) = l.accept().unwrap();
        assert_eq!(os_write(c, b"unix"), 4);
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"unix");
        assert_eq!(OS_Close(c, 0), 0);

        // A colon not followed by a valid port is part of a path.
        for name in ["h:notanumber", "x:0", "y:70000"] {
            let path = dir.join(name);
            let p = path.to_str().unwrap();
            let fd = create(p, 4);
            assert!(fd >= 0, "{name}: {}", io::Error::last_os_error());
            assert!(std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_socket());
            let c = connect(p);
            assert!(c >= 0, "{name}");
            assert_eq!(OS_Close(c, 0), 0);
            assert_eq!(OS_Close(fd, 0), 0);
        }

        // A regular file is not deleted: the call fails and the process lives on.
        let plain = dir.join("plain");
        std::fs::write(&plain, b"keep").unwrap();
        assert_eq!(create(plain.to_str().unwrap(), 4), -1);
        assert_eq!(errno(), libc::EADDRINUSE);
        assert_eq!(std::fs::read(&plain).unwrap(), b"keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn create_failures_return_minus_one() {
        // A port already listened on: libfcgi exit()s here.
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        assert_eq!(create(&format!("127.0.0.1:{port}"), 5), -1);
        assert_eq!(errno(), libc::EADDRINUSE);
        // A path longer than sun_path.
        assert_eq!(create(&format!("/tmp/{}", "l".repeat(200)), 5), -1);
        assert_eq!(errno(), libc::ENAMETOOLONG);
        // A directory that does not exist.
        assert_eq!(create("/nonexistent-fcgi-dir/s.sock", 5), -1);
        assert_eq!(errno(), libc::ENOENT);
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { OS_CreateLocalIpcFd(ptr::null(), 5) }, -1);
        assert_eq!(errno(), libc::EINVAL);
    }

    #[test]
    fn connect_failures() {
        // A bound socket that does not listen refuses connections.
        let s = sys::socket(libc::AF_INET, libc::SOCK_STREAM).unwrap();
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        sys::bind(s.as_raw_fd(), &sys::SockAddr::from_std(&any_port)).unwrap();
        let port = sys::local_addr(s.as_raw_fd())
            .unwrap()
            .to_std()
            .unwrap()
            .port();
        assert_eq!(connect(&format!("127.0.0.1:{port}")), -1);
        assert_eq!(errno(), libc::ECONNREFUSED);
        assert_eq!(connect("/nonexistent-fcgi-dir/s.sock"), -1);
        assert_eq!(errno(), libc::ENOENT);
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { OS_FcgiConnect(ptr::null_mut()) }, -1);
    }

    #[test]
    fn read_write_round_trip() {
        let (a, b) = socketpair();
        assert_eq!(os_write(a.0, b"hello"), 5);
        let mut buf = [0u8; 16];
        assert_eq!(os_read(b.0, &mut buf), 5);
        assert_eq!(&buf[..5], b"hello");
        drop(a);
        assert_eq!(os_read(b.0, &mut buf), 0);
        // The peer is gone: EPIPE (send with MSG_NOSIGNAL; SIGPIPE is tested in a child).
        assert_eq!(os_write(b.0, b"x"), -1);
        assert_eq!(errno(), libc::EPIPE);

        let (r, w) = pipe();
        assert_eq!(os_write(w.0, b"pipe"), 4);
        assert_eq!(os_read(r.0, &mut buf), 4);
        assert_eq!(&buf[..4], b"pipe");
        assert_eq!(os_read(-1, &mut buf), -1);
        assert_eq!(errno(), libc::EBADF);
    }

    #[test]
    fn is_fcgi_only_for_listening_sockets() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(OS_IsFcgi(l.as_raw_fd()), 1);
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(OS_IsFcgi(c.as_raw_fd()), 0);
        assert_eq!(OS_IsFcgi(s.as_raw_fd()), 0);
        let (r, w) = pipe();
        assert_eq!(OS_IsFcgi(r.0), 0);
        assert_eq!(OS_IsFcgi(w.0), 0);
        assert_eq!(OS_IsFcgi(-1), 0);
    }

    #[test]
    fn set_flags_adds_and_survives_errors() {
        let (r, _w) = pipe();
        // SAFETY: fcntl on our descriptor.
        let before = unsafe { libc::fcntl(r.0, libc::F_GETFL) };
        assert_eq!(before & libc::O_NONBLOCK, 0);
        OS_SetFlags(r.0, libc::O_NONBLOCK);
        // SAFETY: as above.
        let after = unsafe { libc::fcntl(r.0, libc::F_GETFL) };
        assert_eq!(after, before | libc::O_NONBLOCK);
        // libfcgi exit()s here.
        OS_SetFlags(-1, libc::O_NONBLOCK);
        assert_eq!(errno(), libc::EBADF);
    }

    #[test]
    fn drain_reads_until_eof() {
        let (a, b) = socketpair();
        let writer = std::thread::spawn(move || {
            let chunk = [7u8; 1000];
            for _ in 0..100 {
                assert_eq!(os_write(b.0, &chunk), 1000);
            }
            drop(b);
        });
        assert_eq!(drain(a.0, 60_000), 100_000);
        writer.join().unwrap();
    }

    #[test]
    fn close_half_closes_then_drains() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let (srv, _) = l.accept().unwrap();
        let fd = srv.into_raw_fd();
        // Input the application never read.
        peer.write_all(&[b'a'; 5000]).unwrap();
        let closer = std::thread::spawn(move || OS_Close(fd, 1));
        let mut b = [0u8; 16];
        // shutdown(SHUT_WR): the peer sees end of file while the socket is still open.
        assert_eq!(peer.read(&mut b).unwrap(), 0);
        // More input, then the peer's own end of file: the drain consumes it all and closes.
        peer.write_all(&[b'b'; 5000]).unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        assert_eq!(closer.join().unwrap(), 0);
        // Nothing was left unread, so the close was not a reset.
        assert_eq!(peer.read(&mut b).unwrap(), 0);
    }

    #[test]
    fn close_cancels_async_and_handles_minus_one() {
        let _g = TABLE_LOCK.lock();
        unsafe extern "C" fn never(_: ClientData, _: c_int) {
            panic!("cancelled operation ran");
        }
        let (a, _b) = socketpair();
        let mut buf = [0u8; 4];
        // SAFETY: the operations are cancelled before `buf` goes away.
        unsafe {
            assert_eq!(
                OS_AsyncRead(
                    a.0,
                    0,
                    buf.as_mut_ptr().cast(),
                    4,
                    Some(never),
                    ptr::null_mut()
                ),
                0
            );
            assert_eq!(
                OS_AsyncWrite(
                    a.0,
                    0,
                    buf.as_mut_ptr().cast(),
                    4,
                    Some(never),
                    ptr::null_mut()
                ),
                0
            );
        }
        assert_eq!(os_async::pending(), 2);
        // OS_CloseRead cancels the read only (and is NULL-safe: no table needed).
        assert_eq!(OS_CloseRead(a.0), 0);
        assert_eq!(os_async::pending(), 1);
        assert_eq!(OS_Close(a.release(), 0), 0);
        assert_eq!(os_async::pending(), 0);
        assert_eq!(OS_Close(-1, 1), 0);
        assert_eq!(OS_IpcClose(-1, 0), 0);
        assert_eq!(OS_CloseRead(-1), -1);
    }

    #[test]
    fn lib_init_is_idempotent_and_shutdown_frees_the_table() {
        let _g = TABLE_LOCK.lock();
        // SAFETY: stdioFds is ignored.
        assert_eq!(unsafe { OS_LibInit(ptr::null_mut()) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { OS_LibInit(ptr::null_mut()) }, 0);
        assert!(*INITIALIZED.lock());
        unsafe extern "C" fn never(_: ClientData, _: c_int) {
            panic!("dropped operation ran");
        }
        let (a, _b) = socketpair();
        let mut buf = [0u8; 4];
        // SAFETY: the operation is dropped by OS_LibShutdown before `buf` goes away.
        let rc = unsafe {
            OS_AsyncRead(
                a.0,
                0,
                buf.as_mut_ptr().cast(),
                4,
                Some(never),
                ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0);
        OS_LibShutdown();
        assert!(!*INITIALIZED.lock());
        assert_eq!(os_async::pending(), 0);
        // SAFETY: stdioFds is ignored.
        assert_eq!(unsafe { OS_LibInit(ptr::null_mut()) }, 0);
    }

    /// Runs OS_Accept on `fd` in a thread; returns its (result, errno).
    fn accept_in_thread(
        fd: c_int,
        list: Option<&'static str>,
    ) -> std::thread::JoinHandle<(c_int, c_int)> {
        std::thread::spawn(move || accept(fd, 0, list))
    }

    /// Reads from a connection the other side refused: end of file (or a reset).
    fn assert_closed(s: &mut impl Read) {
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("connection not closed: {other:?}"),
        }
    }

    /// Ends a thread blocked in OS_Accept on `fd`: accept fails with EINVAL after shutdown.
    fn stop_accept(fd: c_int, t: std::thread::JoinHandle<(c_int, c_int)>) {
        // SAFETY: shutdown has no memory-safety preconditions.
        assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_RDWR) }, 0);
        assert_eq!(t.join().unwrap(), (-1, libc::EINVAL));
    }

    #[test]
    fn accept_allow_list_tcp() {
        // A disallowed peer is closed, and OS_Accept waits for the next one.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let t = accept_in_thread(l.as_raw_fd(), Some("10.1.2.3"));
        for _ in 0..2 {
            let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            assert_closed(&mut c);
        }
        stop_accept(l.as_raw_fd(), t);

        // Allowed (entries trimmed, CIDR): the connection is returned, with TCP_NODELAY.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let t = accept_in_thread(l.as_raw_fd(), Some("10.1.2.3, 127.0.0.0/8"));
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (fd, _) = t.join().unwrap();
        assert!(fd >= 0);
        let fd = Fd(fd);
        assert!(cloexec(fd.0));
        assert_eq!(int_opt(fd.0, libc::IPPROTO_TCP, libc::TCP_NODELAY), 1);
        assert_eq!(os_write(fd.0, b"hi"), 2);
        let mut b = [0u8; 2];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hi");

        // No list, or an empty one: everyone.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        for list in [None, Some("")] {
            let t = accept_in_thread(l.as_raw_fd(), list);
            let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (fd, _) = t.join().unwrap();
            assert!(fd >= 0);
            drop(Fd(fd));
        }
    }

    #[test]
    fn accept_allow_list_ipv6() {
        if !ipv6_available() {
            eprintln!("no IPv6 loopback, skipping");
            return;
        }
        let l = TcpListener::bind("[::1]:0").unwrap();
        let t = accept_in_thread(l.as_raw_fd(), Some("127.0.0.1"));
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        assert_closed(&mut c);
        stop_accept(l.as_raw_fd(), t);

        let l = TcpListener::bind("[::1]:0").unwrap();
        let t = accept_in_thread(l.as_raw_fd(), Some("10.0.0.1,::1"));
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (fd, _) = t.join().unwrap();
        assert!(fd >= 0);
        let fd = Fd(fd);
        assert_eq!(int_opt(fd.0, libc::IPPROTO_TCP, libc::TCP_NODELAY), 1);
    }

    #[test]
    fn accept_unix_peers() {
        let dir = temp_dir("accept-unix");
        let path = dir.join("s.sock");
        // With an allow-list, Unix peers are refused (libfcgi let them through), even when
        // they speak at once.
        let l = UnixListener::bind(&path).unwrap();
        let t = accept_in_thread(l.as_raw_fd(), Some("127.0.0.1"));
        let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        c.write_all(b"x").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        assert_closed(&mut c);
        stop_accept(l.as_raw_fd(), t);
        drop(l);

        // Without one they are accepted once they speak.
        let path = dir.join("t.sock");
        let l = UnixListener::bind(&path).unwrap();
        let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        c.write_all(b"x").unwrap();
        let (fd, _) = accept(l.as_raw_fd(), 0, None);
        assert!(fd >= 0);
        let fd = Fd(fd);
        let mut b = [0u8; 1];
        assert_eq!(os_read(fd.0, &mut b), 1);
        assert_eq!(&b, b"x");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn accept_drops_silent_unix_clients() {
        let dir = temp_dir("keeper");
        let path = dir.join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        // The first client never speaks: dropped after the keeper timeout (2 s).
        let mut silent = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let mut talker = std::os::unix::net::UnixStream::connect(&path).unwrap();
        talker.write_all(b"y").unwrap();
        let (fd, _) = accept(l.as_raw_fd(), 0, None);
        assert!(fd >= 0);
        let fd = Fd(fd);
        set_read_timeout(fd.0, 60);
        let mut b = [0u8; 1];
        assert_eq!(os_read(fd.0, &mut b), 1, "the silent client was returned");
        assert_eq!(&b, b"y");
        silent
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        assert_closed(&mut silent);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn spawn_child_gets_the_listener_on_fd_0() {
        let dir = temp_dir("spawn");
        let marker = dir.join("marker");
        let script = dir.join("app.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 if [ -e /proc/$$/fd/1 ]; then o=open; else o=closed; fi\n\
                 if [ -e /proc/$$/fd/2 ]; then e=open; else e=closed; fi\n\
                 s=$(readlink /proc/$$/fd/0)\n\
                 echo \"$s $o $e $0\" > '{m}.tmp' && mv '{m}.tmp' '{m}'\n",
                m = marker.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let listen = create(dir.join("s.sock").to_str().unwrap(), 5);
        assert!(listen >= 0);
        let listen = Fd(listen);
        // Close-on-exec on the original: dup2 onto fd 0 in the child clears it.
        assert!(cloexec(listen.0));
        // SAFETY: stat is plain old data, so a zeroed one is valid; fstat fills in the live
        // local.
        let ino = unsafe {
            let mut st: libc::stat = mem::zeroed();
            assert_eq!(libc::fstat(listen.0, &mut st), 0);
            st.st_ino
        };
        let app = cstr(script.to_str().unwrap());
        // SAFETY: a NUL-terminated path, not written to; the child execs it.
        let rc = unsafe { OS_SpawnChild(app.as_ptr().cast_mut(), listen.0) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !marker.exists() {
            assert!(Instant::now() < deadline, "the spawned program never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        let got = std::fs::read_to_string(&marker).unwrap();
        assert_eq!(
            got.trim_end(),
            format!("socket:[{ino}] closed closed {}", script.display())
        );
        // SAFETY: NULL is refused before forking.
        assert_eq!(unsafe { OS_SpawnChild(ptr::null_mut(), listen.0) }, -1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // -----------------------------------------------------------------------------------------
    // Scenarios that change process-wide state (shutdown flag, signal dispositions, stdin,
    // environment) run in a child process: this test binary re-run on `child_entry` only.

    const CHILD_ENV: &str = "FCGI_OS_TEST_CHILD";

    /// Runs `scenario` in a child process and checks it completed.
    fn run_child(scenario: &str, stdin: &[u8], env: &[(&str, &str)]) {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "ffi::libfcgi::os::tests::child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, scenario)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let pid = child.id() as libc::pid_t;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).unwrap();
        drop(input);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        let out = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(o) => o.unwrap(),
            Err(_) => {
                // SAFETY: killing the child we started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("child scenario {scenario} hung");
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(&format!("CHILD-OK {scenario}")),
            "scenario {scenario}: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn shutdown_pending_wakes_a_blocked_accept() {
        run_child("shutdown", b"", &[]);
    }

    #[test]
    fn sigusr1_after_lib_init_wakes_a_blocked_accept() {
        run_child("sigusr1", b"", &[]);
    }

    #[test]
    fn accept_and_fail_on_intr() {
        run_child("intr", b"", &[]);
    }

    #[test]
    fn lib_init_reads_the_timeouts() {
        run_child(
            "env",
            b"",
            &[
                ("LIBFCGI_OS_CLOSE_POLL_TIMEOUT", "123"),
                ("LIBFCGI_IS_AF_UNIX_KEEPER_POLL_TIMEOUT", " 45xyz"),
            ],
        );
    }

    #[test]
    fn writes_to_a_closed_socket_raise_no_sigpipe() {
        run_child("sigpipe", b"", &[]);
    }

    #[test]
    fn async_read_stdin() {
        run_child("stdin", b"hello", &[]);
    }

    /// The thread id of the caller.
    fn gettid() -> libc::pid_t {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
    }

    /// Waits (bounded) until thread `tid` of this process sits in poll(), so a wake-up or a
    /// signal reaches it blocked, not before it blocks.
    fn wait_in_poll(tid: libc::pid_t) {
        #[cfg(target_arch = "x86_64")]
        let polls = [libc::SYS_poll, libc::SYS_ppoll];
        #[cfg(not(target_arch = "x86_64"))]
        let polls = [libc::SYS_ppoll, libc::SYS_ppoll];
        let file = format!("/proc/self/task/{tid}/syscall");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match std::fs::read_to_string(&file) {
                Ok(s) => {
                    let nr = s
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<i64>().ok());
                    if nr.is_some_and(|n| polls.contains(&(n as libc::c_long))) {
                        return;
                    }
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(200));
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// OS_Accept in a thread that reports its tid first; returns the handle after it blocks.
    fn blocked_accept(fd: c_int, fail_on_intr: c_int) -> std::thread::JoinHandle<(c_int, c_int)> {
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(gettid()).unwrap();
            accept(fd, fail_on_intr, None)
        });
        wait_in_poll(rx.recv().unwrap());
        t
    }

    static STDIN_BYTES: AtomicUsize = AtomicUsize::new(usize::MAX);
    static STDIN_CALLS: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn stdin_done(_: ClientData, n: c_int) {
        STDIN_BYTES.store(n as usize, Ordering::SeqCst);
        STDIN_CALLS.fetch_add(1, Ordering::SeqCst);
    }

    unsafe extern "C" fn noop_handler(_: c_int) {}

    /// The child side of [`run_child`]; does nothing in a normal test run.
    #[test]
    fn child_entry() {
        let Ok(scenario) = std::env::var(CHILD_ENV) else {
            return;
        };
        match scenario.as_str() {
            "shutdown" => {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let t = blocked_accept(l.as_raw_fd(), 0);
                OS_ShutdownPending();
                assert_eq!(t.join().unwrap(), (-1, libc::EINTR));
                // From now on OS_Accept fails at once, even with a connection waiting.
                let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
                assert_eq!(accept(l.as_raw_fd(), 0, None), (-1, libc::EINTR));
            }
            "sigusr1" => {
                // SAFETY: stdioFds is ignored.
                assert_eq!(unsafe { OS_LibInit(ptr::null_mut()) }, 0);
                // SAFETY: querying a disposition into a local struct.
                let old = unsafe {
                    let mut old: libc::sigaction = mem::zeroed();
                    assert_eq!(libc::sigaction(libc::SIGUSR1, ptr::null(), &mut old), 0);
                    old.sa_sigaction
                };
                assert_ne!(old, libc::SIG_DFL);
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let t = blocked_accept(l.as_raw_fd(), 0);
                // SAFETY: signalling our own process; the handler was installed above.
                unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
                assert_eq!(t.join().unwrap(), (-1, libc::EINTR));
            }
            "intr" => {
                // SAFETY: a no-op handler without SA_RESTART, so blocked calls see EINTR.
                unsafe {
                    let mut act: libc::sigaction = mem::zeroed();
                    act.sa_sigaction = noop_handler as *const () as usize;
                    libc::sigemptyset(&mut act.sa_mask);
                    assert_eq!(libc::sigaction(libc::SIGUSR2, &act, ptr::null_mut()), 0);
                }
                // fail_on_intr: the signal ends the accept.
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let t = blocked_accept(l.as_raw_fd(), 1);
                // SAFETY: signalling a live thread of ours.
                unsafe { libc::pthread_kill(t.as_pthread_t(), libc::SIGUSR2) };
                assert_eq!(t.join().unwrap(), (-1, libc::EINTR));
                // Without it the accept goes on and returns the next connection.
                let t = blocked_accept(l.as_raw_fd(), 0);
                // SAFETY: as above.
                unsafe { libc::pthread_kill(t.as_pthread_t(), libc::SIGUSR2) };
                let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let (fd, _) = t.join().unwrap();
                assert!(fd >= 0);
                drop(Fd(fd));
                // A signal interrupting OS_DoIo: it returns 0 (libfcgi exit()s) and the
                // operation stays registered.
                let (r, _w) = pipe();
                let mut buf = [0u8; 4];
                // SAFETY: `buf` outlives the operation, cancelled below.
                let rc = unsafe {
                    OS_AsyncRead(
                        r.0,
                        0,
                        buf.as_mut_ptr().cast(),
                        4,
                        Some(stdin_done),
                        ptr::null_mut(),
                    )
                };
                assert_eq!(rc, 0);
                let (tx, rx) = mpsc::channel();
                let t = std::thread::spawn(move || {
                    tx.send(gettid()).unwrap();
                    // SAFETY: NULL timeout.
                    unsafe { OS_DoIo(ptr::null_mut()) }
                });
                wait_in_poll(rx.recv().unwrap());
                // SAFETY: signalling a live thread of ours.
                unsafe { libc::pthread_kill(t.as_pthread_t(), libc::SIGUSR2) };
                assert_eq!(t.join().unwrap(), 0);
                assert_eq!(STDIN_CALLS.load(Ordering::SeqCst), 0);
                assert_eq!(os_async::pending(), 1);
                OS_Close(r.release(), 0);
                assert_eq!(os_async::pending(), 0);
            }
            "env" => {
                // SAFETY: stdioFds is ignored.
                assert_eq!(unsafe { OS_LibInit(ptr::null_mut()) }, 0);
                assert_eq!(CLOSE_POLL_TIMEOUT.load(Ordering::Relaxed), 123);
                assert_eq!(KEEPER_POLL_TIMEOUT.load(Ordering::Relaxed), 45);
                // Idempotent: a second call does not read the environment again...
                std::env::set_var("LIBFCGI_OS_CLOSE_POLL_TIMEOUT", "7");
                // SAFETY: as above.
                assert_eq!(unsafe { OS_LibInit(ptr::null_mut()) }, 0);
                assert_eq!(CLOSE_POLL_TIMEOUT.load(Ordering::Relaxed), 123);
                // ...until OS_LibShutdown.
                OS_LibShutdown();
                // SAFETY: as above.
                assert_eq!(unsafe { OS_LibInit(ptr::null_mut()) }, 0);
                assert_eq!(CLOSE_POLL_TIMEOUT.load(Ordering::Relaxed), 7);
            }
            "sigpipe" => {
                // SAFETY: restoring the default disposition (the test harness ignores SIGPIPE).
                unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
                let (a, b) = socketpair();
                drop(b);
                assert_eq!(os_write(a.0, b"x"), -1);
                assert_eq!(errno(), libc::EPIPE);
                // The asynchronous write too.
                let data = *b"y";
                // SAFETY: `data` outlives the operation, run below.
                let rc = unsafe {
                    OS_AsyncWrite(
                        a.0,
                        0,
                        data.as_ptr() as *mut c_void,
                        1,
                        Some(stdin_done),
                        ptr::null_mut(),
                    )
                };
                assert_eq!(rc, 0);
                while STDIN_CALLS.load(Ordering::SeqCst) == 0 {
                    // SAFETY: NULL timeout.
                    assert_eq!(unsafe { OS_DoIo(ptr::null_mut()) }, 0);
                }
                assert_eq!(STDIN_BYTES.load(Ordering::SeqCst), usize::MAX); // -1 as usize
            }
            "stdin" => {
                let mut buf = [0u8; 16];
                for (round, want) in [(1, 5usize), (2, 0)] {
                    // SAFETY: `buf` outlives the operation, run below.
                    let rc = unsafe {
                        OS_AsyncReadStdin(
                            buf.as_mut_ptr().cast(),
                            16,
                            Some(stdin_done),
                            ptr::null_mut(),
                        )
                    };
                    assert_eq!(rc, 0);
                    while STDIN_CALLS.load(Ordering::SeqCst) < round {
                        // SAFETY: NULL timeout.
                        assert_eq!(unsafe { OS_DoIo(ptr::null_mut()) }, 0);
                    }
                    assert_eq!(STDIN_BYTES.load(Ordering::SeqCst), want);
                    if want > 0 {
                        assert_eq!(&buf[..5], b"hello");
                    }
                }
            }
            other => panic!("unknown scenario {other}"),
        }
        println!("CHILD-OK {scenario}");
    }
}
