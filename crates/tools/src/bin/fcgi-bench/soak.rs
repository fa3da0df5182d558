//! `fcgi-bench soak`: a mixed load for a given time that fails on any error and, given the
//! server's pid, on growth of its resident memory or open descriptors (docs/soak.md).

use crate::cli::{parse_num, parse_secs, parse_size};
use crate::monitor::{self, Bounds, Sample};
use crate::soak_work::{Counts, Soak, Worker, KINDS};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const SOAK_USAGE: &str = "\
usage: fcgi-bench soak [OPTIONS] ADDRESS

A mixed load against an echoing application (c-examples/soak-echo, or lf-echo on the
project's libfcgi.so.0) for a given time; every response is verified (status, SOAK_ID, the
echoed length and FNV-1a of the upload). Worker kinds:
  keep     keep-alive connection, one request at a time, bodies of 0 to 100000 bytes
  nokeep   a connection per request, FCGI_KEEP_CONN unset: the server must close it
  mux      DEPTH request ids in flight on one connection; every tenth aborted at once
  upload   keep-alive uploads of 256 KiB to MAX_UPLOAD (and of MAX_UPLOAD and 0 bytes)
  abort    ABORT_REQUEST before the upload, during it and while the response streams, then a
           normal request: each must end with exactly one END_REQUEST
  idle     a request, then idle until the server closes the connection, then reconnect
           (needs the server's idle timeout, FCGI_RUNTIME_KEEPALIVE_TIMEOUT_MS, below --timeout)

options:
  --secs SECONDS        run time (default 60)
  --kinds LIST          comma-separated kinds (default keep,nokeep,mux,upload,abort)
  -c N                  workers, given the kinds in turn (default: one per kind)
  -m DEPTH              ids in flight on a mux connection (default 8)
  --max-upload BYTES    largest upload, suffixes k, M (default 4M)
  --timeout SECONDS     longest wait for any read or write (default 30)
  --server-pid PID      sample VmRSS and open fds of PID every second and judge them
  --warmup SECONDS      samples before this are not judged (default: a quarter of --secs, <= 10)
  --rss-growth BYTES    fail when VmRSS rises more than this above its level after the warm-up
                        (default 8M)
  --rss-trend BYTES     fail when the last third of the samples stays this far above the first
                        third's highest (default 2M)
  --fd-growth N         fail when open fds rise more than N above the level after the warm-up
                        (default 64)
  --json                print one JSON object instead of text

exit status: 0 every request verified and the server within bounds, 1 otherwise, 2 usage error";

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SoakOptions {
    pub(crate) address: String,
    pub(crate) secs: f64,
    pub(crate) kinds: Vec<&'static str>,
    pub(crate) workers: usize,
    pub(crate) depth: usize,
    pub(crate) max_upload: usize,
    pub(crate) timeout: f64,
    pub(crate) pid: Option<u32>,
    pub(crate) bounds: Bounds,
    pub(crate) json: bool,
}

pub(crate) fn parse_soak<I: IntoIterator<Item = String>>(
    args: I,
) -> Result<Option<SoakOptions>, String> {
    let mut it = args.into_iter();
    let mut address = None;
    let mut secs = 60.0;
    let mut kinds: Vec<&'static str> = KINDS[..5].to_vec();
    let mut workers = None;
    let mut depth = 8usize;
    let mut max_upload = 4usize << 20;
    let mut timeout = 30.0;
    let mut pid = None;
    let mut warmup = None;
    let mut rss_growth = 8u64 << 20;
    let mut rss_trend = 2u64 << 20;
    let mut fd_growth = 64u64;
    let mut json = false;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--secs" => secs = parse_secs("--secs", &value("--secs")?)?,
            "--kinds" => {
                kinds = Vec::new();
                for k in value("--kinds")?.split(',') {
                    match KINDS.iter().find(|&&n| n == k) {
                        Some(n) => kinds.push(*n),
                        None => return Err(format!("unknown kind '{k}' (kinds: {KINDS:?})")),
                    }
                }
            }
            "-c" => workers = Some(parse_num::<usize>("-c", &value("-c")?)?),
            "-m" => depth = parse_num("-m", &value("-m")?)?,
            "--max-upload" => {
                max_upload = parse_size("--max-upload", &value("--max-upload")?)? as usize
            }
            "--timeout" => timeout = parse_secs("--timeout", &value("--timeout")?)?,
            "--server-pid" => pid = Some(parse_num("--server-pid", &value("--server-pid")?)?),
            "--warmup" => warmup = Some(parse_secs("--warmup", &value("--warmup")?)?),
            "--rss-growth" => rss_growth = parse_size("--rss-growth", &value("--rss-growth")?)?,
            "--rss-trend" => rss_trend = parse_size("--rss-trend", &value("--rss-trend")?)?,
            "--fd-growth" => fd_growth = parse_num("--fd-growth", &value("--fd-growth")?)?,
            "--json" => json = true,
            a if a.starts_with('-') && a.len() > 1 => return Err(format!("unknown option '{a}'")),
            a if address.is_none() => address = Some(a.to_string()),
            a => return Err(format!("unexpected argument '{a}'")),
        }
    }
    let address = address.ok_or("missing ADDRESS")?;
    let workers = workers.unwrap_or(kinds.len());
    if kinds.is_empty() || workers == 0 || workers > 1000 {
        return Err("-c expects 1..=1000 workers".to_string());
    }
    if depth == 0 || depth > 1000 {
        return Err("-m expects 1..=1000".to_string());
    }
    if max_upload > 1 << 30 {
        return Err("--max-upload is at most 1G".to_string());
    }
    if timeout < 0.001 {
        return Err("--timeout must be at least 0.001".to_string());
    }
    let warmup = warmup.unwrap_or((secs / 4.0).min(10.0));
    if pid.is_some() && warmup >= secs {
        return Err("--warmup must be shorter than --secs".to_string());
    }
    Ok(Some(SoakOptions {
        address,
        secs,
        kinds,
        workers,
        depth,
        max_upload,
        timeout,
        pid,
        bounds: Bounds {
            warmup,
            rss_growth_kib: rss_growth / 1024,
            rss_trend_kib: rss_trend / 1024,
            fd_growth,
        },
        json,
    }))
}

