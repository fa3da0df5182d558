//! The workers: one thread per connection, keep-alive or not, with DEPTH ids in flight.

use crate::cli::Options;
use crate::encode::Encoded;
use crate::matcher::StreamMatch;
use crate::stats::{io_kind, Kind, Stats};
use fcgi_runtime::addr::{self, ClientStream};
use fcgi_runtime_protocol::record::{rtype, Header, HEADER_LEN, VERSION_1};
use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What all workers share.
pub(crate) struct Shared {
    pub(crate) o: Options,
    /// Indexed by request id (0 unused).
    pub(crate) reqs: Vec<Arc<Encoded>>,
    pub(crate) threaded_writes: bool,
    pub(crate) timeout: Duration,
    pub(crate) issued: AtomicU64,
    pub(crate) done: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) measure_start: Instant,
    pub(crate) deadline: Option<Instant>,
    pub(crate) stdin_line: Vec<u8>,
}

impl Shared {
    /// Takes the permission to send one more request.
    pub(crate) fn may_issue(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        match self.o.count {
            Some(n) => self.issued.fetch_add(1, Ordering::Relaxed) < n,
            None => true,
        }
    }

    pub(crate) fn error(&self, stats: &mut Stats, k: Kind) {
        stats.errors[k as usize] += 1;
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// One request id's state on a connection.
pub(crate) struct Slot {
    pub(crate) active: bool,
    pub(crate) start: Instant,
    pub(crate) stdout_closed: bool,
    pub(crate) bytes_in: u64,
    /// The --expect substring, then the STDIN_LENGTH line, searched as STDOUT arrives.
    pub(crate) checks: Vec<StreamMatch>,
}

/// A connection: the stream, a reusable read buffer, the id slots and an optional writer thread.
pub(crate) struct Conn<'a> {
    pub(crate) sh: &'a Shared,
    pub(crate) stream: ClientStream,
    pub(crate) buf: Vec<u8>,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) slots: Vec<Slot>,
    pub(crate) inflight: usize,
    pub(crate) writer: Option<(mpsc::Sender<u16>, std::thread::JoinHandle<()>)>,
}

pub(crate) const READ_BUF: usize = 128 * 1024;

