//! The reactor: one per listening socket and process. See docs/runtime-design.md.
//!
//! State lives in [`Core`] behind one mutex. The `mio::Poll` is in `Core` too: the thread that
//! takes it out is the leader, polls without the lock, and processes the events with it.
//! Application threads wait for their condition (a ready request, input for their request) by
//! leading when nobody does, or sleeping on their own condvar otherwise.

use super::addr::Peer;
use super::config::{self, Limit};
use super::conn::{Conn, Effects, Phase, ReqSlot};
use super::io::{ConnIo, ReqShared, SendPolicy};
use super::sys::{self, EventFd};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKE: Token = Token(usize::MAX - 2);
/// How long the poll may stay free before the standby thread takes it.
const STANDBY_DELAY: Duration = Duration::from_millis(5);
const READ_CHUNK: usize = 64 * 1024;
/// How long an accepted connection that has not delivered a request yet keeps a waiting thread
/// reserved for itself (see `accept_some`): long enough for a web server's first request to
/// arrive, short enough that silent connections do not stop accepting.
const FRESH_WINDOW: Duration = Duration::from_millis(100);
/// After a fresh connection stayed silent for a whole [`FRESH_WINDOW`], fresh connections stop
/// holding threads for this long (renewed by every further silent one): a client that opens
/// connections and sends nothing must not slow accepting to one connection per window.
const SILENT_HOLD: Duration = Duration::from_secs(1);
/// Connections accepted per round while fresh connections hold no thread.
const SILENT_ACCEPT_BATCH: usize = 64;

/// Something waiting in the library: a thread blocked on its own condvar (with the core
/// mutex), or a request of an application's event loop (see `evloop.rs`), which is queued on
/// its loop and the loop's descriptor made readable. Everything that ends a wait goes through
/// [`Waiter::notify`].
#[derive(Default)]
pub struct Waiter {
    pub(super) cv: Condvar,
    pub(super) hook: Option<super::evloop::LoopHook>,
}

impl Waiter {
    /// A waiter for a request of an event loop, known to the loop as `key`.
    pub fn for_loop(wake: &Arc<super::evloop::LoopWake>, key: usize) -> Waiter {
        Waiter {
            cv: Condvar::new(),
            hook: Some(super::evloop::LoopHook::new(wake.clone(), key)),
        }
    }

    /// Ends the wait: the thread wakes and re-checks its condition (under the core mutex), or
    /// the loop request is queued as woken.
    pub(super) fn notify(&self) {
        match &self.hook {
            None => {
                self.cv.notify_one();
            }
            Some(h) => h.notify(),
        }
    }

    /// A loop request was handed to the application as woken: the next notify queues it again.
    pub fn rearm(&self) {
        if let Some(h) = &self.hook {
            h.rearm();
        }
    }

