//! A FastCGI application runtime: serve FastCGI requests from Rust, behind nginx, Apache,
//! HAProxy, lighttpd or Caddy.
//!
//! The Rust API is [`api`]: a blocking [`Server`] whose [`Request`]s are `std::io::Read` (the
//! body) and `std::io::Write` (the response), and, with the cargo feature `tokio`, an async
//! `AsyncServer` on the same engine. Start with the `hello` example:
//! `cargo run --release -p fcgi-runtime --example hello -- 127.0.0.1:9555`.
//!
//! ```no_run
//! use fcgi_runtime::Server;
//! use std::io::Write;
//!
//! fn main() -> std::io::Result<()> {
//!     Server::bind("127.0.0.1:9000")?.threads(4).serve(|req| {
//!         let uri = req.param_str("REQUEST_URI").unwrap_or("/").to_owned();
//!         write!(req, "Content-Type: text/plain\r\n\r\nHello from {uri}\n")
//!     })
//! }
//! ```
//!
//! Underneath is the engine the project's C library (`libfcgi.so`) runs on: a reactor per
//! listening socket whose epoll every waiting application thread waits in, connections owned
//! one by one, limits, timers, aborts and back-pressure (docs/runtime-design.md), the pre-fork
//! pool, and the system-call fence (`sys`). The modules the C library uses are public but
//! hidden from this documentation: they are shaped for C and are not a stable Rust API.

// The engine's own rooms.
mod accept;
mod conn;
mod conns;
mod deadlines;
mod listener;
mod pump;
mod reactor;
mod ready;
mod relay;
mod ring;
mod shed;
mod standby;
mod timers;
mod worker;

// The safe Rust API (blocking, and async for tokio behind the `tokio` feature).
pub mod api;
#[cfg(feature = "tokio")]
pub use api::{AsyncRequest, AsyncServer};
pub use api::{Request, Role, Server};

// What the layers above use: the C ABI crate (fcgi-runtime-capi, the `fcgi_*`, `FCGX_*` and
// `OS_*` faces) and the tools. Public for them, hidden from the documentation: these are the
// C faces' building blocks, shaped like C (sentinel returns, record types as bytes), and change
// with them; they are not this crate's Rust API.
#[doc(hidden)]
pub mod acl;
#[doc(hidden)]
pub mod addr;
#[doc(hidden)]
pub mod config;
#[doc(hidden)]
pub mod env;
#[doc(hidden)]
pub mod evloop;
#[doc(hidden)]
pub mod hooks;
#[doc(hidden)]
pub mod io;
#[doc(hidden)]
pub mod log;
#[doc(hidden)]
pub mod mgmt;
#[doc(hidden)]
pub mod pool;
#[doc(hidden)]
pub mod request;
#[doc(hidden)]
pub mod server;
#[doc(hidden)]
pub mod signals;
#[doc(hidden)]
pub mod sockperm;
#[doc(hidden)]
pub mod sys;
#[doc(hidden)]
pub mod waiter;

use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::Arc;

/// Process-wide run state, one atomic so that the accept path pays a single load for all of
/// it: [`STATE_SHUTDOWN`], [`STATE_DRAIN`] (a pool worker stops accepting connections and
/// ends once it holds none), [`STATE_HOOKED`] (request hooks are installed, [`hooks`]: a pool
/// worker's).
static STATE: AtomicU8 = AtomicU8::new(0);
pub(crate) const STATE_SHUTDOWN: u8 = 1;
pub(crate) const STATE_DRAIN: u8 = 2;
pub(crate) const STATE_HOOKED: u8 = 4;

/// The run state bits (one acquire load).
#[inline]
pub(crate) fn state() -> u8 {
    STATE.load(Ordering::Acquire)
}

/// Sets run state bits (async-signal-safe).
pub(crate) fn set_state_bits(bits: u8) {
    STATE.fetch_or(bits, Ordering::AcqRel);
}

static WAKE_FDS: [AtomicI32; 64] = [const { AtomicI32::new(-1) }; 64];

pub fn register_wake_fd(fd: i32) {
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
    state() & STATE_SHUTDOWN != 0
}

/// Sets or clears the shutdown flag without waking anyone (PHP's `fcgi_set_in_shutdown`).
pub fn set_in_shutdown(v: bool) {
    if v {
        STATE.fetch_or(STATE_SHUTDOWN, Ordering::AcqRel);
    } else {
        STATE.fetch_and(!STATE_SHUTDOWN, Ordering::AcqRel);
    }
}

/// Requests shutdown and wakes every thread blocked in accept. Async-signal-safe: an atomic
/// store and `write(2)` on eventfds.
/// Starts draining this process: no more connections are accepted, idle ones close, the others
/// after their current request, and accept returns -1 once none is held. Async-signal-safe
/// (atomics and eventfd writes).
pub fn drain() {
    set_state_bits(STATE_DRAIN);
    wake_all();
}

/// True once [`drain`] was called.
pub fn draining() -> bool {
    state() & STATE_DRAIN != 0
}

pub fn terminate() {
    set_state_bits(STATE_SHUTDOWN);
    wake_all();
}

/// Wakes the poll of every server of this process (async-signal-safe: `write(2)` on eventfds).
pub(crate) fn wake_all() {
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
/// every client. Bad entries are logged, as is a list with no valid entry (it refuses every
/// peer), with PHP's texts and level.
pub fn set_allowed_clients(list: Option<&str>) {
    let parsed = list.map(|l| {
        let (a, bad) = acl::AllowList::parse(l);
        for b in bad {
            crate::fcgi_log!(Error, "Wrong IP address '{b}' in listen.allowed_clients");
        }
        if a.is_empty() {
            crate::fcgi_log!(Error, "There are no allowed addresses");
        }
        Arc::new(a)
    });
    *ALLOWED.write() = parsed;
    ALLOWED_SET.store(true, Ordering::Release);
}

/// Applies FCGI_WEB_SERVER_ADDRS unless the application set the list itself.
pub fn load_web_server_addrs() {
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
