//! The FastCGI protocol, sans-IO: bytes in, events out; events in, bytes out.
//!
//! No sockets, threads or clocks live here, and nothing is allocated with a size a peer
//! declared before that size has been checked against a limit. The runtime feeds received
//! bytes to an [`Engine`] per connection and gets callbacks on a [`Sink`]; management answers
//! (GET_VALUES_RESULT, UNKNOWN_TYPE) and refusals (UNKNOWN_ROLE, CANT_MPX_CONN, OVERLOADED) are
//! appended to an output buffer by the engine itself.

pub mod engine;
pub mod framer;
pub mod nvpair;
pub mod params;
pub mod record;
pub mod relay;

pub use engine::{Admission, Engine, EngineConfig, ProtocolError, Sink};
pub use params::ParamStore;
pub use record::{ProtocolStatus, Role};
