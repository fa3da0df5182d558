//! Idle connections a busy single-threaded process lets go, on request (see
//! docs/runtime-design.md, "A request that would wait behind a busy process is relayed"; the
//! relay, relay.rs, is the default mechanism and races with nothing).
//!
//! A process with one application thread (PHP's model, any pre-fork pool of single-threaded
//! workers) serves one request at a time. The web server keeps connections alive to it and
//! picks any idle one for its next request; a connection the process holds while its thread
//! is busy parks that request behind the running one, while a sibling process sharing the
//! listening socket may sit idle. So when the only thread takes a request, the process closes
//! the other connections it holds that are idle: nothing received that is not answered,
//! nothing to send, no byte unread. The web server drops them from its cache and opens new
//! connections, which a process with a waiting thread accepts.
//!
//! The close races with a web server that picks the connection at that very moment: nginx
//! then sees the connection close before any answer and sends the request again on another
//! connection when it may (it counts no failure for a cached connection; GET and HEAD always,
//! POST only with `fastcgi_next_upstream non_idempotent`). Under steady load the race is not
//! rare: a worker takes a request exactly when the web server is placing the next ones, on the
//! connections the worker just freed. PHP-FPM relinked, 4 workers behind nginx keep-alive under
//! load: dozens of "upstream prematurely closed connection" per second and an occasional 502
//! (tests/php.rs, fpm_reload_under_load_fails_no_request). So shedding is off by default, and
//! the relay does the job without closing anything.
//!
//! `FCGI_RUNTIME_SHED_IDLE`: `0` (the default) never sheds; `1` sheds; `auto` sheds when the
//! listening socket may be shared with sibling processes (this process did not create it:
//! inherited from a spawner or from a parent that forked). A process with more than one
//! application thread, or with an event loop, never sheds.

use super::reactor::Reactor;
use super::sys;
use super::worker::Worker;
use parking_lot::Mutex;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

/// The listening sockets this library created, with the process that created each: a
/// listener absent here, or created by another process (a parent before `fork`), may have
/// siblings accepting on it.
static OWN_LISTENERS: Mutex<Vec<(RawFd, u32)>> = Mutex::new(Vec::new());

/// Records that this process created listening socket `fd`.
pub fn note_own_listener(fd: RawFd) {
    let pid = sys::pid();
    let mut v = OWN_LISTENERS.lock();
    v.retain(|&(f, _)| f != fd);
    v.push((fd, pid));
}

/// True when processes other than this one may accept on `fd`.
pub(super) fn may_be_shared(fd: RawFd) -> bool {
    let pid = sys::pid();
    !OWN_LISTENERS
        .lock()
        .iter()
        .any(|&(f, p)| f == fd && p == pid)
}

/// Whether a server sheds idle connections when its only thread is busy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shed {
    Never,
    WhenSingleThreaded,
}

impl Shed {
    /// The mode for listening socket `fd`, from `FCGI_RUNTIME_SHED_IDLE`.
    pub fn for_listener(fd: RawFd) -> Shed {
        let v = std::env::var("FCGI_RUNTIME_SHED_IDLE").unwrap_or_default();
        let on = match v.trim() {
            "1" | "on" | "yes" => true,
            "" | "0" | "off" | "no" => false,
            "auto" => may_be_shared(fd),
            other => {
                crate::fcgi_log!(
                    Warning,
                    "FCGI_RUNTIME_SHED_IDLE={other} is not one of 0, 1, auto; shedding stays off"
                );
                false
            }
        };
        if on {
            Shed::WhenSingleThreaded
        } else {
            Shed::Never
        }
    }
}

impl Reactor {
    /// Worker `w` just took a request on connection `taken`: if it is the process's only
    /// application thread, the other idle connections it holds close.
    pub(super) fn shed_idle(&self, w: &Worker, taken: u32) {
        if self.shed == Shed::Never
            || w.is_loop
            || w.conns.load(Ordering::Relaxed) <= 1
            || self.worker_count() != 1
            || self.has_loops()
            || self.draining.load(Ordering::Acquire)
        {
            return;
        }
        let mut shed = 0usize;
        for idx in 0..self.conns.high() {
            if idx == taken {
                continue;
            }
            let Some(mut g) = self.conns.lock_slot(idx) else {
                continue;
            };
            let Some(conn) = g.as_ref() else {
                continue;
            };
            let idle = conn.reqs.is_empty()
                && !conn.fresh
                && !conn.lingering
                && conn.pending_in.is_empty()
                && conn.io.pending_len() == 0
                && !sys::has_unread_input(conn.io.fd());
            if idle {
                self.close_conn(&mut g, idx);
                shed += 1;
            }
        }
        if shed > 0 {
            crate::fcgi_log!(
                Debug,
                "the only application thread is busy: closed {shed} idle connection(s) so the \
                 web server sends its next requests where a thread waits"
            );
        }
    }
}
