//! The listen backlog: accepting as many connections as the accept policy (accept.rs) allows,
//! the connection limit, running out of descriptors, and a pool worker's drain.
//!
//! The listener is edge-triggered in the epoll: an edge says "new connections arrived", and
//! whoever sees it sets `listener_ready`. Connections the policy does not take now stay in
//! the kernel's backlog (other processes sharing the socket may take them); `listener_ready`
//! stays set and the waiting threads look again before they wait, when a policy deadline (a
//! fresh window, a pause) fires as a timer, or when a connection closes below the limit.

use super::accept::Demand;
use super::addr::{self, Peer};
use super::config::{self, Limit};
use super::conn::Conn;
use super::conns;
use super::io::ConnIo;
use super::reactor::{Found, Reactor, CONN_EVENTS};
use super::sys;
use super::timers::Entry;
use super::worker::Worker;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The slot index of the timer entries that stand for the listener (a policy deadline).
pub(super) const LISTENER_TIMER: u32 = u32::MAX;

impl Reactor {
    /// Accepts what the policy allows now, on behalf of worker `w`: each connection goes to the
    /// waiting worker with the fewest connections, `w` included ([`Reactor::pick_worker`]).
    /// Returns true when a batch (silent connections about, or an event loop) stopped at its
    /// size while more connections may wait: the caller may take another batch after handling
    /// its events, without waiting.
    ///
    /// A connection `w` keeps is read at once: a web server sends its request right behind
    /// the handshake, so it is usually there already, and reading it now saves a trip through
    /// the epoll (a sleep and a wake-up). Ready requests go to `found`.
    pub fn accept_pending(&self, now: Instant, w: &Arc<Worker>, found: &mut Found<'_>) -> bool {
        // A few rounds at most: a connection that closes at once (a probe) frees the budget
        // it took, and the listener's edge that announced the next one is already consumed.
        for _ in 0..4 {
            let mut mine: [u32; 4] = [u32::MAX; 4];
            let stopped = self.accept_into(now, w, &mut mine);
            for idx in mine.into_iter().filter(|&i| i != u32::MAX) {
                if let Some(mut g) = self.conns.lock_slot(idx) {
                    if let Some(c) = g.as_mut() {
                        c.readable = true;
                        self.pump(&mut g, idx, now, found);
                    }
                }
            }
            if stopped.is_none() || found.got.is_some() {
                return false;
            }
            if stopped == Some(true) {
                return true;
            }
        }
        // Still stopped by the budget: the caller looks at its epoll without waiting, then
        // here again.
        true
    }

