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
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};

static MAX_REQUESTS: AtomicU64 = AtomicU64::new(0);
static SLOW_MS: AtomicU64 = AtomicU64::new(0);
/// The status page's path (empty: none), read from the header when attaching.
static STATUS_PATH: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

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
        Begin {
            token: describe(params),
            answer: status_response(params, listen_fd),
        }
    }

    fn ended(&self, token: u8) {
        on_ended(token);
    }
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
        super::worker::begin_drain();
    }
}

/// Describes a taken request in a free entry of the slot (start, method, URI); the entry's
/// index, or `NO_ENTRY` when all are in use.
fn describe(params: &ParamStore) -> u8 {
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
    s.entries[i].write(scoreboard::now_ms(), scoreboard::unix_ms(), method, &uri);
    i as u8
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
    let (format, full) = super::status::parse_query(params.get(b"QUERY_STRING").unwrap_or(b""));
    let snap = super::status::snapshot(h, slots, listen_fd);
    Some(super::status_render::render(&snap, format, full))
}

/// A taken request ended (`entry` from `describe`).
fn on_ended(entry: u8) {
    if let Some(s) = slot() {
        let now = scoreboard::now_ms();
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
