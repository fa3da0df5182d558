//! A connection's input path: reading the socket, feeding the engine, applying what the
//! engine produced, and closing. Runs on whichever thread holds the connection's slot lock: a
//! thread that got its event from the epoll, a thread reading its own request's input, the
//! standby, an event loop.

use super::config::{self, Limit};
use super::conn::{Conn, Phase};
use super::io::SendPolicy;
use super::reactor::{Found, Reactor};
use super::ready::Ready;
use super::sys;
use fcgi_runtime_protocol::record::{push_end_request, ProtocolStatus};
use std::cell::Cell;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

const READ_CHUNK: usize = 64 * 1024;

/// Room for management answers beyond the write-behind limit before a peer that does not read
/// is disconnected.
const MGMT_SLACK: usize = 64 * 1024;

thread_local! {
    /// Each thread's read buffer (64 KiB, allocated on a thread's first read).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// What became of a connection after its input was handled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Pumped {
    Open,
    Closed,
}

impl Reactor {
    /// Feeds kept and new input of the connection in `slot` (index `idx`) to its engine until
    /// the socket is dry, the engine is blocked by a full request buffer, or the connection
    /// ends. `now` is a recent time: it stamps requests that begin.
    pub(super) fn pump(
        &self,
        slot: &mut Option<Conn>,
        idx: u32,
        now: Instant,
        found: &mut Found<'_>,
    ) -> Pumped {
        let mut scratch = SCRATCH.with(|s| s.take());
        if scratch.len() < READ_CHUNK {
            scratch.resize(READ_CHUNK, 0);
        }
        let r = self.pump_with(slot, idx, now, found, &mut scratch);
        SCRATCH.with(|s| s.set(scratch));
        r
    }

    fn pump_with(
        &self,
        slot: &mut Option<Conn>,
        idx: u32,
        now: Instant,
        found: &mut Found<'_>,
        scratch: &mut [u8],
    ) -> Pumped {
        loop {
            let Some(conn) = slot.as_mut() else {
                return Pumped::Closed;
            };
            if !conn.pending_in.is_empty() {
                let pending = std::mem::take(&mut conn.pending_in);
                match self.feed(slot, idx, &pending, now, found) {
                    Ok(c) => {
                        let conn = slot.as_mut().expect("feed keeps the connection");
                        conn.pending_in = pending;
                        if c < conn.pending_in.len() {
                            conn.pending_in.drain(..c);
                            conn.paused = true;
                            break;
                        }
                        conn.paused = false;
                        conn.pending_in.clear();
                    }
                    Err(()) => return Pumped::Closed,
                }
                continue;
            }
            if conn.paused || !conn.readable || conn.read_closed {
                break;
            }
            match sys::read(conn.io.fd(), scratch) {
                Ok(0) => {
                    self.peer_closed(slot, idx);
                    return if slot.is_some() {
                        Pumped::Open
                    } else {
                        Pumped::Closed
                    };
                }
                Ok(n) => {
                    if !conn.spoke {
                        conn.spoke = true;
                        self.first_input();
                    }
                    let res = if conn.lingering {
                        Ok(n)
                    } else {
                        self.feed(slot, idx, &scratch[..n], now, found)
                    };
                    let Ok(c) = res else {
                        return Pumped::Closed;
                    };
                    let conn = slot.as_mut().expect("feed keeps the connection");
                    if c < n {
                        conn.pending_in.extend_from_slice(&scratch[c..n]);
                        conn.paused = true;
                    } else if n < scratch.len() && !conn.hup {
                        // Drained (a short read), unless the peer's FIN or an error came with
                        // the data: then the next read sees it.
                        conn.readable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.readable = false;
                }
                Err(e) => {
                    // A peer that resets its connection is an ordinary event (PHP's layer
                    // logs no read error at all): only other failures are logged.
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) {
                        crate::fcgi_log!(Notice, "read from {} failed: {e}", conn.peer);
                    }
                    self.close_conn(slot, idx);
                    return Pumped::Closed;
                }
            }
        }
        if let Some(conn) = slot.as_mut() {
            self.rearm(conn, idx);
        }
        Pumped::Open
    }

    /// Feeds bytes to the engine and applies what it produced. `Err` when the connection was
    /// closed (a protocol error, or its output failed).
    pub(super) fn feed(
        &self,
        slot: &mut Option<Conn>,
        idx: u32,
        data: &[u8],
        now: Instant,
        found: &mut Found<'_>,
    ) -> Result<usize, ()> {
        let conn = slot.as_mut().expect("caller checked");
        let (engine, mut sink, out) = conn.engine_and_sink(&self.in_flight, now);
        let r = engine.feed(data, &mut sink, out);
        self.apply_effects(conn, idx, found);
        if conn.io.is_broken() {
            // Writing failed, or the peer does not read: nothing more can be answered.
            self.close_conn(slot, idx);
            return Err(());
        }
        match r {
            Ok(c) => Ok(c),
            Err(e) => {
                crate::fcgi_log!(
                    Warning,
                    "protocol error from {}: {e}; closing the connection",
                    conn.peer
                );
                self.close_conn(slot, idx);
                Err(())
            }
        }
    }

