//! A request that would wait behind a busy process is relayed to a sibling (see
//! docs/runtime-design.md, "A request that would wait behind a busy process").
//!
//! Web servers keep connections alive to pre-fork workers (PHP-FPM's model) and send each
//! request on any idle one. A connection held by a process whose application threads are all
//! busy parks that request behind the running one, while a sibling sharing the listening
//! socket may wait idle. When the standby finds a request arriving on such a connection (an
//! idle connection of a busy worker, in a process where no application thread waits), it
//! takes the connection out of the runtime, connects to the listening socket itself, and a
//! relay thread copies that one request over, as sent, and its response back, then closes. A
//! process with a waiting thread accepts the new connection: a sibling, or this process once
//! its thread is free, whichever comes first. After END_REQUEST the web server's connection
//! returns to the runtime as it was, kept alive.
//!
//! Unlike closing idle connections (shed.rs), nothing is closed under the web server: no
//! request can meet a closing connection. The cost is one more local hop for the requests
//! that would have waited, and a thread while one is relayed (at most [`MAX_RELAYS`] at once;
//! beyond that a request waits as before).
//!
//! `FCGI_RUNTIME_RELAY`: `auto` (the default) relays in a process with one application thread
//! (PHP's model) whose listening socket may be shared with sibling processes (this process did
//! not create it, see shed.rs); `1` in any process once all its threads are busy; `0` never. A
//! relayed connection comes from the listening socket's own address (loopback for a wildcard
//! one): when FCGI_WEB_SERVER_ADDRS does not allow that address, nothing is relayed.

use super::addr::Peer;
use super::conn::Conn;
use super::conn::Phase;
use super::conns;
use super::reactor::{Found, Reactor, CONN_EVENTS};
use super::sys::{self, SockAddr};
use fcgi_runtime_protocol::record::MANAGEMENT_ID;
use fcgi_runtime_protocol::relay::{ReadSoFar, RequestScan, ResponseScan};
use parking_lot::Mutex;
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Requests relayed at once, at most (each has a thread while it runs).
pub const MAX_RELAYS: usize = 64;
/// Bytes buffered per direction before reading that side pauses (a whole record fits).
const BUFFERED: usize = 80 * 1024;

/// A connection taken out of the runtime, with the connection opened for its request.
pub struct Job {
    pub conn: Conn,
    pub up: OwnedFd,
    /// Where the request stands: nothing read yet (`Start`), or read up to a record boundary
    /// and queued (its records to send first, the scan for the rest, bytes read past it).
    pub start: Start,
}

/// How much of the request the runtime had read when it was relayed.
pub enum Start {
    Untouched,
    Queued {
        preface: Vec<u8>,
        scan: RequestScan,
        read_ahead: Vec<u8>,
    },
}

/// The relay's state in a reactor.
pub struct Relay {
    /// The listening socket's address to connect to; `None`: relaying is off.
    target: Option<(SockAddr, Peer)>,
    /// Only while the process has a single application thread (`auto`).
    single_thread_only: bool,
    active: AtomicUsize,
    jobs: Mutex<Vec<Job>>,
}

impl Relay {
    /// The relay for listening socket `fd`, from `FCGI_RUNTIME_RELAY`.
    pub fn for_listener(fd: RawFd) -> Relay {
        let v = std::env::var("FCGI_RUNTIME_RELAY").unwrap_or_default();
        let forced = matches!(v.trim(), "1" | "on" | "yes");
        let on = match v.trim() {
            "1" | "on" | "yes" => true,
            "0" | "off" | "no" => false,
            "" | "auto" => super::shed::may_be_shared(fd),
            other => {
                crate::fcgi_log!(
                    Warning,
                    "FCGI_RUNTIME_RELAY={other} is not one of 0, 1, auto; using auto"
                );
                super::shed::may_be_shared(fd)
            }
        };
        Relay {
            target: if on { target_of(fd) } else { None },
            single_thread_only: !forced,
            active: AtomicUsize::new(0),
            jobs: Mutex::new(Vec::new()),
        }
    }

