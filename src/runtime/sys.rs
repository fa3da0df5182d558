//! Thin wrappers over the system calls the runtime makes on raw descriptors. All `unsafe` for
//! socket I/O lives here.

use std::io;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `read(2)`, retried on EINTR.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is a valid writable region of buf.len() bytes.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match cvt(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `writev(2)` (at most 1024 slices), retried on EINTR. Uses `sendmsg` with MSG_NOSIGNAL on
/// sockets so a closed peer gives EPIPE, not SIGPIPE.
pub fn writev(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let n = bufs.len().min(1024);
    loop {
        // SAFETY: msghdr is plain data; zeroed is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with iovec (documented guarantee on Unix).
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = n as _;
        // SAFETY: msg points at n valid iovecs that outlive the call.
        let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOTSOCK) => {
                    // SAFETY: same iovecs, as for sendmsg.
                    let r = unsafe { libc::writev(fd, bufs.as_ptr().cast(), n as i32) };
                    return cvt(r);
                }
                _ => return Err(e),
            }
        }
        return Ok(r as usize);
    }
}

/// Waits up to `timeout_ms` (-1: forever) for `events` on one descriptor. Returns the revents.
pub fn poll_one(fd: RawFd, events: i16, timeout_ms: i32) -> io::Result<i16> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(p.revents)
}

/// Ok if `fd` is a listening socket. Otherwise the error accept(2) would give (EBADF,
/// ENOTSOCK, or EINVAL for a socket that does not listen): polling such a descriptor for
/// connections would wait forever (a pipe) or fail to register (a regular file).
pub fn check_listening(fd: RawFd) -> io::Result<()> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writing, and `len` is the size of `v`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if v == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(())
}

/// `shutdown(fd, SHUT_WR)`; errors are ignored (the peer may be gone).
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: shutdown has no memory-safety preconditions.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// Accepts one connection, non-blocking and close-on-exec.
pub fn accept(listen: RawFd) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: NULL address pointers are allowed by accept4.
        let fd = unsafe {
            libc::accept4(
                listen,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// Sets O_NONBLOCK on a descriptor.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an integer descriptor has no memory-safety preconditions.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets TCP_NODELAY (ignored for non-TCP sockets).
pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: a pointer to a c_int and its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// A non-blocking, close-on-exec eventfd used to wake a poll from any thread or a signal
/// handler.
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd has no memory-safety preconditions.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor owned by nobody else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Signals the eventfd. Async-signal-safe when called as [`wake_raw`].
    pub fn wake(&self) {
        wake_raw(self.fd());
    }

    /// Resets the counter.
    pub fn drain(&self) {
        let mut b = [0u8; 8];
        let _ = read(self.fd(), &mut b);
    }
}

/// Writes 1 to an eventfd; only `write(2)`, so it may be called from a signal handler.
pub fn wake_raw(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local; write is async-signal-safe.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn forget_pid_after_fork() {
    PID.store(0, std::sync::atomic::Ordering::Relaxed);
}

/// The process id without a system call per use (glibc no longer caches getpid, and the
/// request path asks several times per request whether state belongs to this process).
/// A fork handler clears the cache in the child.
pub fn pid() -> u32 {
    use std::sync::atomic::Ordering;
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid_after_fork)) };
    });
    let p = std::process::id();
    PID.store(p, Ordering::Relaxed);
    p
}
