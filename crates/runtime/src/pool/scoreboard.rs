//! The scoreboard: one shared mapping made before the first fork, a header and one slot per
//! worker. Workers write only their own slot, with atomics; the parent reads it for its
//! dynamic and on-demand decisions, the slow log and the terminate timeout, and a worker
//! renders it for the status page. A pool that execs programs (fcgi-spawn) backs it with a
//! memfd the programs inherit (`FCGI_RUNTIME_SCOREBOARD=<fd>:<slot>`); otherwise it is an
//! anonymous shared mapping.
//!
//! Every field is an atomic, so readers in other processes never see torn integers; the
//! per-request entries (start, method, URI) are strings and use a seqlock: the writer makes
//! `seq` odd, writes, makes it even; a reader retries while it is odd or changed.

use crate::sys::{self, clock_ms};
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{fence, AtomicI32, AtomicU32, AtomicU64, Ordering};

pub const MAGIC: u32 = 0x4643_5342; // "FCSB"
/// 3: the pool's `draining` flag, ping and access log settings, connection and refusal
/// counters, the request-duration histogram, per-slot open connections.
pub const VERSION: u32 = 3;

/// Slot states. Busy is not a state: a running worker with requests in flight is busy.
pub const FREE: u32 = 0;
/// Forked, not yet handed to the application.
pub const STARTING: u32 = 1;
/// Serving (idle when `in_flight` is 0).
pub const RUNNING: u32 = 2;
/// Draining: accepts no connection, ends when it holds none.
pub const DRAINING: u32 = 3;

/// In-flight requests a slot describes (a multiplexing or multi-threaded worker may hold
/// more; those are counted in `in_flight` but not shown).
pub const ENTRIES: usize = 8;
const METHOD_WORDS: usize = 2;
const URI_WORDS: usize = 28;
const PATH_WORDS: usize = 32;
const NAME_WORDS: usize = 8;
const STATUS_WORDS: usize = 16;
const FORMAT_WORDS: usize = 128;

/// Upper bounds (seconds) of the request-duration histogram's buckets; one more bucket holds
/// what is above the last (`+Inf`). Prometheus's default buckets.
pub const DURATION_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of the histogram (the bounds and `+Inf`).
pub const BUCKETS: usize = DURATION_BOUNDS.len() + 1;

/// Why the runtime refused a request, an index into `Header::refused`: FCGI_OVERLOADED (more
/// requests in flight than FCGI_MAX_REQS). The protocol engine's own refusals
/// (FCGI_CANT_MPX_CONN, FCGI_UNKNOWN_ROLE) are a client's mistakes and not counted.
pub const REFUSAL_REASONS: [&str; 1] = ["overloaded"];

/// A fixed-size string in atomic words (NUL-padded; at most `8 * N - 1` bytes).
#[repr(C)]
pub struct Text<const N: usize>([AtomicU64; N]);

