//! `fcgi-bench soak`: a mixed load for a given time that fails on any error and, given the
//! server's pid, on growth of its resident memory or open descriptors (docs/soak.md).

use crate::cli::SoakArgs;
use crate::monitor::{self, Bounds, Sample};
use crate::soak_work::{Counts, Soak, Worker, KINDS};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

impl SoakOptions {
    /// The soak's options; `Err` for values out of range and combinations that cannot work.
    pub(crate) fn from_args(a: SoakArgs) -> Result<SoakOptions, String> {
        let kinds = a.kinds.map_or_else(|| KINDS[..5].to_vec(), |k| k.0);
        let workers = a.workers.unwrap_or(kinds.len());
        if kinds.is_empty() || workers == 0 || workers > 1000 {
            return Err("-c expects 1..=1000 workers".to_string());
        }
        if a.depth == 0 || a.depth > 1000 {
            return Err("-m expects 1..=1000".to_string());
        }
        if a.max_upload > 1 << 30 {
            return Err("--max-upload is at most 1G".to_string());
        }
        if a.timeout < 0.001 {
            return Err("--timeout must be at least 0.001".to_string());
        }
        let warmup = a.warmup.unwrap_or((a.secs / 4.0).min(10.0));
        if a.pid.is_some() && warmup >= a.secs {
            return Err("--warmup must be shorter than --secs".to_string());
        }
        Ok(SoakOptions {
            address: a.address,
            secs: a.secs,
            kinds,
            workers,
            depth: a.depth,
            max_upload: a.max_upload as usize,
            timeout: a.timeout,
            pid: a.pid,
            bounds: Bounds {
                warmup,
                rss_growth_kib: a.rss_growth / 1024,
                rss_trend_kib: a.rss_trend / 1024,
                fd_growth: a.fd_growth,
            },
            json: a.json,
        })
    }
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

/// Runs `fcgi-bench soak` with options `o`: exit status 0 when it passed, 1 otherwise.
pub(crate) fn main(o: &SoakOptions) -> ExitCode {
    let out = run(o);
    let text = if o.json {
        crate::soak_report::json(o, &out)
    } else {
        crate::soak_report::text(o, &out)
    };
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
    ExitCode::from(u8::from(!out.pass()))
}
