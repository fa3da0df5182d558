//! fcgi-runtime: an embeddable FastCGI application runtime.
//!
//! Three layers, each knowing only the one below it:
//! - [`protocol`]: sans-IO FastCGI (bytes in, events out; events in, bytes out);
//! - [`runtime`]: the mio reactor, listeners, limits, the hand-off to application threads;
//! - `ffi`: the C ABI (PHP `fastcgi.h` mirror), the only place with `extern "C"`.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod client;
pub mod ffi;
pub mod protocol;
pub mod runtime;
