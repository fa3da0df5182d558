//! The soak's workers: each runs one kind of traffic until the deadline, verifying every
//! response, and reconnects after a failure (the failure is counted and named).

use crate::soak_conn::{fnv1a64, Check, Expect, Out, Rec, SConn, FNV_OFFSET};
use fcgi_runtime_protocol::record::rtype;
use fcgi_runtime_tools::client::{encode_begin_and_params, Request};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The kinds of worker, in the order `-c` hands them out.
pub(crate) const KINDS: [&str; 6] = ["keep", "nokeep", "mux", "upload", "abort", "idle"];

/// What every worker shares.
pub(crate) struct Soak {
    pub(crate) address: String,
    pub(crate) timeout: Duration,
    pub(crate) deadline: Instant,
    pub(crate) pattern: Arc<Vec<u8>>,
    pub(crate) max_upload: usize,
    pub(crate) depth: usize,
    pub(crate) errors: AtomicU64,
    pub(crate) done: AtomicU64,
    /// The first error messages (the rest are only counted).
    pub(crate) messages: Mutex<Vec<String>>,
}

const MAX_MESSAGES: usize = 20;

impl Soak {
    pub(crate) fn error(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut m = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() < MAX_MESSAGES {
            m.push(msg);
        }
    }
}

/// Requests completed, by label, and reconnections, merged over workers.
pub(crate) type Counts = BTreeMap<&'static str, u64>;

struct Pending {
    label: &'static str,
    exp: Expect,
    check: Check,
    stdout_closed: bool,
    aborted: bool,
    abort_on_output: bool,
}

/// How a request is sent.
#[derive(Clone, Copy)]
enum Send {
    Whole,
    /// ABORT_REQUEST after the params and `n` bytes of STDIN (of the declared length).
    AbortAfter(usize),
    /// ABORT_REQUEST right after the whole request.
    AbortAtOnce,
    /// ABORT_REQUEST once the first STDOUT record arrives.
    AbortOnOutput,
}

pub(crate) struct Worker<'a> {
    s: &'a Soak,
    name: String,
    rng: u64,
    seq: u64,
    next_id: u16,
    conn: Option<SConn>,
    pending: HashMap<u16, Pending>,
    pub(crate) counts: Counts,
}

impl<'a> Worker<'a> {
    pub(crate) fn new(s: &'a Soak, kind: &str, index: usize) -> Worker<'a> {
        Worker {
            s,
            name: format!("{kind}#{index}"),
            rng: 0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d),
            seq: 0,
            next_id: 0,
            conn: None,
            pending: HashMap::new(),
            counts: Counts::new(),
        }
    }

    fn rand(&mut self, n: usize) -> usize {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as usize % n.max(1)
    }

    fn live(&self) -> bool {
        Instant::now() < self.s.deadline
    }

    fn count(&mut self, label: &'static str) {
        *self.counts.entry(label).or_default() += 1;
    }

    /// Records a failure, drops the connection and what was in flight on it.
    fn fail(&mut self, msg: String) {
        let lost = self.pending.len();
        let what = if lost > 1 {
            format!(" ({lost} requests in flight lost)")
        } else {
            String::new()
        };
        self.s.error(format!("{}: {msg}{what}", self.name));
        self.pending.clear();
        if let Some(c) = self.conn.take() {
            c.close();
        }
        // A broken server must not turn the run into a busy loop.
        std::thread::sleep(Duration::from_millis(50));
    }

