//! The application's side of a listening socket's runtime: waiting for a request, reading its
//! input, ending it. One [`Server`] per listening socket and process (rebuilt after `fork`).
//! See docs/runtime-design.md.
//!
//! A thread in [`Server::accept`] waits in the reactor's epoll itself. The kernel hands each
//! event to one waiting thread; the thread reads that connection and serves the request it
//! finds there, so a request crosses no thread on its way to the application. A thread that
//! waits while no other does takes a batch of events (the others are busy serving: it reads
//! for them and queues what it finds, and they take it when they come back without a system
//! call).

use super::addr::Peer;
use super::config::{self, Limit};
use super::conn::{Conn, Phase};
use super::io::{ConnIo, ReqShared, SendPolicy};
use super::reactor::{Found, Reactor};
use super::ready::Ready;
use super::standby::{Seen, Standby, Watch};
use super::sys::{self, Event};
use super::waiter::Waiter;
use super::worker::Worker;
use parking_lot::Mutex;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events one wait of a worker takes: its own connections' (requests beyond the first go to
/// its own queue while no other worker waits, see `Found::place`).
const BATCH: usize = 16;
/// Requests a worker serves from connections it has just accepted before it looks at its
/// epoll once (without waiting).
const MAX_UNPOLLED: u32 = 8;
/// Events the standby thread and event loops take per sweep.
const SWEEP: usize = 64;

/// A request handed to an application thread.
pub struct Taken {
    /// Its connection: slot index and generation in the connection table.
    pub idx: u32,
    pub gen: u32,
    pub id: u16,
    pub role: fcgi_runtime_protocol::Role,
    pub keep_conn: bool,
    pub io: Arc<ConnIo>,
    pub shared: Arc<ReqShared>,
    pub peer: Peer,
    /// Taken in a process with request hooks (`hooks.rs`): it calls their `begin` and `ended`.
    pub hooked: bool,
}

/// Which input stream of a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    Stdin,
    Data,
}

/// The runtime of one listening socket in one process.
pub struct Server {
    pub(super) r: Reactor,
    pid: u32,
    standby: Standby,
}

static SERVERS: Mutex<Vec<Arc<Server>>> = Mutex::new(Vec::new());

impl Server {
    /// The server of `listen_fd` in this process, created on first use (after a fork the
    /// child gets its own: the parent's epoll and threads are not inherited).
    pub fn for_listener(listen_fd: RawFd) -> io::Result<Arc<Server>> {
        let pid = super::sys::pid();
        let mut all = SERVERS.lock();
        all.retain(|s| s.pid == pid);
        if let Some(s) = all.iter().find(|s| s.r.listen_fd == listen_fd) {
            return Ok(s.clone());
        }
        static AT_EXIT: std::sync::Once = std::sync::Once::new();
        AT_EXIT.call_once(|| {
            // A function that only takes locks without waiting and writes.
            super::sys::at_exit(Server::flush_at_exit);
        });
        let s = Arc::new(Server::new(listen_fd)?);
        super::register_wake_fd(s.r.wake_fd());
        all.push(s.clone());
        Ok(s)
    }

    fn new(listen_fd: RawFd) -> io::Result<Server> {
        let r = Reactor::new(listen_fd)?;
        super::load_web_server_addrs();
        config::load_env();
        // A program fcgi-spawn exec'd joins its pool here (its hooks get installed).
        super::pool::hooks::attach_from_env();
        Ok(Server {
            r,
            pid: super::sys::pid(),
            standby: Standby::default(),
        })
    }

    /// True while this server belongs to the calling process (not a parent before a fork).
    pub fn serves_this_process(&self) -> bool {
        self.pid == super::sys::pid()
    }

    // ---- workers ------------------------------------------------------------------------

    /// A worker for a blocking request object whose waiter is `me` (its eventfd is created
    /// now, so that it can be notified from the start).
    pub fn new_worker(&self, me: &Arc<Waiter>) -> io::Result<Arc<Worker>> {
        me.prepare();
        self.r.new_worker(None, false)
    }