/// What a run found.
pub(crate) struct Outcome {
    pub(crate) elapsed: f64,
    pub(crate) counts: Counts,
    pub(crate) errors: u64,
    pub(crate) messages: Vec<String>,
    pub(crate) samples: Vec<Sample>,
    /// Failed memory or descriptor verdicts, and a monitor failure.
    pub(crate) memory: Vec<String>,
    pub(crate) base: Option<Sample>,
}

impl Outcome {
    pub(crate) fn pass(&self) -> bool {
        self.errors == 0 && self.memory.is_empty()
    }
}

/// A pseudo-random pattern that uploads are cut from.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

pub(crate) fn run(o: &SoakOptions) -> Outcome {
    let t0 = Instant::now();
    let soak = Soak {
        address: o.address.clone(),
        timeout: Duration::from_secs_f64(o.timeout),
        deadline: t0 + Duration::from_secs_f64(o.secs),
        pattern: Arc::new(pattern(o.max_upload + 4096)),
        max_upload: o.max_upload,
        depth: o.depth,
        errors: AtomicU64::new(0),
        done: AtomicU64::new(0),
        messages: Mutex::new(Vec::new()),
    };
    let finished = AtomicBool::new(false);
    let mut counts = Counts::new();
    let mut samples = Ok(Vec::new());
    std::thread::scope(|s| {
        let soak = &soak;
        let finished = &finished;
        let mon = o.pid.map(|pid| {
            s.spawn(move || monitor::run(pid, t0, &|| finished.load(Ordering::Relaxed)))
        });
        let prog = s.spawn(move || progress(soak, t0, finished));
        let workers: Vec<_> = (0..o.workers)
            .map(|i| {
                let kind = o.kinds[i % o.kinds.len()];
                std::thread::Builder::new()
                    .stack_size(512 * 1024)
                    .spawn_scoped(s, move || Worker::new(soak, kind, i).run(kind))
            })
            .collect();
        for w in workers {
            match w.map(|h| h.join()) {
                Ok(Ok(c)) => c
                    .into_iter()
                    .for_each(|(k, n)| *counts.entry(k).or_default() += n),
                _ => soak.error("a worker thread failed to start or panicked".to_string()),
            }
        }
        match Worker::new(soak, "final", o.workers).final_check() {
            Ok(()) => *counts.entry("final").or_default() += 1,
            Err(e) => soak.error(format!("final#{}: {e}", o.workers)),
        }
        finished.store(true, Ordering::Relaxed);
        let _ = prog.join();
        if let Some(m) = mon {
            samples = m
                .join()
                .unwrap_or_else(|_| Err("the monitor panicked".to_string()));
        }
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let (samples, mut memory, base) = match samples {
        Ok(v) if o.pid.is_some() => {
            let (bad, base) = monitor::judge(&v, &o.bounds);
            (v, bad, base)
        }
        Ok(v) => (v, Vec::new(), None),
        Err(e) => (Vec::new(), vec![e], None),
    };
    memory.retain(|m| !m.is_empty());
    Outcome {
        elapsed,
        counts,
        errors: soak.errors.load(Ordering::Relaxed),
        messages: soak
            .messages
            .into_inner()
            .unwrap_or_else(|p| p.into_inner()),
        samples,
        memory,
        base,
    }
}

/// A line on stderr every 10 seconds.
fn progress(s: &Soak, t0: Instant, finished: &AtomicBool) {
    let mut next = t0 + Duration::from_secs(10);
    while !finished.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() >= next {
            next += Duration::from_secs(10);
            eprintln!(
                "soak [{:5.0} s] {} requests, {} errors",
                t0.elapsed().as_secs_f64(),
                s.done.load(Ordering::Relaxed),
                s.errors.load(Ordering::Relaxed)
            );
        }
    }
}

pub(crate) fn main(args: Vec<String>) -> ExitCode {
    let o = match parse_soak(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{SOAK_USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fcgi-bench soak: {e}\n\n{SOAK_USAGE}");
            return ExitCode::from(2);
        }
    };
    let out = run(&o);
    let text = if o.json {
        crate::soak_report::json(&o, &out)
    } else {
        crate::soak_report::text(&o, &out)
    };
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
    ExitCode::from(u8::from(!out.pass()))
}
