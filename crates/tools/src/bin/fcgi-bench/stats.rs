//! Results: error kinds, the latency histogram, per-worker statistics.

use std::io;

/// Kinds of errors, counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Connect,
    Timeout,
    Closed,
    Io,
    Protocol,
    ProtocolStatus,
    AppStatus,
    Expect,
    StdinLength,
}

pub(crate) const NKINDS: usize = 9;
pub(crate) const KIND_NAMES: [&str; NKINDS] = [
    "connect",
    "timeout",
    "closed",
    "io",
    "protocol",
    "protocol_status",
    "app_status",
    "expect",
    "stdin_length",
];

pub(crate) fn io_kind(e: &io::Error) -> Kind {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Kind::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => Kind::Closed,
        _ => Kind::Io,
    }
}

/// A log-linear histogram of microseconds: exact below 64, then 32 sub-buckets per power of two
/// (under 3.2 % error), in bounded memory whatever the run length.
#[derive(Clone, Debug)]
pub(crate) struct Hist {
    pub(crate) counts: Vec<u64>,
    pub(crate) n: u64,
    pub(crate) sum: u64,
    pub(crate) min: u64,
    pub(crate) max: u64,
}

impl Hist {
    pub(crate) const BUCKETS: usize = 64 + 58 * 32;

    pub(crate) fn new() -> Hist {
        Hist {
            counts: vec![0; Hist::BUCKETS],
            n: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    pub(crate) fn index(v: u64) -> usize {
        if v < 64 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize;
        let sub = ((v >> (e - 5)) & 31) as usize;
        64 + (e - 6) * 32 + sub
    }

    /// The middle of bucket `i`.
    pub(crate) fn value_of(i: usize) -> u64 {
        if i < 64 {
            return i as u64;
        }
        let j = i - 64;
        let e = j / 32 + 6;
        let sub = (j % 32) as u64;
        let width = 1u64 << (e - 5);
        ((32 + sub) << (e - 5)) + width / 2
    }

    pub(crate) fn record(&mut self, us: u64) {
        self.counts[Hist::index(us)] += 1;
        self.n += 1;
        self.sum = self.sum.saturating_add(us);
        self.min = self.min.min(us);
        self.max = self.max.max(us);
    }

    pub(crate) fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.sum = self.sum.saturating_add(o.sum);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// The value at quantile `q` (0..=1); 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Hist::value_of(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    pub(crate) fn mean(&self) -> u64 {
        self.sum.checked_div(self.n).unwrap_or(0)
    }
}

/// What one worker (or, merged, the whole run) measured.
#[derive(Clone, Debug)]
pub(crate) struct Stats {
    pub(crate) hist: Hist,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) errors: [u64; NKINDS],
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    /// Responses received over the whole run, warm-up included.
    /// Responses that completed before the deadline (all of them without -d).
    pub(crate) served: u64,
    /// Responses to requests still waiting at the deadline, read afterwards.
    pub(crate) late: u64,
    pub(crate) never_served: u64,
    /// Requests sent again on a new connection after a reused one closed before any byte of
    /// their response (see `worker::run_keep`); not errors.
    pub(crate) retried: u64,
    /// Conformance note: responses whose STDOUT ended at END_REQUEST without the empty STDOUT
    /// record (PHP's layer never sends it); errors instead with --strict.
    pub(crate) stdout_unterminated: u64,
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            hist: Hist::new(),
            ok: 0,
            failed: 0,
            errors: [0; NKINDS],
            bytes_in: 0,
            bytes_out: 0,
            served: 0,
            late: 0,
            never_served: 0,
            retried: 0,
            stdout_unterminated: 0,
        }
    }

    pub(crate) fn merge(&mut self, o: &Stats) {
        self.hist.merge(&o.hist);
        self.ok += o.ok;
        self.failed += o.failed;
        for (a, b) in self.errors.iter_mut().zip(&o.errors) {
            *a += b;
        }
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.served += o.served;
        self.late += o.late;
        self.retried += o.retried;
        self.stdout_unterminated += o.stdout_unterminated;
        self.never_served += o.never_served + u64::from(o.served == 0);
    }

    pub(crate) fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }
}
