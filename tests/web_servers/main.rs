//! Real web servers in front of the library (Debian 12's nginx, HAProxy, lighttpd, systemd
//! socket activation), with native-API and libfcgi-API programs behind them:
//!
//! - `nginx`: the C examples behind nginx (keep-conn, uploads, streaming, concurrency);
//! - `nginx_matrix`: both faces through the same nginx scenarios (uploads, buffering, client
//!   aborts, a thousand connections over a small pool);
//! - `haproxy`: multiplexing, GET_VALUES, keep-conn through HAProxy's fcgi-app;
//! - `lighttpd`: the Authorizer role, TCP and Unix sockets, lighttpd spawning the application;
//! - `deploy_docs`: every configuration of docs/deploy.md run as written;
//! - `multi_host`: three hosts (127.0.0.2-4, an fcgi-spawn each) behind HAProxy and nginx under
//!   load: a rolling reload, a drained host and a killed host.
//!
//! Run: `cargo test --release --test web_servers` (tests/README.md maps tests to what they cover).

mod deploy_docs;
mod haproxy;
#[path = "../harness/mod.rs"]
mod harness;
mod lighttpd;
mod multi_host;
mod nginx;
mod nginx_matrix;
