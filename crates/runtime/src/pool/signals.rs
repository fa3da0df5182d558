//! Signals of the pool. The parent turns every signal it handles into one byte on a self-pipe
//! read by its poll loop; a worker's SIGQUIT starts its drain and SIGUSR1 asks it to reopen its
//! log files. Handlers only store atomics and write(2): async-signal-safe.

use crate::sys::{self, signal};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// The signals the parent handles.
pub const PARENT_SIGNALS: [libc::c_int; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR2,
    libc::SIGUSR1,
    libc::SIGCHLD,
];

static PIPE_W: AtomicI32 = AtomicI32::new(-1);
/// SIGUSR1 seen by this process (the slow log reopens at its next line).
static REOPEN: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_parent_signal(sig: libc::c_int) {
    // errno is saved and restored around write(2) (async-signal-safe, one byte).
    let e = sys::errno();
    let fd = PIPE_W.load(Ordering::Relaxed);
    if fd >= 0 {
        let _ = sys::write(fd, &[sig as u8]);
    }
    sys::set_errno(e);
}

extern "C" fn on_worker_quit(_sig: libc::c_int) {
    super::worker::begin_drain();
}

extern "C" fn on_worker_reopen(_sig: libc::c_int) {
    REOPEN.fetch_add(1, Ordering::Relaxed);
}

/// The parent saw SIGUSR1 (from its self-pipe).
pub fn count_reopen() {
    REOPEN.fetch_add(1, Ordering::Relaxed);
}

/// How many SIGUSR1 this process received (a worker's handler, or the parent's loop).
pub fn reopen_requests() -> u64 {
    REOPEN.load(Ordering::Relaxed)
}

/// The dispositions the parent replaced, restored in workers and when the pool stops.
pub struct Saved(Vec<(libc::c_int, libc::sigaction)>);

/// Sets the disposition of `sig` to one of this module's handlers, or the default (`None`);
/// returns the one it replaced.
fn set(
    sig: libc::c_int,
    handler: Option<extern "C" fn(libc::c_int)>,
    flags: libc::c_int,
) -> io::Result<libc::sigaction> {
    let handler = handler.map_or(libc::SIG_DFL, |h| h as libc::sighandler_t);
    // SAFETY: SIG_DFL, or a handler of this module, each async-signal-safe: they only store
    // atomics and write(2) (to the self-pipe, or to eventfds through `begin_drain`).
    unsafe { signal::set_action(sig, handler, flags) }
}

/// Installs the parent's handlers, writing to `pipe_w` (non-blocking).
pub fn install_parent(pipe_w: RawFd) -> io::Result<Saved> {
    PIPE_W.store(pipe_w, Ordering::Relaxed);
    let mut saved = Vec::new();
    for sig in PARENT_SIGNALS {
        let flags = libc::SA_RESTART
            | if sig == libc::SIGCHLD {
                libc::SA_NOCLDSTOP
            } else {
                0
            };
        match set(sig, Some(on_parent_signal), flags) {
            Ok(old) => saved.push((sig, old)),
            Err(e) => {
                restore(&Saved(saved));
                return Err(e);
            }
        }
    }
    Ok(Saved(saved))
}

/// Puts back what `install_parent` replaced.
pub fn restore(saved: &Saved) {
    for (sig, old) in &saved.0 {
        // SAFETY: `old` is the disposition sigaction returned when `install_parent` replaced
        // it (`Saved` is only built there).
        let _ = unsafe { signal::restore_action(*sig, old) };
    }
    PIPE_W.store(-1, Ordering::Relaxed);
}

/// In a new worker: the application's dispositions back, then SIGQUIT drains and SIGUSR1
/// reopens logs; the native API's own handlers (SIGTERM: shutdown; SIGPIPE ignored) where
/// the application left the default.
pub fn install_worker(saved: &Saved) {
    restore(saved);
    let _ = set(libc::SIGQUIT, Some(on_worker_quit), 0);
    let _ = set(libc::SIGUSR1, Some(on_worker_reopen), libc::SA_RESTART);
    crate::signals::install();
}

/// In a program exec'd by fcgi-spawn whose runtime attached to the scoreboard: SIGQUIT
/// drains and SIGUSR1 reopens the slow log, as in a forked worker (they replace what the
/// libfcgi face installed for them: in a pool these signals are the pool's).
pub fn install_exec_worker() {
    let _ = set(libc::SIGQUIT, Some(on_worker_quit), 0);
    let _ = set(libc::SIGUSR1, Some(on_worker_reopen), libc::SA_RESTART);
}

/// In a forked worker about to exec a program: every signal back to its default disposition
/// and none blocked, as a program started by a shell would find them.
pub fn reset_for_exec() {
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let _ = set(sig, None, 0);
    }
    signal::set_mask(&signal::empty_set());
}

/// Blocks every signal; returns the previous mask (to restore after a fork).
pub fn block_all() -> libc::sigset_t {
    signal::block_all()
}

/// Restores a mask from `block_all`.
pub fn set_mask(mask: &libc::sigset_t) {
    signal::set_mask(mask);
}
