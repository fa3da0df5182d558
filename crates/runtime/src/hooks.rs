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
    /// The request `begin` returned `token` for has ended.
    fn ended(&self, token: u8);
}

/// What [`RequestHooks::begin`] decided.
pub struct Begin {
    /// Handed back to [`RequestHooks::ended`].
    pub token: u8,
    /// The answer's STDOUT when the hooks answer the request themselves.
    pub answer: Option<Vec<u8>>,
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