    /// Accepts what the budget allows. `None` when it did not stop at the budget (nothing
    /// allowed, or the backlog is empty); `Some(batch)` when it did: more connections may wait
    /// (`batch`: the budget was a batch, to be taken again at once).
    fn accept_into(&self, now: Instant, w: &Arc<Worker>, mine: &mut [u32; 4]) -> Option<bool> {
        if !self.listener_ready.load(Ordering::Acquire)
            || self.draining.load(Ordering::Acquire)
            || self.full.load(Ordering::Acquire)
        {
            return None;
        }
        // One thread accepts at a time; another that finds it busy leaves the backlog to it
        // (waiting on the lock would only convoy the threads behind the accept system calls).
        // One thread accepts at a time. Another, woken for a connection of its own while the
        // policy is held, waits its turn: the holder may take one connection only (below), so
        // the waiter's connection would otherwise sit in the backlog unannounced. (Leaving
        // the backlog to the holder and waking a thread afterwards cost three times the CPU
        // per request with a connection per request: a wake-up for an empty backlog each.)
        let mut policy = self.policy.lock();
        let demand = Demand {
            waiting: self.accepters.load(Ordering::SeqCst),
            ready: self.ready.len(),
            loops: self.has_loops(),
            closed: self.closed_any.swap(false, Ordering::AcqRel),
        };
        let budget = policy.budget(now, demand, |idx, gen| self.conns.is_fresh(idx, gen));
        if let Some(at) = budget.recheck {
            self.listener_deadline(at);
        }
        // While other workers wait, one connection per round: every arriving connection wakes
        // one waiting worker (EPOLLEXCLUSIVE), which takes its own; taking more here would
        // leave those wake-ups with nothing to do.
        let others_wait = !w.is_loop && self.pollers.load(Ordering::SeqCst) > 0;
        let n = if others_wait {
            budget.n.min(1)
        } else {
            budget.n
        };
        if n == 0 {
            return None;
        }
        self.listener_ready.store(false, Ordering::Release);
        let limit = config::get(Limit::MaxConns) as usize;
        let mut accepted = 0;
        while accepted < n {
            if self.conns.open() >= limit {
                // At the limit the connections wait in the backlog (PHP's layer does not
                // accept either); a closing connection resumes accepting (`close_conn`).
                self.full.store(true, Ordering::SeqCst);
                self.listener_ready.store(true, Ordering::Release);
                if policy.reached_limit(now) {
                    crate::fcgi_log!(
                        Warning,
                        "connection limit reached: {} connections open (limit {limit}); new \
                         connections wait in the listen backlog",
                        self.conns.open()
                    );
                }
                // A connection that closed before the flag was set did not see it.
                if self.conns.open() < limit {
                    self.full.store(false, Ordering::SeqCst);
                    continue;
                }
                return None;
            }
            let (fd, peer_addr) = match sys::accept(self.listen_fd) {
                Ok(a) => a,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        if accepted > 0 && !w.is_loop {
                            w.rotate(self.listen_fd, now);
                        }
                        return None;
                    }
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        // Retrying at once would fail again: the connections wait in the
                        // backlog until the pause ends (a timer) or a connection closes.
                        let (pause, log) = policy.resource_error(now);
                        self.listener_ready.store(true, Ordering::Release);
                        self.listener_deadline(now + pause);
                        if let Some(more) = log {
                            crate::fcgi_log!(
                                Error,
                                "accept failed: {e}; pausing new connections for {} ms ({more} \
                                 more failures since the last report; {} connections open)",
                                pause.as_millis(),
                                self.conns.open()
                            );
                        }
                        return None;
                    }
                    Some(
                        libc::ECONNABORTED
                        | libc::EPROTO
                        | libc::EPERM
                        | libc::ENETDOWN
                        | libc::EHOSTUNREACH,
                    ) => continue,
                    _ => {
                        crate::fcgi_log!(Error, "accept failed: {e}");
                        return None;
                    }
                },
            };
            let raw = fd.as_raw_fd();
            let peer = addr::peer_from(&peer_addr);
            if !super::client_allowed(&peer) {
                log_disallowed(&peer);
                continue;
            }
            if matches!(peer, Peer::Tcp(_)) {
                sys::set_nodelay(raw);
            }
            let Some((idx, gen)) = self.conns.reserve() else {
                crate::fcgi_log!(Error, "connection table full; dropping a connection");
                continue;
            };
            let mut conn = Conn::new(gen, Arc::new(ConnIo::new(fd)), peer, now);
            crate::hooks::with(|h| h.connection_accepted());
            let to = self.pick_worker(w);
            to.conns.fetch_add(1, Ordering::Relaxed);
            conn.owner = Some(to.clone());
            conn.counted = true;
            self.rearm(&mut conn, idx);
            // In the table before it is in the epoll: its first event must find it.
            self.conns.insert(idx, conn);
            if let Err(e) = to.ep.add(raw, CONN_EVENTS, conns::token(idx, gen)) {
                crate::fcgi_log!(Error, "cannot register a connection: {e}");
                if let Some(mut g) = self.conns.lock_slot(idx) {
                    self.close_conn(&mut g, idx);
                }
                continue;
            }
            policy.accepted(idx, gen, now);
            if Arc::ptr_eq(&to, w) {
                if let Some(m) = mine.iter_mut().find(|m| **m == u32::MAX) {
                    *m = idx;
                }
            }
            accepted += 1;
        }
        // Stopped by the budget, not by an empty backlog.
        self.listener_ready.store(true, Ordering::Release);
        if !w.is_loop {
            w.rotate(self.listen_fd, now);
        }
        Some(budget.batch)
    }

    /// Starts draining (a pool worker asked to stop gracefully, or at `max_requests`): the
    /// listener leaves the epoll so the siblings sharing it take the new connections, idle
    /// kept-alive connections close at once (after their output, with the usual linger), and
    /// every other connection closes after its current (or, if fresh, first) request. Ready
    /// requests are still handed out.
    pub fn begin_drain(&self) {
        if self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        for w in self.workers() {
            w.stop_listening(self.listen_fd);
        }
        self.listener_ready.store(false, Ordering::Release);
        let now = Instant::now();
        for idx in 0..self.conns.high() {
            let Some(mut g) = self.conns.lock_slot(idx) else {
                continue;
            };
            let Some(conn) = g.as_mut() else {
                continue;
            };
            conn.close_when_idle = true;
            // A fresh connection (accepted, first request not yet taken) is kept for that
            // request: its client never had an answer on it, so it would not retry.
            if conn.reqs.is_empty() && !conn.lingering && !conn.fresh {
                conn.start_linger(now);
            }
            self.rearm(conn, idx);
        }
        if self.conns.open() == 0 {
            self.wake_all();
        }
    }

    /// A timer entry of the listener came due: look at the backlog again.
    pub(super) fn listener_timer(&self, _e: Entry) {
        if self.listener_ready.load(Ordering::Acquire) {
            self.kick();
        }
    }
}

/// PHP's line for a refused client, at its level. PHP never refuses a client that is not TCP
/// (the runtime does while a list is set, FastCGI §3.2), so those get a line of their own.
fn log_disallowed(peer: &Peer) {
    match peer.ip() {
        Some(ip) => crate::fcgi_log!(
            Error,
            "Connection disallowed: IP address '{ip}' has been dropped."
        ),
        None => crate::fcgi_log!(
            Error,
            "Connection disallowed: {peer} is not a TCP client (FCGI_WEB_SERVER_ADDRS and \
             fcgi_set_allowed_clients admit TCP clients only); it has been dropped."
        ),
    }
}