    /// A request object goes away: its worker's connections go to the orphan epoll.
    pub fn retire_worker(&self, w: &Arc<Worker>) {
        if self.serves_this_process() {
            self.r.retire_worker(w);
        }
    }

    // ---- accept -------------------------------------------------------------------------

    /// Waits for the next request and hands it to the caller, swapping its PARAMS into
    /// `params` (whose old, cleared buffers go back to the slot for reuse). `w` is the
    /// caller's worker (its epoll). `None` on shutdown, at the end of a drain, or when the
    /// server failed.
    pub fn accept(
        self: &Arc<Self>,
        me: &Arc<Waiter>,
        w: &Arc<Worker>,
        params: &mut fcgi_runtime_protocol::ParamStore,
    ) -> Option<Taken> {
        let _guard = self.r.guard();
        if self.r.is_failed() {
            return None;
        }
        self.start_standby();
        self.r.accepters.fetch_add(1, Ordering::SeqCst);
        let t = self.accept_loop(me, w, params);
        self.r.accepters.fetch_sub(1, Ordering::SeqCst);
        if let Some(t) = &t {
            self.r.shed_idle(w, t.idx);
        }
        t
    }

    fn accept_loop(
        &self,
        me: &Arc<Waiter>,
        w: &Arc<Worker>,
        params: &mut fcgi_runtime_protocol::ParamStore,
    ) -> Option<Taken> {
        let mut buf = [const { MaybeUninit::<Event>::uninit() }; BATCH];
        loop {
            // This worker's own requests first, then the shared queue, then another worker's.
            // Leaving with one of them, it passes on the listener's edge it may have received.
            while let Some(r) = self.r.pop_local(w) {
                w.epoch.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = self.take(r, me, params) {
                    self.r.pass_on();
                    return Some(t);
                }
            }
            if let Some(r) = self.take_ready(me, params) {
                self.r.pass_on();
                return r;
            }
            if let Some(r) = self.r.steal_local(w) {
                if let Some(t) = self.take(r, me, params) {
                    self.r.pass_on();
                    return Some(t);
                }
                continue;
            }
            // Output deferred for pipelined requests leaves before this thread sleeps.
            self.flush_corked();
            let mut found = Found::wanting(w);
            let more = self.r.accept_pending(Instant::now(), w, &mut found);
            // A request found on a connection just accepted is served at once, but not forever
            // without a look at the epoll: connections of this worker that linger or wait for
            // room are handled there.
            let unpolled = w.unpolled.load(Ordering::Relaxed);
            if found.got.is_some() && unpolled < MAX_UNPOLLED {
                w.unpolled.store(unpolled + 1, Ordering::Relaxed);
                if let Some(t) = found.got.and_then(|r| self.take(r, me, params)) {
                    self.r.pass_on();
                    return Some(t);
                }
                continue;
            }
            w.unpolled.store(0, Ordering::Relaxed);
            // Counted as waiting before the last look at the queue: a thread that queues a
            // request after that look sees this one waiting and kicks it (reactor.rs).
            self.r.pollers.fetch_add(1, Ordering::SeqCst);
            w.waiting.store(true, Ordering::SeqCst);
            w.epoch.fetch_add(1, Ordering::Relaxed);
            if !self.r.ready.is_empty() && found.got.is_none() {
                self.leave_poll(w);
                continue;
            }
            let wait = if more || found.got.is_some() { 0 } else { -1 };
            let evs = self.r.wait(&w.ep, &mut buf, wait);
            self.leave_poll(w);
            self.r.dispatch(evs, Instant::now(), &mut found);
            if let Some(t) = found.got.and_then(|r| self.take(r, me, params)) {
                self.r.pass_on();
                return Some(t);
            }
        }
    }