impl<const N: usize> Text<N> {
    /// Stores `s`, cut to fit (at a UTF-8 boundary is not needed: readers are lossy).
    pub fn store(&self, s: &[u8]) {
        let s = &s[..s.len().min(N * 8 - 1)];
        for (i, w) in self.0.iter().enumerate() {
            let mut b = [0u8; 8];
            let lo = (i * 8).min(s.len());
            let hi = (i * 8 + 8).min(s.len());
            b[..hi - lo].copy_from_slice(&s[lo..hi]);
            w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
    }

    pub fn load(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(N * 8);
        for w in &self.0 {
            out.extend_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
        let end = out.iter().position(|&b| b == 0).unwrap_or(out.len());
        out.truncate(end);
        out
    }

    pub fn load_string(&self) -> String {
        String::from_utf8_lossy(&self.load()).into_owned()
    }
}

#[repr(C)]
pub struct Header {
    pub magic: AtomicU32,
    pub version: AtomicU32,
    pub slots: AtomicU32,
    /// `Mode` as 0 static, 1 dynamic, 2 ondemand.
    pub mode: AtomicU32,
    pub max_children: AtomicU32,
    /// 1 while the pool drains (a graceful stop, its drain delay included): ping answers 503.
    pub draining: AtomicU32,
    /// Unix time the pool started.
    pub start_time: AtomicU64,
    /// Requests taken by workers (FPM's "accepted conn").
    pub accepted: AtomicU64,
    /// Most workers busy at once, as seen by the parent.
    pub max_active: AtomicU64,
    /// Times a spawn was wanted with `max_children` alive.
    pub max_children_reached: AtomicU64,
    /// Requests that ran past `slowlog_timeout_ms`.
    pub slow_requests: AtomicU64,
    /// Longest accept queue the parent has seen (TCP listeners).
    pub max_listen_queue: AtomicU64,
    /// Settings the workers need (also in exec'd programs, which get no `Settings`).
    pub max_requests: AtomicU64,
    pub slowlog_timeout_ms: AtomicU64,
    pub terminate_timeout_ms: AtomicU64,
    /// Connections workers accepted.
    pub connections: AtomicU64,
    /// Requests the runtime refused, by `REFUSAL_REASONS`.
    pub refused: [AtomicU64; REFUSAL_REASONS.len()],
    /// Ended requests by duration (not cumulative: bucket i counts durations in
    /// (bound i-1, bound i]), their sum in microseconds and their count.
    pub duration_buckets: [AtomicU64; BUCKETS],
    pub duration_sum_us: AtomicU64,
    pub duration_count: AtomicU64,
    pub pool_name: Text<NAME_WORDS>,
    pub status_path: Text<STATUS_WORDS>,
    pub slowlog_path: Text<PATH_WORDS>,
    pub ping_path: Text<STATUS_WORDS>,
    pub ping_response: Text<STATUS_WORDS>,
    pub access_log: Text<PATH_WORDS>,
    pub access_format: Text<FORMAT_WORDS>,
}

impl Header {
    /// Counts an ended request of `us` microseconds in the histogram.
    pub fn observe_duration(&self, us: u64) {
        let secs = us as f64 / 1e6;
        let i = DURATION_BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(DURATION_BOUNDS.len());
        self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.duration_sum_us.fetch_add(us, Ordering::Relaxed);
        self.duration_count.fetch_add(1, Ordering::Relaxed);
    }
}

/// One in-flight request of a worker.
#[repr(C)]
pub struct Entry {
    /// Seqlock: odd while the worker writes the entry.
    pub seq: AtomicU32,
    /// Claimed by a request (0 free, 1 in use).
    pub used: AtomicU32,
    /// CLOCK_MONOTONIC ms at the start (0: never used).
    pub start_ms: AtomicU64,
    /// Unix time (ms) at the start, for the logs.
    pub start_unix_ms: AtomicU64,
    /// Set by the parent once it logged the request as slow (its `start_ms`), so that it logs
    /// it once.
    pub slow_logged: AtomicU64,
    pub method: Text<METHOD_WORDS>,
    pub uri: Text<URI_WORDS>,
}

/// What a reader sees of an entry.
#[derive(Clone, Debug, Default)]
pub struct EntryView {
    pub start_ms: u64,
    pub start_unix_ms: u64,
    pub method: String,
    pub uri: String,
}

impl Entry {
    /// Writer side (the owning worker): claims a free entry.
    pub fn claim(&self) -> bool {
        self.used
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Writer side: describes the request (the entry is claimed).
    pub fn write(&self, start_ms: u64, start_unix_ms: u64, method: &[u8], uri: &[u8]) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.start_ms.store(start_ms, Ordering::Relaxed);
        self.start_unix_ms.store(start_unix_ms, Ordering::Relaxed);
        self.method.store(method);
        self.uri.store(uri);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Writer side: the request ended. Its description stays (the slot's "last request").
    pub fn release(&self) {
        self.used.store(0, Ordering::Release);
    }

    pub fn in_use(&self) -> bool {
        self.used.load(Ordering::Acquire) != 0
    }

    /// Reader side: a consistent copy, or `None` if the writer kept changing it.
    pub fn read(&self) -> Option<EntryView> {
        for _ in 0..64 {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let v = EntryView {
                start_ms: self.start_ms.load(Ordering::Relaxed),
                start_unix_ms: self.start_unix_ms.load(Ordering::Relaxed),
                method: self.method.load_string(),
                uri: self.uri.load_string(),
            };
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return Some(v);
            }
        }
        None
    }
}

#[repr(C)]
pub struct Slot {
    pub pid: AtomicI32,
    pub state: AtomicU32,
    pub generation: AtomicU64,
    /// Requests taken by this worker.
    pub served: AtomicU64,
    /// Requests taken and not yet ended.
    pub in_flight: AtomicU32,
    /// 1 once the worker's runtime writes this slot (always for forked workers; for exec'd
    /// programs only if they run on this library). The parent drains an attached worker with
    /// SIGQUIT, an unattached exec'd program with SIGTERM (libfcgi's graceful exit).
    pub attached: AtomicU32,
    /// CLOCK_MONOTONIC milliseconds when `in_flight` last dropped to 0 (or the worker started).
    pub idle_since_ms: AtomicU64,
    /// Unix time (s) the worker started.
    pub started_unix: AtomicU64,
    /// The entry of the request that ended last, + 1 (0: none yet), and its duration.
    pub last_entry: AtomicU32,
    /// Connections the worker holds open.
    pub open_conns: AtomicU32,
    /// This worker's own `max_requests` (the pool's plus its random jitter, saturated at
    /// `u32::MAX`; 0: no limit), written by the parent before the fork.
    pub max_requests: AtomicU32,
    _pad: u32,
    pub last_duration_ms: AtomicU64,
    pub entries: [Entry; ENTRIES],
}

/// The mapping, owned by the parent (workers inherit it).
pub struct Scoreboard {
    base: *mut u8,
    len: usize,
    slots: usize,
    /// The memfd behind the mapping (exec'd workers map it again), -1 for an anonymous one.
    fd: RawFd,
    /// The memfd was made here (closed on drop with the mapping).
    own_fd: bool,
    /// Unmapped on drop (false in a worker, whose hooks point into it).
    owned: bool,
}

// SAFETY: the mapping is only accessed through atomics.
unsafe impl Send for Scoreboard {}

/// Milliseconds of CLOCK_MONOTONIC (the same clock in every process of the pool).
pub fn now_ms() -> u64 {
    clock_ms(libc::CLOCK_MONOTONIC)
}

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    clock_ms(libc::CLOCK_REALTIME)
}

/// Bytes of a scoreboard of `slots` slots.
pub fn size_for(slots: usize) -> usize {
    std::mem::size_of::<Header>() + slots * std::mem::size_of::<Slot>()
}

impl Scoreboard {
    /// Maps a zeroed scoreboard of `slots` slots: anonymous, or in a memfd (close-on-exec;
    /// `exec_fd` hands it to a program) when `memfd` is set.
    pub fn new(slots: usize, memfd: bool) -> io::Result<Scoreboard> {
        let len = size_for(slots);
        let file = if memfd {
            Some(sys::memfd(c"fcgi-scoreboard", len)?)
        } else {
            None
        };
        // On failure `file` is dropped: the memfd is closed.
        let p = sys::map_shared(len, file.as_ref().map(AsRawFd::as_raw_fd))?;
        let fd = file.map_or(-1, IntoRawFd::into_raw_fd);
        let sb = Scoreboard {
            base: p,
            len,
            slots,
            fd,
            own_fd: fd >= 0,
            owned: true,
        };
        let h = sb.header();
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.version.store(VERSION, Ordering::Relaxed);
        h.slots.store(slots as u32, Ordering::Relaxed);
        h.start_time.store(unix_ms() / 1000, Ordering::Relaxed);
        Ok(sb)
    }

    /// Maps the scoreboard of an inherited memfd (an exec'd worker), checking its header.
    pub fn attach_fd(fd: RawFd) -> io::Result<Scoreboard> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let len = sys::file_size(fd)? as usize;
        if len < std::mem::size_of::<Header>() {
            return Err(bad("too small for a scoreboard"));
        }
        // `len` bytes of the memfd, which fstat said it has.
        let p = sys::map_shared(len, Some(fd))?;
        let mut sb = Scoreboard {
            base: p,
            len,
            slots: 0,
            fd,
            own_fd: false,
            owned: true,
        };
        let h = sb.header();
        let slots = h.slots.load(Ordering::Relaxed) as usize;
        if h.magic.load(Ordering::Relaxed) != MAGIC || h.version.load(Ordering::Relaxed) != VERSION
        {
            return Err(bad("not a scoreboard of this version"));
        }
        if size_for(slots) > len {
            return Err(bad("slot count beyond the mapping"));
        }
        sb.slots = slots;
        Ok(sb)
    }

    pub fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a Header (zeroed memory is a valid one: atomics).
        unsafe { &*self.base.cast::<Header>() }
    }

