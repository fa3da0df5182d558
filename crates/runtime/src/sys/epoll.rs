//! epoll(7) shared by several waiting threads. Unlike `mio::Poll` (whose `poll` takes
//! `&mut self`), [`Epoll::wait`] takes `&self`: any number of threads may wait in one epoll at
//! once, and the kernel reports each edge of an `EPOLLET` registration to one of them.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// One readiness event: the registration's data word and its event bits.
pub type Event = libc::epoll_event;

pub struct Epoll(OwnedFd);

pub const IN: u32 = libc::EPOLLIN as u32;
pub const OUT: u32 = libc::EPOLLOUT as u32;
pub const RDHUP: u32 = libc::EPOLLRDHUP as u32;
pub const ERR: u32 = libc::EPOLLERR as u32;
pub const HUP: u32 = libc::EPOLLHUP as u32;
pub const ET: u32 = libc::EPOLLET as u32;
pub const EXCLUSIVE: u32 = libc::EPOLLEXCLUSIVE as u32;

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers.
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: a new descriptor owned by nobody else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is a valid epoll_event (ignored by EPOLL_CTL_DEL).
        syscall!(epoll_ctl(self.fd(), op, fd, &mut ev)).map(|_| ())
    }

    /// Registers `fd` for `events` (the constants of this module), reported with `data`.
    pub fn add(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, data)
    }

    /// Changes the events (or data) of a registered descriptor.
    pub fn modify(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, data)
    }

    /// Removes a registration.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits up to `timeout_ms` (-1: forever, 0: not at all) for events, at most
    /// `buf.len()`; returns the events received. An interrupted wait returns no events.
    pub fn wait<'a>(
        &self,
        buf: &'a mut [MaybeUninit<Event>],
        timeout_ms: i32,
    ) -> io::Result<&'a [Event]> {
        let max = buf.len().min(i32::MAX as usize) as i32;
        // SAFETY: the kernel writes at most `max` events into `buf`, which has room for them.
        let n = match syscall!(epoll_wait(
            self.fd(),
            buf.as_mut_ptr().cast(),
            max,
            timeout_ms
        )) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        // SAFETY: the first n events were written by epoll_wait; MaybeUninit<T> has the
        // layout of T.
        Ok(unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<Event>(), n) })
    }
}
