//! poll(2) on one or two descriptors: a writer waiting for room on its own socket, a reader
//! waiting for its own connection or its own eventfd.

use std::io;
use std::os::fd::RawFd;

/// Waits up to `timeout_ms` (-1: forever) for `events` on one descriptor. Returns the revents.
pub fn poll_one(fd: RawFd, events: i16, timeout_ms: i32) -> io::Result<i16> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    syscall!(poll(&mut p, 1, timeout_ms))?;
    Ok(p.revents)
}

/// Waits up to `timeout_ms` (-1: forever) for `events` on either descriptor (a negative
/// descriptor is ignored, as poll(2) does). Returns both revents.
pub fn poll_two(a: (RawFd, i16), b: (RawFd, i16), timeout_ms: i32) -> io::Result<(i16, i16)> {
    let mut p = [
        libc::pollfd {
            fd: a.0,
            events: a.1,
            revents: 0,
        },
        libc::pollfd {
            fd: b.0,
            events: b.1,
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfds.
    syscall!(poll(p.as_mut_ptr(), 2, timeout_ms))?;
    Ok((p[0].revents, p[1].revents))
}