    fn leave_poll(&self, w: &Worker) {
        w.waiting.store(false, Ordering::SeqCst);
        self.r.pollers.fetch_sub(1, Ordering::SeqCst);
        // A busy worker needs the standby's watch (one atomic load unless it is parked).
        self.standby.unpark();
    }

    /// The accept check, shared by the blocking and the loop face: `Some(Some(request))` hands
    /// out the next queued request (its PARAMS swapped into `params`), `Some(None)` means
    /// shutdown, a finished drain or a failed server, `None` that nothing is queued.
    pub(super) fn take_ready(
        &self,
        me: &Arc<Waiter>,
        params: &mut fcgi_runtime_protocol::ParamStore,
    ) -> Option<Option<Taken>> {
        if self.r.is_failed() {
            return Some(None);
        }
        // One load for shutdown, drain and the pool hooks.
        let st = super::state();
        if st & super::STATE_SHUTDOWN != 0 {
            return Some(None);
        }
        let draining = st & super::STATE_DRAIN != 0;
        if draining {
            self.r.begin_drain();
        }
        while let Some(r) = self.r.ready.pop() {
            if let Some(t) = self.take(r, me, params) {
                return Some(Some(t));
            }
        }
        if draining && self.r.conns.open() == 0 {
            // Drained: nothing ready, no connection held.
            return Some(None);
        }
        None
    }

    /// Takes ready request `r` if it still is (its connection may have closed, the server may
    /// have aborted it). A loop request (`me` a loop waiter) keeps `me` on its slot for as
    /// long as it is served, so input, an abort or a closed connection queue it as woken
    /// whatever it waits for.
    fn take(
        &self,
        r: Ready,
        me: &Arc<Waiter>,
        params: &mut fcgi_runtime_protocol::ParamStore,
    ) -> Option<Taken> {
        let mut conn = self.r.conns.lock(r.idx, r.gen)?;
        let peer = conn.peer;
        let io = conn.io.clone();
        let slot = conn.slot_mut(r.id).filter(|s| s.phase == Phase::Ready)?;
        slot.phase = Phase::Taken;
        if me.is_loop() {
            slot.waiter = Some(me.clone());
        }
        params.clear();
        std::mem::swap(params, &mut slot.params);
        let (role, keep_conn, shared) = (slot.role, slot.keep_conn, slot.shared.clone());
        if conn.fresh {
            conn.fresh = false;
            self.r.conns.not_fresh(r.idx);
        }
        let hooked = super::state() & super::STATE_HOOKED != 0;
        if hooked {
            if let Some(h) = super::hooks::get() {
                h.taken();
            }
        }
        Some(Taken {
            idx: r.idx,
            gen: r.gen,
            id: r.id,
            role,
            keep_conn,
            io,
            shared,
            peer,
            hooked,
        })
    }

    // ---- input --------------------------------------------------------------------------

    /// Reads input of a taken request into `buf`: bytes read, 0 at the end of the stream,
    /// -1 when the request was aborted, its connection failed, its input was cut short, or
    /// the server failed. Waits on the request's own connection (it reads it itself) and on
    /// its own eventfd (another thread read its input first, or ended the request).
    pub fn read(&self, me: &Arc<Waiter>, t: &Taken, which: Stream, buf: &mut [u8]) -> isize {
        if buf.is_empty() {
            return 0;
        }
        let _guard = self.r.guard();
        me.prepare();
        let mut woke = false;
        loop {
            if self.r.is_failed() {
                return -1;
            }
            let fd = {
                let Some(mut g) = self.r.conns.lock_slot(t.idx) else {
                    return -1;
                };
                if let Some(n) = self.read_step(&mut g, me, t, which, buf, woke) {
                    return n;
                }
                match g.as_ref() {
                    Some(c) if !c.paused && !c.read_closed => c.io.fd(),
                    // Held back by another request's full buffer: its reader resumes the
                    // connection and notifies this one.
                    _ => -1,
                }
            };
            me.wait(fd, libc::POLLIN, -1);
            woke = true;
        }
    }

