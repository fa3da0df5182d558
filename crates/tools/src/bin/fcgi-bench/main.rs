//! `fcgi-bench`: a FastCGI load generator that talks to an application directly (no web server
//! in the way). See `fcgi-bench -h`.
//!
//! One OS thread per connection does blocking I/O with a read timeout and keeps up to DEPTH
//! request ids in flight, writing the next request for an id as soon as its END_REQUEST arrives.
//! Requests are encoded once per id; responses are parsed from one reusable buffer per
//! connection. Requests whose encoding is large are written by a helper thread per connection so
//! that an application answering before it consumed its input cannot deadlock the exchange.
//!
//! Exit status: 0 no errors, 1 any request failed verification or any connection errored,
//! 2 usage error.

mod cli;
#[path = "../common/cli.rs"]
mod common_cli;
mod encode;
mod matcher;
mod monitor;
mod report;
mod soak;
mod soak_conn;
mod soak_report;
mod soak_work;
mod stats;
mod worker;

use clap::CommandFactory;
use cli::{Cli, Options, Sub};
use encode::{build_params, encode, Encoded, INLINE_LIMIT};
use report::{report_json, report_text};
use stats::{Kind, Stats};
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::{run_keep, run_no_keep, Shared};

/// The progress line on stderr, every 500 ms once the run lasted a second.
fn progress(sh: &Shared, t0: Instant, finished: &AtomicBool) {
    let mut printed = false;
    let mut last = (t0, 0u64);
    let mut next = t0 + Duration::from_secs(1);
    while !finished.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if now < next {
            continue;
        }
        next = now + Duration::from_millis(500);
        let done = sh.done.load(Ordering::Relaxed);
        let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, done);
        eprint!(
            "\r[{:6.1} s] {done} requests, {rate:.0} req/s, {} errors   ",
            now.duration_since(t0).as_secs_f64(),
            sh.errors.load(Ordering::Relaxed)
        );
        printed = true;
    }
    if printed {
        eprint!("\r{:72}\r", "");
    }
}

/// Runs the benchmark; returns the merged statistics and the measured time.
fn run(o: &Options) -> (Stats, f64) {
    let params = build_params(o);
    let reqs: Vec<Arc<Encoded>> = std::iter::once(Arc::new(Encoded {
        head: Vec::new(),
        chunk: Vec::new(),
        nchunks: 0,
        tail: Vec::new(),
    }))
    .chain((1..=o.depth).map(|id| Arc::new(encode(o, &params, id))))
    .collect();
    let req_len = reqs[1].len();
    let threaded_writes =
        req_len > INLINE_LIMIT || (o.depth > 1 && req_len * u64::from(o.depth) > 64 * 1024);
    let t0 = Instant::now();
    let measure_start = t0 + Duration::from_secs_f64(o.warmup);
    let sh = Shared {
        o: o.clone(),
        reqs,
        threaded_writes,
        timeout: Duration::from_secs_f64(o.timeout),
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        measure_start,
        deadline: o
            .duration
            .map(|d| measure_start + Duration::from_secs_f64(d)),
        stdin_line: format!("\nSTDIN_LENGTH={}\n", o.body).into_bytes(),
    };
    let finished = AtomicBool::new(false);
    let show_progress = io::stderr().is_terminal();
    let mut total = Stats::new();
    let end = std::thread::scope(|s| {
        let sh = &sh;
        let p = show_progress.then(|| s.spawn(|| progress(sh, t0, &finished)));
        let workers: Vec<_> = (0..o.connections)
            .map(|_| {
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || match sh.o.keep {
                        true => run_keep(sh),
                        false => run_no_keep(sh),
                    })
            })
            .collect();
        for w in workers {
            match w.map(|h| h.join()) {
                Ok(Ok(st)) => total.merge(&st),
                _ => {
                    let mut st = Stats::new();
                    sh.error(&mut st, Kind::Io);
                    total.merge(&st);
                }
            }
        }
        let end = Instant::now();
        finished.store(true, Ordering::Relaxed);
        if let Some(p) = p {
            let _ = p.join();
        }
        end
    });
    let elapsed = end.saturating_duration_since(measure_start).as_secs_f64();
    (total, elapsed)
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Bench(Options),
    Soak(soak::SoakOptions),
    /// `--generate-man DIR`.
    Man(std::path::PathBuf),
}

