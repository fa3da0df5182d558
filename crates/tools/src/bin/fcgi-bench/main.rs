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

use cli::{parse_args, Command, Options, USAGE};
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("soak") {
        return soak::main(args[1..].to_vec());
    }
    match parse_args(args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run(o)) => {
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
        Err(msg) => {
            eprintln!("fcgi-bench: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Hist;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    fn opts(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Command::Run(o)) => o,
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
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
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
        o.body = 1000;
        let small = encode(&o, &build_params(&o), 3);
        assert_eq!(small.nchunks, 0);
    }
}
