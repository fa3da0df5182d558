//! One connection as the reactor sees it: its protocol engine, the requests in flight on it,
//! what their events produced, and the [`Sink`] through which the engine delivers them. A
//! `Conn` lives in its slot of the connection table (conns.rs), whose mutex is its one owner.

use super::config::{self, Limit};
use super::io::{ConnIo, ReqShared};
use super::ring::Ring;
use super::waiter::Waiter;
use fcgi_runtime_protocol::record::{mgmt, push_end_request};
use fcgi_runtime_protocol::{Admission, Engine, ParamStore, ProtocolStatus, Role, Sink};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How long a closing connection waits for the peer's EOF (or, while output is still
/// leaving, for progress) before it is closed.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a request is in its life, seen from the reactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// BEGIN_REQUEST seen, PARAMS arriving.
    Params,
    /// PARAMS complete, waiting in the ready queue for an application thread.
    Ready,
    /// An application thread serves it.
    Taken,
}

/// A request in flight on a connection.
pub struct ReqSlot {
    pub id: u16,
    pub role: Role,
    pub keep_conn: bool,
    pub phase: Phase,
    pub params: ParamStore,
    pub stdin: Ring,
    pub stdin_eof: bool,
    pub data: Ring,
    pub data_eof: bool,
    /// Input stream cut short (the peer closed the connection mid-request).
    pub truncated: bool,
    pub shared: Arc<ReqShared>,
    /// Who waits for input on this request, if anyone: a blocking thread (removed when
    /// notified) or a loop request (stays while the request is served).
    pub waiter: Option<Arc<Waiter>>,
    pub began: Instant,
}

/// Reactor-side state of a connection.
pub struct Conn {
    pub gen: u32,
    pub io: Arc<ConnIo>,
    pub engine: Engine,
    pub peer: super::addr::Peer,
    /// Boxed: slots move between this vector and the spare pool request after request, and a
    /// pointer moves for free where the slot itself is a few hundred bytes.
    #[allow(clippy::vec_box)]
    pub reqs: Vec<Box<ReqSlot>>,
    /// Bytes read from the socket that the engine could not take yet (back-pressure).
    pub pending_in: Vec<u8>,
    /// An edge said readable and the socket has not been read dry since.
    pub readable: bool,
    /// Reading stopped because a request's input buffer is full.
    pub paused: bool,
    /// The peer closed its side (or the connection failed).
    pub read_closed: bool,
    /// The poll reported the peer's end of input (or an error): read until EOF, since no
    /// further readiness event will come for it (edge-triggered).
    pub hup: bool,
    /// Close once no request is in flight (a request without KEEP_CONN, or fcgi_close).
    pub close_when_idle: bool,
    /// Closing: output is drained, then shut down for writing, then the peer's EOF awaited.
    pub lingering: bool,
    /// When the connection started closing.
    pub linger_since: Instant,
    /// When the connection last became idle (no request in flight).
    pub idle_since: Instant,
    /// Deadline armed in the timer heap for this connection, if any.
    pub armed: Option<Instant>,
    /// No request of this connection has been taken by a thread yet.
    pub fresh: bool,
    /// What the engine's events produced, applied after each feed (pump.rs).
    pub fx: Effects,
    /// Management answers the engine wrote (GET_VALUES_RESULT, UNKNOWN_TYPE, refusals).
    pub mgmt_out: Vec<u8>,
    /// The last request that ended had received all of its input (the peer has nothing
    /// more to send for it): a connection closing after it needs no linger when nothing is
    /// left unread.
    pub input_complete: bool,
    /// Counted in its owner's `conns` (until it starts closing: a lingering connection
    /// carries no more requests, and should not keep new ones from its worker).
    pub counted: bool,
    /// Some bytes were read from it (the first read counts for the test hook
    /// FCGI_RUNTIME_TEST_PANIC).
    pub spoke: bool,
    /// The worker whose epoll holds this connection (`None`: the server's orphan epoll).
    pub owner: Option<Arc<super::worker::Worker>>,
    /// Slots of ended requests, kept for the connection's next requests: no allocation per
    /// request on a kept connection.
    #[allow(clippy::vec_box)]
    pub spare: Vec<Box<ReqSlot>>,
}

impl Conn {
    pub fn new(gen: u32, io: Arc<ConnIo>, peer: super::addr::Peer, now: Instant) -> Conn {
        Conn {
            gen,
            io,
            engine: Engine::new(config::engine_config()),
            peer,
            reqs: Vec::new(),
            pending_in: Vec::new(),
            readable: false,
            paused: false,
            read_closed: false,
            hup: false,
            close_when_idle: false,
            lingering: false,
            linger_since: now,
            idle_since: now,
            armed: None,
            fresh: true,
            fx: Effects::default(),
            mgmt_out: Vec::new(),
            owner: None,
            input_complete: false,
            counted: false,
            spoke: false,
            spare: Vec::new(),
        }
    }

