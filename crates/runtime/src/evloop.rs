//! The non-blocking face: an application's event loop drives the runtime (see
//! docs/nonblocking-design.md and `fcgi_loop_*` in include/fcgi.h).
//!
//! A loop is one more waiter on the listener's [`Server`], not a second runtime: the same
//! connections, limits, timers and END_REQUEST bookkeeping serve blocking threads and loops
//! in one process. What differs is how a wait ends: a loop request's [`Waiter`] carries a
//! loop hook, and notifying it queues the request on its loop's [`LoopWake`] and makes the
//! loop's descriptor readable.
//!
//! A loop is a worker (worker.rs): its descriptor is its worker's epoll, which holds the
//! connections the loop accepted, the server's descriptors (listener, kick, timerfd: a due
//! timer makes it readable) and the loop's eventfd (written when a request of the loop is
//! woken, or a request became ready, outside the loop's own `work`). The application adds it
//! to its poller and calls `work` whenever it is readable.

use super::reactor::{Found, Reactor};
use super::server::{Server, Stream, Taken};
use super::waiter::{LoopWake, Waiter};
use super::worker::Worker;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

/// An application's event loop on one listening socket.
pub struct EvLoop {
    server: Arc<Server>,
    wake: Arc<LoopWake>,
    worker: Arc<Worker>,
}

impl EvLoop {
    /// A loop serving `listen_fd`: creates the listener's runtime in this process if no
    /// blocking thread did yet (no thread of the library is started).
    pub fn new(listen_fd: RawFd) -> io::Result<EvLoop> {
        let server = Server::for_listener(listen_fd)?;
        let wake = Arc::new(LoopWake::new()?);
        let worker = server.r.new_worker(Some(wake.fd()), true)?;
        server.r.add_loop(wake.clone());
        Ok(EvLoop {
            server,
            wake,
            worker,
        })
    }

    /// The descriptor to watch for readability.
    pub fn fd(&self) -> RawFd {
        self.worker.fd()
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    pub fn wake_side(&self) -> &Arc<LoopWake> {
        &self.wake
    }

    /// Does the work that is ready without waiting: processes socket events (accepting,
    /// reading, framing answers the runtime owes) and fires due timers. Returns 0 when it
    /// must run again at once (the backlog holds more connections than one round takes), or
    /// -1 for "when the descriptor is readable" (a due timer makes it readable too).
    pub fn work(&self) -> i32 {
        let s = &self.server;
        let r: &Reactor = &s.r;
        let _guard = r.guard();
        if r.is_failed() {
            return -1;
        }
        if super::state() & super::STATE_DRAIN != 0 {
            r.begin_drain();
        }
        let mut buf = [const { MaybeUninit::uninit() }; 64];
        // The loop's eventfd is read only when the sweep saw it readable; a wake after that
        // read makes the descriptor readable again, and its request was queued before it.
        if s.sweep(&self.worker.ep, &mut buf, true) {
            self.wake.drain();
        }
        let mut found = Found {
            from_loop: true,
            ..Found::default()
        };
        if r.accept_pending(Instant::now(), &self.worker, &mut found) {
            0
        } else {
            -1
        }
    }
}

impl Drop for EvLoop {
    fn drop(&mut self) {
        if !self.server.serves_this_process() {
            return;
        }
        self.server.r.remove_loop(&self.wake);
        self.server.r.retire_worker(&self.worker);
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
        params: &mut fcgi_runtime_protocol::ParamStore,
    ) -> Option<Option<Taken>> {
        let _guard = self.r.guard();
        let r = self.take_ready(me, params);
        if matches!(r, Some(Some(_))) {
            // More queued: a waiting blocking thread of the same process may take one.
            self.r.took_ready();
        }
        r
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
        let _guard = self.r.guard();
        if self.r.is_failed() {
            return Some(-1);
        }
        let Some(mut g) = self.r.conns.lock_slot(t.idx) else {
            return Some(-1);
        };
        self.read_step(&mut g, me, t, which, buf, false)
    }

    /// A loop writer of `t` started waiting for room: its connection's timer now includes the
    /// write timeout.
    pub fn watch_write_timeout(&self, t: &Taken) {
        if let Some(mut conn) = self.r.conns.lock(t.idx, t.gen) {
            self.r.rearm(&mut conn, t.idx);
        }
    }
}
