//! The reactor: one per listening socket and process. See docs/runtime-design.md.
//!
//! State lives in [`Core`] behind one mutex. The `mio::Poll` is in `Core` too: the thread that
//! takes it out is the leader, polls without the lock, and processes the events with it.
//! Application threads wait for their condition (a ready request, input for their request) by
//! leading when nobody does, or sleeping on their own condvar otherwise.

use super::addr::{self, Peer};
use super::config::{self, Limit};
use super::conn::{Conn, ConnSink, Effects, Phase, ReqSlot};
use super::io::{ConnIo, ReqShared, SendPolicy};
use super::sys::{self, EventFd};
use crate::protocol::record::{push_end_request, ProtocolStatus};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKE: Token = Token(usize::MAX - 2);
/// How long the poll may stay free before the standby thread takes it.
const STANDBY_DELAY: Duration = Duration::from_millis(5);
const READ_CHUNK: usize = 64 * 1024;
/// Room for management answers beyond the write-behind limit before a peer that does not read
/// is disconnected.
const MGMT_SLACK: usize = 64 * 1024;

/// A thread blocked in the library: it sleeps on its own condvar (with the core mutex).
#[derive(Default)]
pub struct Waiter {
    cv: Condvar,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Accept,
    Input,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Leader {
    None,
    App,
    Standby,
}

/// A request handed to an application thread.
pub struct Taken {
    pub token: usize,
    pub gen: u64,
    pub id: u16,
    pub role: crate::protocol::Role,
    pub keep_conn: bool,
    pub io: Arc<ConnIo>,
    pub shared: Arc<ReqShared>,
    pub peer: Peer,
}

/// Which input stream of a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    Stdin,
    Data,
}

/// Mutable state of a server.
pub struct Core {
    poll: Option<(Poll, Events)>,
    leader: Leader,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    n_conns: usize,
    next_gen: u64,
    ready: VecDeque<(usize, u64, u16)>,
    sleepers: VecDeque<(Arc<Waiter>, Kind)>,
    in_flight: usize,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    scratch: Vec<u8>,
    out: Vec<u8>,
    fx: Effects,
    spare: Vec<ReqSlot>,
    freed_at: Instant,
    standby_parked: bool,
    standby_started: bool,
}

/// The reactor of one listening socket in one process.
pub struct Server {
    listen_fd: RawFd,
    pid: u32,
    core: Mutex<Core>,
    wake: EventFd,
    registry: mio::Registry,
    standby_cv: Condvar,
    closed: AtomicBool,
}

static SERVERS: Mutex<Vec<Arc<Server>>> = Mutex::new(Vec::new());

impl Server {
    /// The server of `listen_fd` in this process, created on first use (after a fork the
    /// child gets its own: the parent's poll and threads are not inherited).
    pub fn for_listener(listen_fd: RawFd) -> io::Result<Arc<Server>> {
        let pid = std::process::id();
        let mut all = SERVERS.lock();
        all.retain(|s| s.pid == pid);
        if let Some(s) = all
            .iter()
            .find(|s| s.listen_fd == listen_fd && !s.closed.load(Ordering::Relaxed))
        {
            return Ok(s.clone());
        }
        let s = Arc::new(Server::new(listen_fd)?);
        super::register_wake_fd(s.wake.fd());
        all.push(s.clone());
        Ok(s)
    }