    /// The read check, shared by the blocking and the loop face: `Some(n)` as
    /// [`Server::read`] returns, `None` when no input is there yet (`me` is then registered
    /// on the request's slot; a loop waiter stays there in any case). A blocking reader reads
    /// the socket itself when it may hold input (`woke`: its poll said so).
    pub(super) fn read_step(
        &self,
        slot: &mut Option<Conn>,
        me: &Arc<Waiter>,
        t: &Taken,
        which: Stream,
        buf: &mut [u8],
        woke: bool,
    ) -> Option<isize> {
        // Twice at most: reading the socket (or resuming a paused connection) may deliver
        // input for this very request.
        for attempt in 0..2 {
            if t.shared.is_aborted() {
                return Some(-1);
            }
            let Some(conn) = slot.as_mut().filter(|c| c.gen == t.gen) else {
                return Some(-1);
            };
            let paused = conn.paused;
            let may_read = !me.is_loop() && !conn.read_closed && (woke || conn.readable);
            let Some(s) = conn
                .slot_mut(t.id)
                .filter(|s| Arc::ptr_eq(&s.shared, &t.shared))
            else {
                return Some(-1);
            };
            if which == Stream::Data
                && (!s.stdin_eof || s.role != fcgi_runtime_protocol::Role::Filter)
            {
                // DATA follows STDIN: the application must read STDIN to its end first.
                // Only a Filter has a DATA stream (others would wait for it forever).
                return Some(-1);
            }
            let (ring, eof) = match which {
                Stream::Stdin => (&mut s.stdin, s.stdin_eof),
                Stream::Data => (&mut s.data, s.data_eof),
            };
            let n = ring.pop_into(buf);
            let result = if n > 0 {
                Some(n as isize)
            } else if eof {
                Some(0)
            } else if s.truncated {
                Some(-1)
            } else {
                None
            };
            let waiting = result.is_none() || me.is_loop();
            s.waiter = waiting.then(|| me.clone());
            if result.is_some() {
                if paused {
                    // Room was made: input held back for this or another request may move.
                    self.r
                        .pump(slot, t.idx, Instant::now(), &mut Found::default());
                }
                return result;
            }
            if attempt == 1 || !(paused || may_read) {
                return None;
            }
            if may_read {
                conn.readable = true;
            }
            self.r
                .pump(slot, t.idx, Instant::now(), &mut Found::default());
        }
        None
    }

    // ---- the end of a request -----------------------------------------------------------

    /// First half of ending a taken request, done *before* its END_REQUEST is written: frees
    /// its id and slot. A server may answer END_REQUEST at once with a BEGIN_REQUEST reusing
    /// the id (nginx does), and another thread may read that before this one could free it.
    /// Called exactly once per taken request.
    pub fn retire(&self, t: &Taken) {
        self.retire_deferring(t, None);
    }

    /// [`Server::retire`], and with `out` (the request's last records, END_REQUEST included)
    /// defers them when another request of the same connection is ready to be taken and no
    /// thread is idle: the responses of pipelined requests then leave in one write. Returns
    /// true if `out` was queued; the caller sends it otherwise.
    ///
    /// Deferred output leaves with the next send on the connection, or before the next thread
    /// waits in the epoll, or at the standby's next sweep (5 ms), or at process exit.
    pub fn retire_deferring(&self, t: &Taken, out: Option<&[u8]>) -> bool {
        let _ = self
            .r
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        let Some(mut conn) = self.r.conns.lock(t.idx, t.gen) else {
            return false;
        };
        if let Some(i) = conn
            .reqs
            .iter()
            .position(|s| s.id == t.id && Arc::ptr_eq(&s.shared, &t.shared))
        {
            conn.drop_slot(i);
            if conn.reqs.is_empty() {
                conn.idle_since = Instant::now();
            }
        }
        let Some(out) = out else {
            return false;
        };
        let next_ready = conn.reqs.iter().any(|s| s.phase == Phase::Ready);
        if !(next_ready
            && self.r.pollers.load(Ordering::SeqCst) == 0
            && conn.io.defer(&t.shared, out, true))
        {
            return false;
        }
        let io = conn.io.clone();
        drop(conn);
        let mut c = self.r.corked.lock();
        c.push(io);
        self.r.corked_n.store(c.len(), Ordering::Release);
        true
    }

