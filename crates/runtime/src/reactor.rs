//! The reactor of one listening socket in one process: the state that events change, shared
//! by the workers (worker.rs: one epoll per application thread or event loop) whose epolls
//! deliver them. See docs/runtime-design.md.
//!
//! Who owns what:
//! - connections: their slots in [`ConnTable`] (conns.rs), one mutex each; reading and
//!   feeding them is pump.rs; each is registered in the epoll of one worker (its owner), or
//!   in the orphan epoll when its worker went away;
//! - the workers: the registry below (leaf lock);
//! - the listen backlog: the accept policy (accept.rs) and the listener flags, in
//!   listener.rs;
//! - deadlines: [`Timers`] (timers.rs) behind a timerfd, driven from deadlines.rs;
//! - requests nobody has taken yet: [`ReadyQueue`] (ready.rs);
//! - the waiting threads: the counters below, and the kick eventfd that wakes one of them.
//!
//! Lock order: accept policy, then one connection, then the leaf locks (ready queue, timers,
//! corked list, table free list, loops). No code takes a connection lock while holding a leaf
//! lock or the accept policy while holding a connection lock.

use super::accept::AcceptPolicy;
use super::conns::{self, ConnTable};
use super::io::ConnIo;
use super::ready::{Ready, ReadyQueue};
use super::sys::{self, epoll, Epoll, Event, EventFd, TimerFd};

/// What a connection is registered for: input, room to write, the peer's end; edge-triggered.
pub(super) const CONN_EVENTS: u32 = epoll::IN | epoll::OUT | epoll::RDHUP | epoll::ET;
use super::timers::Timers;
use super::waiter::LoopWake;
use super::worker::{Shared, Worker, LISTENER, OWN, TIMER, WAKE};
use parking_lot::Mutex;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Where the requests that become ready while a thread handles events go: the first to the
/// thread itself if it serves requests (an application thread in accept), the others to its
/// worker's own queue while no other worker waits (it serves them next, without a hand-off),
/// else to the shared queue with a kick for a waiting worker.
#[derive(Default)]
pub struct Found<'a> {
    pub want: bool,
    pub got: Option<Ready>,
    /// The worker whose events these are, when it serves its own queue.
    pub local: Option<&'a Worker>,
    /// Handled by an event loop's own work: it looks at the queue itself, no need to wake it.
    pub from_loop: bool,
    /// Handled by the standby for a busy worker: input on an idle connection may be relayed.
    pub standby: bool,
    /// The worker's own descriptor (an event loop's eventfd) was readable.
    pub own: bool,
}

