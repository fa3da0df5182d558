//! The process id, cached across calls and forgotten in a forked child.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn forget_pid_after_fork() {
    PID.store(0, Ordering::Relaxed);
}

/// The process id without a system call per use (glibc no longer caches getpid, and the
/// request path asks several times per request whether state belongs to this process).
/// A fork handler clears the cache in the child.
pub fn pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid_after_fork)) };
    });
    let p = std::process::id();
    PID.store(p, Ordering::Relaxed);
    p
}