    /// Writes the output deferred by [`Server::retire_deferring`].
    pub(super) fn flush_corked(&self) {
        if self.r.corked_n.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut c = self.r.corked.lock();
        for io in c.drain(..) {
            io.flush_pending();
        }
        self.r.corked_n.store(0, Ordering::Release);
    }

    /// At process exit: output deferred by a thread that did not come back is written
    /// (non-blocking; whatever the socket takes).
    extern "C" fn flush_at_exit() {
        let pid = super::sys::pid();
        let Some(all) = SERVERS.try_lock() else {
            return;
        };
        for s in all.iter().filter(|s| s.pid == pid) {
            if let Some(mut c) = s.r.corked.try_lock() {
                for io in c.drain(..) {
                    io.flush_pending();
                }
            }
        }
    }

    /// Second half, after END_REQUEST was written: closes the connection if `close` (the
    /// request had no KEEP_CONN, or the application asked) once no request is left on it, or
    /// at once if `hard`; otherwise resumes input held back for the next request. Returns true
    /// if the connection was closed or is closing.
    pub fn settle(&self, t: &Taken, close: bool, hard: bool) -> bool {
        let _guard = self.r.guard();
        let Some(mut g) = self.r.conns.lock_slot(t.idx) else {
            return false;
        };
        let Some(conn) = g.as_mut().filter(|c| c.gen == t.gen) else {
            return false;
        };
        if hard {
            self.r.close_conn(&mut g, t.idx);
            return true;
        }
        if close {
            conn.close_when_idle = true;
        }
        let closing = conn.close_when_idle && conn.reqs.is_empty();
        if closing {
            // The peer sent all its input and none is left unread: closing sends no RST, so
            // the linger (shutdown, wait for the peer's EOF) would only cost a wake-up.
            // Otherwise the linger keeps an RST from destroying the response the peer has
            // not read yet.
            if conn.input_complete
                && conn.pending_in.is_empty()
                && conn.io.pending_len() == 0
                && !sys::has_unread_input(conn.io.fd())
            {
                self.r.close_conn_ending(&mut g, t.idx);
                return true;
            }
            conn.start_linger(Instant::now());
        } else if conn.paused || !conn.pending_in.is_empty() {
            // Input for the next pipelined request may be waiting behind this one.
            self.r
                .pump(&mut g, t.idx, Instant::now(), &mut Found::default());
        }
        if let Some(conn) = g.as_mut() {
            self.r.rearm(conn, t.idx);
        }
        closing
    }

    /// Closes the connection of a request that has ended, if it is still open.
    pub fn close_connection(&self, t: &Taken) -> bool {
        let Some(mut g) = self.r.conns.lock_slot(t.idx) else {
            return false;
        };
        let open = g.as_ref().is_some_and(|c| c.gen == t.gen);
        if open {
            self.r.close_conn(&mut g, t.idx);
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

    // ---- the standby thread -------------------------------------------------------------

    /// Starts the standby thread at the first accept (so no thread exists before the process
    /// serves: fork-safe). It blocks every signal: signals sent to the process are the
    /// application's, and reach only its threads.
    /// Starts what the first [`Server::accept`] would start (the standby thread), so that
    /// waiting begins at once (`Request::prepare`).
    pub fn warm_up(self: &Arc<Self>) {
        self.start_standby();
    }

    fn start_standby(self: &Arc<Self>) {
        if self.standby.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let s = self.clone();
        let spawned = sys::spawn_signals_blocked(
            std::thread::Builder::new().name("fcgi-standby".into()),
            move || s.standby_main(),
        );
        if let Err(e) = spawned {
            crate::fcgi_log!(Error, "cannot start the standby reactor thread: {e}");
        }
    }

    fn standby_main(self: Arc<Self>) {
        super::log::mark_library_thread();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.standby_loop()));
        if run.is_err() {
            self.r.fail("a panic in the standby thread");
        }
    }

