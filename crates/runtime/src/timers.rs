//! The connection timers of a server: an indexed binary heap with at most one entry per
//! connection slot (so memory is bounded by the open connections, whatever the churn), the
//! listener's own deadline, and the moment the timerfd is set to fire. Pure: every method
//! takes the time as an argument and says when the timerfd must fire; the caller
//! (deadlines.rs) sets it. Unit-tested with a fake clock below.
//!
//! A connection's entry is armed lazily (`Conn::armed`): it is moved only when the deadline
//! comes earlier; a later one is found when the entry fires and re-armed then. So a kept
//! connection's requests do not touch the heap; a connection's close removes its entry.
//! Expiries are rounded up to a [`TICK`], so deadlines close together cost one wake-up.

use std::time::{Duration, Instant};

/// Granularity of the timerfd: deadlines fire at most this much late.
pub const TICK: Duration = Duration::from_millis(10);

/// An entry: its deadline and the connection (slot index, generation) it belongs to.
pub type Entry = (Instant, u32, u32);

/// No heap position.
const NONE: u32 = u32::MAX;

pub struct Timers {
    heap: Vec<Entry>,
    /// Heap position of each slot's entry (indexed by slot), or [`NONE`].
    pos: Vec<u32>,
    /// The listener's deadline (a policy recheck), kept apart from the connections'.
    listener: Option<Instant>,
    /// When the timerfd is set to fire, if it is.
    fires_at: Option<Instant>,
    /// Ticks are counted from here.
    base: Instant,
}

impl Timers {
    pub fn new(now: Instant) -> Timers {
        Timers {
            heap: Vec::new(),
            pos: Vec::new(),
            listener: None,
            fires_at: None,
            base: now,
        }
    }

    /// `at` rounded up to the next tick.
    fn tick_after(&self, at: Instant) -> Instant {
        let since = at.saturating_duration_since(self.base);
        let ticks = since.as_nanos().div_ceil(TICK.as_nanos());
        self.base + TICK * ticks.min(u32::MAX as u128) as u32
    }

    /// The earliest deadline of all.
    fn earliest(&self) -> Option<Instant> {
        let conn = self.heap.first().map(|e| e.0);
        match (conn, self.listener) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// After a change: the new firing time if the timerfd must be set earlier than it is.
    fn moved_earlier(&mut self) -> Option<Instant> {
        let fire = self.tick_after(self.earliest()?);
        if self.fires_at.is_none_or(|f| fire < f) {
            self.fires_at = Some(fire);
            return Some(fire);
        }
        None
    }

    /// Sets the entry of slot `idx` (connection generation `gen`) to `at`, replacing the one
    /// it had. Returns the new firing time when the timerfd must be set earlier.
    pub fn set(&mut self, at: Instant, idx: u32, gen: u32) -> Option<Instant> {
        let i = idx as usize;
        if self.pos.len() <= i {
            self.pos.resize(i + 1, NONE);
        }
        match self.pos[i] {
            NONE => {
                self.heap.push((at, idx, gen));
                let p = self.heap.len() - 1;
                self.pos[i] = p as u32;
                self.sift_up(p);
            }
            p => {
                let p = p as usize;
                let old = self.heap[p].0;
                self.heap[p] = (at, idx, gen);
                if at < old {
                    self.sift_up(p);
                } else {
                    self.sift_down(p);
                }
            }
        }
        self.moved_earlier()
    }

    /// Removes the entry of slot `idx`, if any (its connection closed).
    pub fn remove(&mut self, idx: u32) {
        let i = idx as usize;
        let Some(&p) = self.pos.get(i) else {
            return;
        };
        if p == NONE {
            return;
        }
        self.take_at(p as usize);
    }

    /// Sets the listener's deadline (kept if an earlier one is set).
    pub fn set_listener(&mut self, at: Instant) -> Option<Instant> {
        if self.listener.is_some_and(|l| l <= at) {
            return None;
        }
        self.listener = Some(at);
        self.moved_earlier()
    }

    /// Moves the entries due at `now` into `due` (earliest first; the listener's as slot
    /// `u32::MAX`) and returns when the timerfd must fire next (`None`: disarm it).
    pub fn expire(&mut self, now: Instant, due: &mut Vec<Entry>) -> Option<Instant> {
        if self.listener.is_some_and(|l| l <= now) {
            due.push((self.listener.take().expect("checked"), u32::MAX, 0));
        }
        while let Some(&e) = self.heap.first() {
            if e.0 > now {
                break;
            }
            self.take_at(0);
            due.push(e);
        }
        self.fires_at = self.earliest().map(|at| self.tick_after(at));
        self.fires_at
    }

    fn take_at(&mut self, p: usize) {
        let last = self.heap.len() - 1;
        self.heap.swap(p, last);
        let (_, idx, _) = self.heap.pop().expect("not empty");
        self.pos[idx as usize] = NONE;
        if p < self.heap.len() {
            self.pos[self.heap[p].1 as usize] = p as u32;
            self.sift_down(p);
            self.sift_up(p);
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].1 as usize] = a as u32;
        self.pos[self.heap[b].1 as usize] = b as u32;
    }

