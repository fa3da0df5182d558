//! The worker's side of the scoreboard: the request hooks a pool worker installs into the
//! runtime's request path (`crate::hooks`: counts, scoreboard entries, the status page, the
//! slow log's end line), and the drain trigger.
//!
//! A worker forked by the pool attaches in the child (`attach`); a program exec'd by
//! fcgi-spawn attaches when its runtime starts, from `FCGI_RUNTIME_SCOREBOARD=<fd>:<slot>`
//! (`attach_from_env`), if that slot names this very process.

use super::scoreboard::{self, Header, Scoreboard, Slot, ENTRIES};
use super::worker::{header, slot};
use crate::hooks::{Begin, RequestHooks};
use crate::{self as rt};
use fcgi_runtime_protocol::ParamStore;
use parking_lot::Mutex;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

static MAX_REQUESTS: AtomicU64 = AtomicU64::new(0);
static SLOW_MS: AtomicU64 = AtomicU64::new(0);
/// The status page's path (empty: none), read from the header when attaching.
static STATUS_PATH: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
/// The ping path (empty: none) and its body, read from the header when attaching.
static PING: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();

/// The access log's compiled format (none: no access log), set when attaching.
static ACCESS: std::sync::OnceLock<super::access_log::Format> = std::sync::OnceLock::new();
static POOL_NAME: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Requests of this process the hooks follow at once; the token `begin` returns is an index
/// into `REQS` (a request beyond is neither timed nor logged, only counted).
const TOKENS: usize = crate::hooks::NO_TOKEN as usize;

/// What the hooks keep of a request between `begin` and `ended`.
struct Req {
    used: AtomicBool,
    /// Its scoreboard entry + 1 (wrapping: `NO_ENTRY` is 0), so that the table is all zeros
    /// (.bss) in a process that never uses it.
    entry: AtomicU8,
    /// CLOCK_MONOTONIC microseconds at `begin`.
    start_us: AtomicU64,
    /// Its access log line so far (with an access log).
    /// (Boxed: `None` is a null pointer, which keeps the table all zeros.)
    pending: Mutex<Option<Box<super::access_log::Pending>>>,
}

static REQS: [Req; TOKENS] = [const {
    Req {
        used: AtomicBool::new(false),
        entry: AtomicU8::new(0),
        start_us: AtomicU64::new(0),
        pending: Mutex::new(None),
    }
}; TOKENS];

/// The environment variable fcgi-spawn passes to the programs it execs.
pub const ENV: &str = "FCGI_RUNTIME_SCOREBOARD";

/// No scoreboard entry (the request is not described: all entries taken).
const NO_ENTRY: u8 = crate::hooks::NO_TOKEN;

/// A pool worker's request hooks.
struct WorkerHooks;

static WORKER_HOOKS: WorkerHooks = WorkerHooks;

impl RequestHooks for WorkerHooks {
    fn taken(&self) {
        on_taken();
    }

    fn begin(&self, params: &ParamStore, listen_fd: RawFd) -> Begin {
        let now_us = rt::sys::clock_us(libc::CLOCK_MONOTONIC);
        let token = claim_token();
        let access = ACCESS.get();
        if let Some(r) = REQS.get(token as usize) {
            let entry = describe(params, now_us / 1000);
            r.entry.store(entry.wrapping_add(1), Ordering::Relaxed);
            r.start_us.store(now_us, Ordering::Relaxed);
            if let Some(f) = access {
                let pool = POOL_NAME.get().map_or(&[][..], |p| &p[..]);
                *r.pending.lock() = Some(Box::new(f.begin(params, pool, now_us)));
            }
        }
        Begin {
            token,
            answer: ping_response(params, RECYCLED_BY_THIS.with(|c| c.replace(false)))
                .or_else(|| status_response(params, listen_fd)),
            capture_head: access.is_some_and(|f| f.needs_head),
        }
    }

    fn ended(&self, token: u8, head: &[u8]) {
        on_ended(token, head);
    }