    fn standby_loop(self: &Arc<Self>) {
        let mut watch = Watch::default();
        let mut buf = [const { MaybeUninit::<Event>::uninit() }; SWEEP];
        let mut seen: Vec<(Arc<Worker>, Seen)> = Vec::new();
        let mut list: Vec<Arc<Worker>> = Vec::new();
        loop {
            if self.r.is_failed() {
                return;
            }
            let mut all_waiting = true;
            self.r.workers_into(&mut list);
            for w in list.drain(..) {
                if w.is_loop {
                    continue;
                }
                let i = match seen.iter().position(|(x, _)| Arc::ptr_eq(x, &w)) {
                    Some(i) => i,
                    None => {
                        seen.push((w.clone(), Seen::default()));
                        seen.len() - 1
                    }
                };
                let waiting = w.waiting.load(Ordering::SeqCst);
                all_waiting &= waiting;
                if seen[i]
                    .1
                    .unattended(waiting, w.epoch.load(Ordering::Relaxed))
                {
                    self.r.share_locals(&w);
                    self.sweep(&w.ep, &mut buf, false);
                }
            }
            // Forget workers that went away.
            seen.retain(|(w, _)| Arc::strong_count(w) > 1);
            self.sweep(&self.r.orphans, &mut buf, false);
            self.r.relay_queued();
            self.start_relays();
            if watch.check(all_waiting) {
                self.standby.park(|| self.r.any_busy());
                continue;
            }
            self.standby.nap();
        }
    }

    /// Starts a thread for each request the standby chose to relay (relay.rs). A thread that
    /// cannot start hands its connection back.
    fn start_relays(self: &Arc<Self>) {
        for job in self.r.relay.take_jobs() {
            let cell = Arc::new(parking_lot::Mutex::new(Some(job)));
            let (s, mine) = (self.clone(), cell.clone());
            let spawned = sys::spawn_signals_blocked(
                std::thread::Builder::new().name("fcgi-relay".into()),
                move || {
                    super::log::mark_library_thread();
                    if let Some(job) = mine.lock().take() {
                        super::relay::run(&s.r, job);
                    }
                },
            );
            if let Err(e) = spawned {
                crate::fcgi_log!(Warning, "cannot start a relay thread: {e}");
                if let Some(job) = cell.lock().take() {
                    self.r.relay.ended();
                    self.r.adopt(job.conn, Vec::new());
                }
            }
        }
    }

    /// Handles whatever epoll `ep` holds without waiting: the standby's and an event loop's
    /// round. Ready requests are queued for the application's threads or loops.
    pub(super) fn sweep(
        &self,
        ep: &crate::sys::Epoll,
        buf: &mut [MaybeUninit<Event>],
        from_loop: bool,
    ) -> bool {
        let mut own = false;
        loop {
            let evs = self.r.wait(ep, buf, 0);
            let n = evs.len();
            let mut found = Found {
                from_loop,
                standby: !from_loop,
                ..Found::default()
            };
            self.r.dispatch(evs, Instant::now(), &mut found);
            own |= found.own;
            if n < buf.len() {
                break;
            }
        }
        self.flush_corked();
        if !from_loop {
            // The standby took events meant for a waiting worker (a new connection, a kick
            // for a queued request): it passes them on.
            self.r.pass_on();
        }
        own
    }
}