    /// True for a waiter of an event loop (it never blocks).
    pub fn is_loop(&self) -> bool {
        self.hook.is_some()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Accept,
    Input,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Leader {
    None,
    App,
    Standby,
    /// An application's event loop in `fcgi_loop_work`: polls without waiting.
    Loop,
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
    /// Taken in a pool worker: its end is reported to the scoreboard (see `pool::hooks`).
    pub pooled: bool,
}

/// Which input stream of a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    Stdin,
    Data,
}

/// Mutable state of a server.
pub struct Core {
    pub(super) poll: Option<(Poll, Events)>,
    pub(super) leader: Leader,
    pub(super) conns: Vec<Option<Conn>>,
    pub(super) free: Vec<usize>,
    pub(super) n_conns: usize,
    pub(super) next_gen: u64,
    pub(super) ready: VecDeque<(usize, u64, u16)>,
    pub(super) sleepers: VecDeque<(Arc<Waiter>, Kind)>,
    pub(super) in_flight: usize,
    pub(super) timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    pub(super) scratch: Vec<u8>,
    pub(super) out: Vec<u8>,
    pub(super) fx: Effects,
    /// Slots of ended requests, kept for reuse (boxed, see [`Conn::reqs`]).
    #[allow(clippy::vec_box)]
    pub(super) spare: Vec<Box<ReqSlot>>,
    pub(super) freed_at: Instant,
    pub(super) standby_parked: bool,
    pub(super) standby_started: bool,
    /// The listener reported new connections that nobody was free to accept yet.
    pub(super) listener_ready: bool,
    /// Connections accepted recently whose first request no thread has taken yet (token,
    /// generation, accepted at): each stands for a thread that will be busy soon.
    pub(super) fresh: VecDeque<(usize, u64, Instant)>,
    /// A fresh connection stayed silent through its window: until this instant fresh connections
    /// hold no thread and the backlog is accepted in batches (see `accept_some`).
    pub(super) silent_until: Option<Instant>,
    /// Connections with deferred output (token, generation): written before the next poll.
    pub(super) corked: Vec<(usize, u64)>,
    /// Ready requests the leader will take itself when it processes its events (1 while an
    /// accepting leader handles what its poll returned, else 0): nobody is woken for them.
    pub(super) leader_takes: usize,
    /// accept() ran out of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM): no accept is tried
    /// before this instant (see `reactor.rs`, `accept_all`).
    pub(super) accept_paused_until: Option<Instant>,
    /// The current back-off step, doubled per consecutive failure up to the maximum.
    pub(super) accept_backoff: Duration,
    /// FCGI_MAX_CONNS connections are open: no accept until one closes (the new ones wait in
    /// the kernel's backlog, as under PHP's layer, instead of being accepted and dropped).
    pub(super) accept_full: bool,
    /// When reaching the connection limit was last logged.
    pub(super) full_logged: Option<Instant>,
    /// When the last accept failure was logged, and failures since then not logged.
    pub(super) accept_err_logged: Option<Instant>,
    pub(super) accept_err_unlogged: u64,
    /// A pool worker's drain began: the listener left the poll, idle connections are closing,
    /// the others close after their current request (see docs/pool-design.md).
    pub(super) draining: bool,
    /// Event loops serving this listener (see `evloop.rs`): told when a request becomes ready
    /// and no thread waits for it; while there is one, connections are accepted in batches.
    pub(super) loops: Vec<Arc<super::evloop::LoopWake>>,
}

impl Core {
    /// The connection at `token` if it is still the one of generation `gen` (tokens are
    /// reused; a request holds both).
    pub(super) fn conn_mut(&mut self, token: usize, gen: u64) -> Option<&mut Conn> {
        self.conns
            .get_mut(token)
            .and_then(|c| c.as_mut())
            .filter(|c| c.gen == gen)
    }
}

/// The reactor of one listening socket in one process.
pub struct Server {
    pub(super) listen_fd: RawFd,
    /// The epoll descriptor of the `mio::Poll` (an event loop's descriptor watches it).
    pub(super) poll_fd: RawFd,
    pid: u32,
    pub(super) core: Mutex<Core>,
    pub(super) wake: EventFd,
    pub(super) registry: mio::Registry,
    standby_cv: Condvar,
}

static SERVERS: Mutex<Vec<Arc<Server>>> = Mutex::new(Vec::new());

impl Server {
    /// The server of `listen_fd` in this process, created on first use (after a fork the
    /// child gets its own: the parent's poll and threads are not inherited).
    pub fn for_listener(listen_fd: RawFd) -> io::Result<Arc<Server>> {
        let pid = super::sys::pid();
        let mut all = SERVERS.lock();
        all.retain(|s| s.pid == pid);
        if let Some(s) = all.iter().find(|s| s.listen_fd == listen_fd) {
            return Ok(s.clone());
        }
        static AT_EXIT: std::sync::Once = std::sync::Once::new();
        AT_EXIT.call_once(|| {
            // SAFETY: registers a function that only takes locks without waiting and writes.
            unsafe { libc::atexit(Server::flush_at_exit) };
        });
        let s = Arc::new(Server::new(listen_fd)?);
        super::register_wake_fd(s.wake.fd());
        all.push(s.clone());
        Ok(s)
    }

