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

/// poll(2) on `fds`, up to `timeout_ms` (-1: forever). Returns how many descriptors have
/// events (0: timed out).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a live array of fds.len() pollfds.
    syscall!(poll(
        fds.as_mut_ptr(),
        fds.len() as libc::nfds_t,
        timeout_ms
    ))
    .map(|n| n as usize)
}

/// ppoll(2) on `fds` with `timeout` (`None`: wait until one is ready) and the signal mask left
/// alone. Returns how many descriptors have events (0: timed out).
pub fn ppoll(fds: &mut [libc::pollfd], timeout: Option<&libc::timespec>) -> io::Result<usize> {
    let ts = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a live array of fds.len() pollfds; `ts` is NULL or points at a live
    // timespec; a NULL signal mask leaves the mask alone (plain poll semantics).
    syscall!(ppoll(
        fds.as_mut_ptr(),
        fds.len() as libc::nfds_t,
        ts,
        std::ptr::null()
    ))
    .map(|n| n as usize)
}

/// Waits until the peer of socket `fd` has shut down its side (or the connection failed), at
/// most `limit`. Data the peer sends meanwhile does not end the wait, and is left unread.
pub fn await_peer_shutdown(fd: RawFd, limit: std::time::Duration) {
    let until = std::time::Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        match poll_one(fd, libc::POLLRDHUP, ms) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Ready (the peer's end of input, a hang-up or an error), timed out, or failed.
            _ => return,
        }
    }
}
