//! eventfd(2): a counter descriptor that wakes a poll from any thread or a signal handler.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

/// A non-blocking, close-on-exec eventfd.
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers.
        let fd = syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
        // SAFETY: a new descriptor owned by nobody else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Gives the descriptor up: it stays open for the rest of the process (a wake-up target
    /// registered with the runtime).
    pub fn into_raw_fd(self) -> RawFd {
        self.0.into_raw_fd()
    }

    /// Adds 1 to the counter: the descriptor becomes readable, and every epoll holding it
    /// with `EPOLLET` gets a new edge.
    pub fn wake(&self) {
        wake_raw(self.fd());
    }

    /// Resets the counter (the descriptor stops being readable).
    pub fn drain(&self) {
        let mut b = [0u8; 8];
        let _ = super::read(self.fd(), &mut b);
    }
}

/// Writes 1 to an eventfd; only `write(2)`, so it may be called from a signal handler.
pub fn wake_raw(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local; write is async-signal-safe.
    let _ = syscall!(write(fd, (&one as *const u64).cast(), 8));
}