    fn new(listen_fd: RawFd) -> io::Result<Server> {
        let poll = Poll::new()?;
        let wake = EventFd::new()?;
        sys::set_nonblocking(listen_fd)?;
        let registry = poll.registry().try_clone()?;
        registry.register(&mut SourceFd(&listen_fd), LISTENER, Interest::READABLE)?;
        registry.register(&mut SourceFd(&wake.fd()), WAKE, Interest::READABLE)?;
        super::load_web_server_addrs();
        config::load_env();
        let now = Instant::now();
        Ok(Server {
            listen_fd,
            pid: std::process::id(),
            core: Mutex::new(Core {
                poll: Some((poll, Events::with_capacity(256))),
                leader: Leader::None,
                conns: Vec::new(),
                free: Vec::new(),
                n_conns: 0,
                next_gen: 1,
                ready: VecDeque::new(),
                sleepers: VecDeque::new(),
                in_flight: 0,
                timers: BinaryHeap::new(),
                scratch: vec![0u8; READ_CHUNK],
                out: Vec::new(),
                fx: Effects::default(),
                spare: Vec::new(),
                freed_at: now,
                standby_parked: false,
                standby_started: false,
            }),
            wake,
            registry,
            standby_cv: Condvar::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// Waits for the next request and hands it to the caller, swapping its PARAMS into
    /// `params` (whose old, cleared buffers go back to the slot for reuse). `None` on shutdown.
    pub fn accept(
        self: &Arc<Self>,
        me: &Arc<Waiter>,
        params: &mut crate::protocol::ParamStore,
    ) -> Option<Taken> {
        let mut g = self.core.lock();
        if !g.standby_started {
            g.standby_started = true;
            let s = self.clone();
            let spawned = std::thread::Builder::new()
                .name("fcgi-standby".into())
                .spawn(move || s.standby());
            if let Err(e) = spawned {
                crate::fcgi_log!(Error, "cannot start the standby reactor thread: {e}");
            }
        }
        self.run_until(&mut g, me, Kind::Accept, |_, core| {
            if super::in_shutdown() {
                return Some(None);
            }
            while let Some((t, gen, id)) = core.ready.pop_front() {
                let Some(conn) = core.conns.get_mut(t).and_then(|c| c.as_mut()) else {
                    continue;
                };
                if conn.gen != gen {
                    continue;
                }
                let peer = conn.peer;
                let io = conn.io.clone();
                let Some(slot) = conn.slot_mut(id) else {
                    continue;
                };
                if slot.phase != Phase::Ready {
                    continue;
                }
                slot.phase = Phase::Taken;
                params.clear();
                std::mem::swap(params, &mut slot.params);
                return Some(Some(Taken {
                    token: t,
                    gen,
                    id,
                    role: slot.role,
                    keep_conn: slot.keep_conn,
                    io,
                    shared: slot.shared.clone(),
                    peer,
                }));
            }
            None
        })
    }

    /// Reads input of a taken request into `buf`: bytes read, 0 at the end of the stream,
    /// -1 when the request was aborted, its connection failed or its input was cut short.
    pub fn read(&self, me: &Arc<Waiter>, t: &Taken, which: Stream, buf: &mut [u8]) -> isize {
        if buf.is_empty() {
            return 0;
        }
        let mut g = self.core.lock();
        let me2 = me.clone();
        self.run_until(&mut g, me, Kind::Input, |srv, core| {
            // Twice at most: taking bytes may unblock a paused connection, whose pump may
            // deliver more input for this very request.
            for attempt in 0..2 {
                if t.shared.is_aborted() {
                    return Some(-1);
                }
                let Some(conn) = core
                    .conns
                    .get_mut(t.token)
                    .and_then(|c| c.as_mut())
                    .filter(|c| c.gen == t.gen)
                else {
                    return Some(-1);
                };
                let paused = conn.paused;
                let Some(slot) = conn
                    .slot_mut(t.id)
                    .filter(|s| Arc::ptr_eq(&s.shared, &t.shared))
                else {
                    return Some(-1);
                };
                if which == Stream::Data && !slot.stdin_eof {
                    // DATA follows STDIN: the application must read STDIN to its end first.
                    return Some(-1);
                }
                let (ring, eof) = match which {
                    Stream::Stdin => (&mut slot.stdin, slot.stdin_eof),
                    Stream::Data => (&mut slot.data, slot.data_eof),
                };
                let n = ring.pop_into(buf);
                let result = if n > 0 {
                    Some(n as isize)
                } else if eof {
                    Some(0)
                } else if slot.truncated {
                    Some(-1)
                } else {
                    None
                };
                slot.waiter = if result.is_none() {
                    Some(me2.clone())
                } else {
                    None
                };
                if paused {
                    srv.pump(core, t.token);
                }
                if result.is_some() || !paused || attempt == 1 {
                    return result;
                }
            }
            None
        })
    }

    /// Ends a taken request on the reactor's side: frees its id and slot, and closes the
    /// connection if `close` (or KEEP_CONN was off) once no request is left on it.
    /// `hard` closes the connection at once. Returns true if the connection was closed.
    pub fn release(&self, t: &Taken, close: bool, hard: bool) -> bool {
        let mut g = self.core.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
        let Some(conn) = g
            .conns
            .get_mut(t.token)
            .and_then(|c| c.as_mut())
            .filter(|c| c.gen == t.gen)
        else {
            return false;
        };
        if let Some(i) = conn
            .reqs
            .iter()
            .position(|s| s.id == t.id && Arc::ptr_eq(&s.shared, &t.shared))
        {
            let mut slot = conn.reqs.swap_remove(i);
            conn.engine.end_request(t.id);
            slot.params.clear();
            slot.waiter = None;
            slot.shared = Arc::new(ReqShared::default());
            if conn.reqs.is_empty() {
                conn.idle_since = Instant::now();
            }
            g.spare.push(slot);
        }
        if hard {
            self.close_conn(&mut g, t.token);
            return true;
        }
        let conn = g.conns[t.token].as_mut().expect("checked above");
        if close {
            conn.close_when_idle = true;
        }
        let closing = conn.close_when_idle && conn.reqs.is_empty();
        if closing {
            conn.lingering = true;
            conn.idle_since = Instant::now();
            conn.io.shutdown_when_flushed();
        } else if conn.paused || !conn.pending_in.is_empty() {
            // Input for the next pipelined request may be waiting behind this one.
            self.pump(&mut g, t.token);
        }
        self.rearm(&mut g, t.token);
        closing
    }

    /// True while this server belongs to the calling process and is open.
    pub fn serves_this_process(&self) -> bool {
        self.pid == std::process::id() && !self.closed.load(Ordering::Relaxed)
    }

    /// Closes the connection of a request that has ended, if it is still open.
    pub fn close_connection(&self, t: &Taken) -> bool {
        let mut g = self.core.lock();
        let open = g
            .conns
            .get(t.token)
            .and_then(|c| c.as_ref())
            .is_some_and(|c| c.gen == t.gen);
        if open {
            self.close_conn(&mut g, t.token);
        }
        open
    }

    /// The policy for application writes.
    pub fn app_policy() -> SendPolicy {
        SendPolicy {
            write_behind: config::get(Limit::WriteBehindBytes) as usize,
            wait: Some(Duration::from_millis(config::get(Limit::WriteTimeoutMs))),
        }
    }

    /// Wakes every thread blocked in accept (shutdown).
    pub fn wake_all(&self) {
        self.wake.wake();
        let g = self.core.lock();
        for (w, _) in &g.sleepers {
            w.cv.notify_one();
        }
    }

    // ---- leader/follower -------------------------------------------------------------------

    fn run_until<T>(
        &self,
        g: &mut MutexGuard<'_, Core>,
        me: &Arc<Waiter>,
        kind: Kind,
        mut check: impl FnMut(&Server, &mut Core) -> Option<T>,
    ) -> T {
        loop {
            if let Some(r) = check(self, g) {
                self.hand_over(g);
                return r;
            }
            if g.poll.is_some() {
                self.lead_once(g, Leader::App);
                continue;
            }
            g.sleepers.push_back((me.clone(), kind));
            if g.leader == Leader::Standby {
                self.wake.wake();
            }
            me.cv.wait(g);
            if let Some(i) = g.sleepers.iter().position(|(w, _)| Arc::ptr_eq(w, me)) {
                g.sleepers.remove(i);
            }
        }
    }

    /// After a thread stops waiting: if the poll is free, wake a sleeper to lead, or let the
    /// standby thread know the poll is unattended.
    fn hand_over(&self, g: &mut Core) {
        if g.poll.is_none() {
            return;
        }
        if let Some((w, _)) = g.sleepers.pop_front() {
            w.cv.notify_one();
        } else {
            g.freed_at = Instant::now();
            if g.standby_parked {
                g.standby_parked = false;
                self.standby_cv.notify_one();
            }
        }
    }

    fn lead_once(&self, g: &mut MutexGuard<'_, Core>, who: Leader) {
        let Some((mut poll, mut events)) = g.poll.take() else {
            return;
        };
        g.leader = who;
        let timeout = g
            .timers
            .peek()
            .map(|Reverse((d, _, _))| d.saturating_duration_since(Instant::now()));
        let r = MutexGuard::unlocked(g, || poll.poll(&mut events, timeout));
        if let Err(e) = r {
            if e.kind() != io::ErrorKind::Interrupted {
                crate::fcgi_log!(Error, "poll failed: {e}");
            }
        }
        for ev in events.iter() {
            match ev.token() {
                LISTENER => self.accept_all(g),
                WAKE => self.wake.drain(),
                Token(t) => {
                    let Some(conn) = g.conns.get_mut(t).and_then(|c| c.as_mut()) else {
                        continue;
                    };
                    if ev.is_writable() && conn.io.pending_len() > 0 {
                        conn.io.flush_pending();
                    }
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        conn.readable = true;
                        self.pump(g, t);
                    }
                }
            }
        }
        self.fire_timers(g);
        g.leader = Leader::None;
        g.poll = Some((poll, events));
        if super::in_shutdown() {
            for (w, k) in &g.sleepers {
                if *k == Kind::Accept {
                    w.cv.notify_one();
                }
            }
        }
    }

    fn standby(self: Arc<Self>) {
        let mut g = self.core.lock();
        let mut quiet = 0u32;
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return;
            }
            if g.poll.is_some() {
                let due = g.freed_at + STANDBY_DELAY;
                let now = Instant::now();
                if now >= due {
                    quiet = 0;
                    self.lead_once(&mut g, Leader::Standby);
                    if let Some((w, _)) = g.sleepers.pop_front() {
                        w.cv.notify_one();
                        self.standby_cv.wait_for(&mut g, STANDBY_DELAY);
                    }
                    continue;
                }
                self.standby_cv.wait_for(&mut g, due - now);
            } else {
                quiet += 1;
                if quiet > 50 {
                    quiet = 0;
                    g.standby_parked = true;
                    self.standby_cv.wait(&mut g);
                } else {
                    self.standby_cv.wait_for(&mut g, STANDBY_DELAY);
                }
            }
        }
    }

