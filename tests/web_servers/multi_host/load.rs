//! The load client: several kept-alive HTTP/1.1 connections to one balancer, each sending GETs
//! back to back until told to stop, every answer checked (status 200, the `host=`, `pid=` and
//! `seq=` lines of tests/web_servers/multi_host/host_app.c, the payload byte for byte). Nothing
//! is retried here: a failed request is counted and the connection opened again; retries are
//! the balancer's business.

use crate::harness::http;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// One request as the client saw it.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub seq: u64,
    pub start: Instant,
    pub end: Instant,
    /// The answering host and worker pid, or what was wrong.
    pub result: Result<(String, u32), String>,
}

/// What every connection thread shares: the answers so far, read while the load runs.
#[derive(Default)]
struct Shared {
    /// host -> the pids that answered for it.
    pids: BTreeMap<String, BTreeSet<u32>>,
    ok: u64,
    failed: u64,
}

/// A running load against one balancer.
pub struct Load {
    pub name: String,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    threads: Vec<JoinHandle<Vec<Outcome>>>,
}

/// How each request asks the application to answer.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// host_app's `sleep_ms`: how long each request holds its worker.
    pub sleep_ms: u32,
    /// host_app's `trace=1`: begin/end lines in the host's log.
    pub trace: bool,
}

/// Sequence numbers unique across every load of the test binary (they name requests in the
/// hosts' traces and the balancers' logs).
static SEQ: AtomicU64 = AtomicU64::new(1);

/// A sequence number no other request of the test binary has.
pub fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// The payload size of request `seq`: mostly small, every 16th one 96 KiB and more (several
/// FastCGI records, several reads at the balancer).
pub fn payload_len(seq: u64) -> usize {
    if seq % 16 == 0 {
        96 * 1024 + (seq % 1000) as usize
    } else {
        64 + (seq * 37 % 6000) as usize
    }
}

/// Checks one answer to request `seq`; the host and pid that answered.
pub fn check_answer(seq: u64, status: u16, body: &[u8]) -> Result<(String, u32), String> {
    if status != 200 {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("status {status}: {text:?}"));
    }
    let mut rest = body;
    let mut line = |name: &str| -> Result<String, String> {
        let eol = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("no {name}= line"))?;
        let l = std::str::from_utf8(&rest[..eol]).map_err(|_| format!("{name}: not UTF-8"))?;
        let v = l
            .strip_prefix(name)
            .and_then(|l| l.strip_prefix('='))
            .ok_or_else(|| format!("want {name}=..., got {l:?}"))?
            .to_string();
        rest = &rest[eol + 1..];
        Ok(v)
    };
    let host = line("host")?;
    let pid: u32 = line("pid")?
        .parse()
        .map_err(|_| "pid= is not a number".to_string())?;
    let got_seq = line("seq")?;
    if got_seq != seq.to_string() {
        return Err(format!(
            "seq={got_seq}, want {seq} (another request's answer)"
        ));
    }
    let want = payload_len(seq);
    if rest.len() != want {
        return Err(format!("payload of {} bytes, want {want}", rest.len()));
    }
    if let Some(i) = rest
        .iter()
        .enumerate()
        .position(|(i, &b)| b != b'a' + ((i as u64 + seq) % 26) as u8)
    {
        return Err(format!("payload differs at byte {i} of {want}"));
    }
    Ok((host, pid))
}

impl Load {
    /// Starts `connections` connections to the balancer on 127.0.0.1:`port`, requesting
    /// `path_prefix` + `hosts?seq=...`.
    pub fn start(
        name: &str,
        port: u16,
        path_prefix: &str,
        connections: usize,
        shape: Shape,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let threads = (0..connections)
            .map(|_| {
                let stop = stop.clone();
                let shared = shared.clone();
                let prefix = path_prefix.to_string();
                thread::spawn(move || run_connection(port, &prefix, shape, &stop, &shared))
            })
            .collect();
        Load {
            name: name.to_string(),
            stop,
            shared,
            threads,
        }
    }

    /// Requests answered correctly so far.
    pub fn ok(&self) -> u64 {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).ok
    }

    /// Requests failed so far.
    pub fn failed(&self) -> u64 {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).failed
    }

    /// The pids that answered for `host` so far.
    pub fn pids_of(&self, host: &str) -> BTreeSet<u32> {
        let s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.pids.get(host).cloned().unwrap_or_default()
    }

    /// Stops the connections (each finishes its request in hand) and returns every outcome.
    pub fn finish(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let mut outcomes = Vec::new();
        for t in self.threads {
            outcomes.extend(t.join().expect("a load thread panicked"));
        }
        outcomes.sort_by_key(|o| o.seq);
        Report {
            name: self.name,
            outcomes,
        }
    }
}

fn run_connection(
    port: u16,
    prefix: &str,
    shape: Shape,
    stop: &AtomicBool,
    shared: &Mutex<Shared>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    let mut conn = None;
    while !stop.load(Ordering::SeqCst) {
        let seq = next_seq();
        let path = format!(
            "{prefix}hosts?seq={seq}&bytes={}&sleep_ms={}{}",
            payload_len(seq),
            shape.sleep_ms,
            if shape.trace { "&trace=1" } else { "" }
        );
        let start = Instant::now();
        let result = (|| {
            if conn.is_none() {
                conn = Some(http::connect(port).map_err(|e| format!("connect: {e}"))?);
            }
            let c = conn.as_mut().expect("connected");
            let r = http::get(c, &path).map_err(|e| format!("{e}"))?;
            if r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            {
                conn = None;
            }
            check_answer(seq, r.status, &r.body)
        })();
        let end = Instant::now();
        {
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            match &result {
                Ok((host, pid)) => {
                    s.ok += 1;
                    s.pids.entry(host.clone()).or_default().insert(*pid);
                }
                Err(_) => s.failed += 1,
            }
        }
        if result.is_err() {
            // Whatever state the connection is in, start afresh.
            conn = None;
        }
        out.push(Outcome {
            seq,
            start,
            end,
            result,
        });
    }
    out
}

/// Every outcome of one load, in sequence order.
pub struct Report {
    pub name: String,
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn total(&self) -> usize {
        self.outcomes.len()
    }

    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| o.result.is_err()).collect()
    }

    /// Requests answered per host.
    pub fn per_host(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for o in &self.outcomes {
            if let Ok((h, _)) = &o.result {
                *m.entry(h.clone()).or_insert(0) += 1;
            }
        }
        m
    }

    /// The requests that were in flight at `t`: sent before it, finished after it.
    pub fn in_flight_at(&self, t: Instant) -> BTreeSet<u64> {
        self.outcomes
            .iter()
            .filter(|o| o.start <= t && o.end >= t)
            .map(|o| o.seq)
            .collect()
    }

    /// The first failures, for a message.
    pub fn show_failures(&self, n: usize) -> String {
        self.failures()
            .iter()
            .take(n)
            .map(|o| format!("  seq {}: {}", o.seq, o.result.as_ref().unwrap_err()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