impl<'a> Found<'a> {
    /// For an application thread in accept on worker `w`.
    pub fn wanting(w: &'a Worker) -> Found<'a> {
        Found {
            want: true,
            local: Some(w),
            ..Found::default()
        }
    }

    /// Where a request that became ready goes.
    pub(super) fn place(&mut self, r: Ready, reactor: &Reactor) {
        if self.want && self.got.is_none() {
            self.got = Some(r);
            return;
        }
        if let Some(w) = self.local {
            if reactor.pollers.load(Ordering::SeqCst) == 0 {
                w.push_local(r);
                reactor.locals.fetch_add(1, Ordering::AcqRel);
                return;
            }
        }
        reactor.queue_ready(r, self.from_loop);
    }
}

pub struct Reactor {
    pub(super) listen_fd: RawFd,
    /// Connections whose worker went away, until another worker adopts them.
    pub(super) orphans: Epoll,
    workers: Mutex<Vec<Arc<Worker>>>,
    workers_n: AtomicUsize,
    wake: EventFd,
    kick: EventFd,
    pub(super) timerfd: TimerFd,
    pub(super) conns: ConnTable,
    pub(super) ready: ReadyQueue,
    pub(super) policy: Mutex<AcceptPolicy>,
    pub(super) timers: Mutex<Timers>,
    pub(super) in_flight: AtomicUsize,
    /// Blocking application threads inside accept.
    pub(super) accepters: AtomicUsize,
    /// Blocking application threads inside `epoll_wait` (idle, ready to take work).
    pub(super) pollers: AtomicUsize,
    /// Requests in the workers' own queues (see [`Found::place`]): idle workers steal them.
    pub(super) locals: AtomicUsize,
    /// The listener reported connections that have not all been accepted yet.
    pub(super) listener_ready: AtomicBool,
    /// FCGI_MAX_CONNS connections are open: no accept until one closes.
    pub(super) full: AtomicBool,
    /// A connection closed since the accept policy last looked (a descriptor was freed).
    pub(super) closed_any: AtomicBool,
    /// A pool worker's drain began (see listener.rs).
    pub(super) draining: AtomicBool,
    /// Connections with output deferred by `retire_deferring`.
    pub(super) corked: Mutex<Vec<Arc<ConnIo>>>,
    pub(super) corked_n: AtomicUsize,
    /// Event loops serving this listener (see evloop.rs).
    loops: Mutex<Vec<Arc<LoopWake>>>,
    loops_n: AtomicUsize,
    /// A panic inside the runtime: every call returns its error from now on.
    failed: AtomicBool,
    /// Test hook (FCGI_RUNTIME_TEST_PANIC=N): the round that reads the first bytes of the
    /// N-th connection to send any panics (0: off).
    fault_at: u64,
    accepted: AtomicU64,
    /// Whether idle connections close while the only thread is busy (shed.rs).
    pub(super) shed: super::shed::Shed,
    /// Requests that would wait behind busy threads go to a sibling (relay.rs).
    pub(super) relay: super::relay::Relay,
}

impl Reactor {
    pub fn new(listen_fd: RawFd) -> io::Result<Reactor> {
        sys::check_listening(listen_fd)?;
        sys::set_nonblocking(listen_fd)?;
        defer_accept(listen_fd);
        let orphans = Epoll::new()?;
        let wake = EventFd::new()?;
        let kick = EventFd::new()?;
        let timerfd = TimerFd::new()?;
        let fault = std::env::var("FCGI_RUNTIME_TEST_PANIC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(Reactor {
            listen_fd,
            orphans,
            workers: Mutex::new(Vec::new()),
            workers_n: AtomicUsize::new(0),
            wake,
            kick,
            timerfd,
            conns: ConnTable::default(),
            ready: ReadyQueue::default(),
            policy: Mutex::new(AcceptPolicy::default()),
            timers: Mutex::new(Timers::new(Instant::now())),
            in_flight: AtomicUsize::new(0),
            accepters: AtomicUsize::new(0),
            pollers: AtomicUsize::new(0),
            locals: AtomicUsize::new(0),
            listener_ready: AtomicBool::new(false),
            full: AtomicBool::new(false),
            closed_any: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            corked: Mutex::new(Vec::new()),
            corked_n: AtomicUsize::new(0),
            loops: Mutex::new(Vec::new()),
            loops_n: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            fault_at: fault,
            accepted: AtomicU64::new(0),
            shed: super::shed::Shed::for_listener(listen_fd),
            relay: super::relay::Relay::for_listener(listen_fd),
        })
    }

    /// The eventfd that `terminate` and the pool's drain write (async-signal-safe).
    pub fn wake_fd(&self) -> RawFd {
        self.wake.fd()
    }

    // ---- workers ------------------------------------------------------------------------

    /// A new worker: its epoll holds the server's descriptors and `own` (its owner's
    /// eventfd), and it adopts the connections of workers that went away.
    pub fn new_worker(&self, own: Option<RawFd>, is_loop: bool) -> io::Result<Arc<Worker>> {
        let shared = Shared {
            listen_fd: self.listen_fd,
            kick_fd: self.kick.fd(),
            timer_fd: self.timerfd.fd(),
            wake_fd: self.wake.fd(),
        };
        let listen = !self.draining.load(Ordering::Acquire);
        let w = Arc::new(Worker::new(
            &shared,
            listen,
            own.map(|fd| (fd, OWN)),
            is_loop,
        )?);
        {
            let mut all = self.workers.lock();
            all.push(w.clone());
            self.workers_n.store(all.len(), Ordering::Release);
        }
        self.rehome(None, Some(&w));
        Ok(w)
    }

    /// Workers serving this server now.
    pub fn worker_count(&self) -> usize {
        self.workers_n.load(Ordering::Acquire)
    }

    /// A worker goes away: its connections move to the orphan epoll (the standby sweeps it;
    /// the next worker adopts them).
    pub fn retire_worker(&self, w: &Arc<Worker>) {
        {
            let mut all = self.workers.lock();
            all.retain(|x| !Arc::ptr_eq(x, w));
            self.workers_n.store(all.len(), Ordering::Release);
        }
        self.share_locals(w);
        self.rehome(Some(w), None);
    }

