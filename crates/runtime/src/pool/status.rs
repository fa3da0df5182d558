//! The status page, answered by a worker's runtime for the pool's `status_path` (the
//! application never sees that request): PHP-FPM's fields and names, as plain text
//! (default), JSON (`?json`) or the Prometheus text format (`?openmetrics` or `?prometheus`);
//! `full` adds one entry per worker. Rendered from the scoreboard, which every worker maps.

use super::scoreboard::{self, Header, Slot, DRAINING, FREE, STARTING};
use fcgi_runtime_protocol::ParamStore;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// OpenMetrics 1.0.0 (`?openmetrics`).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`?prometheus`).
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
            b"openmetrics" => f = Format::OpenMetrics,
            b"prometheus" => f = Format::Prometheus,
            b"full" => full = true,
            _ => {}
        }
    }
    (f, full)
}

/// The whole response to a status request (its query picks the format).
pub fn page(h: &Header, slots: &[Slot], listen_fd: RawFd, params: &ParamStore) -> Vec<u8> {
    let (format, full) = parse_query(params.get(b"QUERY_STRING").unwrap_or(b""));
    let snap = snapshot(h, slots, listen_fd);
    super::status_render::render(&snap, format, full)
}

/// One worker as the page shows it.
pub(super) struct Proc {
    /// Its scoreboard slot: the stable key of its metrics.
    pub(super) slot: usize,
    pub(super) pid: i32,
    pub(super) state: &'static str,
    pub(super) start: u64,
    pub(super) requests: u64,
    pub(super) in_flight: u32,
    /// The current request (the oldest in flight), else the last one.
    pub(super) req: Option<(scoreboard::EntryView, u64)>,
}

/// The pool's numbers.
pub struct Snapshot {
    pub(super) pool: String,
    pub(super) pm: &'static str,
    pub(super) start_time: u64,
    pub(super) now: u64,
    pub(super) accepted: u64,
    pub(super) listen_queue: u32,
    pub(super) max_listen_queue: u64,
    pub(super) listen_queue_len: u32,
    pub(super) idle: usize,
    pub(super) active: usize,
    pub(super) max_active: u64,
    pub(super) max_children_reached: u64,
    pub(super) slow: u64,
    pub(super) procs: Vec<Proc>,
    pub(super) max_children: u64,
    pub(super) draining: bool,
    /// Connections accepted by workers, and open now.
    pub(super) connections: u64,
    pub(super) open_conns: u64,
    /// Refused requests by reason.
    pub(super) refused: Vec<(&'static str, u64)>,
    /// The duration histogram: per-bucket counts (not cumulative) and the sum in µs.
    pub(super) buckets: [u64; scoreboard::BUCKETS],
    pub(super) duration_sum_us: u64,
}

/// Reads the scoreboard (`slots` follow `h` in the mapping). `listen_fd` gives the queue.
pub fn snapshot(h: &Header, slots: &[Slot], listen_fd: RawFd) -> Snapshot {
    let now_unix = scoreboard::unix_ms() / 1000;
    let now_ms = scoreboard::now_ms();
    let (listen_queue, listen_queue_len) = super::listen::queue(listen_fd).unwrap_or((0, 0));
    let mut procs = Vec::new();
    let (mut idle, mut active) = (0, 0);
    let mut open_conns = 0u64;
    for (slot, s) in slots.iter().enumerate() {
        let st = s.state.load(Ordering::Acquire);
        let pid = s.pid.load(Ordering::Relaxed);
        if st == FREE || pid == 0 {
            continue;
        }
        let in_flight = s.in_flight.load(Ordering::Relaxed);
        open_conns += u64::from(s.open_conns.load(Ordering::Relaxed));
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
            slot,
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
        max_children: u64::from(h.max_children.load(Ordering::Relaxed)),
        draining: h.draining.load(Ordering::Relaxed) != 0,
        connections: h.connections.load(Ordering::Relaxed),
        open_conns,
        refused: scoreboard::REFUSAL_REASONS
            .iter()
            .zip(&h.refused)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
            .collect(),
        buckets: std::array::from_fn(|i| h.duration_buckets[i].load(Ordering::Relaxed)),
        duration_sum_us: h.duration_sum_us.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(parse_query(b""), (Format::Text, false));
        assert_eq!(parse_query(b"json&full"), (Format::Json, true));
        assert_eq!(
            parse_query(b"full&openmetrics"),
            (Format::OpenMetrics, true)
        );
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
}
