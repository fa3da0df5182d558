//! The command-line tools and the client library they share:
//!
//! - `fcgi_bench`, `fcgi_spawn`: the tools' behaviour and options;
//! - `fcgi_spawn_ops`: recycling spread, systemd notify, log levels and the journal, workers' output;
//! - `fcgi_spawn_conf`: fcgi-spawn's pool files (PHP-FPM's format) under one master;
//! - `raw_client`: the blocking client library against fake applications;
//! - `tools_vs_php_framing`: fcgi-client and fcgi-bench against PHP-style framing;
//! - `bench_splice`: the benchmark suite's report splicing (bench/suite/splice.rs);
//! - `man_pages`: `make man`'s pages, rendered, naming every option of each tool's `--help`.
//!
//! Run: `cargo test --release --test tools` (tests/README.md maps tests to what they cover).

mod bench_splice;
mod fcgi_bench;
mod fcgi_spawn;
mod fcgi_spawn_conf;
mod fcgi_spawn_observe;
mod fcgi_spawn_ops;
#[path = "../harness/mod.rs"]
mod harness;
mod man_pages;
mod raw_client;
mod spawn_common;
mod tools_vs_php_framing;
