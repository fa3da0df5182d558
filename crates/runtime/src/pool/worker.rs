//! This process's place in the pool when it is a worker: its slot of the scoreboard and the
//! scoreboard's header, set once when it attaches (`hooks::attach`), and the drain trigger.
//! The request hooks (`hooks.rs`) and the signal handlers (`signals.rs`) both read it.

use super::scoreboard::{self, Header, Slot};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

static HEADER: AtomicPtr<Header> = AtomicPtr::new(ptr::null_mut());
static SLOT: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());

/// Records this process's header and slot (both in the scoreboard mapping, which a worker
/// never unmaps).
pub(super) fn set_place(h: *const Header, s: *const Slot) {
    HEADER.store(h.cast_mut(), Ordering::Relaxed);
    SLOT.store(s.cast_mut(), Ordering::Relaxed);
}

/// This worker's slot (`None`: not a pool worker).
pub(super) fn slot() -> Option<&'static Slot> {
    // SAFETY: set by `set_place` to a slot of the scoreboard mapping, which a worker never
    // unmaps.
    unsafe { SLOT.load(Ordering::Relaxed).as_ref() }
}

/// The scoreboard's header (`None`: not a pool worker).
pub(super) fn header() -> Option<&'static Header> {
    // SAFETY: as for `slot`.
    unsafe { HEADER.load(Ordering::Relaxed).as_ref() }
}

/// Starts draining this worker: its slot says so, and the runtime drains (`crate::drain`: no
/// more connections, idle ones close, the others after their current request).
/// Async-signal-safe (atomics and eventfd writes): the worker's SIGQUIT handler calls it.
pub fn begin_drain() {
    if let Some(s) = slot() {
        s.state.store(scoreboard::DRAINING, Ordering::Release);
    }
    crate::drain();
}
