//! The signal handlers PHP's layer installs (and only where it installs them: `fcgi_init` in
//! FastCGI mode and `fcgi_listen`). SIGTERM and SIGUSR1 request shutdown and wake blocked
//! accepts; SIGPIPE, if left at its default, is ignored (sockets use MSG_NOSIGNAL anyway).

use super::sys::signal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_shutdown_signal(_sig: libc::c_int) {
    // Only atomics and write(2): async-signal-safe.
    SIGNALLED.store(true, Ordering::Relaxed);
    super::terminate();
}

/// True once SIGTERM or SIGUSR1 requested the shutdown (libfcgi's accept then fails with
/// -EINTR, where FCGX_ShutdownPending makes it fail with -9999).
pub fn signalled() -> bool {
    SIGNALLED.load(Ordering::Relaxed)
}

extern "C" fn on_sigpipe(_sig: libc::c_int) {}

fn install_if_default(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    match signal::action(sig) {
        Ok(old) if old.sa_sigaction == libc::SIG_DFL => {}
        _ => return,
    }
    // No SA_RESTART, so a blocking call sees EINTR as with PHP.
    // SAFETY: `handler` is one of this module's: on_shutdown_signal only stores atomics and
    // writes to eventfds (`terminate`), on_sigpipe does nothing; both async-signal-safe.
    let _ = unsafe { signal::set_action(sig, handler as libc::sighandler_t, 0) };
}

/// Installs the handlers once per process.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        install_if_default(libc::SIGTERM, on_shutdown_signal);
        install_if_default(libc::SIGUSR1, on_shutdown_signal);
        install_if_default(libc::SIGPIPE, on_sigpipe);
    });
}