    // ---- connections -----------------------------------------------------------------------

    fn accept_all(&self, g: &mut Core) {
        loop {
            let fd = match sys::accept(self.listen_fd) {
                Ok(fd) => fd,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => return,
                    Some(
                        libc::ECONNABORTED
                        | libc::EPROTO
                        | libc::EPERM
                        | libc::ENETDOWN
                        | libc::EHOSTUNREACH,
                    ) => continue,
                    _ => {
                        crate::fcgi_log!(Error, "accept failed: {e}");
                        return;
                    }
                },
            };
            let max = config::get(Limit::MaxConns) as usize;
            if g.n_conns >= max {
                crate::fcgi_log!(
                    Warning,
                    "connection closed: {} connections open (limit {max})",
                    g.n_conns
                );
                continue;
            }
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
            self.rearm(g, t);
        }
    }

    /// Feeds kept and new input of connection `t` to its engine until the socket is dry, the
    /// engine is blocked by a full request buffer, or the connection ends.
    fn pump(&self, g: &mut Core, t: usize) {
        let now = Instant::now();
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
                            } else if n < scratch.len() {
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
    fn feed(&self, g: &mut Core, t: usize, data: &[u8], now: Instant) -> Result<usize, ()> {
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

    fn apply_effects(&self, g: &mut Core, t: usize, gen: u64, io: &Arc<ConnIo>) {
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
            w.cv.notify_one();
        }
        for id in fx.ready.drain(..) {
            g.ready.push_back((t, gen, id));
            if let Some(i) = g.sleepers.iter().position(|(_, k)| *k == Kind::Accept) {
                let (w, _) = g.sleepers.remove(i).expect("index from position");
                w.cv.notify_one();
            }
        }
        g.fx = fx;
    }

    /// The peer closed its side. Requests still receiving input are cut short; requests
    /// being served may still write their response; the connection closes when none is left.
    fn peer_closed(&self, g: &mut Core, t: usize) {
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
            if !s.stdin_eof || (s.role == crate::protocol::Role::Filter && !s.data_eof) {
                s.truncated = true;
                if let Some(w) = s.waiter.take() {
                    w.cv.notify_one();
                }
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
    fn close_conn(&self, g: &mut Core, t: usize) {
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
                    w.cv.notify_one();
                }
                s.shared = Arc::new(ReqShared::default());
            } else {
                dropped += 1;
            }
            s.params.clear();
            g.spare.push(s);
        }
        g.in_flight = g.in_flight.saturating_sub(dropped);
        g.n_conns -= 1;
        g.free.push(t);
    }

    // ---- timers ----------------------------------------------------------------------------

    fn rearm(&self, g: &mut Core, t: usize) {
        let Some(conn) = g.conns.get_mut(t).and_then(|c| c.as_mut()) else {
            return;
        };
        if let Some(d) = conn.deadline() {
            if conn.armed.is_none_or(|a| d < a) {
                conn.armed = Some(d);
                let gen = conn.gen;
                g.timers.push(Reverse((d, t, gen)));
            }
        }
    }

    fn fire_timers(&self, g: &mut Core) {
        let now = Instant::now();
        while let Some(Reverse((d, t, gen))) = g.timers.peek().copied() {
            if d > now {
                break;
            }
            g.timers.pop();
            let Some(conn) = g
                .conns
                .get_mut(t)
                .and_then(|c| c.as_mut())
                .filter(|c| c.gen == gen)
            else {
                continue;
            };
            if conn.armed != Some(d) {
                continue;
            }
            conn.armed = None;
            match conn.deadline() {
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

    /// Marks the server closed; its threads stop at their next wake-up.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.standby_cv.notify_all();
        self.wake_all();
    }
}
