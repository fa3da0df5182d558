//! A worker: the epoll of one application thread's request object (or of one event loop),
//! holding the connections that worker accepted. See docs/runtime-design.md, "Workers".
//!
//! A connection lives in the epoll of one worker, so its events wake the same thread request
//! after request (a ping-pong stays on one CPU). Whoever accepts a connection gives it to the
//! worker with the fewest connections among those waiting (and itself), so that connections
//! spread over the threads as they arrive. The server's own descriptors sit in every
//! worker's epoll: the listener, the kick eventfd and the timerfd with `EPOLLEXCLUSIVE` (the
//! kernel wakes one worker that waits), the wake eventfd level-triggered (all wake).

use super::ready::Ready;
use super::sys::{epoll, Epoll};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Epoll data words of the server's own descriptors (connections use words >= 2^32).
pub(super) const LISTENER: u64 = 1;
/// Level-triggered: readable while every waiter must look at the run state (shutdown, a
/// finished drain, failure); drained otherwise.
pub(super) const WAKE: u64 = 2;
/// Edge-triggered: one write wakes one waiter (a request was queued, the listener has more).
pub(super) const KICK: u64 = 3;
pub(super) const TIMER: u64 = 4;
/// The worker owner's own eventfd (an event loop's wake-up).
pub(super) const OWN: u64 = 5;

/// Least time between two moves of a worker to the back of the listener's line.
const ROTATE_EVERY: Duration = Duration::from_millis(10);

pub struct Worker {
    pub(super) ep: Epoll,
    /// Waiting in its epoll (idle); counted in the reactor's `pollers` too.
    pub(super) waiting: AtomicBool,
    /// Entries into its epoll (the standby harvests a worker whose count stood still).
    pub(super) epoch: AtomicU64,
    /// An event loop's worker: nobody waits in its epoll directly.
    pub(super) is_loop: bool,
    /// The listener is registered in its epoll.
    listening: AtomicBool,
    /// Connections registered in its epoll.
    pub(super) conns: AtomicUsize,
    /// When it last moved to the back of the listener's line (see [`Worker::rotate`]).
    rotated: Mutex<Option<Instant>>,
    /// Requests its thread took from connections it had just accepted, since its last look at
    /// its epoll (only its thread uses it).
    pub(super) unpolled: AtomicU32,
    /// Requests its own events produced beyond the one its thread took, while no other worker
    /// waited: its thread serves them next (idle workers and the standby may take them).
    local: Mutex<VecDeque<Ready>>,
    local_n: AtomicUsize,
}

/// The server's descriptors every worker's epoll holds.
pub(super) struct Shared {
    pub listen_fd: RawFd,
    pub kick_fd: RawFd,
    pub timer_fd: RawFd,
    pub wake_fd: RawFd,
}

impl Worker {
    /// A worker whose epoll holds the server's descriptors (the listener unless `listen` is
    /// false: a draining server) and `own_fd` (the owner's eventfd, if any), reported with
    /// `own_token`.
    pub(super) fn new(
        s: &Shared,
        listen: bool,
        own: Option<(RawFd, u64)>,
        is_loop: bool,
    ) -> io::Result<Worker> {
        let ep = Epoll::new()?;
        let exclusive = epoll::IN | epoll::ET | epoll::EXCLUSIVE;
        if listen {
            ep.add(s.listen_fd, exclusive, LISTENER)?;
        }
        ep.add(s.kick_fd, exclusive, KICK)?;
        ep.add(s.timer_fd, exclusive, TIMER)?;
        ep.add(s.wake_fd, epoll::IN, WAKE)?;
        if let Some((fd, token)) = own {
            ep.add(fd, epoll::IN, token)?;
        }
        Ok(Worker {
            ep,
            waiting: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            is_loop,
            listening: AtomicBool::new(listen),
            conns: AtomicUsize::new(0),
            rotated: Mutex::new(None),
            unpolled: AtomicU32::new(0),
            local: Mutex::new(VecDeque::new()),
            local_n: AtomicUsize::new(0),
        })
    }

    /// Moves this worker to the back of the listener's line. The kernel offers an arriving
    /// connection to the `EPOLLEXCLUSIVE` registrations in the order they were made, and the
    /// first whose epoll has a waiter takes it: without this, a lightly loaded pool would give
    /// every connection to the same idle worker (process). Re-registering after accepting
    /// makes the idle workers take turns, as processes blocked in accept(2) do (PHP-FPM). At
    /// most every [`ROTATE_EVERY`], so a busy worker pays nothing per connection.
    pub(super) fn rotate(&self, listen_fd: RawFd, now: Instant) {
        let mut last = self.rotated.lock();
        if last.is_some_and(|t| now.duration_since(t) < ROTATE_EVERY)
            || !self.listening.load(Ordering::Acquire)
        {
            return;
        }
        *last = Some(now);
        let _ = self.ep.delete(listen_fd);
        let exclusive = epoll::IN | epoll::ET | epoll::EXCLUSIVE;
        if let Err(e) = self.ep.add(listen_fd, exclusive, LISTENER) {
            crate::fcgi_log!(Error, "cannot register the listener again: {e}");
        }
    }

    /// The listener leaves this worker's epoll (a drain began).
    pub(super) fn stop_listening(&self, listen_fd: RawFd) {
        if self.listening.swap(false, Ordering::AcqRel) {
            let _ = self.ep.delete(listen_fd);
        }
    }

    pub fn fd(&self) -> RawFd {
        self.ep.fd()
    }

    pub(super) fn push_local(&self, r: Ready) {
        let mut q = self.local.lock();
        q.push_back(r);
        self.local_n.store(q.len(), Ordering::Release);
    }

    pub(super) fn pop_local(&self) -> Option<Ready> {
        if self.local_n.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = self.local.lock();
        let r = q.pop_front();
        self.local_n.store(q.len(), Ordering::Release);
        r
    }
}