    fn new(listen_fd: RawFd) -> io::Result<Server> {
        sys::check_listening(listen_fd)?;
        let poll = Poll::new()?;
        let wake = EventFd::new()?;
        sys::set_nonblocking(listen_fd)?;
        let registry = poll.registry().try_clone()?;
        let poll_fd = std::os::fd::AsRawFd::as_raw_fd(&poll);
        registry.register(&mut SourceFd(&listen_fd), LISTENER, Interest::READABLE)?;
        registry.register(&mut SourceFd(&wake.fd()), WAKE, Interest::READABLE)?;
        super::load_web_server_addrs();
        config::load_env();
        super::pool::hooks::attach_from_env();
        let now = Instant::now();
        Ok(Server {
            listen_fd,
            poll_fd,
            pid: super::sys::pid(),
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
                listener_ready: false,
                fresh: VecDeque::new(),
                silent_until: None,
                corked: Vec::new(),
                leader_takes: 0,
                accept_paused_until: None,
                accept_full: false,
                full_logged: None,
                accept_backoff: super::reactor::ACCEPT_BACKOFF_MIN,
                accept_err_logged: None,
                accept_err_unlogged: 0,
                draining: false,
                loops: Vec::new(),
            }),
            wake,
            registry,
            standby_cv: Condvar::new(),
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
        self.run_until(&mut g, me, Kind::Accept, |srv, core| {
            srv.take_ready(core, me, params)
        })
    }

    /// The accept check, shared by the blocking and the loop face: `Some(Some(request))` hands
    /// out the next ready request (its PARAMS swapped into `params`), `Some(None)` means
    /// shutdown or a finished drain, `None` that nothing is ready. A loop request (`me` a loop
    /// waiter) keeps `me` on its slot for as long as it is served, so input, an abort or a
    /// closed connection queue it as woken whatever it waits for.
    pub(super) fn take_ready(
        &self,
        core: &mut Core,
        me: &Arc<Waiter>,
        params: &mut crate::protocol::ParamStore,
    ) -> Option<Option<Taken>> {
        // One load for shutdown, drain and the pool hooks.
        let st = super::state();
        if st & super::STATE_SHUTDOWN != 0 {
            return Some(None);
        }
        let draining = st & super::STATE_DRAIN != 0;
        if draining && !core.draining {
            self.begin_drain(core);
        }
        while let Some((t, gen, id)) = core.ready.pop_front() {
            let Some(conn) = core.conns.get_mut(t).and_then(|c| c.as_mut()) else {
                continue;
            };
            if conn.gen != gen {
                continue;
            }
            if !conn.slot_mut(id).is_some_and(|s| s.phase == Phase::Ready) {
                continue;
            }
            conn.fresh = false;
            let peer = conn.peer;
            let io = conn.io.clone();
            let Some(slot) = conn.slot_mut(id) else {
                continue;
            };
            slot.phase = Phase::Taken;
            if me.is_loop() {
                slot.waiter = Some(me.clone());
            }
            params.clear();
            std::mem::swap(params, &mut slot.params);
            let pooled = st & super::STATE_POOLED != 0;
            if pooled {
                super::pool::hooks::on_taken();
            }
            return Some(Some(Taken {
                token: t,
                gen,
                id,
                role: slot.role,
                keep_conn: slot.keep_conn,
                io,
                shared: slot.shared.clone(),
                peer,
                pooled,
            }));
        }
        if draining && core.n_conns == 0 {
            // Drained: nothing ready, no connection held.
            return Some(None);
        }
        None
    }

    /// Starts draining (a pool worker asked to stop gracefully, or at `max_requests`): the
    /// listener leaves the poll so the siblings sharing it take the new connections, idle
    /// kept-alive connections close at once (after their output, with the usual linger), and
    /// every other connection closes after its current (or, if fresh, first) request. Ready
    /// requests are still handed out.
    fn begin_drain(&self, g: &mut Core) {
        g.draining = true;
        let _ = self.registry.deregister(&mut SourceFd(&self.listen_fd));
        g.listener_ready = false;
        let now = Instant::now();
        for t in 0..g.conns.len() {
            let Some(conn) = g.conns[t].as_mut() else {
                continue;
            };
            conn.close_when_idle = true;
            // A fresh connection (accepted, first request not yet taken) is kept for that
            // request: its client never had an answer on it, so it would not retry.
            if conn.reqs.is_empty() && !conn.lingering && !conn.fresh {
                conn.lingering = true;
                conn.idle_since = now;
                conn.linger_since = now;
                conn.io.shutdown_when_flushed();
            }
            self.rearm(g, t);
        }
    }