    fn sift_up(&mut self, mut p: usize) {
        while p > 0 {
            let parent = (p - 1) / 2;
            if self.heap[parent].0 <= self.heap[p].0 {
                break;
            }
            self.swap(p, parent);
            p = parent;
        }
    }

    fn sift_down(&mut self, mut p: usize) {
        loop {
            let (l, r) = (2 * p + 1, 2 * p + 2);
            let mut m = p;
            if l < self.heap.len() && self.heap[l].0 < self.heap[m].0 {
                m = l;
            }
            if r < self.heap.len() && self.heap[r].0 < self.heap[m].0 {
                m = r;
            }
            if m == p {
                return;
            }
            self.swap(p, m);
            p = m;
        }
    }

    /// Entries held (one per connection with a deadline, at most).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn due_at(t: &mut Timers, now: Instant) -> (Vec<u32>, Option<Instant>) {
        let mut due = Vec::new();
        let next = t.expire(now, &mut due);
        (due.iter().map(|e| e.1).collect(), next)
    }

    #[test]
    fn fires_at_the_tick_after_the_earliest_deadline() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        assert_eq!(t.set(t0 + ms(25), 1, 1), Some(t0 + ms(30)));
        // A later deadline does not move the timer; an earlier one does.
        assert_eq!(t.set(t0 + ms(100), 2, 1), None);
        assert_eq!(t.set(t0 + ms(3), 3, 1), Some(t0 + ms(10)));
        // A deadline in the same tick does not touch the timerfd again.
        assert_eq!(t.set(t0 + ms(7), 4, 1), None);
        assert_eq!(t.set_listener(t0 + ms(1)), None);
        assert_eq!(t.earliest(), Some(t0 + ms(1)));
    }

    #[test]
    fn expire_hands_out_what_is_due_in_order_and_rearms() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        for (i, d) in [40u64, 10, 30, 20, 500].iter().enumerate() {
            t.set(t0 + ms(*d), i as u32, 7);
        }
        t.set_listener(t0 + ms(25));
        assert_eq!(due_at(&mut t, t0 + ms(9)), (vec![], Some(t0 + ms(10))));
        assert_eq!(
            due_at(&mut t, t0 + ms(30)),
            (vec![u32::MAX, 1, 3, 2], Some(t0 + ms(40)))
        );
        assert_eq!(due_at(&mut t, t0 + ms(40)), (vec![0], Some(t0 + ms(500))));
        assert_eq!(due_at(&mut t, t0 + ms(10_000)), (vec![4], None));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn one_entry_per_slot_moved_in_place_and_removed_on_close() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        t.set(t0 + ms(300_000), 5, 1);
        t.set(t0 + ms(2_000), 5, 1);
        t.set(t0 + ms(50), 6, 1);
        assert_eq!(t.len(), 2);
        t.remove(6);
        t.remove(6);
        t.remove(99);
        assert_eq!(t.len(), 1);
        assert_eq!(due_at(&mut t, t0 + ms(2_000)), (vec![5], None));
        // Moving an entry later keeps the heap in order.
        for i in 0..100u32 {
            t.set(t0 + ms(1_000 + (i as u64 * 37) % 100), i, 1);
        }
        t.set(t0 + ms(5_000), 0, 1);
        let (got, _) = due_at(&mut t, t0 + ms(1_100));
        assert_eq!(got.len(), 99);
        assert!(!got.contains(&0));
    }

    #[test]
    fn connection_churn_leaves_no_entries_behind() {
        // 100,000 connections that open (a keep-alive deadline), end (a linger deadline) and
        // close: nothing stays in the heap, so memory does not grow with the churn.
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        for n in 0..100_000u32 {
            let idx = n % 64;
            t.set(t0 + ms(300_000), idx, n + 1);
            t.set(t0 + ms(2_000), idx, n + 1);
            t.remove(idx);
        }
        assert_eq!(t.len(), 0);
    }
}
