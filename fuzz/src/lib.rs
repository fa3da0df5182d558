//! Shared pieces of the fuzz targets: a deterministic generator driven by the fuzz input, a
//! strict parser for the records the library writes, and the checked driver of the
//! connection [`fcgi_runtime_protocol::Engine`] used by the `engine` and `engine_records` targets.

pub mod driver;
pub mod nv;
pub mod rng;
pub mod sink;
pub mod structured;
pub mod walker;
pub mod wire;
