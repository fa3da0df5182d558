//! What the leader does with the events of a poll: accept connections, read and feed their
//! engines, apply what the engines produced, close connections, fire timers. Runs with the
//! core lock held, on whichever thread leads (see server.rs).

use super::addr::{self, Peer};
use super::config::{self, Limit};
use super::conn::{Conn, ConnSink, Phase};
use super::io::{ConnIo, SendPolicy};
use super::server::{Core, Kind, Leader, Server};
use super::sys;
use crate::protocol::record::{push_end_request, ProtocolStatus};
use mio::unix::SourceFd;
use mio::{Interest, Token};
use std::cmp::Reverse;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// First pause of accepting after accept() ran out of descriptors or memory; doubled per
/// consecutive failure up to [`ACCEPT_BACKOFF_MAX`], reset by a successful accept.
pub(super) const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause of accepting after a resource failure.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);
/// At most one log line per this interval about accept() running out of resources.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Room for management answers beyond the write-behind limit before a peer that does not read
/// is disconnected.
const MGMT_SLACK: usize = 64 * 1024;

impl Server {
    /// Accepts up to `max` connections; returns how many were accepted (fewer than `max`
    /// means the backlog is empty, or accept failed).
    pub(super) fn accept_all(&self, g: &mut Core, max: usize) -> usize {
        let mut accepted = 0;
        let limit = config::get(Limit::MaxConns) as usize;
        while accepted < max {
            if g.n_conns >= limit {
                // At the limit the connections wait in the backlog (PHP's layer does not
                // accept either); a closing connection resumes accepting (`close_conn`).
                self.stop_accepting_full(g, limit);
                return accepted;
            }
            let fd = match sys::accept(self.listen_fd) {
                Ok(fd) => fd,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => return accepted,
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        self.pause_accepting(g, &e);
                        return accepted;
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
                        return accepted;
                    }
                },
            };
            g.accept_paused_until = None;
            g.accept_backoff = ACCEPT_BACKOFF_MIN;
            let raw = fd.as_raw_fd();
            let peer = addr::peer_of(raw);
            if !super::client_allowed(&peer) {
                crate::fcgi_log!(Warning, "Connection disallowed: {peer:?} has been dropped.");
                continue;
            }
            if matches!(peer, Peer::Tcp(_)) {
                sys::set_nodelay(raw);
            }
            let t = match g.free.pop() {
                Some(t) => t,
                None => {
                    g.conns.push(None);
                    g.conns.len() - 1
                }
            };
            if let Err(e) = self.registry.register(
                &mut SourceFd(&raw),
                Token(t),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                crate::fcgi_log!(Error, "cannot register a connection: {e}");
                g.free.push(t);
                continue;
            }
            let gen = g.next_gen;
            g.next_gen += 1;
            g.conns[t] = Some(Conn::new(
                gen,
                Arc::new(ConnIo::new(fd)),
                peer,
                Instant::now(),
            ));
            g.n_conns += 1;
            g.fresh.push_back((t, gen, Instant::now()));
            accepted += 1;
            self.rearm(g, t);
        }
        accepted
    }

    /// FCGI_MAX_CONNS connections are open: accepting stops until one closes. The listener is
    /// kept marked ready (the poll is edge-triggered: the backlog will not be reported again),
    /// and reaching the limit is logged at most once per 10 s.
    fn stop_accepting_full(&self, g: &mut Core, limit: usize) {
        g.accept_full = true;
        g.listener_ready = true;
        let now = Instant::now();
        if g.full_logged
            .is_some_and(|at| now.duration_since(at) < ACCEPT_LOG_INTERVAL)
        {
            return;
        }
        g.full_logged = Some(now);
        crate::fcgi_log!(
            Warning,
            "connection limit reached: {} connections open (limit {limit}); new connections \
             wait in the listen backlog",
            g.n_conns
        );
    }

    /// accept() failed for want of a resource (descriptors, kernel memory). Retrying at once
    /// would fail again and, with connections waiting in the backlog, turn the reactor into a
    /// busy loop; so accepting pauses (10 ms, doubling up to 500 ms while failures go on; a
    /// closed connection ends the pause early), the connections wait in the kernel's backlog,
    /// and the condition is logged at most once per 10 s with the count of failures since.
    fn pause_accepting(&self, g: &mut Core, e: &io::Error) {
        let now = Instant::now();
        let pause = g.accept_backoff;
        g.accept_paused_until = Some(now + pause);
        g.accept_backoff = (pause * 2).min(ACCEPT_BACKOFF_MAX);
        // Retry when the pause ends even if no new connection arrives (edge-triggered poll).
        g.listener_ready = true;
        if g.accept_err_logged
            .is_some_and(|at| now.duration_since(at) < ACCEPT_LOG_INTERVAL)
        {
            g.accept_err_unlogged += 1;
            return;
        }
        let more = std::mem::take(&mut g.accept_err_unlogged);
        g.accept_err_logged = Some(now);
        crate::fcgi_log!(
            Error,
            "accept failed: {e}; pausing new connections for {} ms ({more} more failures \
             since the last report; {} connections open)",
            pause.as_millis(),
            g.n_conns
        );
    }

    /// Feeds kept and new input of connection `t` to its engine until the socket is dry, the
    /// engine is blocked by a full request buffer, or the connection ends.
    /// `now` is a recent time (the leader's poll return): it stamps requests that begin.
    pub(super) fn pump(&self, g: &mut Core, t: usize, now: Instant) {
        loop {
            let Some(conn) = g.conns.get_mut(t).and_then(|c| c.as_mut()) else {
                return;
            };
            if !conn.pending_in.is_empty() {
                let pending = std::mem::take(&mut conn.pending_in);
                match self.feed(g, t, &pending, now) {
                    Ok(c) => {
                        let conn = g.conns[t].as_mut().expect("feed keeps the connection");
                        if c < pending.len() {
                            conn.pending_in = pending;
                            conn.pending_in.drain(..c);
                            conn.paused = true;
                            break;
                        }
                        conn.paused = false;
                        conn.pending_in = pending;
                        conn.pending_in.clear();
                    }
                    Err(()) => return,
                }
                continue;
            }
            if conn.paused || !conn.readable || conn.read_closed {
                break;
            }
            let fd = conn.io.fd();
            let mut scratch = std::mem::take(&mut g.scratch);
            let r = sys::read(fd, &mut scratch);
            let outcome = match r {
                Ok(0) => {
                    g.scratch = scratch;
                    self.peer_closed(g, t);
                    return;
                }
                Ok(n) => {
                    let lingering = g.conns[t].as_ref().is_some_and(|c| c.lingering);
                    let res = if lingering {
                        Ok(n)
                    } else {
                        self.feed(g, t, &scratch[..n], now)
                    };
                    match res {
                        Ok(c) => {
                            let conn = g.conns[t].as_mut().expect("feed keeps the connection");
                            if c < n {
                                conn.pending_in.extend_from_slice(&scratch[c..n]);
                                conn.paused = true;
                            } else if n < scratch.len() && !conn.hup {
                                // Drained (a short read), unless the peer's FIN or an error
                                // came with the data: then the next read sees it.
                                conn.readable = false;
                            }
                            Ok(())
                        }
                        Err(()) => Err(()),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(c) = g.conns[t].as_mut() {
                        c.readable = false;
                    }
                    Ok(())
                }
                Err(e) => {
                    crate::fcgi_log!(
                        Notice,
                        "read from {:?} failed: {e}",
                        g.conns[t].as_ref().map(|c| &c.peer)
                    );
                    g.scratch = scratch;
                    self.close_conn(g, t);
                    return;
                }
            };
            g.scratch = scratch;
            if outcome.is_err() {
                return;
            }
        }
        self.rearm(g, t);
    }

    /// Feeds bytes to the engine of `t` and applies what it produced. `Err` when the
    /// connection was closed for a protocol error.
    pub(super) fn feed(
        &self,
        g: &mut Core,
        t: usize,
        data: &[u8],
        now: Instant,
    ) -> Result<usize, ()> {
        let Core {
            conns,
            spare,
            fx,
            in_flight,
            out,
            ..
        } = g;
        let conn = conns[t].as_mut().expect("caller checked");
        let mut sink = ConnSink {
            reqs: &mut conn.reqs,
            spare,
            fx,
            in_flight: *in_flight,
            now,
        };
        let r = conn.engine.feed(data, &mut sink, out);
        let io = conn.io.clone();
        let gen = conn.gen;
        let peer = conn.peer;
        self.apply_effects(g, t, gen, &io);
        if io.is_broken() {
            // Writing failed, or the peer does not read: nothing more can be answered.
            self.close_conn(g, t);
            return Err(());
        }
        match r {
            Ok(c) => Ok(c),
            Err(e) => {
                crate::fcgi_log!(
                    Warning,
                    "protocol error from {peer:?}: {e:?}; closing the connection"
                );
                self.close_conn(g, t);
                Err(())
            }
        }
    }

    pub(super) fn apply_effects(&self, g: &mut Core, t: usize, gen: u64, io: &Arc<ConnIo>) {
        let policy = SendPolicy {
            write_behind: usize::MAX,
            wait: None,
        };
        let mut fx = std::mem::take(&mut g.fx);
        if !g.out.is_empty() || !fx.out.is_empty() {
            let _ = io.send(None, &[&g.out, &fx.out], false, policy);
            g.out.clear();
            fx.out.clear();
            // Answers the library owes (GET_VALUES_RESULT, UNKNOWN_TYPE, refusals) are small,
            // but a peer that keeps asking without reading would make them grow without
            // bound: past the write-behind limit plus a margin, it is disconnected.
            let bound = config::get(Limit::WriteBehindBytes) as usize + MGMT_SLACK;
            if io.pending_len() > bound {
                crate::fcgi_log!(
                    Warning,
                    "peer does not read its answers ({} bytes waiting); closing the connection",
                    io.pending_len()
                );
                io.set_broken();
            }
        }
        for (id, shared) in fx.aborted_taken.drain(..) {
            let mut rec = Vec::with_capacity(16);
            push_end_request(&mut rec, id, 0, ProtocolStatus::RequestComplete);
            io.send_abort_end(&shared, &rec);
        }
        g.in_flight = (g.in_flight as isize + fx.in_flight_delta).max(0) as usize;
        fx.in_flight_delta = 0;
        for w in fx.wake.drain(..) {
            w.notify();
        }
        for id in fx.ready.drain(..) {
            g.ready.push_back((t, gen, id));
            if g.leader_takes > 0 {
                g.leader_takes -= 1;
                continue;
            }
            if let Some(i) = g.sleepers.iter().position(|(_, k)| *k == Kind::Accept) {
                let (w, _) = g.sleepers.remove(i).expect("index from position");
                w.notify();
            } else if g.leader != Leader::Loop {
                // No thread waits: an event loop takes it (a leading loop looks by itself).
                for l in &g.loops {
                    l.wake();
                }
            }
        }
        g.fx = fx;
    }

    /// The peer closed its side. Requests still receiving input are cut short; requests
    /// being served may still write their response; the connection closes when none is left.
    pub(super) fn peer_closed(&self, g: &mut Core, t: usize) {
        let Some(conn) = g.conns[t].as_mut() else {
            return;
        };
        conn.read_closed = true;
        conn.readable = false;
        if conn.lingering {
            self.close_conn(g, t);
            return;
        }
        let mut dropped = 0;
        let mut i = 0;
        while i < conn.reqs.len() {
            let s = &mut conn.reqs[i];
            if s.phase == Phase::Params {
                let slot = conn.reqs.swap_remove(i);
                g.spare.push(slot);
                dropped += 1;
                continue;
            }
            s.shared.peer_closed.store(true, Ordering::Release);
            let cut = !s.stdin_eof || (s.role == crate::protocol::Role::Filter && !s.data_eof);
            s.truncated |= cut;
            match &s.waiter {
                // A loop request's waiter stays (it hears of everything until it ends): it
                // learns that its peer went away whatever it waits for.
                Some(w) if w.is_loop() => w.notify(),
                Some(_) if cut => {
                    if let Some(w) = s.waiter.take() {
                        w.notify();
                    }
                }
                _ => {}
            }
            i += 1;
        }
        g.in_flight = g.in_flight.saturating_sub(dropped);
        let conn = g.conns[t].as_mut().expect("present");
        if conn.reqs.iter().all(|s| s.phase != Phase::Taken) {
            self.close_conn(g, t);
        } else {
            conn.close_when_idle = true;
        }
    }

    /// Closes connection `t` now. Requests the application holds are marked aborted.
    pub(super) fn close_conn(&self, g: &mut Core, t: usize) {
        let Some(conn) = g.conns.get_mut(t).and_then(|c| c.take()) else {
            return;
        };
        let fd = conn.io.fd();
        let _ = self.registry.deregister(&mut SourceFd(&fd));
        conn.io.set_broken();
        let mut dropped = 0;
        for mut s in conn.reqs {
            if s.phase == Phase::Taken {
                s.shared.aborted.store(true, Ordering::Release);
                if let Some(w) = s.waiter.take() {
                    w.notify();
                }
            } else {
                dropped += 1;
            }
            s.params.clear();
            g.spare.push(s);
        }
        g.in_flight = g.in_flight.saturating_sub(dropped);
        g.n_conns -= 1;
        g.free.push(t);
        if g.accept_paused_until.is_some() {
            // A descriptor was freed: accepting may work again.
            g.accept_paused_until = Some(Instant::now());
        }
        if std::mem::take(&mut g.accept_full) {
            // Below the limit again: a leader blocked in the poll (this close may come from
            // an application thread) looks at the backlog now, or an event loop's next
            // fcgi_loop_work does.
            if g.poll.is_none() {
                self.wake.wake();
            } else {
                for l in &g.loops {
                    l.wake();
                }
            }
        }
    }

    pub(super) fn rearm(&self, g: &mut Core, t: usize) {
        let Some(conn) = g.conns.get_mut(t).and_then(|c| c.as_mut()) else {
            return;
        };
        if let Some(d) = conn.deadline() {
            if conn.armed.is_none_or(|a| d < a) {
                conn.armed = Some(d);
                let gen = conn.gen;
                let earliest = g.timers.peek().is_none_or(|Reverse((e, _, _))| d < *e);
                g.timers.push(Reverse((d, t, gen)));
                if earliest && !g.loops.is_empty() && g.leader != Leader::Loop {
                    // An event loop waits with the timeout of its last fcgi_loop_work, which
                    // this earlier deadline (set outside it: a request ending, say) would
                    // miss: its next work returns the new one. A blocking leader polling
                    // instead is woken to recompute its timeout.
                    if g.poll.is_some() {
                        for l in &g.loops {
                            l.wake();
                        }
                    } else {
                        self.wake.wake();
                    }
                }
            }
        }
    }

    pub(super) fn fire_timers(&self, g: &mut Core, now: Instant) {
        while let Some(Reverse((d, t, gen))) = g.timers.peek().copied() {
            if d > now {
                break;
            }
            g.timers.pop();
            let Some(conn) = g.conn_mut(t, gen) else {
                continue;
            };
            if conn.armed != Some(d) {
                continue;
            }
            conn.armed = None;
            let write_timeout = Duration::from_millis(config::get(Limit::WriteTimeoutMs));
            if conn
                .io
                .room_wait_since()
                .is_some_and(|s| now.duration_since(s) >= write_timeout)
            {
                // The non-blocking face's write timeout (a blocking writer times itself out).
                crate::fcgi_log!(
                    Warning,
                    "write to {:?} timed out after {} ms; closing",
                    conn.peer,
                    write_timeout.as_millis()
                );
                self.close_conn(g, t);
                continue;
            }
            match conn.deadline() {
                Some(_)
                    if conn.lingering
                        && conn.io.pending_len() > 0
                        && now.duration_since(conn.linger_since)
                            < std::time::Duration::from_millis(config::get(
                                Limit::WriteTimeoutMs,
                            )) =>
                {
                    // Output of the last request is still leaving: wait on, within the write
                    // timeout.
                    conn.idle_since = now;
                    self.rearm(g, t);
                }
                Some(dl) if dl <= now => {
                    if conn.lingering {
                        crate::fcgi_log!(Debug, "closing connection after linger");
                    } else if conn.reqs.iter().any(|s| s.phase == Phase::Params) {
                        crate::fcgi_log!(
                            Warning,
                            "PARAMS from {:?} not complete within {} ms; closing the connection",
                            conn.peer,
                            config::get(Limit::ParamsTimeoutMs)
                        );
                    } else {
                        crate::fcgi_log!(Debug, "closing idle connection from {:?}", conn.peer);
                    }
                    self.close_conn(g, t);
                }
                _ => self.rearm(g, t),
            }
        }
    }
}
