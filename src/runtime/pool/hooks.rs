//! The worker's side of the scoreboard, called from the request path only in a pool worker
//! (the accept path checks `STATE_POOLED` in the run-state load it does anyway, and a taken
//! request carries the answer), and the drain trigger.

use super::scoreboard::{self, Header, Slot};
use crate::runtime::{self as rt, STATE_DRAIN, STATE_POOLED};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

static HEADER: AtomicPtr<Header> = AtomicPtr::new(ptr::null_mut());
static SLOT: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());
static MAX_REQUESTS: AtomicU64 = AtomicU64::new(0);

fn slot() -> Option<&'static Slot> {
    // SAFETY: set by `attach` to a slot of the scoreboard mapping, which a worker never unmaps.
    unsafe { SLOT.load(Ordering::Relaxed).as_ref() }
}

fn header() -> Option<&'static Header> {
    // SAFETY: as for `slot`.
    unsafe { HEADER.load(Ordering::Relaxed).as_ref() }
}

/// Makes this process (a freshly forked worker) a pool worker writing to `slot`.
pub(crate) fn attach(h: *const Header, s: *const Slot, max_requests: u64) {
    HEADER.store(h.cast_mut(), Ordering::Relaxed);
    SLOT.store(s.cast_mut(), Ordering::Relaxed);
    MAX_REQUESTS.store(max_requests, Ordering::Relaxed);
    rt::set_state_bits(STATE_POOLED);
}

/// A request was taken (under the reactor lock). Counts it; the request that reaches
/// `max_requests` starts the drain.
pub(crate) fn on_taken() {
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
        begin_drain();
    }
}

/// A taken request ended. Returns true while draining: its connection is then closed after it.
pub(crate) fn on_ended() -> bool {
    if let Some(s) = slot() {
        if s.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            s.idle_since_ms
                .store(scoreboard::now_ms(), Ordering::Relaxed);
        }
    }
    rt::state() & STATE_DRAIN != 0
}

/// Starts draining this worker: no more connections are accepted, idle ones close, the others
/// after their current request, and accept returns -1 once none is held. Async-signal-safe
/// (atomics and eventfd writes): the worker's SIGQUIT handler calls it.
pub fn begin_drain() {
    if let Some(s) = slot() {
        s.state.store(scoreboard::DRAINING, Ordering::Release);
    }
    rt::set_state_bits(STATE_DRAIN);
    rt::wake_all();
}

/// True in a pool worker.
pub fn is_worker() -> bool {
    rt::state() & STATE_POOLED != 0
}