    /// Moves every connection of worker `from` (`None`: the orphans) to worker `to` (`None`:
    /// the orphan epoll).
    fn rehome(&self, from: Option<&Arc<Worker>>, to: Option<&Arc<Worker>>) {
        let same = |a: &Option<Arc<Worker>>, b: Option<&Arc<Worker>>| match (a, b) {
            (None, None) => true,
            (Some(x), Some(y)) => Arc::ptr_eq(x, y),
            _ => false,
        };
        for idx in 0..self.conns.high() {
            let Some(mut g) = self.conns.lock_slot(idx) else {
                continue;
            };
            let Some(conn) = g.as_mut() else {
                continue;
            };
            if !same(&conn.owner, from) {
                continue;
            }
            let fd = conn.io.fd();
            let _ = self.epoll_of(&conn.owner).delete(fd);
            let counted = conn.counted;
            conn.uncount();
            let token = conns::token(idx, conn.gen);
            if self
                .epoll_of(&to.cloned())
                .add(fd, CONN_EVENTS, token)
                .is_ok()
            {
                conn.owner = to.cloned();
            } else {
                let _ = self.orphans.add(fd, CONN_EVENTS, token);
                conn.owner = None;
            }
            if let (true, Some(w)) = (counted, &conn.owner) {
                w.conns.fetch_add(1, Ordering::Relaxed);
                conn.counted = true;
            }
        }
    }

    /// The worker a new connection accepted by `me` goes to: the blocking worker with the
    /// fewest connections; among equals one that waits in its epoll (it serves the first
    /// request at once), `me` first. An event loop keeps what it accepts.
    pub(super) fn pick_worker(&self, me: &Arc<Worker>) -> Arc<Worker> {
        if me.is_loop {
            return me.clone();
        }
        let rank = |w: &Worker| {
            let busy = !w.waiting.load(Ordering::Relaxed) && !std::ptr::eq(w, &**me);
            (w.conns.load(Ordering::Relaxed), busy)
        };
        let all = self.workers.lock();
        let mut best = me;
        let mut best_rank = rank(me);
        for w in all.iter().filter(|w| !w.is_loop) {
            let r = rank(w);
            if r < best_rank {
                best = w;
                best_rank = r;
            }
        }
        best.clone()
    }

    /// The epoll a connection of `owner` is registered in.
    pub(super) fn epoll_of<'a>(&'a self, owner: &'a Option<Arc<Worker>>) -> &'a Epoll {
        match owner {
            Some(w) => &w.ep,
            None => &self.orphans,
        }
    }

    /// The workers now (a copy, so that the caller may take connection locks).
    pub(super) fn workers(&self) -> Vec<Arc<Worker>> {
        self.workers.lock().clone()
    }

    /// The workers now, copied into `out` (the standby's list, reused: no allocation once
    /// warm, since it looks every few milliseconds while a worker is busy).
    pub(super) fn workers_into(&self, out: &mut Vec<Arc<Worker>>) {
        out.clear();
        out.extend(self.workers.lock().iter().cloned());
    }

    /// True when an application thread is busy (not waiting in its epoll).
    pub(super) fn any_busy(&self) -> bool {
        self.workers
            .lock()
            .iter()
            .any(|w| !w.is_loop && !w.waiting.load(Ordering::SeqCst))
    }

    // ---- events -------------------------------------------------------------------------

    /// Handles the events one wait returned. Ready requests go to `found` (the first, if it
    /// wants one) or to the ready queue.
    pub fn dispatch(&self, evs: &[Event], now: Instant, found: &mut Found<'_>) {
        for ev in evs {
            let (data, bits) = (ev.u64, ev.events);
            match conns::untoken(data) {
                Some((idx, gen)) => self.on_conn(idx, gen, bits, now, found),
                None => match data {
                    LISTENER => self.listener_ready.store(true, Ordering::Release),
                    // Level-triggered: left readable while every waiter must look.
                    WAKE if !self.must_stay_awake() => self.wake.drain(),
                    TIMER => {
                        self.timerfd.drain();
                        self.fire_timers(now);
                    }
                    // The owner's business: an event loop drains its eventfd in `work`, only
                    // when it was written (a read that fails costs a system call per turn).
                    OWN => found.own = true,
                    // KICK: the caller looks at the ready queue and the listener anyway.
                    _ => {}
                },
            }
        }
    }

