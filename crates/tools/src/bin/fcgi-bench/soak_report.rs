//! The soak's results as text or as one JSON object.

use crate::monitor::{summary, Sample, Summary};
use crate::report::json_f;
use crate::soak::{Outcome, SoakOptions};
use crate::soak_work::Counts;
use serde::Serialize;

fn total(out: &Outcome) -> u64 {
    out.counts
        .iter()
        .filter(|(k, _)| !k.starts_with("reconnects") && !k.starts_with("aborts_cut"))
        .map(|(_, n)| n)
        .sum()
}

fn after_warmup(o: &SoakOptions, out: &Outcome) -> Vec<Sample> {
    out.samples
        .iter()
        .copied()
        .filter(|s| s.t >= o.bounds.warmup)
        .collect()
}

fn sum_text(s: &Summary) -> String {
    format!(
        "first {}, min {}, max {}, last {}",
        s.first, s.min, s.max, s.last
    )
}

pub(crate) fn text(o: &SoakOptions, out: &Outcome) -> String {
    let mut s = format!(
        "fcgi-bench soak {}: {:.1} s, {} workers ({})\n",
        o.address,
        out.elapsed,
        o.workers,
        o.kinds.join(", ")
    );
    let kinds: Vec<String> = out.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    s += &format!(
        "  requests  {} verified: {}\n  errors    {}\n",
        total(out),
        kinds.join(", "),
        out.errors
    );
    for m in &out.messages {
        s += &format!("    {m}\n");
    }
    if out.errors > out.messages.len() as u64 {
        s += &format!("    ... {} more\n", out.errors - out.messages.len() as u64);
    }
    if let Some(pid) = o.pid {
        let rss = summary(&out.samples, |x| x.rss_kib);
        let fds = summary(&out.samples, |x| x.fds);
        let late = after_warmup(o, out);
        let late_rss = summary(&late, |x| x.rss_kib);
        s += &format!(
            "  server    pid {pid}, {} samples, warm-up {:.0} s\n",
            out.samples.len(),
            o.bounds.warmup
        );
        s += &format!("  rss KiB   {}\n", sum_text(&rss));
        s += &format!(
            "  after warm-up: rss KiB {} (bound +{} KiB, trend {} KiB)\n",
            sum_text(&late_rss),
            o.bounds.rss_growth_kib,
            o.bounds.rss_trend_kib
        );
        s += &format!(
            "  fds       {} (bound +{})\n",
            sum_text(&fds),
            o.bounds.fd_growth
        );
        for m in &out.memory {
            s += &format!("  memory    {m}\n");
        }
    }
    let mut why = Vec::new();
    if out.errors > 0 {
        why.push(format!("{} errors", out.errors));
    }
    why.extend(out.memory.iter().cloned());
    s += &if out.pass() {
        "soak: PASS".to_string()
    } else {
        format!("soak: FAIL: {}", why.join("; "))
    };
    s
}

/// The `--json` output: one object.
#[derive(Serialize)]
struct Report<'a> {
    address: &'a str,
    elapsed_s: f64,
    workers: usize,
    kinds: &'a [&'static str],
    requests: u64,
    by_kind: &'a Counts,
    errors: u64,
    error_messages: &'a [String],
    server: Option<Server>,
    memory_failures: &'a [String],
    pass: bool,
}

/// What the monitor saw of the server (with --server-pid).
#[derive(Serialize)]
struct Server {
    pid: u32,
    samples: usize,
    warmup_s: f64,
    rss_kib: Summary,
    rss_kib_after_warmup: Summary,
    fds: Summary,
    rss_growth_bound_kib: u64,
    rss_trend_bound_kib: u64,
    fd_growth_bound: u64,
    baseline: Option<Baseline>,
}

/// The first sample after the warm-up.
#[derive(Serialize)]
struct Baseline {
    rss_kib: u64,
    fds: u64,
}

pub(crate) fn json(o: &SoakOptions, out: &Outcome) -> String {
    let server = o.pid.map(|pid| Server {
        pid,
        samples: out.samples.len(),
        warmup_s: json_f(o.bounds.warmup),
        rss_kib: summary(&out.samples, |x| x.rss_kib),
        rss_kib_after_warmup: summary(&after_warmup(o, out), |x| x.rss_kib),
        fds: summary(&out.samples, |x| x.fds),
        rss_growth_bound_kib: o.bounds.rss_growth_kib,
        rss_trend_bound_kib: o.bounds.rss_trend_kib,
        fd_growth_bound: o.bounds.fd_growth,
        baseline: out.base.map(|b| Baseline {
            rss_kib: b.rss_kib,
            fds: b.fds,
        }),
    });
    let r = Report {
        address: &o.address,
        elapsed_s: json_f(out.elapsed),
        workers: o.workers,
        kinds: &o.kinds,
        requests: total(out),
        by_kind: &out.counts,
        errors: out.errors,
        error_messages: &out.messages,
        server,
        memory_failures: &out.memory,
        pass: out.pass(),
    };
    serde_json::to_string(&r).expect("a report serializes")
}