    /// Jobs waiting for their thread.
    pub fn take_jobs(&self) -> Vec<Job> {
        std::mem::take(&mut *self.jobs.lock())
    }

    /// A relay ended (its thread, or a job that never got one).
    pub fn ended(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// True when the worker whose epoll holds `conn` is busy (its thread is not waiting).
fn owner_busy(conn: &Conn) -> bool {
    conn.owner
        .as_ref()
        .is_some_and(|w| !w.is_loop && !w.waiting.load(Ordering::SeqCst))
}

/// True when nothing but the connection itself holds its socket: no application thread still
/// has a request of it (one aborted by the web server is off the connection's list while its
/// thread runs on, and may still write), and no deferred output waits for a flush. The relay
/// writes to the socket directly, so it must be the only writer.
fn sole_owner(conn: &Conn) -> bool {
    Arc::strong_count(&conn.io) == 1
}

/// True when the bytes waiting on `fd` begin with a BEGIN_REQUEST header: a connection whose
/// next input is anything else (a management record, a stray record of an ended request, or
/// not FastCGI) is served where it is.
fn begins_a_request(fd: RawFd) -> bool {
    let mut h = [0u8; 8];
    matches!(sys::peek(fd, &mut h), Ok(8))
        && h[0] == fcgi_runtime_protocol::record::VERSION_1
        && h[1] == fcgi_runtime_protocol::record::rtype::BEGIN_REQUEST
}

/// Where a relay connects for listening socket `fd`, and the peer it appears as there.
fn target_of(fd: RawFd) -> Option<(SockAddr, Peer)> {
    let mut a = sys::local_addr(fd).ok()?;
    match a.family() {
        libc::AF_INET | libc::AF_INET6 => {
            let peer = super::addr::peer_from(&a.ss);
            let Peer::Tcp(sa) = peer else {
                return None;
            };
            let ip = match sa.ip() {
                IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            a = SockAddr::from_std(&SocketAddr::new(ip, sa.port()));
            Some((a, Peer::Tcp(SocketAddr::new(ip, 0))))
        }
        // An unnamed Unix socket cannot be connected to.
        libc::AF_UNIX if a.len as usize > std::mem::size_of::<libc::sa_family_t>() => {
            Some((a, Peer::Unix))
        }
        _ => None,
    }
}

impl Reactor {
    /// Counts a relay in (at most [`MAX_RELAYS`]) and opens its connection to the listening
    /// socket; `None` (counted out again) when either fails.
    fn open_relay(&self, target: &SockAddr) -> Option<OwnedFd> {
        if self.relay.active.fetch_add(1, Ordering::AcqRel) >= MAX_RELAYS {
            self.relay.ended();
            return None;
        }
        match sys::connect_nonblocking(target) {
            Ok(fd) => Some(fd),
            Err(e) => {
                self.relay.ended();
                crate::fcgi_log!(Debug, "cannot relay a request: connect: {e}");
                None
            }
        }
    }

    /// Whether this process relays now: relaying is on, no application thread waits, no event
    /// loop serves, no drain, and (for `auto`) it has a single application thread.
    fn relay_allowed(&self) -> bool {
        self.relay.target.is_some()
            && self.pollers.load(Ordering::SeqCst) == 0
            && !self.has_loops()
            && !self.draining.load(Ordering::Acquire)
            && !(self.relay.single_thread_only && self.worker_count() != 1)
    }

    /// The standby found input on the connection in `slot`: when it would wait behind a busy
    /// worker, the connection goes to the relay (a job `Server::start_relays` starts). Returns
    /// true if it did.
    pub(super) fn try_relay(&self, slot: &mut Option<Conn>, idx: u32) -> bool {
        let Some((target, appears_as)) = &self.relay.target else {
            return false;
        };
        let Some(conn) = slot.as_ref() else {
            return false;
        };
        let owner_busy = owner_busy(conn);
        let idle = conn.reqs.is_empty()
            && !conn.lingering
            && !conn.close_when_idle
            && !conn.read_closed
            && !conn.hup
            && !conn.paused
            && conn.pending_in.is_empty()
            && conn.io.pending_len() == 0
            && sole_owner(conn);
        if !owner_busy
            || !idle
            || !conn.engine.at_record_boundary()
            || !self.relay_allowed()
            || self.is_failed()
            || !super::client_allowed(appears_as)
            || !begins_a_request(conn.io.fd())
        {
            return false;
        }
        let Some(up) = self.open_relay(target) else {
            return false;
        };
        let Some(conn) = self.detach_conn(slot, idx) else {
            self.relay.ended();
            return false;
        };
        self.relay.jobs.lock().push(Job {
            conn,
            up,
            start: Start::Untouched,
        });
        true
    }

    /// The standby, while no application thread waits: requests already read and queued on
    /// connections of busy workers (several became ready in one round of their thread, which
    /// took only the first) go to the relay too. The others stay queued, in order.
    pub(super) fn relay_queued(&self) {
        if self.ready.is_empty() || !self.relay_allowed() {
            return;
        }
        let mut stay = Vec::new();
        while let Some(r) = self.ready.pop() {
            if !self.try_relay_queued(&r) {
                stay.push(r);
            }
        }
        for r in stay {
            self.queue_ready(r, false);
        }
    }

    /// Relays queued request `r` if its connection carries nothing else and its worker is
    /// busy. Returns true if it went (or its connection is gone: the entry is stale).
    fn try_relay_queued(&self, r: &super::ready::Ready) -> bool {
        let Some((target, appears_as)) = &self.relay.target else {
            return false;
        };
        let Some(mut g) = self.conns.lock_slot(r.idx) else {
            return true;
        };
        let Some(conn) = g.as_mut().filter(|c| c.gen == r.gen) else {
            return true;
        };
        let owner_busy = owner_busy(conn);
        let alone = conn.reqs.len() == 1
            && conn.reqs[0].id == r.id
            && conn.reqs[0].phase == Phase::Ready
            && !conn.reqs[0].truncated;
        if !owner_busy
            || !alone
            || conn.lingering
            || conn.close_when_idle
            || conn.read_closed
            || conn.hup
            || conn.io.pending_len() != 0
            || !sole_owner(conn)
            || !conn.engine.at_record_boundary()
            || self.is_failed()
            || !super::client_allowed(appears_as)
        {
            return false;
        }
        let Some(up) = self.open_relay(target) else {
            return false;
        };
        let mut slot = conn.reqs.pop().expect("one request");
        let read_ahead = std::mem::take(&mut conn.pending_in);
        let mut stdin = vec![0u8; slot.stdin.len()];
        slot.stdin.pop_into(&mut stdin);
        let mut data = vec![0u8; slot.data.len()];
        slot.data.pop_into(&mut data);
        let mut preface = Vec::with_capacity(stdin.len() + data.len() + 1024);
        let scan = ReadSoFar {
            id: slot.id,
            role: slot.role,
            keep: slot.keep_conn,
            params: slot.params.iter(),
            stdin: &stdin,
            stdin_eof: slot.stdin_eof,
            data: &data,
            data_eof: slot.data_eof,
        }
        .resend(&mut preface);
        conn.engine.end_request(slot.id);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        let Some(conn) = self.detach_conn(&mut g, r.idx) else {
            self.relay.ended();
            return true;
        };
        self.relay.jobs.lock().push(Job {
            conn,
            up,
            start: Start::Queued {
                preface,
                scan,
                read_ahead,
            },
        });
        true
    }

    /// A relayed connection comes back, kept alive, with the bytes read past its request.
    /// While the server drains (or failed) it closes instead.
    pub(super) fn adopt(&self, old: Conn, leftover: Vec<u8>) {
        if self.draining.load(Ordering::Acquire) || self.is_failed() {
            return;
        }
        let Some((idx, gen)) = self.conns.reserve() else {
            crate::fcgi_log!(Error, "connection table full; closing a relayed connection");
            return;
        };
        let now = Instant::now();
        let owner = old
            .owner
            .filter(|w| self.workers().iter().any(|x| Arc::ptr_eq(x, w)));
        let mut conn = Conn::new(gen, old.io, old.peer, now);
        conn.fresh = false;
        conn.pending_in = leftover;
        conn.readable = true;
        if let Some(w) = &owner {
            w.conns.fetch_add(1, Ordering::Relaxed);
            conn.counted = true;
        }
        conn.owner = owner;
        self.rearm(&mut conn, idx);
        let fd = conn.io.fd();
        let ep_owner = conn.owner.clone();
        self.conns.insert(idx, conn);
        self.conns.not_fresh(idx);
        let Some(mut g) = self.conns.lock_slot(idx) else {
            return;
        };
        if let Err(e) = self
            .epoll_of(&ep_owner)
            .add(fd, CONN_EVENTS, conns::token(idx, gen))
        {
            crate::fcgi_log!(Error, "cannot register a relayed connection: {e}");
            self.close_conn(&mut g, idx);
            return;
        }
        // Input that arrived meanwhile, or was read past the request: its edge may be gone.
        self.pump(&mut g, idx, now, &mut Found::default());
    }
}

/// How a relay ended for the web server's connection.
#[derive(Debug)]
pub enum Outcome {
    /// The response went back whole: the connection returns to the runtime with these bytes
    /// read past the request.
    HandBack(Vec<u8>),
    /// It closes: the web server did not keep it, or either side failed.
    Close,
    /// The connect failed before anything was read: the connection goes back untouched.
    NotRelayed,
}

/// Relays one request from `client` (the web server's connection) to `up` (connecting to the
/// listening socket) and its response back, waiting in poll(2). From `Start::Untouched`
/// nothing is read from the web server before `up` is connected: if the connect fails, the
/// connection goes back untouched.
pub fn relay_one(client: RawFd, up: RawFd, start: Start) -> Outcome {
    let untouched = matches!(start, Start::Untouched);
    let (mut req, mut to_up, mut cin) = match start {
        Start::Untouched => (RequestScan::default(), Pending::default(), Vec::new()),
        Start::Queued {
            preface,
            scan,
            read_ahead,
        } => (
            scan,
            Pending {
                buf: preface,
                at: 0,
            },
            read_ahead,
        ),
    };
    // Records of other requests (pipelined or multiplexed), kept for the connection's next owner.
    let mut aside: Vec<u8> = Vec::new();
    match req.forward(&cin, &mut to_up.buf, &mut aside) {
        Ok(n) => drop(cin.drain(..n)),
        Err(_) => return Outcome::Close,
    }
    let mut resp = ResponseScan::default();
    let mut uin: Vec<u8> = Vec::new();
    let mut to_client = Pending::default();
    let mut connected = false;
    let mut client_eof = false;
    // Writing to the serving process failed: nothing more goes over; its answer is read.
    let mut up_write_failed = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if resp.ended() && to_client.is_empty() {
            return if req.keep() && !client_eof {
                aside.append(&mut cin);
                Outcome::HandBack(aside)
            } else {
                Outcome::Close
            };
        }
        // The web server is read until the response ends: its ABORT_REQUEST goes over too.
        let read_client = connected
            && !client_eof
            && !resp.ended()
            && cin.len() < BUFFERED
            && aside.len() < BUFFERED
            && to_up.len() < BUFFERED
            && !up_write_failed;
        let read_up = connected && !resp.ended() && to_client.len() < BUFFERED;
        let mut ce = 0;
        if read_client {
            ce |= libc::POLLIN | libc::POLLRDHUP;
        }
        if !to_client.is_empty() {
            ce |= libc::POLLOUT;
        }
        let mut ue = 0;
        if read_up {
            ue |= libc::POLLIN;
        }
        if !connected || (!to_up.is_empty() && !up_write_failed) {
            ue |= libc::POLLOUT;
        }
        // A side with nothing wanted is left out of the poll (a negative descriptor): the
        // serving process hangs up after END_REQUEST while the web server may still be reading,
        // and a hang-up is reported whatever is asked.
        let at = |fd: RawFd, ev: i16| if ev == 0 { -1 } else { fd };
        let (cr, ur) = match sys::poll_two((at(client, ce), ce), (at(up, ue), ue), -1) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Outcome::Close,
        };
        if !connected && ur != 0 {
            if sys::take_error(up).is_err() || ur & (libc::POLLERR | libc::POLLHUP) != 0 {
                return if untouched {
                    Outcome::NotRelayed
                } else {
                    Outcome::Close
                };
            }
            connected = true;
            continue;
        }
        // The web server's side.
        if cr & (libc::POLLERR | libc::POLLHUP) != 0 {
            return Outcome::Close;
        }
        if read_client && cr & (libc::POLLIN | libc::POLLRDHUP) != 0 {
            match sys::read(client, &mut buf) {
                // The web server closed its side: once the input was whole the response may
                // still go out (as the runtime does), but the connection is not kept.
                Ok(0) if req.input_complete() => client_eof = true,
                Ok(0) => return Outcome::Close,
                Ok(n) => cin.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Outcome::Close,
            }
            match req.forward(&cin, &mut to_up.buf, &mut aside) {
                Ok(n) => drop(cin.drain(..n)),
                Err(_) => return Outcome::Close,
            }
        }
        if cr & libc::POLLOUT != 0 && to_client.write_to(client).is_err() {
            return Outcome::Close;
        }
        // The serving process's side. It may close (even reset) the connection with input of
        // the request unread, after an abort: its END_REQUEST is still read before the error.
        if ur & libc::POLLOUT != 0 && to_up.write_to(up).is_err() {
            up_write_failed = true;
            to_up = Pending::default();
        }
        if read_up && ur & (libc::POLLIN | libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            match sys::read(up, &mut buf) {
                // It closed before END_REQUEST (it failed, or went away).
                Ok(0) => return Outcome::Close,
                Ok(n) => uin.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Outcome::Close,
            }
            let id = req.id().unwrap_or(MANAGEMENT_ID);
            match resp.forward(id, &uin, &mut to_client.buf) {
                Ok(n) => drop(uin.drain(..n)),
                Err(_) => return Outcome::Close,
            }
            if !to_client.is_empty() && to_client.write_to(client).is_err() {
                return Outcome::Close;
            }
        }
    }
}

/// Bytes waiting to be written to one side.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    at: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.at == self.buf.len()
    }

    fn len(&self) -> usize {
        self.buf.len() - self.at
    }

    /// Writes what the socket takes now.
    fn write_to(&mut self, fd: RawFd) -> io::Result<()> {
        while !self.is_empty() {
            match sys::writev(fd, &[IoSlice::new(&self.buf[self.at..])]) {
                Ok(n) => self.at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        self.at = 0;
        Ok(())
    }
}

/// The relay thread's body for `job`: relays, then hands the connection back or closes it.
pub fn run(r: &Reactor, job: Job) {
    let Job { conn, up, start } = job;
    crate::fcgi_log!(
        Debug,
        "relaying a request that would wait behind a busy thread through the listening socket"
    );
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        relay_one(conn.io.fd(), up.as_raw_fd(), start)
    }));
    drop(up);
    match outcome {
        Ok(Outcome::HandBack(rest)) => r.adopt(conn, rest),
        // Dropping the connection closes it.
        Ok(Outcome::Close) => {}
        Ok(Outcome::NotRelayed) => r.adopt(conn, Vec::new()),
        Err(_) => crate::fcgi_log!(
            Error,
            "a panic while relaying a request; its connection closes"
        ),
    }
    r.relay.ended();
}
