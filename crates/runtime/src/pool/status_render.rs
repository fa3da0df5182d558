//! The status page's response: its fields, listed once, and its three renderings: PHP-FPM's plain text, its
//! JSON (same keys, so FPM dashboards read it) and the Prometheus text format.
//!
//! Each field carries its FPM name, its value and, when it is a metric, its Prometheus name,
//! type and help; a format only decides how a field is written.

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

/// What makes a field a Prometheus metric.
struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
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
    Some(Metric { name, kind, help })
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
            metric(
                "start_since_seconds",
                "gauge",
                "Seconds since the pool started.",
            ),
        ),
        field(
            "accepted conn",
            Count(s.accepted),
            metric(
                "accepted_connections_total",
                "counter",
                "Requests accepted by the pool's workers.",
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
                "max_children_reached_total",
                "counter",
                "Times a worker was wanted with max_children running.",
            ),
        ),
        field(
            "slow requests",
            Count(s.slow),
            metric(
                "slow_requests_total",
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
                "process_requests_total",
                "counter",
                "Requests a worker took.",
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
            metric(
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
    ]
}

/// The response (CGI headers and body) for a format.
pub(super) fn render(s: &Snapshot, f: Format, full: bool) -> Vec<u8> {
    let (ctype, body) = match f {
        Format::Text => ("text/plain", text(s, full)),
        Format::Json => ("application/json", json(s, full)),
        Format::Prometheus => (
            "text/plain; version=0.0.4; charset=utf-8",
            prometheus(s, full),
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

/// The Prometheus text format (0.0.4): `fcgi_pool_up`, then each field that is a metric,
/// labelled with the pool; with `full`, each worker's metrics labelled with its pid and state.
pub(super) fn prometheus(s: &Snapshot, full: bool) -> String {
    let pool = prom_label(&s.pool);
    let mut o = String::new();
    let head = |o: &mut String, m: &Metric| {
        let _ = write!(
            o,
            "# HELP fcgi_pool_{0} {1}\n# TYPE fcgi_pool_{0} {2}\n",
            m.name, m.help, m.kind
        );
    };
    let up = metric("up", "gauge", "The pool is serving.");
    let pool_metrics = std::iter::once((up, Value::Count(1)))
        .chain(pool_fields(s).into_iter().map(|f| (f.metric, f.value)));
    for (m, v) in pool_metrics {
        let Some(m) = m else { continue };
        head(&mut o, &m);
        let _ = writeln!(
            o,
            "fcgi_pool_{}{{pool=\"{pool}\"}} {}",
            m.name,
            prom_value(&v)
        );
    }
    if full {
        // Grouped by metric, one sample per worker; the metrics are those of any worker's
        // fields (a blank one's when there is none).
        let per_proc: Vec<Vec<Field>> = s.procs.iter().map(|p| proc_fields(s, p)).collect();
        let blank = Proc {
            pid: 0,
            state: "Idle",
            start: 0,
            requests: 0,
            in_flight: 0,
            req: None,
        };
        for (k, f) in proc_fields(s, &blank).iter().enumerate() {
            let Some(m) = &f.metric else { continue };
            head(&mut o, m);
            for (p, fields) in s.procs.iter().zip(&per_proc) {
                let _ = writeln!(
                    o,
                    "fcgi_pool_{}{{pool=\"{pool}\",pid=\"{}\",state=\"{}\"}} {}",
                    m.name,
                    p.pid,
                    p.state,
                    prom_value(&fields[k].value)
                );
            }
        }
    }
    o
}

fn prom_value(v: &Value) -> String {
    match v {
        Value::Micros(us) => format!("{:.3}", *us as f64 / 1e6),
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