    /// Sends the answers the library owes, ends aborted requests, notifies waiters, and hands
    /// out ready requests.
    pub(super) fn apply_effects(&self, conn: &mut Conn, idx: u32, found: &mut Found<'_>) {
        let io = &conn.io;
        if !conn.mgmt_out.is_empty() || !conn.fx.out.is_empty() {
            let policy = SendPolicy {
                write_behind: usize::MAX,
                wait: None,
            };
            let _ = io.send(None, &[&conn.mgmt_out, &conn.fx.out], false, policy);
            conn.mgmt_out.clear();
            conn.fx.out.clear();
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
        for (id, shared) in conn.fx.aborted_taken.drain(..) {
            let mut rec = Vec::with_capacity(16);
            push_end_request(&mut rec, id, 0, ProtocolStatus::RequestComplete);
            io.send_abort_end(&shared, &rec);
        }
        for w in conn.fx.wake.drain(..) {
            w.notify();
        }
        let gen = conn.gen;
        for id in conn.fx.ready.drain(..) {
            found.place(Ready { idx, gen, id }, self);
        }
    }

    /// The peer closed its side. Requests still receiving input are cut short; requests
    /// being served may still write their response; the connection closes when none is left.
    pub(super) fn peer_closed(&self, slot: &mut Option<Conn>, idx: u32) {
        let Some(conn) = slot.as_mut() else {
            return;
        };
        conn.read_closed = true;
        conn.readable = false;
        if conn.lingering {
            self.close_conn(slot, idx);
            return;
        }
        let mut i = 0;
        while i < conn.reqs.len() {
            let s = &mut conn.reqs[i];
            if s.phase == Phase::Params {
                conn.drop_slot(i);
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            s.shared.peer_closed.store(true, Ordering::Release);
            let cut =
                !s.stdin_eof || (s.role == fcgi_runtime_protocol::Role::Filter && !s.data_eof);
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
        if conn.reqs.iter().all(|s| s.phase != Phase::Taken) {
            self.close_conn(slot, idx);
        } else {
            conn.close_when_idle = true;
        }
    }

    /// Closes the connection in `slot` now. Requests the application holds are marked aborted
    /// and their waiters notified; the slot is free for a new connection.
    pub(super) fn close_conn(&self, slot: &mut Option<Conn>, idx: u32) {
        self.close_conn_as(slot, idx, false);
    }

    /// [`Reactor::close_conn`] from the thread that holds the connection's socket for a
    /// request it is ending: its descriptor closes when that thread lets go a moment later,
    /// which removes it from the epoll without a system call.
    pub(super) fn close_conn_ending(&self, slot: &mut Option<Conn>, idx: u32) {
        self.close_conn_as(slot, idx, true);
    }

    fn close_conn_as(&self, slot: &mut Option<Conn>, idx: u32, ending: bool) {
        let Some(conn) = self.conns.take(slot) else {
            return;
        };
        let fd = conn.io.fd();
        if Arc::strong_count(&conn.io) > 1 + ending as usize {
            // An application thread still holds the socket (its descriptor stays open until
            // it lets go): stop its events now.
            let _ = self.epoll_of(&conn.owner).delete(fd);
        }
        let mut conn = conn;
        conn.io.set_broken();
        for s in std::mem::take(&mut conn.reqs) {
            if s.phase == Phase::Taken {
                s.shared.aborted.store(true, Ordering::Release);
                if let Some(w) = &s.waiter {
                    w.notify();
                }
            } else {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.release_slot(&mut conn, idx);
    }

    /// Takes the connection in `slot`, which has no request, out of the runtime without
    /// closing it: out of its epoll and the table (the relay serves it for a while, then
    /// hands it back with [`Reactor::adopt`]).
    pub(super) fn detach_conn(&self, slot: &mut Option<Conn>, idx: u32) -> Option<Conn> {
        let mut conn = self.conns.take(slot)?;
        debug_assert!(conn.reqs.is_empty());
        let _ = self.epoll_of(&conn.owner).delete(conn.io.fd());
        self.release_slot(&mut conn, idx);
        Some(conn)
    }

    /// What a connection leaving the table undoes: its worker's count, its timer, its slot.
    fn release_slot(&self, conn: &mut Conn, idx: u32) {
        conn.uncount();
        if conn.armed.take().is_some() {
            self.disarm(idx);
        }
        self.conns.not_fresh(idx);
        self.conns.release(idx);
        self.closed_any.store(true, Ordering::Release);
        if self.full.swap(false, Ordering::AcqRel) {
            // Below the limit again: a waiting thread (or an event loop) looks at the backlog.
            self.listener_ready.store(true, Ordering::Release);
            self.kick();
        }
        if self.draining.load(Ordering::Acquire) && self.conns.open() == 0 {
            // Drained: every thread in accept returns.
            self.wake_all();
        }
    }
}
