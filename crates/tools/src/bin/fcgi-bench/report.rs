//! The results as text or as one JSON object.

use crate::cli::Options;
use crate::stats::{Stats, KIND_NAMES};
use serde::{Serialize, Serializer};

pub(crate) fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// A float for the JSON output: three decimals, as the text shows them (0 if not finite).
pub(crate) fn json_f(v: f64) -> f64 {
    if v.is_finite() {
        (v * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

/// `(name, count)` pairs as a JSON object, in their order.
pub(crate) fn ordered_map<S: Serializer, K: Serialize, V: Serialize>(
    pairs: &[(K, V)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// The `--json` output: one object.
#[derive(Serialize)]
struct Report<'a> {
    address: &'a str,
    uri: &'a str,
    connections: usize,
    depth: u16,
    keep_alive: bool,
    body_bytes: u64,
    elapsed_s: f64,
    requests: u64,
    ok: u64,
    errors: u64,
    requests_per_s: f64,
    bytes_out: u64,
    bytes_in: u64,
    mb_per_s_out: f64,
    mb_per_s_in: f64,
    latency_us: Latency,
    #[serde(serialize_with = "ordered_map")]
    error_kinds: Vec<(&'static str, u64)>,
    connections_never_served: u64,
    late_responses: u64,
    retried: u64,
    stdout_unterminated: u64,
}

/// Latency quantiles in microseconds.
#[derive(Serialize)]
struct Latency {
    min: u64,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
    mean: u64,
}

pub(crate) fn report_json(o: &Options, st: &Stats, secs: f64) -> String {
    let h = &st.hist;
    let r = Report {
        address: &o.address,
        uri: &o.uri,
        connections: o.connections,
        depth: o.depth,
        keep_alive: o.keep,
        body_bytes: o.body,
        elapsed_s: json_f(secs),
        requests: st.ok + st.failed,
        ok: st.ok,
        errors: st.error_total(),
        requests_per_s: json_f(rate(st.ok + st.failed, secs)),
        bytes_out: st.bytes_out,
        bytes_in: st.bytes_in,
        mb_per_s_out: json_f(rate(st.bytes_out, secs) / 1e6),
        mb_per_s_in: json_f(rate(st.bytes_in, secs) / 1e6),
        latency_us: Latency {
            min: if h.n == 0 { 0 } else { h.min },
            p50: h.quantile(0.5),
            p90: h.quantile(0.9),
            p99: h.quantile(0.99),
            max: h.max,
            mean: h.mean(),
        },
        error_kinds: KIND_NAMES.iter().copied().zip(st.errors).collect(),
        connections_never_served: st.never_served,
        late_responses: st.late,
        retried: st.retried,
        stdout_unterminated: st.stdout_unterminated,
    };
    serde_json::to_string(&r).expect("a report serializes")
}

pub(crate) fn report_text(o: &Options, st: &Stats, secs: f64) -> String {
    let h = &st.hist;
    let n = st.ok + st.failed;
    let errs: Vec<String> = KIND_NAMES
        .iter()
        .zip(&st.errors)
        .filter(|(_, &c)| c > 0)
        .map(|(k, c)| format!("{k} {c}"))
        .collect();
    let mut s = format!(
        "fcgi-bench {} {}: {} connections, depth {}, {}, body {} bytes\n",
        o.address,
        o.uri,
        o.connections,
        o.depth,
        if o.keep {
            "keep-alive"
        } else {
            "no keep-alive"
        },
        o.body
    );
    s += &format!(
        "  requests  {n} in {secs:.3} s: {:.1} req/s, ok {}, {} errors, {} retried\n",
        rate(n, secs),
        st.ok,
        st.error_total(),
        st.retried
    );
    s += &format!(
        "  transfer  out {:.2} MB/s ({} bytes), in {:.2} MB/s ({} bytes)\n",
        rate(st.bytes_out, secs) / 1e6,
        st.bytes_out,
        rate(st.bytes_in, secs) / 1e6,
        st.bytes_in
    );
    s += &format!(
        "  latency   min {} us, p50 {} us, p90 {} us, p99 {} us, max {} us, mean {} us\n",
        if h.n == 0 { 0 } else { h.min },
        h.quantile(0.5),
        h.quantile(0.9),
        h.quantile(0.99),
        h.max,
        h.mean()
    );
    s += &format!(
        "  connections never served: {} of {} ({} responses arrived after the deadline)\n",
        st.never_served, o.connections, st.late
    );
    s += &format!(
        "  errors    {}",
        if errs.is_empty() {
            "none".to_string()
        } else {
            errs.join(", ")
        }
    );
    if st.stdout_unterminated > 0 {
        s += &format!(
            "\n  notes     stdout_unterminated {}: responses whose STDOUT ended at END_REQUEST \
             without the empty STDOUT record (PHP's layer never sends it; --strict makes them \
             errors)",
            st.stdout_unterminated
        );
    }
    s
}
