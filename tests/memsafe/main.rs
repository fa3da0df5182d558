//! Memory safety at the C boundary (`make memsafe` runs this binary alone): the C examples and
//! the libfcgi-API test programs, built by `programs`, run under valgrind memcheck (`memcheck`)
//! and AddressSanitizer + UBSan (`asan`); no descriptor leaks across 10,000 requests
//! (`fd_leak`); every export called with NULL and invalid arguments (`ffi_args`).
//!
//! Run: `cargo test --release --test memsafe` (tests/README.md maps tests to what they cover).

mod asan;
mod fd_leak;
mod ffi_args;
#[path = "../harness/mod.rs"]
mod harness;
mod memcheck;
mod programs;
