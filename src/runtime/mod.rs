//! The engine around the protocol: a mio reactor per listening socket, connections, limits,
//! timers, and the hand-off of requests to application threads (leader/follower; see
//! docs/runtime-design.md).

pub mod acl;
pub mod addr;
pub mod config;
pub mod conn;
pub mod env;
pub mod framer;
pub mod io;
pub mod log;
pub mod mgmt;
pub mod reactor;
pub mod request;
pub mod ring;
pub mod server;
pub mod sockperm;
pub mod sys;

use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

static SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// Eventfds of the servers of this process, written to by [`terminate`] (async-signal-safe).
static WAKE_FDS: [AtomicI32; 64] = [const { AtomicI32::new(-1) }; 64];

pub(crate) fn register_wake_fd(fd: i32) {
    let absent = WAKE_FDS.iter().all(|f| f.load(Ordering::Relaxed) != fd);
    if absent {
        for f in &WAKE_FDS {
            if f.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// True once shutdown was requested: `accept` returns no more requests.
pub fn in_shutdown() -> bool {
    SHUTDOWN.load(Ordering::Acquire)
}

/// Sets or clears the shutdown flag without waking anyone (PHP's `fcgi_set_in_shutdown`).
pub fn set_in_shutdown(v: bool) {
    SHUTDOWN.store(v, Ordering::Release);
}

/// Requests shutdown and wakes every thread blocked in accept. Async-signal-safe: an atomic
/// store and `write(2)` on eventfds.
pub fn terminate() {
    SHUTDOWN.store(true, Ordering::Release);
    for f in &WAKE_FDS {
        let fd = f.load(Ordering::Relaxed);
        if fd >= 0 {
            sys::wake_raw(fd);
        }
    }
}

static ALLOWED: RwLock<Option<Arc<acl::AllowList>>> = RwLock::new(None);
static ALLOWED_SET: AtomicBool = AtomicBool::new(false);

/// Sets the allowed clients from a comma-separated list (IPv4, IPv6, CIDR). `None` allows
/// every client. Bad entries are logged; a list with no valid entry refuses every TCP peer.
pub fn set_allowed_clients(list: Option<&str>) {
    let parsed = list.map(|l| {
        let (a, bad) = acl::AllowList::parse(l);
        for b in bad {
            crate::fcgi_log!(Error, "Wrong IP address '{b}' in listen.allowed_clients");
        }
        Arc::new(a)
    });
    *ALLOWED.write() = parsed;
    ALLOWED_SET.store(true, Ordering::Release);
}

/// Applies FCGI_WEB_SERVER_ADDRS unless the application set the list itself.
pub(crate) fn load_web_server_addrs() {
    if ALLOWED_SET.load(Ordering::Acquire) {
        return;
    }
    if let Ok(v) = std::env::var("FCGI_WEB_SERVER_ADDRS") {
        set_allowed_clients(Some(&v));
    }
}

/// Whether a peer may connect under the allowed-clients list.
pub(crate) fn client_allowed(peer: &addr::Peer) -> bool {
    match ALLOWED.read().as_ref() {
        None => true,
        Some(a) => a.allows(peer),
    }
}