    /// Splits the connection into the engine, the sink it feeds and its answer buffer.
    pub fn engine_and_sink<'a>(
        &'a mut self,
        in_flight: &'a AtomicUsize,
        now: Instant,
    ) -> (&'a mut Engine, ConnSink<'a>, &'a mut Vec<u8>) {
        (
            &mut self.engine,
            ConnSink {
                reqs: &mut self.reqs,
                spare: &mut self.spare,
                fx: &mut self.fx,
                in_flight,
                now,
            },
            &mut self.mgmt_out,
        )
    }

    /// The connection starts closing (no more requests): shutdown(SHUT_WR) once its output
    /// has left, then its EOF is awaited (the linger); it no longer counts for its worker.
    pub fn start_linger(&mut self, now: Instant) {
        self.lingering = true;
        self.idle_since = now;
        self.linger_since = now;
        self.io.shutdown_when_flushed();
        self.uncount();
    }

    /// Stops counting the connection in its owner's `conns`.
    pub fn uncount(&mut self) {
        if std::mem::take(&mut self.counted) {
            if let Some(w) = &self.owner {
                w.conns.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Ends request slot `i`: its id is free again in the engine, the slot kept for reuse.
    pub fn drop_slot(&mut self, i: usize) {
        let mut slot = self.reqs.swap_remove(i);
        self.input_complete =
            slot.stdin_eof && (slot.role != Role::Filter || slot.data_eof) && !slot.truncated;
        self.engine.end_request(slot.id);
        slot.params.clear();
        slot.waiter = None;
        self.spare.push(slot);
    }

    pub fn slot_mut(&mut self, id: u16) -> Option<&mut ReqSlot> {
        self.reqs.iter_mut().find(|s| s.id == id).map(|s| &mut **s)
    }

    /// The deadline that applies now: the linger of a closing connection, the write timeout
    /// of an event-loop writer waiting for room, PARAMS of the oldest request still in PARAMS,
    /// or the idle keep-alive time.
    pub fn deadline(&self) -> Option<Instant> {
        use std::time::Duration;
        if self.lingering {
            return Some(self.idle_since + LINGER);
        }
        if let Some(since) = self.io.room_wait_since() {
            // An event-loop writer waits for the peer to read: the write timeout runs.
            return Some(since + Duration::from_millis(config::get(Limit::WriteTimeoutMs)));
        }
        let params = self
            .reqs
            .iter()
            .filter(|s| s.phase == Phase::Params)
            .map(|s| s.began)
            .min();
        if let Some(b) = params {
            return Some(b + Duration::from_millis(config::get(Limit::ParamsTimeoutMs)));
        }
        if self.reqs.is_empty() {
            return Some(
                self.idle_since + Duration::from_millis(config::get(Limit::KeepaliveTimeoutMs)),
            );
        }
        None
    }
}

/// What the engine's events produce beyond the connection itself.
#[derive(Default)]
pub struct Effects {
    /// Requests whose PARAMS completed (ids on this connection), in order.
    pub ready: Vec<u16>,
    /// Waiters to notify: input arrived for the request they wait on, or it ended.
    pub wake: Vec<Arc<Waiter>>,
    /// Records the library owes the peer: GET_VALUES_RESULT, UNKNOWN_TYPE, refusals, and
    /// END_REQUEST for aborted requests not taken by the application.
    pub out: Vec<u8>,
    /// Requests taken by the application that were aborted (END_REQUEST to send under the
    /// write lock).
    pub aborted_taken: Vec<(u16, Arc<ReqShared>)>,
}

/// Hands a request's waiter to the effects: a blocking thread's registration ends with the
/// notification, a loop request's stays for as long as it is served.
pub fn wake_waiter(waiter: &mut Option<Arc<Waiter>>, fx: &mut Effects) {
    match waiter {
        Some(w) if w.is_loop() => fx.wake.push(w.clone()),
        Some(_) => fx.wake.extend(waiter.take()),
        None => {}
    }
}

/// The engine's view of a connection plus the process-wide count of requests in flight.
pub struct ConnSink<'a> {
    #[allow(clippy::vec_box)]
    pub reqs: &'a mut Vec<Box<ReqSlot>>,
    #[allow(clippy::vec_box)]
    pub spare: &'a mut Vec<Box<ReqSlot>>,
    pub fx: &'a mut Effects,
    pub in_flight: &'a AtomicUsize,
    pub now: Instant,
}

fn take_input(
    ring: &mut Ring,
    data: &[u8],
    waiter: &mut Option<Arc<Waiter>>,
    fx: &mut Effects,
) -> usize {
    let n = ring.push(data);
    if n > 0 {
        wake_waiter(waiter, fx);
    }
    n
}

impl Sink for ConnSink<'_> {
    fn begin(&mut self, id: u16, role: Role, keep_conn: bool) -> Admission {
        let max = config::get(Limit::MaxReqs) as usize;
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        if let Err(now_in_flight) = admitted {
            crate::fcgi_log!(
                Warning,
                "request {id} refused with FCGI_OVERLOADED: {now_in_flight} requests in flight (limit {max})"
            );
            crate::hooks::with(|h| h.refused_overloaded());
            return Admission::Refuse(ProtocolStatus::Overloaded);
        }
        let mut slot = self.spare.pop().unwrap_or_else(|| {
            Box::new(ReqSlot {
                id,
                role,
                keep_conn,
                phase: Phase::Params,
                params: ParamStore::new(),
                stdin: Ring::default(),
                stdin_eof: false,
                data: Ring::default(),
                data_eof: false,
                truncated: false,
                shared: Arc::new(ReqShared::default()),
                waiter: None,
                began: self.now,
            })
        });
        slot.id = id;
        slot.role = role;
        slot.keep_conn = keep_conn;
        slot.phase = Phase::Params;
        slot.stdin_eof = false;
        slot.data_eof = false;
        slot.truncated = false;
        slot.began = self.now;
        slot.waiter = None;
        if Arc::strong_count(&slot.shared) != 1 {
            slot.shared = Arc::new(ReqShared::default());
        } else {
            let s = &slot.shared;
            s.aborted.store(false, std::sync::atomic::Ordering::Relaxed);
            s.ended.store(false, std::sync::atomic::Ordering::Relaxed);
            s.peer_closed
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        let cap = config::get(Limit::StdinBufferBytes) as usize;
        slot.stdin.reset(cap);
        slot.data.reset(cap);
        self.reqs.push(slot);
        Admission::Admit
    }

    fn params(&mut self, id: u16, params: &mut ParamStore) {
        if let Some(s) = self.reqs.iter_mut().find(|s| s.id == id) {
            std::mem::swap(&mut s.params, params);
            params.clear();
            s.phase = Phase::Ready;
            self.fx.ready.push(id);
        }
    }

    fn stdin(&mut self, id: u16, data: &[u8]) -> usize {
        match self.reqs.iter_mut().find(|s| s.id == id) {
            Some(s) => take_input(&mut s.stdin, data, &mut s.waiter, self.fx),
            None => data.len(),
        }
    }

    fn stdin_end(&mut self, id: u16) {
        if let Some(s) = self.reqs.iter_mut().find(|s| s.id == id) {
            s.stdin_eof = true;
            wake_waiter(&mut s.waiter, self.fx);
        }
    }

    fn data(&mut self, id: u16, data: &[u8]) -> usize {
        match self.reqs.iter_mut().find(|s| s.id == id) {
            Some(s) => take_input(&mut s.data, data, &mut s.waiter, self.fx),
            None => data.len(),
        }
    }

    fn data_end(&mut self, id: u16) {
        if let Some(s) = self.reqs.iter_mut().find(|s| s.id == id) {
            s.data_eof = true;
            wake_waiter(&mut s.waiter, self.fx);
        }
    }

    fn abort(&mut self, id: u16) {
        let Some(i) = self.reqs.iter().position(|s| s.id == id) else {
            return;
        };
        let mut slot = self.reqs.swap_remove(i);
        crate::fcgi_log!(Debug, "request {id} aborted by the server");
        if slot.phase == Phase::Taken {
            // The application holds it: END_REQUEST goes out under the write lock, and the
            // application's reads and writes fail from now on.
            if let Some(w) = slot.waiter.take() {
                self.fx.wake.push(w);
            }
            self.fx.aborted_taken.push((id, slot.shared.clone()));
            // The in-flight count drops when the application finishes it. The application
            // still holds `shared`; `begin` gives the slot a new one when it is reused.
        } else {
            push_end_request(&mut self.fx.out, id, 0, ProtocolStatus::RequestComplete);
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        slot.params.clear();
        self.spare.push(slot);
    }

    fn mgmt_value(&mut self, name: &[u8], out: &mut Vec<u8>) -> bool {
        let v = match name {
            n if n == mgmt::MAX_CONNS => config::get(Limit::MaxConns),
            n if n == mgmt::MAX_REQS => config::get(Limit::MaxReqs),
            n if n == mgmt::MPXS_CONNS => config::get(Limit::MpxsConns),
            other => return super::mgmt::lookup(other, out),
        };
        out.extend_from_slice(v.to_string().as_bytes());
        true
    }
}
