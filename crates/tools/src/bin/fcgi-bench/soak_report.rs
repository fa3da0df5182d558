//! The soak's results as text or as one JSON object.

use crate::monitor::{summary, Sample, Summary};
use crate::report::{json_f, json_str};
use crate::soak::{Outcome, SoakOptions};

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

fn sum_json(s: &Summary) -> String {
    format!(
        "{{\"min\":{},\"max\":{},\"first\":{},\"last\":{}}}",
        s.min, s.max, s.first, s.last
    )
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

pub(crate) fn json(o: &SoakOptions, out: &Outcome) -> String {
    let counts: Vec<String> = out
        .counts
        .iter()
        .map(|(k, n)| format!("{}:{n}", json_str(k)))
        .collect();
    let list = |v: &[String]| v.iter().map(|m| json_str(m)).collect::<Vec<_>>().join(",");
    let kinds: Vec<String> = o.kinds.iter().map(|k| k.to_string()).collect();
    let server = match o.pid {
        None => "null".to_string(),
        Some(pid) => {
            let late = after_warmup(o, out);
            format!(
                concat!(
                    "{{\"pid\":{},\"samples\":{},\"warmup_s\":{},\"rss_kib\":{},",
                    "\"rss_kib_after_warmup\":{},\"fds\":{},\"rss_growth_bound_kib\":{},",
                    "\"rss_trend_bound_kib\":{},\"fd_growth_bound\":{},\"baseline\":{}}}"
                ),
                pid,
                out.samples.len(),
                json_f(o.bounds.warmup),
                sum_json(&summary(&out.samples, |x| x.rss_kib)),
                sum_json(&summary(&late, |x| x.rss_kib)),
                sum_json(&summary(&out.samples, |x| x.fds)),
                o.bounds.rss_growth_kib,
                o.bounds.rss_trend_kib,
                o.bounds.fd_growth,
                match out.base {
                    Some(b) => format!("{{\"rss_kib\":{},\"fds\":{}}}", b.rss_kib, b.fds),
                    None => "null".to_string(),
                }
            )
        }
    };
    format!(
        concat!(
            "{{\"address\":{},\"elapsed_s\":{},\"workers\":{},\"kinds\":[{}],\"requests\":{},",
            "\"by_kind\":{{{}}},\"errors\":{},\"error_messages\":[{}],\"server\":{},",
            "\"memory_failures\":[{}],\"pass\":{}}}"
        ),
        json_str(&o.address),
        json_f(out.elapsed),
        o.workers,
        list(&kinds),
        total(out),
        counts.join(","),
        out.errors,
        list(&out.messages),
        server,
        list(&out.memory),
        out.pass()
    )
}
