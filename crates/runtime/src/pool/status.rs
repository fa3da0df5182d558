//! The status page, answered by a worker's runtime for the pool's `status_path` (the
//! application never sees that request): PHP-FPM's fields and names, as plain text
//! (default), JSON (`?json`) or the Prometheus text format (`?openmetrics` or `?prometheus`);
//! `full` adds one entry per worker. Rendered from the scoreboard, which every worker maps.

use super::scoreboard::{self, Header, Slot, DRAINING, FREE, STARTING};
use fcgi_runtime_protocol::ParamStore;
use std::fmt::Write;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Prometheus,
}

/// True if the request asks for `path` (its SCRIPT_NAME, else REQUEST_URI without the query).
pub fn matches(params: &ParamStore, path: &[u8]) -> bool {
    if path.is_empty() {
        return false;
    }
    if let Some(s) = params.get(b"SCRIPT_NAME").filter(|s| !s.is_empty()) {
        return s == path;
    }
    let uri = params.get(b"REQUEST_URI").unwrap_or(b"");
    let end = uri.iter().position(|&b| b == b'?').unwrap_or(uri.len());
    &uri[..end] == path
}

/// The format and `full` from a query string (`json&full`, `openmetrics`, ...).
pub fn parse_query(q: &[u8]) -> (Format, bool) {
    let mut f = Format::Text;
    let mut full = false;
    for part in q.split(|&b| b == b'&') {
        let key = part.split(|&b| b == b'=').next().unwrap_or(b"");
        match key {
            b"json" => f = Format::Json,
            b"openmetrics" | b"prometheus" => f = Format::Prometheus,
            b"full" => full = true,
            _ => {}
        }
    }
    (f, full)
}

/// One worker as the page shows it.
struct Proc {
    pid: i32,
    state: &'static str,
    start: u64,
    requests: u64,
    in_flight: u32,
    /// The current request (the oldest in flight), else the last one.
    req: Option<(scoreboard::EntryView, u64)>,
}

/// The pool's numbers.
pub struct Snapshot {
    pool: String,
    pm: &'static str,
    start_time: u64,
    now: u64,
    accepted: u64,
    listen_queue: u32,
    max_listen_queue: u64,
    listen_queue_len: u32,
    idle: usize,
    active: usize,
    max_active: u64,
    max_children_reached: u64,
    slow: u64,
    procs: Vec<Proc>,
}

/// Reads the scoreboard (`slots` follow `h` in the mapping). `listen_fd` gives the queue.
pub fn snapshot(h: &Header, slots: &[Slot], listen_fd: RawFd) -> Snapshot {
    let now_unix = scoreboard::unix_ms() / 1000;
    let now_ms = scoreboard::now_ms();
    let (listen_queue, listen_queue_len) = super::listen::queue(listen_fd).unwrap_or((0, 0));
    let mut procs = Vec::new();
    let (mut idle, mut active) = (0, 0);
    for s in slots {
        let st = s.state.load(Ordering::Acquire);
        let pid = s.pid.load(Ordering::Relaxed);
        if st == FREE || pid == 0 {
            continue;
        }
        let in_flight = s.in_flight.load(Ordering::Relaxed);
        let state = match st {
            STARTING => "Starting",
            DRAINING => "Draining",
            _ if in_flight > 0 => "Running",
            _ => "Idle",
        };
        match state {
            "Running" => active += 1,
            "Idle" | "Starting" => idle += 1,
            _ => {}
        }
        let current = s
            .entries
            .iter()
            .filter(|e| e.in_use())
            .filter_map(|e| e.read())
            .filter(|v| v.start_ms > 0)
            .min_by_key(|v| v.start_ms)
            .map(|v| {
                let d = now_ms.saturating_sub(v.start_ms);
                (v, d)
            });
        let req = current.or_else(|| {
            let last = s.last_entry.load(Ordering::Relaxed) as usize;
            let e = s.entries.get(last.checked_sub(1)?)?;
            let v = e.read()?;
            Some((v, s.last_duration_ms.load(Ordering::Relaxed)))
        });
        procs.push(Proc {
            pid,
            state,
            start: s.started_unix.load(Ordering::Relaxed),
            requests: s.served.load(Ordering::Relaxed),
            in_flight,
            req,
        });
    }
    procs.sort_by_key(|p| p.pid);
    // The parent samples the busy count each tick; what this reader saw counts too.
    h.max_active.fetch_max(active as u64, Ordering::Relaxed);
    Snapshot {
        pool: h.pool_name.load_string(),
        pm: match h.mode.load(Ordering::Relaxed) {
            1 => "dynamic",
            2 => "ondemand",
            _ => "static",
        },
        start_time: h.start_time.load(Ordering::Relaxed),
        now: now_unix,
        accepted: h.accepted.load(Ordering::Relaxed),
        listen_queue,
        max_listen_queue: h
            .max_listen_queue
            .load(Ordering::Relaxed)
            .max(u64::from(listen_queue)),
        listen_queue_len,
        idle,
        active,
        max_active: h.max_active.load(Ordering::Relaxed).max(active as u64),
        max_children_reached: h.max_children_reached.load(Ordering::Relaxed),
        slow: h.slow_requests.load(Ordering::Relaxed),
        procs,
    }
}

