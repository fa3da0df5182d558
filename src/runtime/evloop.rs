//! The non-blocking face: an application's event loop drives the runtime (see
//! docs/nonblocking-design.md and `fcgi_loop_*` in include/fcgi.h).
//!
//! A loop is one more waiter on the listener's [`Server`], not a second runtime: the same
//! connections, limits, timers and END_REQUEST bookkeeping serve blocking threads and loops
//! in one process. What differs is how a wait ends. A blocking thread sleeps on its condvar;
//! a loop request's [`Waiter`] carries a [`LoopHook`], and notifying it queues the request on
//! its loop's [`LoopWake`] and makes the loop's descriptor readable.
//!
//! The loop's descriptor is an epoll instance holding two descriptors, both level-triggered:
//! the reactor's own epoll descriptor (readable while sockets have events to process) and the
//! loop's eventfd (written when a request of the loop is woken, or a request became ready,
//! outside the loop's own `work`). The application adds it to its poller and calls `work`
//! whenever it is readable or the time `work` returned has passed.

use super::server::{Leader, Server, Waiter};
use super::server::{Stream, Taken};
use super::sys::EventFd;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The wake-up side of a loop, shared with the waiters of its requests.
pub struct LoopWake {
    woken: Mutex<VecDeque<usize>>,
    efd: EventFd,
    /// The loop's epoll (see [`EvLoop`]) and the reactor's epoll descriptor inside it.
    outer: RawFd,
    inner: RawFd,
    /// The reactor's descriptor is switched off in the loop's epoll: another thread holds
    /// the poll (changed under the core lock only).
    disarmed: AtomicBool,
}

impl LoopWake {
    /// While another thread (a blocking leader, the standby) holds the poll, the events it is
    /// about to collect keep the reactor's descriptor readable; a loop watching it would spin
    /// until that thread ran. So the loop stops watching it (called with the core lock held)
    /// and hears of its requests through its eventfd; [`LoopWake::arm`] undoes this when the
    /// poll is free again.
    pub(super) fn disarm(&self) {
        if !self.disarmed.swap(true, Ordering::AcqRel) {
            self.watch(0);
        }
    }

    /// Watches the reactor's descriptor again (called with the core lock held, by whoever
    /// puts the poll back).
    pub(super) fn arm(&self) {
        if self.disarmed.swap(false, Ordering::AcqRel) {
            self.watch(libc::EPOLLIN as u32);
        }
    }

    fn watch(&self, events: u32) {
        let mut ev = libc::epoll_event {
            events,
            u64: self.inner as u64,
        };
        // SAFETY: both descriptors stay open while the loop is in the server's list, the
        // only place this is called from; `ev` is a valid epoll_event.
        unsafe { libc::epoll_ctl(self.outer, libc::EPOLL_CTL_MOD, self.inner, &mut ev) };
    }

    /// Makes the loop's descriptor readable.
    pub fn wake(&self) {
        self.efd.wake();
    }

    /// The key of the next woken request, if any.
    pub fn pop(&self) -> Option<usize> {
        self.woken.lock().pop_front()
    }
}

/// What makes a [`Waiter`] a loop request's: its loop and its key there.
pub struct LoopHook {
    wake: Arc<LoopWake>,
    key: usize,
    /// Queued on the loop and not yet handed to the application.
    queued: AtomicBool,
}

impl LoopHook {
    pub(super) fn new(wake: Arc<LoopWake>, key: usize) -> LoopHook {
        LoopHook {
            wake,
            key,
            queued: AtomicBool::new(false),
        }
    }

