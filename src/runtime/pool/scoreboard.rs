//! The scoreboard: one shared anonymous mapping made before the first fork, a header and one
//! slot per worker. Workers write only their own slot, with atomics; the parent reads it for
//! its dynamic and on-demand decisions (and the status page, a later part, will render it).

use std::io;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

pub const MAGIC: u32 = 0x4643_5342; // "FCSB"
pub const VERSION: u32 = 1;

/// Slot states. Busy is not a state: a running worker with requests in flight is busy.
pub const FREE: u32 = 0;
/// Forked, not yet handed to the application.
pub const STARTING: u32 = 1;
/// Serving (idle when `in_flight` is 0).
pub const RUNNING: u32 = 2;
/// Draining: accepts no connection, ends when it holds none.
pub const DRAINING: u32 = 3;

#[repr(C)]
pub struct Header {
    pub magic: AtomicU32,
    pub version: AtomicU32,
    pub slots: AtomicU32,
    _pad: AtomicU32,
    /// Unix time the pool started.
    pub start_time: AtomicU64,
    /// Requests taken by workers (FPM's "accepted conn").
    pub accepted: AtomicU64,
    /// Most workers busy at once, as seen by the parent.
    pub max_active: AtomicU64,
    /// Times a spawn was wanted with `max_children` alive.
    pub max_children_reached: AtomicU64,
    /// For the slow log (a later part).
    pub slow_requests: AtomicU64,
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
    _pad: AtomicU32,
    /// CLOCK_MONOTONIC milliseconds when `in_flight` last dropped to 0 (or the worker started).
    pub idle_since_ms: AtomicU64,
}

/// The mapping, owned by the parent (workers inherit it).
pub struct Scoreboard {
    base: *mut u8,
    len: usize,
    slots: usize,
    /// Unmapped on drop (false in a worker, whose hooks point into it).
    owned: bool,
}

// SAFETY: the mapping is only accessed through atomics.
unsafe impl Send for Scoreboard {}

/// Milliseconds of CLOCK_MONOTONIC (the same clock in every process of the pool).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

impl Scoreboard {
    /// Maps a zeroed scoreboard of `slots` slots.
    pub fn new(slots: usize) -> io::Result<Scoreboard> {
        let len = std::mem::size_of::<Header>() + slots * std::mem::size_of::<Slot>();
        // SAFETY: an anonymous shared mapping; no existing memory is involved.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let sb = Scoreboard {
            base: p.cast(),
            len,
            slots,
            owned: true,
        };
        let h = sb.header();
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.version.store(VERSION, Ordering::Relaxed);
        h.slots.store(slots as u32, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        h.start_time.store(now, Ordering::Relaxed);
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

    /// Pointers for a worker's hooks (valid as long as the mapping, i.e. the worker's life).
    pub fn raw(&self, i: usize) -> (*const Header, *const Slot) {
        (self.header(), self.slot(i))
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
        // SAFETY: unmaps exactly the mapping made in `new`. In a worker the hooks keep
        // pointers into it, so a worker keeps it (`keep_mapped`).
        if self.owned {
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }
}