    fn conn(&mut self) -> Result<&mut SConn, String> {
        if self.conn.is_none() {
            let c = SConn::open(&self.s.address, self.s.timeout, self.s.pattern.clone())
                .map_err(|e| format!("connect to {}: {e}", self.s.address))?;
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }

    fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close();
        }
    }

    /// A request id not in flight (ids rotate, so a stray record for an ended one shows).
    fn alloc_id(&mut self) -> u16 {
        loop {
            self.next_id = self.next_id % 4096 + 1;
            if !self.pending.contains_key(&self.next_id) {
                return self.next_id;
            }
        }
    }

    /// Sends a request with a body of `len` bytes; returns its id.
    fn start(
        &mut self,
        label: &'static str,
        keep: bool,
        len: usize,
        how: Send,
    ) -> Result<u16, String> {
        let id = self.alloc_id();
        self.seq += 1;
        let token = format!("{}-{}", self.name, self.seq);
        let off = self.rand(4096);
        let fnv = fnv1a64(FNV_OFFSET, &self.s.pattern[off..off + len]);
        let mut req = Request::new(id)
            .keep_conn(keep)
            .param("REQUEST_METHOD", if len > 0 { "POST" } else { "GET" })
            .param("CONTENT_LENGTH", len.to_string())
            .param("CONTENT_TYPE", "application/octet-stream")
            .param("SCRIPT_NAME", "/soak")
            .param("REQUEST_URI", format!("/soak/{label}"))
            .param("QUERY_STRING", "")
            .param("SERVER_PROTOCOL", "HTTP/1.1")
            .param("GATEWAY_INTERFACE", "CGI/1.1")
            .param("REMOTE_ADDR", "127.0.0.1");
        req = req.param("SOAK_ID", &token);
        let mut head = Vec::with_capacity(512);
        encode_begin_and_params(&req, &mut head);
        let c = self.conn()?;
        c.send(Out::Raw(head));
        match how {
            Send::AbortAfter(n) => {
                c.send(Out::Stdin {
                    id,
                    off,
                    len: n.min(len),
                    end: false,
                });
                c.abort(id);
            }
            _ => c.send(Out::Stdin {
                id,
                off,
                len,
                end: true,
            }),
        }
        if matches!(how, Send::AbortAtOnce) {
            c.abort(id);
        }
        let aborted = matches!(how, Send::AbortAfter(_) | Send::AbortAtOnce);
        self.pending.insert(
            id,
            Pending {
                label,
                exp: Expect { token, len, fnv },
                check: Check::new(),
                stdout_closed: false,
                aborted,
                abort_on_output: matches!(how, Send::AbortOnOutput),
            },
        );
        Ok(id)
    }

    fn read(&mut self) -> Result<Option<Rec>, String> {
        let c = self.conn.as_mut().ok_or("no connection")?;
        c.read().map_err(|e| {
            let why = match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    format!("timeout: nothing read for {:?}", self.s.timeout)
                }
                _ => format!("read: {e}"),
            };
            match c.write_error() {
                Some(w) => format!("{why} (write: {w})"),
                None => why,
            }
        })
    }

    /// Reads until one request ends; verifies it and counts it under its label.
    fn finish_one(&mut self) -> Result<u16, String> {
        loop {
            let Some(r) = self.read()? else {
                return Err(format!(
                    "the server closed the connection with {} requests unanswered",
                    self.pending.len()
                ));
            };
            let Some(p) = self.pending.get_mut(&r.id) else {
                return Err(format!(
                    "record type {} for request id {} not in flight",
                    r.rtype, r.id
                ));
            };
            match r.rtype {
                rtype::STDOUT if p.stdout_closed => {
                    return Err(format!("STDOUT after its end (id {})", r.id))
                }
                rtype::STDOUT if r.content.is_empty() => p.stdout_closed = true,
                rtype::STDOUT => {
                    p.check.feed(&r.content);
                    if p.abort_on_output && !p.aborted {
                        p.aborted = true;
                        if let Some(c) = &self.conn {
                            c.abort(r.id);
                        }
                    }
                }
                rtype::STDERR => {}
                rtype::END_REQUEST => {
                    let p = self.pending.remove(&r.id).expect("in flight");
                    self.s.done.fetch_add(1, Ordering::Relaxed);
                    return self.judge(r.id, p, &r.content);
                }
                t => return Err(format!("unexpected record type {t} (id {})", r.id)),
            }
        }
    }

    /// Verifies an ended request. A response error is counted but keeps the connection.
    fn judge(&mut self, id: u16, p: Pending, end: &[u8]) -> Result<u16, String> {
        if end.len() != 8 {
            return Err(format!("END_REQUEST of {} bytes", end.len()));
        }
        let app = u32::from_be_bytes([end[0], end[1], end[2], end[3]]);
        let verdict = if end[4] != 0 {
            Err(format!("protocolStatus {}", end[4]))
        } else if p.aborted && !p.stdout_closed {
            self.count("aborts_cut_short");
            Ok(())
        } else if !p.stdout_closed {
            Err("END_REQUEST before the end of STDOUT".to_string())
        } else if app != 0 && !p.aborted {
            Err(format!("appStatus {app}"))
        } else {
            p.check.verify(&p.exp)
        };
        match verdict {
            Ok(()) => self.count(p.label),
            Err(e) => self.s.error(format!(
                "{}: {} request SOAK_ID={} ({} bytes up): {e}",
                self.name, p.label, p.exp.token, p.exp.len
            )),
        }
        Ok(id)
    }

    /// Sends one request on the kept connection and waits for its end.
    fn one(
        &mut self,
        label: &'static str,
        keep: bool,
        len: usize,
        how: Send,
    ) -> Result<(), String> {
        self.start(label, keep, len, how)?;
        self.finish_one().map(|_| ())
    }

    /// Waits for the server to close the connection: EOF or a reset, nothing else.
    fn expect_close(&mut self, why: &str) -> Result<(), String> {
        let c = self.conn.as_mut().ok_or("no connection")?;
        match c.read() {
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(Some(r)) => return Err(format!("{why}: got record type {} instead", r.rtype)),
            Err(e) => return Err(format!("{why}: {e}")),
        }
        self.close();
        Ok(())
    }

    fn small(&mut self) -> usize {
        const SIZES: [usize; 10] = [0, 1, 7, 100, 1000, 4096, 16384, 65535, 65536, 100_000];
        SIZES[self.rand(SIZES.len())]
    }

    fn step(&mut self, kind: &str) -> Result<(), String> {
        match kind {
            "keep" => {
                let n = self.small();
                self.one("keep", true, n, Send::Whole)
            }
            "nokeep" => {
                let n = self.small().min(16384);
                self.one("nokeep", false, n, Send::Whole)?;
                self.expect_close("FCGI_KEEP_CONN unset, the server must close")
            }
            "mux" => self.mux_step(),
            "upload" => {
                let n = match self.seq % 8 {
                    0 => self.s.max_upload, // the largest early, so the warm-up sees it
                    7 => 0,
                    _ => 256 * 1024 + self.rand(self.s.max_upload.saturating_sub(256 * 1024)),
                };
                self.one("upload", true, n, Send::Whole)
            }
            "abort" => {
                let big = (1 << 20).min(self.s.max_upload);
                match self.seq % 4 {
                    0 => self.one("abort_before_upload", true, 65536, Send::AbortAfter(0)),
                    1 => self.one("abort_during_upload", true, big, Send::AbortAfter(big / 8)),
                    2 => self.one("abort_while_streaming", true, big, Send::AbortOnOutput),
                    // The connection still serves a normal request after the aborts.
                    _ => self.one("after_abort", true, 1000, Send::Whole),
                }
            }
            "idle" => {
                let n = self.small().min(4096);
                self.one("idle", true, n, Send::Whole)?;
                self.expect_close("an idle keep-alive connection must be closed by the server")?;
                self.count("reconnects_after_idle_close");
                Ok(())
            }
            _ => Err(format!("unknown kind {kind}")),
        }
    }

    /// Keeps `depth` ids in flight; every tenth is aborted as soon as it is sent.
    fn mux_step(&mut self) -> Result<(), String> {
        while self.pending.len() < self.s.depth && self.live() {
            let n = self.small().min(16384);
            let (label, how) = match self.seq % 10 {
                9 => ("mux_abort", Send::AbortAtOnce),
                _ => ("mux", Send::Whole),
            };
            self.start(label, true, n, how)?;
        }
        if !self.pending.is_empty() {
            self.finish_one()?;
        }
        Ok(())
    }

    /// Runs `kind` until the deadline, then lets what is in flight end.
    pub(crate) fn run(mut self, kind: &str) -> Counts {
        while self.live() {
            if let Err(e) = self.step(kind) {
                self.fail(e);
            }
        }
        while !self.pending.is_empty() {
            if let Err(e) = self.finish_one() {
                self.fail(e);
            }
        }
        self.close();
        self.counts
    }

    /// One normal request on a new connection: the server still answers after the load.
    pub(crate) fn final_check(mut self) -> Result<(), String> {
        let r = self.one("final", true, 1000, Send::Whole);
        let errors = self.s.errors.load(Ordering::Relaxed);
        self.close();
        r?;
        match self.counts.get("final") {
            Some(1) => Ok(()),
            _ => Err(format!("the final request failed ({errors} errors so far)")),
        }
    }
}
