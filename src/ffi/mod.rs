//! The C ABI: the only place with `extern "C"`. Every exported function checks its pointers
//! and runs inside [`panic::guard`], so no panic crosses into C.

pub(crate) mod client_ip;
pub mod libfcgi;
pub mod native;
pub mod native_embed;
pub mod native_loop;
pub mod native_types;
pub mod panic;
pub mod pool;