    /// Reads input of a taken request into `buf`: bytes read, 0 at the end of the stream,
    /// -1 when the request was aborted, its connection failed or its input was cut short.
    pub fn read(&self, me: &Arc<Waiter>, t: &Taken, which: Stream, buf: &mut [u8]) -> isize {
        if buf.is_empty() {
            return 0;
        }
        let mut g = self.core.lock();
        self.run_until(&mut g, me, Kind::Input, |srv, core| {
            srv.read_step(core, me, t, which, buf)
        })
    }

    /// The read check, shared by the blocking and the loop face: `Some(n)` as [`Server::read`]
    /// returns, `None` when no input is there yet (`me` is then the slot's waiter; a loop
    /// waiter stays there in any case, see [`Server::take_ready`]).
    pub(super) fn read_step(
        &self,
        core: &mut Core,
        me: &Arc<Waiter>,
        t: &Taken,
        which: Stream,
        buf: &mut [u8],
    ) -> Option<isize> {
        // Twice at most: taking bytes may unblock a paused connection, whose pump may deliver
        // more input for this very request.
        for attempt in 0..2 {
            if t.shared.is_aborted() {
                return Some(-1);
            }
            let Some(conn) = core.conn_mut(t.token, t.gen) else {
                return Some(-1);
            };
            let paused = conn.paused;
            let Some(slot) = conn
                .slot_mut(t.id)
                .filter(|s| Arc::ptr_eq(&s.shared, &t.shared))
            else {
                return Some(-1);
            };
            if which == Stream::Data
                && (!slot.stdin_eof || slot.role != crate::protocol::Role::Filter)
            {
                // DATA follows STDIN: the application must read STDIN to its end first.
                // Only a Filter has a DATA stream (others would wait for it forever).
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
            slot.waiter = if result.is_none() || me.is_loop() {
                Some(me.clone())
            } else {
                None
            };
            if paused {
                self.pump(core, t.token, Instant::now());
            }
            if result.is_some() || !paused || attempt == 1 {
                return result;
            }
        }
        None
    }

    /// First half of ending a taken request, done *before* its END_REQUEST is written: frees
    /// its id and slot. A server may answer END_REQUEST at once with a BEGIN_REQUEST reusing
    /// the id (nginx does), and another thread may read that before this one could free it.
    /// Called exactly once per taken request.
    pub fn retire(&self, t: &Taken) {
        self.retire_deferring(t, None);
    }

    /// [`Server::retire`], and with `out` (the request's last records, END_REQUEST included)
    /// defers them when another request of the same connection is ready to be taken and no
    /// thread is polling: the responses of pipelined requests then leave in one write. Returns
    /// true if `out` was queued; the caller sends it otherwise.
    ///
    /// Whoever takes the poll next writes deferred output first (`flush_corked`): the thread
    /// that takes the ready request when it is done with it, or, if no application thread
    /// comes back in time, the standby thread. Deciding and queuing under the core lock keeps
    /// a leader from polling between the two.
    pub fn retire_deferring(&self, t: &Taken, out: Option<&[u8]>) -> bool {
        let mut g = self.core.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
        let poll_free = g.poll.is_some();
        let Some(conn) = g.conn_mut(t.token, t.gen) else {
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
            if conn.reqs.is_empty() {
                conn.idle_since = Instant::now();
            }
            g.spare.push(slot);
        }
        let Some(out) = out else {
            return false;
        };
        let Some(conn) = g.conn_mut(t.token, t.gen) else {
            return false;
        };
        let next_ready = conn.reqs.iter().any(|s| s.phase == Phase::Ready);
        if !(poll_free && next_ready && conn.io.defer(&t.shared, out, true)) {
            return false;
        }
        g.corked.push((t.token, t.gen));
        true
    }

    /// Writes the output deferred by [`Server::retire_deferring`]. Called before every poll.
    fn flush_corked(&self, g: &mut Core) {
        for i in 0..g.corked.len() {
            let (t, gen) = g.corked[i];
            if let Some(conn) = g.conn_mut(t, gen) {
                conn.io.flush_pending();
            }
        }
        g.corked.clear();
    }

    /// At process exit: output deferred by a thread that did not come back is written
    /// (non-blocking; whatever the socket takes).
    extern "C" fn flush_at_exit() {
        let pid = super::sys::pid();
        let Some(all) = SERVERS.try_lock() else {
            return;
        };
        for s in all.iter().filter(|s| s.pid == pid) {
            if let Some(mut g) = s.core.try_lock() {
                s.flush_corked(&mut g);
            }
        }
    }

    /// Second half, after END_REQUEST was written: closes the connection if `close` (the
    /// request had no KEEP_CONN, or the application asked) once no request is left on it, or
    /// at once if `hard`; otherwise resumes input held back for the next request. Returns true
    /// if the connection was closed or is closing.
    pub fn settle(&self, t: &Taken, close: bool, hard: bool) -> bool {
        let mut g = self.core.lock();
        let Some(conn) = g.conn_mut(t.token, t.gen) else {
            return false;
        };
        if hard {
            self.close_conn(&mut g, t.token);
            return true;
        }
        if close {
            conn.close_when_idle = true;
        }
        let closing = conn.close_when_idle && conn.reqs.is_empty();
        if closing {
            conn.lingering = true;
            conn.idle_since = Instant::now();
            conn.linger_since = conn.idle_since;
            conn.io.shutdown_when_flushed();
        } else if conn.paused || !conn.pending_in.is_empty() {
            // Input for the next pipelined request may be waiting behind this one.
            self.pump(&mut g, t.token, Instant::now());
        }
        self.rearm(&mut g, t.token);
        closing
    }

    /// True while this server belongs to the calling process (not a parent before a fork).
    pub fn serves_this_process(&self) -> bool {
        self.pid == super::sys::pid()
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
                self.lead_once(g, Leader::App, kind == Kind::Accept);
                continue;
            }
            g.sleepers.push_back((me.clone(), kind));
            // The standby hands leadership back; any leader accepts connections that waited
            // for a thread to serve them.
            if g.leader == Leader::Standby || (kind == Kind::Accept && g.listener_ready) {
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
    pub(super) fn hand_over(&self, g: &mut Core) {
        if g.poll.is_none() {
            return;
        }
        if let Some((w, _)) = g.sleepers.pop_front() {
            w.notify();
        } else {
            g.freed_at = Instant::now();
            if g.standby_parked {
                g.standby_parked = false;
                self.standby_cv.notify_one();
            }
        }
    }

    /// Accepts as many new connections as there are application threads waiting in accept
    /// (the caller, if `accepting`, and sleepers), less the work already waiting for them:
    /// requests ready to be taken and connections accepted within [`FRESH_WINDOW`] that have
    /// not delivered their first request yet. The rest stay in the kernel's backlog, where
    /// other processes sharing the listening socket (a pre-fork pool) can take them; a
    /// process with one thread takes one connection at a time, as libfcgi does.
    fn accept_some(&self, g: &mut Core, accepting: bool) {
        if g.draining {
            return;
        }
        let now = Instant::now();
        let waiting = accepting as usize
            + g.sleepers
                .iter()
                .filter(|(_, k)| *k == Kind::Accept)
                .count();
        let conns = &g.conns;
        let mut silent = false;
        g.fresh.retain(|&(t, gen, at)| {
            let still_fresh = conns
                .get(t)
                .and_then(|c| c.as_ref())
                .is_some_and(|c| c.gen == gen && c.fresh);
            if !still_fresh {
                return false;
            }
            let in_window = now.duration_since(at) < FRESH_WINDOW;
            silent |= !in_window;
            in_window
        });
        if silent {
            g.silent_until = Some(now + SILENT_HOLD);
        }
        let budget = if g.silent_until.is_some_and(|u| now < u) {
            // Silent connections are about: a fresh one is no sign of a request coming, so
            // the backlog is taken as fast as it comes while a thread waits in accept.
            if waiting == 0 {
                0
            } else {
                SILENT_ACCEPT_BATCH
            }
        } else {
            waiting.saturating_sub(g.fresh.len() + g.ready.len())
        };
        // An event loop serves as many connections as come (FCGI_MAX_CONNS still applies).
        let budget = if g.loops.is_empty() {
            budget
        } else {
            budget.max(SILENT_ACCEPT_BATCH)
        };
        if budget == 0 {
            return;
        }
        if g.accept_paused_until.is_some_and(|u| now < u) {
            // Out of descriptors or memory a moment ago: the connections wait in the backlog
            // (listener_ready stays set, the poll wakes up when the pause ends).
            return;
        }
        g.listener_ready = false;
        if self.accept_all(g, budget) == budget {
            // Stopped by the budget, not by an empty backlog.
            g.listener_ready = true;
        }
    }

    /// Polls once and processes what it returns. New connections are accepted only while an
    /// application thread waits in accept (`accepting`, or a sleeper of that kind): a process
    /// whose threads are all busy leaves them to other processes sharing the listening socket
    /// (a pre-fork pool) or in the kernel's backlog, and remembers that the listener is ready.
    pub(super) fn lead_once(&self, g: &mut MutexGuard<'_, Core>, who: Leader, accepting: bool) {
        if accepting && g.listener_ready {
            // Connections that waited for a free thread (the poll will report their input).
            self.accept_some(g, accepting);
        }
        let Some((mut poll, mut events)) = g.poll.take() else {
            return;
        };
        self.flush_corked(g);
        g.leader = who;
        let now = Instant::now();
        let mut timeout = g
            .timers
            .peek()
            .map(|Reverse((d, _, _))| d.saturating_duration_since(now));
        if g.listener_ready {
            // Connections wait in the backlog while fresh ones stand for the waiting threads;
            // look again when the oldest fresh one stops counting.
            if let Some(&(_, _, at)) = g.fresh.front() {
                let left = (at + FRESH_WINDOW).saturating_duration_since(now);
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            // A batch taken while silent connections are about stopped short of an empty
            // backlog: take the next one after this poll's events, without waiting.
            if accepting
                && !g.accept_full
                && g.silent_until.is_some_and(|u| now < u)
                && g.accept_paused_until.is_none_or(|u| now >= u)
            {
                timeout = Some(Duration::ZERO);
            }
            // Look again when an accept pause ends (an ended pause adds nothing: with no
            // thread waiting in accept, a zero timeout would spin).
            if let Some(until) = g.accept_paused_until.filter(|&u| u > now) {
                let left = until - now;
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
        }
        if who == Leader::Loop {
            // fcgi_loop_work never waits: the application's poller does.
            timeout = Some(Duration::ZERO);
        }
        let r = MutexGuard::unlocked(g, || poll.poll(&mut events, timeout));
        // One clock read for everything this round does (begun requests, timers).
        let now = Instant::now();
        // An accepting leader keeps the lock from here to its own check, which takes the first
        // ready request: waking a sleeper for that one would only put it back to sleep.
        g.leader_takes = accepting as usize;
        if let Err(e) = r {
            if e.kind() != io::ErrorKind::Interrupted {
                crate::fcgi_log!(Error, "poll failed: {e}");
            }
        }
        for ev in events.iter() {
            match ev.token() {
                LISTENER => g.listener_ready = true,
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
                        conn.hup |= ev.is_read_closed() || ev.is_error();
                        self.pump(g, t, now);
                    }
                }
            }
        }
        if g.listener_ready {
            self.accept_some(g, accepting);
        }
        self.fire_timers(g, now);
        g.leader_takes = 0;
        g.leader = Leader::None;
        g.poll = Some((poll, events));
        if who != Leader::Loop {
            // The poll is free: event loops that stopped watching it watch it again.
            for l in &g.loops {
                l.arm();
            }
        }
        if super::state() & (super::STATE_SHUTDOWN | super::STATE_DRAIN) != 0 {
            for (w, k) in &g.sleepers {
                if *k == Kind::Accept {
                    w.notify();
                }
            }
        }
    }

    fn standby(self: Arc<Self>) {
        let mut g = self.core.lock();
        let mut quiet = 0u32;
        loop {
            if g.poll.is_some() {
                let due = g.freed_at + STANDBY_DELAY;
                let now = Instant::now();
                if now >= due {
                    quiet = 0;
                    self.lead_once(&mut g, Leader::Standby, false);
                    if let Some((w, _)) = g.sleepers.pop_front() {
                        w.notify();
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
}
