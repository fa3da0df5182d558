//! Hostile peers: what the runtime does when the other end misbehaves, over real sockets
//! against a real server process (tests/hostile/adv_app.c, a native-API program linked against
//! the project's library, started by `app`). Each test checks afterwards that the server still
//! answers a normal request and, where memory is the point, that its RSS stayed under a stated
//! bound (generous: they catch growth without bound, not a few pages).
//!
//! - `conns`: slowloris, many idle connections, idle keep-alive connections;
//! - `floods`: PARAMS and STDIN floods, abort storms on a multiplexed connection;
//! - `peers`: vanishing and half-closing peers;
//! - `emfile`: accept() hitting EMFILE;
//! - `security`: the limits and bounds of README's "Why these defaults; security" section.
//!
//! Run: `cargo test --release --test hostile` (tests/README.md maps tests to what they cover).

mod app;
mod conns;
mod emfile;
mod floods;
#[path = "../harness/mod.rs"]
mod harness;
mod peers;
mod security;