/// Parses the command line (the program name first); `Err` carries the clap error, or the
/// message of a check of the tool's own, and whether it concerns `soak`.
fn parse_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<Command, (Result<clap::Error, String>, bool)> {
    let args: Vec<_> = args.into_iter().collect();
    let is_soak = args.get(1).is_some_and(|a| a == "soak");
    match common_cli::try_parse::<Cli>(args) {
        Ok(Cli {
            command: Some(Sub::Soak(a)),
            ..
        }) => soak::SoakOptions::from_args(a)
            .map(Command::Soak)
            .map_err(|e| (Err(e), true)),
        Ok(Cli { bench, .. }) if bench.generate_man.is_some() => {
            Ok(Command::Man(bench.generate_man.unwrap_or_default()))
        }
        Ok(Cli { bench, .. }) => Options::from_args(bench)
            .map(Command::Bench)
            .map_err(|e| (Err(e), false)),
        Err(e) => Err((Ok(e), is_soak)),
    }
}

fn main() -> ExitCode {
    let o = match parse_args(std::env::args_os()) {
        Ok(Command::Soak(o)) => return soak::main(&o),
        Ok(Command::Bench(o)) => o,
        Ok(Command::Man(dir)) => common_cli::generate_man("fcgi-bench", Cli::command(), &dir),
        Err((e, is_soak)) => {
            let mut cmd = Cli::command();
            let (prog, cmd) = match is_soak {
                true => (
                    "fcgi-bench soak",
                    cmd.find_subcommand_mut("soak").expect("soak"),
                ),
                false => ("fcgi-bench", &mut cmd),
            };
            match e {
                Ok(e) => common_cli::exit_on(prog, cmd, e),
                Err(msg) => common_cli::usage_error(prog, cmd, &msg),
            }
        }
    };
    let (st, secs) = run(&o);
    let out = if o.json {
        report_json(&o, &st, secs)
    } else {
        report_text(&o, &st, secs)
    };
    // A closed stdout (fcgi-bench | head) is not worth a panic.
    let _ = writeln!(io::stdout(), "{out}");
    ExitCode::from(u8::from(st.error_total() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Hist;

    /// What `args` ask for, or the error's message (with a clap error's kind first).
    fn parse(args: &[&str]) -> Result<Command, String> {
        let argv = std::iter::once("fcgi-bench").chain(args.iter().copied());
        parse_args(argv.map(Into::into)).map_err(|(e, _)| match e {
            Ok(e) => format!("{:?}: {}", e.kind(), common_cli::message(&e)),
            Err(msg) => msg,
        })
    }

    fn opts(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Command::Bench(o)) => o,
            Ok(Command::Man(dir)) => common_cli::generate_man("fcgi-bench", Cli::command(), &dir),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn soak_opts(args: &[&str]) -> soak::SoakOptions {
        match parse(args) {
            Ok(Command::Soak(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_options() {
        let o = opts(&["9000"]);
        assert_eq!((o.connections, o.depth, o.keep), (1, 1, true));
        assert!(!o.retry_reused);
        assert!(opts(&["--retry-reused", "9000"]).retry_reused);
        assert!(!o.strict);
        assert!(opts(&["--strict", "9000"]).strict);
        assert_eq!((o.duration, o.count), (Some(10.0), None));
        let o = opts(&[
            "-c", "8", "-m", "4", "-b", "2k", "-n", "100", "-p", "A=1", "--json", "/s", "/x?y=1",
        ]);
        assert_eq!((o.connections, o.depth, o.body), (8, 4, 2048));
        assert_eq!((o.duration, o.count), (None, Some(100)));
        let p = build_params(&o);
        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("REQUEST_METHOD"), Some("POST"));
        assert_eq!(get("CONTENT_LENGTH"), Some("2048"));
        assert_eq!(get("QUERY_STRING"), Some("y=1"));
        assert_eq!(get("SCRIPT_FILENAME"), Some("/var/www/html/x"));
        assert_eq!(get("A"), Some("1"));
        assert!(p.len() >= 22);
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["-c", "0", "1"],
            &["-m", "0", "1"],
            &["-m", "70000", "1"],
            &["--no-keep", "-m", "2", "1"],
            &["--warmup", "1", "-n", "5", "1"],
            &["-b", "1x", "1"],
            &["-p", "=v", "1"],
            &["-d", "-1", "1"],
            &["--bogus", "1"],
            &["1", "/", "extra"],
            &["soak"],
            &["soak", "--kinds", "bogus", "1"],
            &["soak", "-c", "0", "1"],
            &["soak", "-m", "1001", "1"],
            &["soak", "--max-upload", "2G", "1"],
            &[
                "soak",
                "--server-pid",
                "1",
                "--secs",
                "4",
                "--warmup",
                "4",
                "1",
            ],
            &["soak", "1", "2"],
        ] {
            let r = parse(bad);
            assert!(
                r.as_ref().is_err_and(|e| !e.starts_with("DisplayHelp")),
                "{bad:?}: {r:?}"
            );
        }
        for help in [
            &["-h"][..],
            &["--help"],
            &["1", "-h"],
            &["soak", "-h"],
            &["soak", "--help"],
        ] {
            let r = parse(help);
            assert!(
                r.as_ref().is_err_and(|e| e.starts_with("DisplayHelp")),
                "{help:?}: {r:?}"
            );
        }
    }

    #[test]
    fn soak_options() {
        let o = soak_opts(&["soak", "127.0.0.1:9000"]);
        assert_eq!(o.address, "127.0.0.1:9000");
        assert_eq!((o.secs, o.workers, o.depth), (60.0, 5, 8));
        assert_eq!(o.kinds, ["keep", "nokeep", "mux", "upload", "abort"]);
        assert_eq!(
            (o.max_upload, o.timeout, o.pid, o.json),
            (4 << 20, 30.0, None, false)
        );
        assert_eq!(o.bounds.warmup, 10.0);
        assert_eq!(
            (o.bounds.rss_growth_kib, o.bounds.rss_trend_kib),
            (8192, 2048)
        );
        assert_eq!(o.bounds.fd_growth, 64);
        let o = soak_opts(&[
            "soak",
            "--secs",
            "8",
            "--kinds",
            "idle,keep",
            "-c",
            "3",
            "-m",
            "4",
            "--max-upload",
            "1M",
            "--timeout",
            "20",
            "--server-pid",
            "42",
            "--rss-growth",
            "4M",
            "--rss-trend",
            "1M",
            "--fd-growth",
            "9",
            "--json",
            "/tmp/s",
        ]);
        assert_eq!(
            (o.address.as_str(), o.secs, o.workers, o.depth),
            ("/tmp/s", 8.0, 3, 4)
        );
        assert_eq!(o.kinds, ["idle", "keep"]);
        assert_eq!(
            (o.max_upload, o.timeout, o.pid, o.json),
            (1 << 20, 20.0, Some(42), true)
        );
        assert_eq!(o.bounds.warmup, 2.0);
        assert_eq!(
            (o.bounds.rss_growth_kib, o.bounds.rss_trend_kib),
            (4096, 1024)
        );
        assert_eq!(o.bounds.fd_growth, 9);
        // An address named soak is still an address after an option.
        assert_eq!(opts(&["-c", "2", "soak"]).address, "soak");
    }

    #[test]
    fn histogram() {
        let mut h = Hist::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.04, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.04, "{p99}");
        assert_eq!(h.max, 10_000);
        assert_eq!(h.quantile(0.0), 1);
        for v in [0, 63, 64, 65, 1000, u32::MAX as u64, u64::MAX] {
            assert!(Hist::index(v) < Hist::BUCKETS);
        }
    }

    #[test]
    fn large_bodies_are_chunked() {
        let mut o = opts(&["-b", "1M", "1"]);
        let e = encode(&o, &build_params(&o), 3);
        assert!(e.nchunks > 0 && e.chunk.len() < 70_000);
        let mut all = Vec::new();
        e.write_to(&mut all).unwrap();
        assert_eq!(all.len() as u64, e.len());
        // The same bytes as the client's encoder writes for the whole body at once.
        for body in [1 << 20, 5 * 65528, 5 * 65528 + 1] {
            o.body = body;
            let params = build_params(&o);
            let e = encode(&o, &params, 3);
            let mut chunked = Vec::new();
            e.write_to(&mut chunked).unwrap();
            let mut req = fcgi_runtime_tools::client::Request::new(3).keep_conn(o.keep);
            for (n, v) in &params {
                req = req.param(n, v);
            }
            // Each chunk repeats the pattern from its start.
            let full = fcgi_runtime_protocol::record::MAX_ALIGNED_CONTENT_LEN as u64;
            req.stdin = (0..body).map(|i| encode::body_byte(i % full)).collect();
            let mut whole = Vec::new();
            fcgi_runtime_tools::client::encode_request(&req, &mut whole);
            assert!(chunked == whole, "body {body}");
        }
        o.body = 1000;
        let small = encode(&o, &build_params(&o), 3);
        assert_eq!(small.nchunks, 0);
    }
}