/// The response (CGI headers and body) for a format.
pub fn render(s: &Snapshot, f: Format, full: bool) -> Vec<u8> {
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

fn text(s: &Snapshot, full: bool) -> String {
    let mut o = String::new();
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(o, "{:<21}{v}", format!("{k}:"));
    };
    kv("pool", &s.pool);
    kv("process manager", &s.pm);
    kv(
        "start time",
        &super::slowlog::timestamp(s.start_time * 1000),
    );
    kv("start since", &s.now.saturating_sub(s.start_time));
    kv("accepted conn", &s.accepted);
    kv("listen queue", &s.listen_queue);
    kv("max listen queue", &s.max_listen_queue);
    kv("listen queue len", &s.listen_queue_len);
    kv("idle processes", &s.idle);
    kv("active processes", &s.active);
    kv("total processes", &s.procs.len());
    kv("max active processes", &s.max_active);
    kv("max children reached", &s.max_children_reached);
    kv("slow requests", &s.slow);
    if full {
        for p in &s.procs {
            o.push_str("\n************************\n");
            let mut kv = |k: &str, v: &dyn std::fmt::Display| {
                let _ = writeln!(o, "{:<21}{v}", format!("{k}:"));
            };
            kv("pid", &p.pid);
            kv("state", &p.state);
            kv("start time", &super::slowlog::timestamp(p.start * 1000));
            kv("start since", &s.now.saturating_sub(p.start));
            kv("requests", &p.requests);
            kv("requests in flight", &p.in_flight);
            let (m, u, d) = req_fields(p);
            kv("request duration", &d);
            kv("request method", &super::slowlog::printable(&m));
            kv("request URI", &super::slowlog::printable(&u));
        }
    }
    o
}

/// Method, URI and duration in microseconds (FPM's unit; measured in milliseconds).
fn req_fields(p: &Proc) -> (String, String, u64) {
    match &p.req {
        Some((v, ms)) => (v.method.clone(), v.uri.clone(), ms * 1000),
        None => ("-".into(), "-".into(), 0),
    }
}

fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
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
    o
}

fn json(s: &Snapshot, full: bool) -> String {
    let mut o = format!(
        "{{\"pool\":{},\"process manager\":{},\"start time\":{},\"start since\":{},\
         \"accepted conn\":{},\"listen queue\":{},\"max listen queue\":{},\
         \"listen queue len\":{},\"idle processes\":{},\"active processes\":{},\
         \"total processes\":{},\"max active processes\":{},\"max children reached\":{},\
         \"slow requests\":{}",
        js(&s.pool),
        js(s.pm),
        s.start_time,
        s.now.saturating_sub(s.start_time),
        s.accepted,
        s.listen_queue,
        s.max_listen_queue,
        s.listen_queue_len,
        s.idle,
        s.active,
        s.procs.len(),
        s.max_active,
        s.max_children_reached,
        s.slow
    );
    if full {
        o.push_str(",\"processes\":[");
        for (i, p) in s.procs.iter().enumerate() {
            let (m, u, d) = req_fields(p);
            let _ = write!(
                o,
                "{}{{\"pid\":{},\"state\":{},\"start time\":{},\"start since\":{},\
                 \"requests\":{},\"requests in flight\":{},\"request duration\":{d},\
                 \"request method\":{},\"request uri\":{}}}",
                if i > 0 { "," } else { "" },
                p.pid,
                js(p.state),
                p.start,
                s.now.saturating_sub(p.start),
                p.requests,
                p.in_flight,
                js(&m),
                js(&u)
            );
        }
        o.push(']');
    }
    o.push('}');
    o
}