    /// Number of worker slots.
    pub fn slot_count(&self) -> usize {
        self.slots
    }

    /// Every slot.
    pub fn slots(&self) -> &[Slot] {
        // SAFETY: `slots` slots follow the header inside the mapping; all fields are atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.base.add(std::mem::size_of::<Header>()).cast::<Slot>(),
                self.slots,
            )
        }
    }

    pub fn slot(&self, i: usize) -> &Slot {
        assert!(i < self.slots, "scoreboard slot out of range");
        // SAFETY: slot i lies inside the mapping, after the header; all fields are atomics.
        unsafe {
            &*self
                .base
                .add(std::mem::size_of::<Header>())
                .cast::<Slot>()
                .add(i)
        }
    }

    /// The memfd behind the mapping, -1 if anonymous.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Leaves the mapping in place when this value is dropped (in a worker).
    pub fn keep_mapped(&mut self) {
        self.owned = false;
    }

    /// A free slot, if any.
    pub fn free_slot(&self) -> Option<usize> {
        (0..self.slots).find(|&i| self.slot(i).state.load(Ordering::Acquire) == FREE)
    }
}

impl Drop for Scoreboard {
    fn drop(&mut self) {
        // In a worker the hooks keep pointers into the mapping, so a worker keeps it
        // (`keep_mapped`).
        if self.owned {
            // SAFETY: exactly the mapping (`base`, `len`) that `new`/`attach_fd` made, unmapped
            // once (its owner's drop); the only pointers that outlive the owner are the worker
            // hooks', and a worker calls `keep_mapped` first.
            unsafe { sys::unmap(self.base.cast(), self.len) };
            if self.own_fd {
                // The memfd `new` created, closed once.
                let _ = sys::close(self.fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_cuts() {
        let sb = Scoreboard::new(1, false).unwrap();
        let h = sb.header();
        h.pool_name.store(b"www");
        assert_eq!(h.pool_name.load(), b"www");
        let long = vec![b'x'; 500];
        h.pool_name.store(&long);
        assert_eq!(h.pool_name.load().len(), NAME_WORDS * 8 - 1);
        h.pool_name.store(b"");
        assert!(h.pool_name.load().is_empty());
    }

    #[test]
    fn entries_and_memfd_attach() {
        let sb = Scoreboard::new(2, true).unwrap();
        let e = &sb.slot(1).entries[3];
        assert!(e.claim());
        assert!(!e.claim());
        e.write(5, 6, b"GET", b"/x?y=1");
        let other = Scoreboard::attach_fd(sb.fd()).unwrap();
        assert_eq!(other.slot_count(), 2);
        let v = other.slot(1).entries[3].read().unwrap();
        assert_eq!(
            (v.start_ms, v.method.as_str(), v.uri.as_str()),
            (5, "GET", "/x?y=1")
        );
        assert!(other.slot(1).entries[3].in_use());
        e.release();
        assert!(!other.slot(1).entries[3].in_use());
    }
}