impl<'a> Conn<'a> {
    pub(crate) fn open(sh: &'a Shared) -> io::Result<Conn<'a>> {
        let stream = addr::connect(&sh.o.address)?;
        stream.set_read_timeout(Some(sh.timeout))?;
        stream.set_write_timeout(Some(sh.timeout))?;
        let writer = if sh.threaded_writes {
            let mut w = stream.try_clone()?;
            let reqs = sh.reqs.clone();
            let (tx, rx) = mpsc::channel::<u16>();
            let h = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    for id in rx {
                        if reqs[id as usize].write_to(&mut w).is_err() {
                            let _ = w.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                })?;
            Some((tx, h))
        } else {
            None
        };
        let depth = sh.reqs.len() - 1;
        let now = Instant::now();
        let mut checks = Vec::new();
        if let Some(e) = &sh.o.expect {
            checks.push(StreamMatch::new(e.as_bytes(), b""));
        }
        if sh.o.expect_stdin_length {
            // The line must start the output or follow a newline.
            checks.push(StreamMatch::new(&sh.stdin_line, b"\n"));
        }
        Ok(Conn {
            sh,
            stream,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            slots: (0..=depth)
                .map(|_| Slot {
                    active: false,
                    start: now,
                    stdout_closed: false,
                    bytes_in: 0,
                    checks: checks.clone(),
                })
                .collect(),
            inflight: 0,
            writer,
        })
    }

    /// Sends the request for `id`.
    pub(crate) fn send(&mut self, id: u16, stats: &mut Stats) -> Result<(), Kind> {
        let now = Instant::now();
        let s = &mut self.slots[id as usize];
        s.active = true;
        s.start = now;
        s.stdout_closed = false;
        s.bytes_in = 0;
        s.checks.iter_mut().for_each(StreamMatch::reset);
        self.inflight += 1;
        let req = &self.sh.reqs[id as usize];
        if now >= self.sh.measure_start {
            stats.bytes_out += req.len();
        }
        match &self.writer {
            Some((tx, _)) => tx.send(id).map_err(|_| Kind::Closed),
            None => req.write_to(&mut self.stream).map_err(|e| io_kind(&e)),
        }
    }

    /// Makes at least `need` bytes available from `self.start`.
    pub(crate) fn fill(&mut self, need: usize) -> Result<(), Kind> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        while self.end - self.start < need {
            if self.start + need > self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(Kind::Closed),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_kind(&e)),
            }
        }
        Ok(())
    }

    /// Reads records until some request ends; returns its id.
    pub(crate) fn next_end(&mut self, stats: &mut Stats) -> Result<u16, Kind> {
        loop {
            self.fill(HEADER_LEN)?;
            let hb: &[u8; HEADER_LEN] = self.buf[self.start..self.start + HEADER_LEN]
                .try_into()
                .expect("8 bytes");
            let h = Header::parse(hb);
            if h.version != VERSION_1 {
                return Err(Kind::Protocol);
            }
            let clen = h.content_len as usize;
            let total = HEADER_LEN + clen + h.padding_len as usize;
            self.fill(total)?;
            let c0 = self.start + HEADER_LEN;
            self.start += total;
            let id = h.request_id as usize;
            if id == 0 || id >= self.slots.len() || !self.slots[id].active {
                return Err(Kind::Protocol);
            }
            let content = &self.buf[c0..c0 + clen];
            let slot = &mut self.slots[id];
            slot.bytes_in += total as u64;
            match h.rtype {
                rtype::STDOUT => {
                    if slot.stdout_closed {
                        return Err(Kind::Protocol);
                    }
                    if clen == 0 {
                        slot.stdout_closed = true;
                    } else {
                        slot.checks.iter_mut().for_each(|m| m.feed(content));
                    }
                }
                rtype::STDERR => {}
                rtype::END_REQUEST => {
                    if clen != 8 {
                        return Err(Kind::Protocol);
                    }
                    let app = u32::from_be_bytes([content[0], content[1], content[2], content[3]]);
                    let proto = content[4];
                    let unterminated = proto == 0 && !slot.stdout_closed;
                    let verdict = if proto != 0 {
                        Some(Kind::ProtocolStatus)
                    } else if unterminated && self.sh.o.strict {
                        Some(Kind::Protocol)
                    } else if app != self.sh.o.app_status {
                        Some(Kind::AppStatus)
                    } else {
                        self.verify_output(id)
                    };
                    if unterminated
                        && !self.sh.o.strict
                        && self.slots[id].start >= self.sh.measure_start
                    {
                        stats.stdout_unterminated += 1;
                    }
                    self.complete(id, verdict, stats);
                    return Ok(id as u16);
                }
                _ => return Err(Kind::Protocol),
            }
        }
    }

    pub(crate) fn verify_output(&self, id: usize) -> Option<Kind> {
        let checks = &self.slots[id].checks;
        let expect = usize::from(self.sh.o.expect.is_some());
        if expect == 1 && !checks[0].found() {
            return Some(Kind::Expect);
        }
        if self.sh.o.expect_stdin_length && !checks[expect].found() {
            return Some(Kind::StdinLength);
        }
        None
    }

    pub(crate) fn complete(&mut self, id: usize, verdict: Option<Kind>, stats: &mut Stats) {
        let now = Instant::now();
        let slot = &mut self.slots[id];
        slot.active = false;
        self.inflight -= 1;
        // A connection whose only response came after the deadline was not served during
        // the run: it waited for the whole of it (libfcgi frees its threads only when the
        // load stops).
        if self.sh.deadline.is_some_and(|d| now > d) {
            stats.late += 1;
        } else {
            stats.served += 1;
        }
        self.sh.done.fetch_add(1, Ordering::Relaxed);
        if slot.start >= self.sh.measure_start {
            stats.bytes_in += slot.bytes_in;
            stats
                .hist
                .record(now.duration_since(slot.start).as_micros() as u64);
            match verdict {
                None => stats.ok += 1,
                Some(k) => {
                    stats.failed += 1;
                    self.sh.error(stats, k);
                }
            }
        }
    }

    pub(crate) fn close(mut self) {
        if let Some((tx, h)) = self.writer.take() {
            let _ = self.stream.shutdown(Shutdown::Both);
            drop(tx);
            let _ = h.join();
        }
    }
}