    fn on_conn(&self, idx: u32, gen: u32, bits: u32, now: Instant, found: &mut Found<'_>) {
        let Some(mut g) = self.conns.lock_slot(idx) else {
            return;
        };
        let Some(conn) = g.as_mut().filter(|c| c.gen == gen) else {
            return;
        };
        if bits & epoll::OUT != 0 && conn.io.pending_len() > 0 {
            conn.io.flush_pending();
        }
        let closed = epoll::RDHUP | epoll::ERR | epoll::HUP;
        if bits & (epoll::IN | closed) != 0 {
            conn.readable = true;
            conn.hup |= bits & closed != 0;
            if found.standby && bits & closed == 0 && self.try_relay(&mut g, idx) {
                return;
            }
            self.pump(&mut g, idx, now, found);
        }
    }

    /// Waits up to `timeout_ms` for events in `ep` (a worker's or the orphan epoll).
    pub fn wait<'a>(
        &self,
        ep: &Epoll,
        buf: &'a mut [std::mem::MaybeUninit<Event>],
        timeout_ms: i32,
    ) -> &'a [Event] {
        match ep.wait(buf, timeout_ms) {
            Ok(evs) => evs,
            Err(e) => {
                crate::fcgi_log!(Error, "epoll_wait failed: {e}");
                &[]
            }
        }
    }

    // ---- ready requests -----------------------------------------------------------------

    /// Queues a ready request and wakes a waiting thread for it (or an event loop, when no
    /// thread waits). A queue longer than the number of waiting threads wakes nobody more:
    /// each thread that takes one kicks the next (see [`Reactor::took_ready`]).
    pub fn queue_ready(&self, r: Ready, from_loop: bool) {
        self.ready.push(r);
        // SeqCst, with the waiter's increment before its last look at the queue
        // (`Server::accept_loop`): either it sees the request or this sees it waiting.
        let waiting = self.pollers.load(Ordering::SeqCst);
        if waiting > 0 {
            if self.ready.len() <= waiting {
                self.kick.wake();
            }
        } else if !from_loop {
            self.wake_loops();
        }
    }

    /// A thread took a request from the queue: if more are queued and threads wait, one more
    /// is woken.
    pub fn took_ready(&self) {
        if !self.ready.is_empty() && self.pollers.load(Ordering::SeqCst) > 0 {
            self.kick.wake();
        }
    }

    /// Takes a request from worker `w`'s own queue.
    pub fn pop_local(&self, w: &Worker) -> Option<Ready> {
        let r = w.pop_local()?;
        self.locals.fetch_sub(1, Ordering::AcqRel);
        Some(r)
    }

    /// Moves worker `w`'s own queue to the shared one (its thread is busy, or gone), waking
    /// waiting workers for it.
    pub fn share_locals(&self, w: &Worker) {
        while let Some(r) = self.pop_local(w) {
            self.queue_ready(r, false);
        }
    }

    /// An idle worker takes a request from another worker's own queue.
    pub fn steal_local(&self, me: &Worker) -> Option<Ready> {
        if self.locals.load(Ordering::Acquire) == 0 {
            return None;
        }
        // Under the list's lock: taking a worker's queue takes no connection lock.
        let all = self.workers.lock();
        for w in all.iter() {
            if std::ptr::eq(&**w, me) {
                continue;
            }
            if let Some(r) = self.pop_local(w) {
                return Some(r);
            }
        }
        None
    }

    /// A thread leaves for a request (or the standby ends a sweep) with the events it received
    /// possibly meant for a waiting worker: the listener's edge (connections may wait in the
    /// backlog) or a kick (a request waits in the shared queue). A waiting worker is woken to
    /// look, so that neither is lost.
    pub fn pass_on(&self) {
        let backlog =
            self.listener_ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire);
        if backlog || !self.ready.is_empty() {
            self.kick();
        }
    }

    /// Wakes one waiting thread to look at the listener and the queue again.
    pub fn kick(&self) {
        if self.pollers.load(Ordering::SeqCst) > 0 {
            self.kick.wake();
        } else {
            self.wake_loops();
        }
    }

    // ---- event loops --------------------------------------------------------------------

    pub fn add_loop(&self, l: Arc<LoopWake>) {
        let mut v = self.loops.lock();
        v.push(l);
        self.loops_n.store(v.len(), Ordering::Release);
    }

    pub fn remove_loop(&self, l: &Arc<LoopWake>) {
        let mut v = self.loops.lock();
        v.retain(|x| !Arc::ptr_eq(x, l));
        self.loops_n.store(v.len(), Ordering::Release);
    }

    pub fn has_loops(&self) -> bool {
        self.loops_n.load(Ordering::Acquire) > 0
    }

    pub fn wake_loops(&self) {
        if !self.has_loops() {
            return;
        }
        for l in self.loops.lock().iter() {
            l.wake();
        }
    }

    // ---- run state ----------------------------------------------------------------------

    /// True while every waiter must return to look at the run state: the wake eventfd then
    /// stays readable (level-triggered) instead of being drained.
    fn must_stay_awake(&self) -> bool {
        let st = super::state();
        st & super::STATE_SHUTDOWN != 0
            || self.is_failed()
            || (self.draining.load(Ordering::Acquire) && self.conns.open() == 0)
            || (st & super::STATE_DRAIN != 0 && !self.draining.load(Ordering::Acquire))
    }

    /// Makes every waiter look at the run state.
    pub fn wake_all(&self) {
        self.wake.wake();
        self.wake_loops();
    }

    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Marks the server failed after a panic inside it: one log line, every waiter woken,
    /// every later call answered with its error.
    pub fn fail(&self, why: &str) {
        if self.failed.swap(true, Ordering::AcqRel) {
            return;
        }
        crate::fcgi_log!(
            Error,
            "the runtime of listening socket {} failed ({why}); the process stops serving: \
             every waiting and later call returns its error, as after fcgi_terminate",
            self.listen_fd
        );
        // A runtime that panicked cannot be trusted with another request: the process ends
        // its service the way a shutdown does, so every face (blocking threads, event loops
        // checking fcgi_in_shutdown) stops at once.
        super::set_state_bits(super::STATE_SHUTDOWN);
        super::wake_all();
        self.wake.wake();
        self.wake_loops();
        for idx in 0..self.conns.high() {
            let Some(mut g) = self.conns.lock_slot(idx) else {
                continue;
            };
            if let Some(conn) = g.as_mut() {
                conn.io.set_broken();
                for s in conn.reqs.iter_mut() {
                    s.shared.aborted.store(true, Ordering::Release);
                    if let Some(w) = s.waiter.take() {
                        w.notify();
                    }
                }
            }
        }
    }

    /// A guard for an entry point: if the thread unwinds through it, the server is marked
    /// failed (the panic itself is caught at the C boundary).
    pub fn guard(&self) -> FailGuard<'_> {
        FailGuard(self)
    }

    /// The test hook: a connection delivered its first bytes; panics if it is the N-th.
    pub(super) fn first_input(&self) {
        if self.fault_at != 0 && self.accepted.fetch_add(1, Ordering::Relaxed) + 1 == self.fault_at
        {
            panic!("FCGI_RUNTIME_TEST_PANIC: a panic injected into an event round");
        }
    }
}

/// TCP_DEFER_ACCEPT on a TCP listener: the kernel hands a connection to accept(2) once its
/// first bytes have arrived. A FastCGI client always speaks first (BEGIN_REQUEST, or
/// GET_VALUES), so the worker that accepts a connection reads its request at once instead of
/// sleeping in its epoll a second time for it (behind nginx without keep-alive: half the
/// context switches per request). A connection that stays silent is still accepted after the
/// timeout (`FCGI_RUNTIME_DEFER_ACCEPT` seconds, default 1; 0 turns it off).
fn defer_accept(listen_fd: RawFd) {
    let secs = std::env::var("FCGI_RUNTIME_DEFER_ACCEPT")
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(1);
    if secs > 0 && sys::is_tcp(listen_fd) {
        sys::set_defer_accept(listen_fd, secs);
    }
}

/// See [`Reactor::guard`].
pub struct FailGuard<'a>(&'a Reactor);

impl Drop for FailGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail("a panic inside the runtime");
        }
    }
}