fn prom_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn prometheus(s: &Snapshot, full: bool) -> String {
    let pool = prom_label(&s.pool);
    let mut o = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, v: u64| {
        let _ = write!(
            o,
            "# HELP fcgi_pool_{name} {help}\n# TYPE fcgi_pool_{name} {kind}\n\
             fcgi_pool_{name}{{pool=\"{pool}\"}} {v}\n"
        );
    };
    metric("up", "gauge", "The pool is serving.", 1);
    metric(
        "start_since_seconds",
        "gauge",
        "Seconds since the pool started.",
        s.now.saturating_sub(s.start_time),
    );
    metric(
        "accepted_connections_total",
        "counter",
        "Requests accepted by the pool's workers.",
        s.accepted,
    );
    metric(
        "listen_queue",
        "gauge",
        "Connections waiting in the accept queue (TCP).",
        s.listen_queue.into(),
    );
    metric(
        "max_listen_queue",
        "gauge",
        "Longest accept queue seen since the pool started.",
        s.max_listen_queue,
    );
    metric(
        "listen_queue_length",
        "gauge",
        "Size of the accept queue (backlog).",
        s.listen_queue_len.into(),
    );
    metric("idle_processes", "gauge", "Idle workers.", s.idle as u64);
    metric(
        "active_processes",
        "gauge",
        "Workers with a request in flight.",
        s.active as u64,
    );
    metric(
        "total_processes",
        "gauge",
        "Workers, draining ones included.",
        s.procs.len() as u64,
    );
    metric(
        "max_active_processes",
        "gauge",
        "Most workers active at once since the pool started.",
        s.max_active,
    );
    metric(
        "max_children_reached_total",
        "counter",
        "Times a worker was wanted with max_children running.",
        s.max_children_reached,
    );
    metric(
        "slow_requests_total",
        "counter",
        "Requests that ran past slowlog_timeout_ms.",
        s.slow,
    );
    if full {
        let per = [
            (
                "process_requests_total",
                "counter",
                "Requests a worker took.",
            ),
            (
                "process_requests_in_flight",
                "gauge",
                "Requests a worker holds.",
            ),
            (
                "process_request_duration_seconds",
                "gauge",
                "Duration of a worker's current (else last) request.",
            ),
        ];
        for (k, (name, kind, help)) in per.iter().enumerate() {
            let _ = write!(
                o,
                "# HELP fcgi_pool_{name} {help}\n# TYPE fcgi_pool_{name} {kind}\n"
            );
            for p in &s.procs {
                let v = match k {
                    0 => p.requests.to_string(),
                    1 => p.in_flight.to_string(),
                    _ => format!("{:.3}", req_fields(p).2 as f64 / 1e6),
                };
                let _ = writeln!(
                    o,
                    "fcgi_pool_{name}{{pool=\"{pool}\",pid=\"{}\",state=\"{}\"}} {v}",
                    p.pid, p.state
                );
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(parse_query(b""), (Format::Text, false));
        assert_eq!(parse_query(b"json&full"), (Format::Json, true));
        assert_eq!(parse_query(b"full&openmetrics"), (Format::Prometheus, true));
        assert_eq!(parse_query(b"prometheus"), (Format::Prometheus, false));
        assert_eq!(parse_query(b"jsonx"), (Format::Text, false));
    }

    #[test]
    fn path_matching() {
        let mut p = ParamStore::new();
        p.push(b"REQUEST_URI", b"/status?json");
        assert!(matches(&p, b"/status"));
        assert!(!matches(&p, b""));
        p.push(b"SCRIPT_NAME", b"/index.php");
        assert!(!matches(&p, b"/status"));
    }

    #[test]
    fn json_escapes() {
        assert_eq!(js("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
    }
}