/// A keep-alive worker: one connection, up to DEPTH ids in flight, ids reused as they end.
/// A connection that fails (closed, reset, timed out, bad framing) is counted as an error and
/// replaced by a new one while there is work left; a failed connect ends the worker.
///
/// One exception with --retry-reused, as nginx and HAProxy make it for their cached upstream
/// connections: when a *reused* connection (one that already carried a complete response) is closed or reset
/// before any byte of the pending responses arrived, those requests are sent once more on a
/// new connection and counted as `retried`, not as errors. FastCGI has no "going away"
/// record, so a server that closes an idle kept connection (a pool worker recycled or
/// drained) cannot keep a request already on its way from meeting the close; the client is
/// the only one that can make it good. A request that fails again on the new connection
/// (never reused) is an error.
pub(crate) fn run_keep(sh: &Shared) -> Stats {
    let mut stats = Stats::new();
    let depth = sh.reqs.len() - 1;
    // Requests to send again without taking a new permission (retries).
    let mut carry = 0usize;
    loop {
        let mut conn = match Conn::open(sh) {
            Ok(c) => c,
            Err(_) => {
                sh.error(&mut stats, Kind::Connect);
                return stats;
            }
        };
        let mut result = Ok(());
        let mut reused = false;
        for id in 1..=depth as u16 {
            if carry > 0 {
                carry -= 1;
            } else if !sh.may_issue() {
                break;
            }
            result = conn.send(id, &mut stats);
            if result.is_err() {
                break;
            }
        }
        // Carried requests beyond this connection's depth cannot happen (carry <= depth), but
        // never lose them silently.
        if carry > 0 {
            sh.error(&mut stats, Kind::Closed);
            carry = 0;
        }
        while result.is_ok() && conn.inflight > 0 {
            result = conn.next_end(&mut stats).and_then(|id| {
                reused = true;
                match sh.may_issue() {
                    true => conn.send(id, &mut stats),
                    false => Ok(()),
                }
            });
        }
        let nothing_received =
            conn.start == conn.end && conn.slots.iter().all(|s| !s.active || s.bytes_in == 0);
        let retry = match result {
            Err(Kind::Closed) if sh.o.retry_reused && reused && nothing_received => conn.inflight,
            _ => 0,
        };
        conn.close();
        match result {
            Ok(()) => return stats,
            Err(_) if retry > 0 => {
                stats.retried += retry as u64;
                carry = retry;
            }
            Err(k) => sh.error(&mut stats, k),
        }
    }
}

/// A no-keep worker: a new connection per request.
pub(crate) fn run_no_keep(sh: &Shared) -> Stats {
    let mut stats = Stats::new();
    while sh.may_issue() {
        let mut conn = match Conn::open(sh) {
            Ok(c) => c,
            Err(_) => {
                sh.error(&mut stats, Kind::Connect);
                continue;
            }
        };
        let r = conn
            .send(1, &mut stats)
            .and_then(|_| conn.next_end(&mut stats));
        if let Err(k) = r {
            sh.error(&mut stats, k);
        }
        conn.close();
    }
    stats
}
