//! The libfcgi face: the drop-in `libfcgi.so.0` (`FCGX_*`, `FCGI_*`, `OS_*`) with unmodified
//! programs and libfcgi-API programs on it:
//!
//! - `abi`: exports, struct layouts, copy relocations, the installed headers and pkg-config;
//! - `compare`: one program run on Debian's libfcgi and on ours, answers compared;
//! - `examples`: libfcgi's classic examples (c-examples/lf-*.c, C++ iostreams);
//! - `stdio`: the `FCGI_*` stdio layer (fcgi_stdio.h);
//! - `lifecycle`: init, accept, finish, free and shutdown of `FCGX_Request`s;
//! - `binaries`, `cgi_fcgi`, `perl`: Debian's fcgiwrap and spawn-fcgi, cgi-fcgi and Perl's FCGI
//!   module, unmodified, on the project's library (`FCGI_TEST_LIBFCGI=debian` runs them on
//!   Debian's instead, the reference run).
//!
//! Run: `cargo test --release --test libfcgi` (tests/README.md maps tests to what they cover).

mod abi;
mod binaries;
mod cgi_fcgi;
mod compare;
mod examples;
#[path = "../harness/mod.rs"]
mod harness;
mod lifecycle;
mod perl;
mod stdio;
