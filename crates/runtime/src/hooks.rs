//! What a process plugs into the request path, the runtime not knowing what for.
//!
//! The pool's worker side is the one user today (`pool/hooks.rs`): it counts requests, writes
//! the scoreboard and answers the status page. The runtime defines the calls and their moments;
//! it knows nothing of scoreboards or of the status page's formats.
//!
//! The accept path checks `STATE_HOOKED` in the run-state load it does anyway, so a process
//! without hooks pays nothing; a taken request remembers whether it was hooked, and only a
//! hooked request calls [`RequestHooks::begin`] and [`RequestHooks::ended`].

use fcgi_runtime_protocol::ParamStore;
use std::os::fd::RawFd;
use std::sync::OnceLock;

/// The calls a process's hooks receive, in this order for each request: `taken`, `begin`,
/// `ended`. Called from application threads, several at once; `taken` under the reactor's
/// lock, so it must be short and must not call back into the runtime.
pub trait RequestHooks: Sync {
    /// A request was handed to an application thread.
    fn taken(&self);
    /// The request's params are known. Returns a token handed back to `ended` and, when the
    /// process answers this request itself, that answer's STDOUT (the application never sees
    /// the request then).
    fn begin(&self, params: &ParamStore, listen_fd: RawFd) -> Begin;
    /// The request `begin` returned `token` for has ended. `head` is the start of its STDOUT
    /// (the CGI header block, at most [`HEAD_BYTES`]) when `begin` asked for it, else empty.
    fn ended(&self, token: u8, head: &[u8]);
    /// A connection was accepted (not called for a relayed connection coming back).
    fn connection_accepted(&self) {}
    /// The process's open connections changed by `delta`.
    fn connections_open(&self, _delta: i32) {}
    /// The runtime refused a request with FCGI_OVERLOADED.
    fn refused_overloaded(&self) {}
}

/// Bytes of a response's start kept for [`RequestHooks::ended`].
pub const HEAD_BYTES: usize = 1024;

/// Calls `f` with the hooks when the process has some (one atomic load when it has none).
#[inline]
pub(crate) fn with(f: impl FnOnce(&dyn RequestHooks)) {
    if super::state() & super::STATE_HOOKED != 0 {
        if let Some(h) = get() {
            f(h);
        }
    }
}

/// The start of a response (its CGI header block), kept for the hooks when they ask: copied
/// from STDOUT writes until the blank line that ends the header block, or [`HEAD_BYTES`].
pub(crate) struct Head {
    on: bool,
    len: usize,
    buf: [u8; HEAD_BYTES],
}

impl Default for Head {
    fn default() -> Self {
        Head {
            on: false,
            len: 0,
            buf: [0; HEAD_BYTES],
        }
    }
}

impl Head {
    /// A new request: keep its head when `on`.
    #[inline]
    pub(crate) fn reset(&mut self, on: bool) {
        self.on = on;
        self.len = 0;
    }

    /// STDOUT bytes written by the application.
    #[inline]
    pub(crate) fn saw(&mut self, data: &[u8]) {
        if self.on {
            self.keep(data);
        }
    }

    fn keep(&mut self, data: &[u8]) {
        let n = data.len().min(HEAD_BYTES - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&data[..n]);
        self.len += n;
        let kept = &self.buf[..self.len];
        let ended =
            kept.windows(2).any(|w| w == b"\n\n") || kept.windows(4).any(|w| w == b"\r\n\r\n");
        if ended || self.len == HEAD_BYTES {
            self.on = false;
        }
    }

    /// What was kept.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// What [`RequestHooks::begin`] decided.
pub struct Begin {
    /// Handed back to [`RequestHooks::ended`].
    pub token: u8,
    /// The answer's STDOUT when the hooks answer the request themselves.
    pub answer: Option<Vec<u8>>,
    /// Keep the response's head for `ended`.
    pub capture_head: bool,
}

/// The token of a request no hook has seen.
pub const NO_TOKEN: u8 = u8::MAX;

static HOOKS: OnceLock<&'static dyn RequestHooks> = OnceLock::new();

/// Installs this process's hooks (once: a later call is ignored and returns false). Requests
/// taken from then on call them.
pub fn install(hooks: &'static dyn RequestHooks) -> bool {
    let first = HOOKS.set(hooks).is_ok();
    if first {
        super::set_state_bits(super::STATE_HOOKED);
    }
    first
}

/// The installed hooks.
#[inline]
pub(crate) fn get() -> Option<&'static dyn RequestHooks> {
    HOOKS.get().copied()
}
