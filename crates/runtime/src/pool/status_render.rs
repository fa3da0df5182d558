//! The status page's response: its fields, listed once, and their renderings: PHP-FPM's plain
//! text, its JSON (same keys, so FPM dashboards read it), OpenMetrics 1.0.0 and the Prometheus
//! text format 0.0.4.
//!
//! Each field carries its FPM name, its value and, when it is a metric, its metric family
//! name, type, unit and help; a format only decides how a field is written. The metrics add
//! what FPM's page lacks (connections, refusals, the duration histogram, max_children); a
//! worker's metrics are labelled with its scoreboard slot, which does not change with its pid
//! or state.

use super::slowlog;
use super::status::{Format, Proc, Snapshot};
use std::fmt::Write;

/// A field's value, typed by how the formats differ in writing it.
enum Value {
    /// A string the operator configured (pool name, process manager).
    Name(String),
    /// A string a request sent (method, URI): made printable in the text format.
    Untrusted(String),
    Count(u64),
    /// Unix seconds: a date in the text format, a number in JSON.
    Time(u64),
    /// Microseconds (FPM's unit for durations): seconds in Prometheus.
    Micros(u64),
}

/// What makes a field a metric: its family name (a counter's samples add `_total`), type,
/// help and unit (the name ends with it).
struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    unit: &'static str,
}

/// One field: its name in the text format, its key in JSON, its value and its metric.
struct Field {
    text: &'static str,
    json: &'static str,
    value: Value,
    metric: Option<Metric>,
}

fn field(name: &'static str, value: Value, metric: Option<Metric>) -> Field {
    Field {
        text: name,
        json: name,
        value,
        metric,
    }
}

const fn metric(name: &'static str, kind: &'static str, help: &'static str) -> Option<Metric> {
    Some(Metric {
        name,
        kind,
        help,
        unit: "",
    })
}

const fn seconds(name: &'static str, kind: &'static str, help: &'static str) -> Option<Metric> {
    Some(Metric {
        name,
        kind,
        help,
        unit: "seconds",
    })
}

/// The pool's fields, in FPM's order.
fn pool_fields(s: &Snapshot) -> Vec<Field> {
    use Value::*;
    vec![
        field("pool", Name(s.pool.clone()), None),
        field("process manager", Name(s.pm.into()), None),
        field("start time", Time(s.start_time), None),
        field(
            "start since",
            Count(s.now.saturating_sub(s.start_time)),
            seconds(
                "start_since_seconds",
                "gauge",
                "Seconds since the pool started.",
            ),
        ),
        field(
            "accepted conn",
            Count(s.accepted),
            metric(
                "requests",
                "counter",
                "Requests taken by the pool's workers (FPM's accepted conn).",
            ),
        ),
        field(
            "listen queue",
            Count(s.listen_queue.into()),
            metric(
                "listen_queue",
                "gauge",
                "Connections waiting in the accept queue (TCP).",
            ),
        ),
        field(
            "max listen queue",
            Count(s.max_listen_queue),
            metric(
                "max_listen_queue",
                "gauge",
                "Longest accept queue seen since the pool started.",
            ),
        ),
        field(
            "listen queue len",
            Count(s.listen_queue_len.into()),
            metric(
                "listen_queue_length",
                "gauge",
                "Size of the accept queue (backlog).",
            ),
        ),
        field(
            "idle processes",
            Count(s.idle as u64),
            metric("idle_processes", "gauge", "Idle workers."),
        ),
        field(
            "active processes",
            Count(s.active as u64),
            metric(
                "active_processes",
                "gauge",
                "Workers with a request in flight.",
            ),
        ),
        field(
            "total processes",
            Count(s.procs.len() as u64),
            metric(
                "total_processes",
                "gauge",
                "Workers, draining ones included.",
            ),
        ),
        field(
            "max active processes",
            Count(s.max_active),
            metric(
                "max_active_processes",
                "gauge",
                "Most workers active at once since the pool started.",
            ),
        ),
        field(
            "max children reached",
            Count(s.max_children_reached),
            metric(
                "max_children_reached",
                "counter",
                "Times a worker was wanted with max_children running.",
            ),
        ),
        field(
            "slow requests",
            Count(s.slow),
            metric(
                "slow_requests",
                "counter",
                "Requests that ran past slowlog_timeout_ms.",
            ),
        ),
    ]
}

