//! A safe Rust API over the runtime: serve FastCGI requests from Rust without sentinel
//! integers, raw descriptors or `unsafe`.
//!
//! Two faces share one runtime (the same connections, limits, timers and protocol handling as
//! the C API):
//!
//! - **blocking**: [`Server`] hands out [`Request`]s, each a `std::io::Read` (its body, the
//!   FastCGI STDIN stream) and a `std::io::Write` (its response, STDOUT). [`Server::serve`]
//!   runs a handler on a number of threads; [`Server::accept`] is the loop to write yourself.
//! - **async**, behind the cargo feature `tokio`: `AsyncServer` hands out `AsyncRequest`s,
//!   each a `tokio::io::AsyncRead` and `AsyncWrite`, on the runtime's non-blocking core (the
//!   event loop of the C API's `fcgi_loop_*`, watched through `tokio::io::unix::AsyncFd`).
//!
//! A request also gives its parameters ([`Request::param`], [`Request::param_str`],
//! [`Request::params`]), its [`Role`], the Filter role's DATA stream ([`Request::data`]), a
//! STDERR writer ([`Request::stderr`]), whether the web server aborted it
//! ([`Request::is_aborted`]) and the application status its END_REQUEST carries
//! ([`Request::set_app_status`]). Errors are `std::io::Error`s: an aborted request's reads and
//! writes fail with [`std::io::ErrorKind::ConnectionAborted`], a broken connection's with
//! [`std::io::ErrorKind::BrokenPipe`].
//!
//! # Example
//!
//! ```no_run
//! use fcgi_runtime::Server;
//! use std::io::Write;
//!
//! fn main() -> std::io::Result<()> {
//!     Server::bind("127.0.0.1:9000")?.threads(4).serve(|req| {
//!         let uri = req.param_str("REQUEST_URI").unwrap_or("/").to_owned();
//!         req.write_all(b"Content-Type: text/plain\r\n\r\n")?;
//!         writeln!(req, "Hello from {uri}")
//!     })
//! }
//! ```
//!
//! # Process-wide settings
//!
//! The runtime serves a listening socket once per process, and its limits
//! ([`set_limit`]) and shutdown flag ([`shutdown`]) are the process's, shared by every server
//! (and by the C API in the same process). A listening socket that has been served stays open
//! until the process exits, even after its [`Server`] is dropped: the runtime keeps serving
//! the connections it holds.

#![deny(missing_docs)]

mod request;
mod server;
#[cfg(feature = "tokio")]
mod tokio;

pub use self::request::{Data, Params, Request, Role, Stderr};
pub use self::server::Server;
#[cfg(feature = "tokio")]
pub use self::tokio::{AsyncData, AsyncRequest, AsyncServer, AsyncStderr};
pub use super::config::Limit;

use std::io;

/// Sets one of the runtime's limits (see [`Limit`]; the README's "Limits" table gives their
/// defaults). Limits are process-wide: they apply to every server of the process from the
/// next request on. An out-of-range value is an [`io::ErrorKind::InvalidInput`] error.
///
/// ```
/// use fcgi_runtime::api::{set_limit, Limit};
///
/// // Requests in flight in the process: past this, FCGI_OVERLOADED.
/// set_limit(Limit::MaxReqs, 4096)?;
/// assert!(set_limit(Limit::MpxsConns, 7).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_limit(limit: Limit, value: u64) -> io::Result<()> {
    super::config::set(limit, value).map_err(|_| {
        let (lo, hi) = limit.range();
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{limit:?} must be between {lo} and {hi}, not {value}"),
        )
    })
}

/// The current value of one of the runtime's limits.
///
/// ```
/// use fcgi_runtime::api::{limit, Limit};
///
/// assert!(limit(Limit::StdinBufferBytes) >= 512);
/// ```
pub fn limit(limit: Limit) -> u64 {
    super::config::get(limit)
}

/// Asks every server of the process to stop: [`Server::serve`] returns once its threads have
/// finished their current requests, [`Server::accept`] returns `Ok(None)`, and so does the
/// async server's `accept`. Process-wide and async-signal-safe (an atomic store and a write to
/// eventfds), so a signal handler may call it.
pub fn shutdown() {
    super::terminate();
}

/// True once [`shutdown`] was called (or the C API's `fcgi_terminate`).
pub fn is_shutdown() -> bool {
    super::in_shutdown()
}

/// The error of a read or write on a request that cannot go on: aborted by the web server,
/// or its connection is gone.
pub(crate) fn stream_error(aborted: bool) -> io::Error {
    if aborted {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the web server aborted the FastCGI request",
        )
    } else {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the FastCGI request's connection failed or its input was cut short",
        )
    }
}

/// Maps the runtime's write error.
pub(crate) fn send_error(e: super::io::SendError) -> io::Error {
    stream_error(matches!(e, super::io::SendError::Aborted))
}