    fn connection_accepted(&self) {
        if let Some(h) = header() {
            h.connections.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn connections_open(&self, delta: i32) {
        if let Some(s) = slot() {
            let _ = s
                .open_conns
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_add_signed(delta))
                });
        }
    }

    fn refused_overloaded(&self) {
        if let Some(h) = header() {
            h.refused[0].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A free token (`NO_TOKEN` when `TOKENS` requests are followed already).
fn claim_token() -> u8 {
    REQS.iter()
        .position(|r| {
            !r.used.load(Ordering::Relaxed)
                && r.used
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
        })
        .map_or(crate::hooks::NO_TOKEN, |i| i as u8)
}

/// Makes this process a pool worker writing to `s`. The settings come from the header.
pub(crate) fn attach(h: *const Header, s: *const Slot) {
    super::worker::set_place(h, s);
    // SAFETY: `h` points into the scoreboard mapping (the caller's contract).
    let hd = unsafe { &*h };
    // The worker's own max_requests (with its jitter), which the parent wrote in the slot.
    // SAFETY: `s` points into the scoreboard mapping (the caller's contract).
    let own = u64::from(unsafe { &*s }.max_requests.load(Ordering::Relaxed));
    MAX_REQUESTS.store(own, Ordering::Relaxed);
    SLOW_MS.store(
        hd.slowlog_timeout_ms.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    let _ = STATUS_PATH.set(hd.status_path.load());
    let _ = PING.set((hd.ping_path.load(), hd.ping_response.load()));
    let _ = POOL_NAME.set(hd.pool_name.load());
    match super::access_log::configure(
        &hd.access_log.load_string(),
        &hd.access_format.load_string(),
    ) {
        Ok(Some(f)) => {
            let _ = ACCESS.set(f);
        }
        Ok(None) => {}
        Err(e) => crate::fcgi_log!(Error, "pool: access log: {e}"),
    }
    // SAFETY: as above.
    unsafe { &*s }.attached.store(1, Ordering::Release);
    crate::hooks::install(&WORKER_HOOKS);
}

/// In a program exec'd by fcgi-spawn: attaches to the inherited scoreboard when
/// `FCGI_RUNTIME_SCOREBOARD` names a slot whose pid is this process (a descendant that
/// inherited the variable finds another pid and stays out), installs the worker's SIGQUIT
/// (drain) and SIGUSR1 (reopen) handlers, and opens the slow log. Once per process.
pub(crate) fn attach_from_env() {
    static DONE: AtomicU64 = AtomicU64::new(0);
    let pid = rt::sys::pid() as u64;
    if DONE.swap(pid, Ordering::AcqRel) == pid || !header_missing() {
        return;
    }
    let Ok(v) = std::env::var(ENV) else {
        return;
    };
    let parsed = v
        .split_once(':')
        .and_then(|(f, s)| Some((f.parse::<i32>().ok()?, s.parse::<usize>().ok()?)));
    let Some((fd, slot)) = parsed else {
        crate::fcgi_log!(Warning, "ignoring {ENV}='{v}': not <fd>:<slot>");
        return;
    };
    let mut board = match Scoreboard::attach_fd(fd) {
        Ok(b) => b,
        Err(e) => {
            crate::fcgi_log!(Warning, "ignoring {ENV}='{v}': {e}");
            return;
        }
    };
    if slot >= board.slot_count()
        || board.slot(slot).pid.load(Ordering::Relaxed) != rt::sys::pid() as i32
    {
        return; // Not ours (a child of the worker, or a stale variable): drop the mapping.
    }
    board.keep_mapped();
    let h = board.header();
    let path = h.slowlog_path.load_string();
    if let Err(e) = super::slowlog::configure(&path) {
        crate::fcgi_log!(Error, "{e}");
    }
    attach(h, board.slot(slot));
    super::signals::install_exec_worker();
}

fn header_missing() -> bool {
    header().is_none()
}

/// A request was taken (under the reactor lock). Counts it; the request that reaches
/// `max_requests` starts the drain.
fn on_taken() {
    let Some(s) = slot() else {
        return;
    };
    s.in_flight.fetch_add(1, Ordering::Relaxed);
    let n = s.served.fetch_add(1, Ordering::Relaxed) + 1;
    if let Some(h) = header() {
        h.accepted.fetch_add(1, Ordering::Relaxed);
    }
    let max = MAX_REQUESTS.load(Ordering::Relaxed);
    if max > 0 && n >= max {
        if !rt::draining() {
            RECYCLED_BY_THIS.with(|c| c.set(true));
        }
        super::worker::begin_drain();
    }
}

thread_local! {
    /// The request this thread just took started its worker's drain (its max_requests): it
    /// is served as any other (a ping gets 200, the pool is fine).
    static RECYCLED_BY_THIS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Describes a taken request in a free entry of the slot (start, method, URI); the entry's
/// index, or `NO_ENTRY` when all are in use.
fn describe(params: &ParamStore, now_ms: u64) -> u8 {
    let Some(s) = slot() else {
        return NO_ENTRY;
    };
    let Some(i) = (0..ENTRIES).find(|&i| s.entries[i].claim()) else {
        return NO_ENTRY;
    };
    let method = params.get(b"REQUEST_METHOD").unwrap_or(b"");
    let uri = match params.get(b"REQUEST_URI") {
        Some(u) => u.to_vec(),
        None => {
            let mut u = params.get(b"SCRIPT_NAME").unwrap_or(b"").to_vec();
            if let Some(q) = params.get(b"QUERY_STRING").filter(|q| !q.is_empty()) {
                u.push(b'?');
                u.extend_from_slice(q);
            }
            u
        }
    };
    s.entries[i].write(now_ms, scoreboard::unix_ms(), method, &uri);
    i as u8
}

/// The ping answer when the request asks for it: 503 while the pool (the header's flag) or
/// this worker drains (asked to by the supervisor: a reload, a recycle by memory or idleness;
/// not for the request that reached its own max_requests, `recycled_by_this`).
fn ping_response(params: &ParamStore, recycled_by_this: bool) -> Option<Vec<u8>> {
    let (path, body) = PING.get()?;
    if !super::status::matches(params, path) {
        return None;
    }
    let pool_draining = header().is_some_and(|h| h.draining.load(Ordering::Acquire) != 0);
    let me_draining = !recycled_by_this
        && (rt::draining()
            || slot().is_some_and(|s| s.state.load(Ordering::Acquire) == scoreboard::DRAINING));
    Some(super::ping::response(body, pool_draining || me_draining))
}

/// The status page when the request asks for it (`None`: an ordinary request).
fn status_response(params: &ParamStore, listen_fd: RawFd) -> Option<Vec<u8>> {
    let path = STATUS_PATH.get()?;
    if !super::status::matches(params, path) {
        return None;
    }
    let h = header()?;
    let n = h.slots.load(Ordering::Relaxed) as usize;
    // SAFETY: the slots follow the header in the mapping, which holds `slots` of them
    // (checked when an exec'd worker mapped it; made so by the parent otherwise).
    let slots = unsafe {
        std::slice::from_raw_parts(
            (h as *const Header)
                .cast::<u8>()
                .add(std::mem::size_of::<Header>())
                .cast::<Slot>(),
            n,
        )
    };
    Some(super::status::page(h, slots, listen_fd, params))
}

/// A taken request ended (`token` from `begin`).
fn on_ended(token: u8, head: &[u8]) {
    let now_us = rt::sys::clock_us(libc::CLOCK_MONOTONIC);
    let mut entry = NO_ENTRY;
    if let Some(r) = REQS.get(token as usize) {
        entry = r.entry.swap(0, Ordering::Relaxed).wrapping_sub(1);
        let us = now_us.saturating_sub(r.start_us.load(Ordering::Relaxed));
        if let Some(h) = header() {
            h.observe_duration(us);
        }
        if let Some(f) = ACCESS.get() {
            let pending = r.pending.lock().take();
            if let Some(p) = pending {
                (*p).finish(f, head, now_us);
            }
        }
        r.used.store(false, Ordering::Release);
    }
    if let Some(s) = slot() {
        let now = now_us / 1000;
        if let Some(e) = s.entries.get(entry as usize) {
            let start = e.start_ms.load(Ordering::Relaxed);
            let ms = now.saturating_sub(start);
            s.last_duration_ms.store(ms, Ordering::Relaxed);
            s.last_entry.store(entry as u32 + 1, Ordering::Relaxed);
            let slow = SLOW_MS.load(Ordering::Relaxed);
            if slow > 0 && ms >= slow {
                log_slow_end(s, e, start, ms);
            }
            e.release();
        }
        if s.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            s.idle_since_ms.store(now, Ordering::Relaxed);
        }
    }
}

/// The end line of a slow request; the request is counted once, by whoever of the parent
/// (at the crossing) and the worker (at the end) marks it first.
fn log_slow_end(s: &Slot, e: &scoreboard::Entry, start: u64, ms: u64) {
    let Some(h) = header() else {
        return;
    };
    let seen = e.slow_logged.load(Ordering::Relaxed);
    if seen != start
        && e.slow_logged
            .compare_exchange(seen, start, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    {
        h.slow_requests.fetch_add(1, Ordering::Relaxed);
    }
    let Some(v) = e.read() else {
        return;
    };
    super::slowlog::write(&super::slowlog::line(
        &h.pool_name.load_string(),
        s.pid.load(Ordering::Relaxed),
        v.start_unix_ms,
        &v.method,
        &v.uri,
        ms,
        false,
    ));
}