/// One worker's fields (`full`), in FPM's order.
fn proc_fields(s: &Snapshot, p: &Proc) -> Vec<Field> {
    use Value::*;
    let (method, uri, micros) = match &p.req {
        Some((v, ms)) => (v.method.clone(), v.uri.clone(), ms * 1000),
        None => ("-".into(), "-".into(), 0),
    };
    vec![
        field("pid", Count(p.pid as u64), None),
        field("state", Name(p.state.into()), None),
        field("start time", Time(p.start), None),
        field("start since", Count(s.now.saturating_sub(p.start)), None),
        field(
            "requests",
            Count(p.requests),
            metric(
                "process_requests",
                "counter",
                "Requests the worker in a slot took (reset when the slot gets a new worker).",
            ),
        ),
        field(
            "requests in flight",
            Count(p.in_flight.into()),
            metric(
                "process_requests_in_flight",
                "gauge",
                "Requests a worker holds.",
            ),
        ),
        field(
            "request duration",
            Micros(micros),
            seconds(
                "process_request_duration_seconds",
                "gauge",
                "Duration of a worker's current (else last) request.",
            ),
        ),
        field("request method", Untrusted(method), None),
        Field {
            text: "request URI",
            json: "request uri",
            value: Untrusted(uri),
            metric: None,
        },
        // FPM's remaining keys, so that its dashboards find them: not tracked here (the
        // scoreboard keeps no body length, user or script per request, and a worker's CPU
        // and memory per request are PHP's own figures), always 0 or "-".
        field("content length", Count(0), None),
        field("user", Name("-".into()), None),
        field("script", Name("-".into()), None),
        field("last request cpu", Count(0), None),
        field("last request memory", Count(0), None),
    ]
}

/// The response (CGI headers and body) for a format.
pub(super) fn render(s: &Snapshot, f: Format, full: bool) -> Vec<u8> {
    let (ctype, body) = match f {
        Format::Text => ("text/plain", text(s, full)),
        Format::Json => ("application/json", json(s, full)),
        Format::OpenMetrics => (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics(s, full, true),
        ),
        Format::Prometheus => (
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(s, full, false),
        ),
    };
    let mut out = format!(
        "Status: 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
         Cache-Control: no-cache, no-store, must-revalidate, max-age=0\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// FPM's plain text: `name:` padded to 21 columns, then the value; with `full`, one block per
/// worker after a line of stars.
pub(super) fn text(s: &Snapshot, full: bool) -> String {
    fn block(o: &mut String, fields: Vec<Field>) {
        for f in fields {
            let v = match f.value {
                Value::Name(v) => v,
                Value::Untrusted(v) => slowlog::printable(&v),
                Value::Count(n) | Value::Micros(n) => n.to_string(),
                Value::Time(t) => slowlog::timestamp(t * 1000),
            };
            let _ = writeln!(o, "{:<21}{v}", format!("{}:", f.text));
        }
    }
    let mut o = String::new();
    block(&mut o, pool_fields(s));
    if full {
        for p in &s.procs {
            o.push_str("\n************************\n");
            block(&mut o, proc_fields(s, p));
        }
    }
    o
}

/// FPM's JSON: one object with the pool's keys and, with `full`, a `processes` array.
pub(super) fn json(s: &Snapshot, full: bool) -> String {
    fn object(o: &mut String, fields: Vec<Field>) {
        o.push('{');
        for (i, f) in fields.into_iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            js(o, f.json);
            o.push(':');
            match f.value {
                Value::Name(v) | Value::Untrusted(v) => js(o, &v),
                Value::Count(n) | Value::Time(n) | Value::Micros(n) => {
                    let _ = write!(o, "{n}");
                }
            }
        }
    }
    let mut o = String::new();
    object(&mut o, pool_fields(s));
    if full {
        o.push_str(",\"processes\":[");
        for (i, p) in s.procs.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            object(&mut o, proc_fields(s, p));
            o.push('}');
        }
        o.push(']');
    }
    o.push('}');
    o
}

/// A JSON string.
fn js(o: &mut String, s: &str) {
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
}

/// Metrics only the metric formats show (FPM's page has no such field).
fn extra_metrics(s: &Snapshot) -> Vec<(Option<Metric>, Value)> {
    use Value::*;
    vec![
        (metric("up", "gauge", "The pool is serving."), Count(1)),
        (
            metric(
                "draining",
                "gauge",
                "1 while the pool drains (ping answers 503).",
            ),
            Count(u64::from(s.draining)),
        ),
        (
            metric("max_children", "gauge", "The configured max_children."),
            Count(s.max_children),
        ),
        (
            metric(
                "accepted_connections",
                "counter",
                "Connections accepted by the pool's workers.",
            ),
            Count(s.connections),
        ),
        (
            metric(
                "open_connections",
                "gauge",
                "Connections the pool's workers hold open.",
            ),
            Count(s.open_conns),
        ),
    ]
}