    /// Queues the request once (until the application is handed it) and wakes the loop.
    pub(super) fn notify(&self) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.wake.woken.lock().push_back(self.key);
            self.wake.wake();
        }
    }

    pub(super) fn rearm(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

/// An application's event loop on one listening socket.
pub struct EvLoop {
    server: Arc<Server>,
    wake: Arc<LoopWake>,
    epfd: OwnedFd,
}

impl EvLoop {
    /// A loop serving `listen_fd`: creates the listener's runtime in this process if no
    /// blocking thread did yet (no thread of the library is started).
    pub fn new(listen_fd: RawFd) -> io::Result<EvLoop> {
        let server = Server::for_listener(listen_fd)?;
        // SAFETY: epoll_create1 has no memory-safety preconditions.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor owned by nobody else.
        let epfd = unsafe { OwnedFd::from_raw_fd(ep) };
        let wake = Arc::new(LoopWake {
            woken: Mutex::new(VecDeque::new()),
            efd: EventFd::new()?,
            outer: ep,
            inner: server.poll_fd,
            disarmed: AtomicBool::new(false),
        });
        for fd in [server.poll_fd, wake.efd.fd()] {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: fd as u64,
            };
            // SAFETY: both descriptors are open; `ev` is a valid epoll_event.
            if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        server.core.lock().loops.push(wake.clone());
        Ok(EvLoop { server, wake, epfd })
    }

    /// The descriptor to watch for readability.
    pub fn fd(&self) -> RawFd {
        self.epfd.as_raw_fd()
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    pub fn wake_side(&self) -> &Arc<LoopWake> {
        &self.wake
    }

    /// Does the work that is ready without waiting: processes socket events (accepting,
    /// reading, framing answers the runtime owes) and fires due timers. Returns the
    /// milliseconds until it must run again even if the descriptor stays quiet (a timer: idle
    /// keep-alive, PARAMS, write and linger timeouts; or more connections waiting to be
    /// accepted), or -1 for "when the descriptor is readable".
    pub fn work(&self) -> i32 {
        self.wake.efd.drain();
        let s = &self.server;
        let mut g = s.core.lock();
        if g.poll.is_some() {
            self.wake.arm();
            s.lead_once(&mut g, Leader::Loop, true);
            // Blocking threads of the same process may wait for the poll: one of them leads.
            s.hand_over(&mut g);
        } else {
            // Another thread polls: it processes the events and wakes this loop for its
            // requests; it gives the reactor's descriptor back when it puts the poll back.
            self.wake.disarm();
        }
        let now = Instant::now();
        let mut due: Option<Duration> = g
            .timers
            .peek()
            .map(|std::cmp::Reverse((d, _, _))| d.saturating_duration_since(now));
        if g.listener_ready && !g.accept_full && !g.draining {
            // More connections wait in the backlog than one round accepted (or accepting is
            // paused after running out of descriptors): look again then.
            let left = g
                .accept_paused_until
                .map_or(Duration::ZERO, |u| u.saturating_duration_since(now));
            due = Some(due.map_or(left, |d| d.min(left)));
        }
        match due {
            None => -1,
            // Rounded up: waking before the deadline would find nothing due.
            Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
        }
    }
}

impl Drop for EvLoop {
    fn drop(&mut self) {
        if !self.server.serves_this_process() {
            return;
        }
        let mut g = self.server.core.lock();
        g.loops.retain(|l| !Arc::ptr_eq(l, &self.wake));
    }
}

/// The loop face's single-step versions of the blocking calls: each checks once and never
/// waits.
impl Server {
    /// The next ready request for a loop request object (`me` its waiter), `Some(None)` on
    /// shutdown, `None` when nothing is ready now.
    pub fn try_accept(
        &self,
        me: &Arc<Waiter>,
        params: &mut crate::protocol::ParamStore,
    ) -> Option<Option<Taken>> {
        let mut g = self.core.lock();
        self.take_ready(&mut g, me, params)
    }

    /// [`Server::read`] without waiting: `None` when no input is there yet (the request is
    /// woken when some arrives).
    pub fn try_read(
        &self,
        me: &Arc<Waiter>,
        t: &Taken,
        which: Stream,
        buf: &mut [u8],
    ) -> Option<isize> {
        if buf.is_empty() {
            return Some(0);
        }
        let mut g = self.core.lock();
        self.read_step(&mut g, me, t, which, buf)
    }

    /// A loop writer of `t` started waiting for room: its connection's timer now includes the
    /// write timeout.
    pub fn watch_write_timeout(&self, t: &Taken) {
        let mut g = self.core.lock();
        if g.conn_mut(t.token, t.gen).is_some() {
            self.rearm(&mut g, t.token);
        }
    }
}
