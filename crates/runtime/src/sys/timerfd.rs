//! timerfd(2): a timer that makes a descriptor readable, so that it can sit in an epoll.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A non-blocking, close-on-exec timer on CLOCK_MONOTONIC (the clock of `Instant`).
pub struct TimerFd(OwnedFd);

impl TimerFd {
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: timerfd_create takes no pointers.
        let fd = syscall!(timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC
        ))?;
        // SAFETY: a new descriptor owned by nobody else.
        Ok(TimerFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Fires once, `after` from now (at least a nanosecond: zero would disarm it); `None`
    /// disarms it.
    pub fn set(&self, after: Option<Duration>) {
        let value = match after {
            Some(d) => {
                let d = d.max(Duration::from_nanos(1));
                libc::timespec {
                    tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                }
            }
            None => libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for (NULL).
        let _ = syscall!(timerfd_settime(self.fd(), 0, &spec, std::ptr::null_mut()));
    }

    /// Consumes the expiration (the descriptor stops being readable).
    pub fn drain(&self) {
        let mut b = [0u8; 8];
        let _ = super::read(self.fd(), &mut b);
    }
}
