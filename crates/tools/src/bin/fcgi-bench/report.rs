//! The results as text or as one JSON object.

use crate::cli::Options;
use crate::stats::{Stats, KIND_NAMES};

pub(crate) fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A float as JSON (never NaN or infinite here, but be safe).
pub(crate) fn json_f(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "0".to_string()
    }
}

pub(crate) fn report_json(o: &Options, st: &Stats, secs: f64) -> String {
    let h = &st.hist;
    let kinds: Vec<String> = KIND_NAMES
        .iter()
        .zip(&st.errors)
        .map(|(n, c)| format!("{}:{c}", json_str(n)))
        .collect();
    format!(
        concat!(
            "{{\"address\":{},\"uri\":{},\"connections\":{},\"depth\":{},\"keep_alive\":{},",
            "\"body_bytes\":{},\"elapsed_s\":{},\"requests\":{},\"ok\":{},\"errors\":{},",
            "\"requests_per_s\":{},\"bytes_out\":{},\"bytes_in\":{},\"mb_per_s_out\":{},",
            "\"mb_per_s_in\":{},\"latency_us\":{{\"min\":{},\"p50\":{},\"p90\":{},\"p99\":{},",
            "\"max\":{},\"mean\":{}}},\"error_kinds\":{{{}}},\"connections_never_served\":{},\"late_responses\":{},",
            "\"retried\":{},\"stdout_unterminated\":{}}}"
        ),
        json_str(&o.address),
        json_str(&o.uri),
        o.connections,
        o.depth,
        o.keep,
        o.body,
        json_f(secs),
        st.ok + st.failed,
        st.ok,
        st.error_total(),
        json_f(rate(st.ok + st.failed, secs)),
        st.bytes_out,
        st.bytes_in,
        json_f(rate(st.bytes_out, secs) / 1e6),
        json_f(rate(st.bytes_in, secs) / 1e6),
        if h.n == 0 { 0 } else { h.min },
        h.quantile(0.5),
        h.quantile(0.9),
        h.quantile(0.99),
        h.max,
        h.mean(),
        kinds.join(","),
        st.never_served,
        st.late,
        st.retried,
        st.stdout_unterminated,
    )
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
