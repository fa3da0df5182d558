//! The native face, the `fcgi_*` C API of include/fcgi.h (PHP's main/fastcgi.h mirror), driven
//! over real sockets through the C examples and test programs built against the library:
//!
//! - `raw_echo`: c-examples/echo with raw FastCGI records (the wire protocol, spec items);
//! - `runtime_behaviour`: limits and timeouts (FCGI_RUNTIME_*), roles, allowed clients, IPv6,
//!   shutdown, idle keep-alive connections;
//! - `nonblocking`: the non-blocking face (c-examples/evloop.c, `fcgi_loop_*`);
//! - `sapi_example`: c-examples/sapi.c, the SAPI porting guide's example, driven as php-cgi is;
//! - `php_behaviour`: what PHP's SAPIs expect of the layer (signals, FCGI_MPXS_CONNS, loadenv
//!   order, log texts), shown with an FPM-like worker;
//! - `pool`, `pool_observe` (with `pool_fixture`): the process pool (crash, recycle, reload;
//!   status page, slow log, request timeout).
//!
//! Run: `cargo test --release --test native` (tests/README.md maps tests to what they cover).

#[path = "../harness/mod.rs"]
mod harness;
mod nonblocking;
mod php_behaviour;
mod pool;
mod pool_fixture;
mod pool_observe;
mod raw_echo;
mod runtime_behaviour;
mod sapi_example;
