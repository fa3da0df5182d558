//! The signal handlers PHP's layer installs (and only where it installs them: `fcgi_init` in
//! FastCGI mode and `fcgi_listen`). SIGTERM and SIGUSR1 request shutdown and wake blocked
//! accepts; SIGPIPE, if left at its default, is ignored (sockets use MSG_NOSIGNAL anyway).

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
    // SAFETY: sigaction with zeroed structs and a valid handler address; no SA_RESTART, so a
    // blocking call sees EINTR as with PHP.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
            || old.sa_sigaction != libc::SIG_DFL
        {
            return;
        }
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler as usize;
        libc::sigemptyset(&mut act.sa_mask);
        act.sa_flags = 0;
        libc::sigaction(sig, &act, std::ptr::null_mut());
    }
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
