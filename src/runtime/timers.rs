//! The connection timers of a server: one heap of (deadline, connection) with lazy deletion,
//! and the moment its timerfd is set to fire. Pure: every method takes the time as an
//! argument and says when the timerfd must fire; the caller (reactor.rs) sets it. Unit-tested
//! with a fake clock below.
//!
//! Each connection keeps at most one live entry (`Conn::armed`); an entry whose connection
//! moved its deadline or closed is skipped when it comes due. Expiries are rounded up to a
//! [`TICK`], so stale entries cost at most one wake-up per tick however many there are.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Granularity of the timerfd: deadlines fire at most this much late.
pub const TICK: Duration = Duration::from_millis(10);

/// An entry: its deadline and the connection (slot index, generation) it belongs to.
pub type Entry = (Instant, u32, u32);

pub struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    /// When the timerfd is set to fire, if it is.
    fires_at: Option<Instant>,
    /// Ticks are counted from here.
    base: Instant,
}

impl Timers {
    pub fn new(now: Instant) -> Timers {
        Timers {
            heap: BinaryHeap::new(),
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

    /// Adds an entry. Returns the new firing time when the timerfd must be set (earlier than
    /// it was, or unset).
    pub fn add(&mut self, at: Instant, idx: u32, gen: u32) -> Option<Instant> {
        self.heap.push(Reverse((at, idx, gen)));
        let fire = self.tick_after(at);
        if self.fires_at.is_none_or(|f| fire < f) {
            self.fires_at = Some(fire);
            return Some(fire);
        }
        None
    }

    /// Moves the entries due at `now` into `due` (earliest first) and returns when the timerfd
    /// must fire next (`None`: disarm it).
    pub fn expire(&mut self, now: Instant, due: &mut Vec<Entry>) -> Option<Instant> {
        while let Some(&Reverse(e)) = self.heap.peek() {
            if e.0 > now {
                break;
            }
            self.heap.pop();
            due.push(e);
        }
        self.fires_at = self
            .heap
            .peek()
            .map(|&Reverse((at, _, _))| self.tick_after(at));
        self.fires_at
    }

    /// The earliest deadline, if any.
    #[cfg(test)]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|&Reverse((at, _, _))| at)
    }

    /// True when no entry, live or stale, is left.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fires_at_the_tick_after_the_earliest_deadline() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        assert_eq!(t.add(t0 + ms(25), 1, 1), Some(t0 + ms(30)));
        // A later deadline does not move the timer; an earlier one does.
        assert_eq!(t.add(t0 + ms(100), 2, 1), None);
        assert_eq!(t.add(t0 + ms(3), 3, 1), Some(t0 + ms(10)));
        // A deadline in the same tick does not touch the timerfd again.
        assert_eq!(t.add(t0 + ms(7), 4, 1), None);
        assert_eq!(t.next_deadline(), Some(t0 + ms(3)));
    }

    #[test]
    fn expire_hands_out_what_is_due_in_order_and_rearms() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        for (i, d) in [40u64, 10, 30, 20, 500].iter().enumerate() {
            t.add(t0 + ms(*d), i as u32, 7);
        }
        let mut due = Vec::new();
        // Nothing is due before the first deadline.
        assert_eq!(t.expire(t0 + ms(9), &mut due), Some(t0 + ms(10)));
        assert!(due.is_empty());
        let next = t.expire(t0 + ms(30), &mut due);
        let got: Vec<u64> = due
            .iter()
            .map(|e| e.0.duration_since(t0).as_millis() as u64)
            .collect();
        assert_eq!(got, vec![10, 20, 30]);
        assert_eq!(next, Some(t0 + ms(40)));
        due.clear();
        assert_eq!(t.expire(t0 + ms(40), &mut due), Some(t0 + ms(500)));
        assert_eq!(due.len(), 1);
        due.clear();
        assert_eq!(t.expire(t0 + ms(10_000), &mut due), None);
        assert_eq!(due.len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn stale_entries_cost_at_most_one_firing_per_tick() {
        // 1,000 connections that closed before their deadline, spread over 100 ms: the
        // timerfd fires once per tick, not once per entry.
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        for i in 0..1000u32 {
            t.add(t0 + Duration::from_micros(100 * i as u64 + 1), i, 1);
        }
        let mut firings = 0;
        let mut now = t0;
        let mut due = Vec::new();
        while let Some(f) = t.expire(now, &mut due) {
            assert!(f > now);
            now = f;
            firings += 1;
        }
        assert_eq!(due.len(), 1000);
        assert!(firings <= 11, "{firings} firings");
    }
}