/// OpenMetrics 1.0.0 (`om`) or the Prometheus text format 0.0.4: the pool's metrics labelled
/// with the pool, refused requests by reason, the request-duration histogram; with `full`,
/// each worker's metrics labelled with its slot. OpenMetrics ends with `# EOF`.
pub(super) fn metrics(s: &Snapshot, full: bool, om: bool) -> String {
    let pool = prom_label(&s.pool);
    let mut o = String::new();
    // The family's metadata; returns the sample name.
    let head = |o: &mut String, m: &Metric| -> String {
        let sample = if m.kind == "counter" {
            format!("fcgi_pool_{}_total", m.name)
        } else {
            format!("fcgi_pool_{}", m.name)
        };
        // OpenMetrics names the family without `_total`; Prometheus 0.0.4 with it.
        let family = if om {
            format!("fcgi_pool_{}", m.name)
        } else {
            sample.clone()
        };
        let _ = writeln!(o, "# TYPE {family} {}", m.kind);
        if om && !m.unit.is_empty() {
            let _ = writeln!(o, "# UNIT {family} {}", m.unit);
        }
        let _ = writeln!(o, "# HELP {family} {}", m.help);
        sample
    };
    let pool_metrics = extra_metrics(s)
        .into_iter()
        .chain(pool_fields(s).into_iter().map(|f| (f.metric, f.value)));
    for (m, v) in pool_metrics {
        let Some(m) = m else { continue };
        let name = head(&mut o, &m);
        let _ = writeln!(o, "{name}{{pool=\"{pool}\"}} {}", prom_value(&v));
    }
    let refused = Metric {
        name: "refused_requests",
        kind: "counter",
        help: "Requests the runtime refused, by reason (overloaded: FCGI_OVERLOADED).",
        unit: "",
    };
    let name = head(&mut o, &refused);
    for (reason, n) in &s.refused {
        let _ = writeln!(o, "{name}{{pool=\"{pool}\",reason=\"{reason}\"}} {n}");
    }
    histogram(&mut o, s, &pool, om);
    if full {
        // Grouped by metric, one sample per worker; the metrics are those of any worker's
        // fields (a blank one's when there is none).
        let per_proc: Vec<Vec<Field>> = s.procs.iter().map(|p| proc_fields(s, p)).collect();
        let blank = Proc {
            slot: 0,
            pid: 0,
            state: "Idle",
            start: 0,
            requests: 0,
            in_flight: 0,
            req: None,
        };
        for (k, f) in proc_fields(s, &blank).iter().enumerate() {
            let Some(m) = &f.metric else { continue };
            let name = head(&mut o, m);
            for (p, fields) in s.procs.iter().zip(&per_proc) {
                let _ = writeln!(
                    o,
                    "{name}{{pool=\"{pool}\",slot=\"{}\"}} {}",
                    p.slot,
                    prom_value(&fields[k].value)
                );
            }
        }
    }
    if om {
        o.push_str("# EOF\n");
    }
    o
}

/// The request-duration histogram: cumulative buckets, `+Inf`, count and sum.
fn histogram(o: &mut String, s: &Snapshot, pool: &str, om: bool) {
    let name = "fcgi_pool_request_duration_seconds";
    let _ = writeln!(o, "# TYPE {name} histogram");
    if om {
        let _ = writeln!(o, "# UNIT {name} seconds");
    }
    let _ = writeln!(
        o,
        "# HELP {name} Durations of the requests the pool's workers ended."
    );
    let mut cumulative = 0u64;
    for (i, n) in s.buckets.iter().enumerate() {
        cumulative += n;
        let le = match super::scoreboard::DURATION_BOUNDS.get(i) {
            Some(b) => format!("{b:?}"),
            None => "+Inf".to_string(),
        };
        let _ = writeln!(
            o,
            "{name}_bucket{{pool=\"{pool}\",le=\"{le}\"}} {cumulative}"
        );
    }
    // The count is the +Inf bucket (the atomics are read one by one: a separate counter
    // could disagree with the buckets by a request in progress).
    let _ = writeln!(o, "{name}_count{{pool=\"{pool}\"}} {cumulative}");
    let _ = writeln!(
        o,
        "{name}_sum{{pool=\"{pool}\"}} {:.6}",
        s.duration_sum_us as f64 / 1e6
    );
}

fn prom_value(v: &Value) -> String {
    match v {
        Value::Micros(us) => format!("{:.6}", *us as f64 / 1e6),
        Value::Count(n) | Value::Time(n) => n.to_string(),
        Value::Name(s) | Value::Untrusted(s) => s.clone(),
    }
}

fn prom_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_escapes() {
        let mut o = String::new();
        super::js(&mut o, "a\"b\\\n");
        assert_eq!(o, "\"a\\\"b\\\\\\u000a\"");
    }
}
