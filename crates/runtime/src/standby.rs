//! The standby thread's timing: every [`STANDBY_DELAY`] it harvests the epoll of each worker
//! that has been busy since the last look (its thread serves a request or waits for input, so
//! nobody waits in that epoll), and the orphan epoll. A request arriving on a busy worker's
//! connection therefore waits at most about 5 ms, and aborts, GET_VALUES, timers and
//! write-behind output are handled while every thread is busy. The decisions are pure
//! ([`Watch`]); server.rs runs the thread.
//!
//! It parks after a quarter of a second in which every worker was waiting (an idle process has
//! no periodic wake-up) and is unparked when a worker stops waiting.

use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a worker's epoll may stay unattended before the standby harvests it.
pub const STANDBY_DELAY: Duration = Duration::from_millis(5);
/// Consecutive checks that found every worker waiting before the standby parks.
const PARK_AFTER: u32 = 50;

/// What the standby remembers of one worker between two checks.
#[derive(Debug, Default)]
pub struct Seen {
    epoch: Option<u64>,
}

impl Seen {
    /// True when the worker must be harvested: it is not waiting now and has not entered its
    /// epoll since the last check (`epoch` counts its entries).
    pub fn unattended(&mut self, waiting: bool, epoch: u64) -> bool {
        let still = self.epoch == Some(epoch);
        self.epoch = Some(epoch);
        still && !waiting
    }
}

/// When to park.
#[derive(Debug, Default)]
pub struct Watch {
    idle_checks: u32,
}

impl Watch {
    /// After a check: `all_waiting` when every worker was waiting. Returns true when the
    /// standby should park.
    pub fn check(&mut self, all_waiting: bool) -> bool {
        if !all_waiting {
            self.idle_checks = 0;
            return false;
        }
        self.idle_checks += 1;
        if self.idle_checks > PARK_AFTER {
            self.idle_checks = 0;
            return true;
        }
        false
    }
}

/// The standby thread's parking place.
#[derive(Default)]
pub struct Standby {
    lock: Mutex<()>,
    cv: Condvar,
    parked: AtomicBool,
    pub started: AtomicBool,
}

impl Standby {
    /// Sleeps for [`STANDBY_DELAY`].
    pub fn nap(&self) {
        let mut g = self.lock.lock();
        self.cv.wait_for(&mut g, STANDBY_DELAY);
    }

    /// Parks until [`Standby::unpark`], unless `still_needed` (checked after announcing the
    /// parking, so that an unpark in between is not lost).
    pub fn park(&self, still_needed: impl Fn() -> bool) {
        let mut g = self.lock.lock();
        self.parked.store(true, Ordering::SeqCst);
        if !still_needed() {
            self.cv.wait(&mut g);
        }
        self.parked.store(false, Ordering::SeqCst);
    }

    /// Called when the last waiting thread leaves the epoll: a parked standby resumes its
    /// checks. A load of one atomic when it is not parked.
    pub fn unpark(&self) {
        if self.parked.load(Ordering::SeqCst) {
            let _g = self.lock.lock();
            self.cv.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_harvested_only_when_busy_for_a_whole_delay() {
        let mut w = Seen::default();
        // The first look only records the epoch.
        assert!(!w.unattended(false, 5));
        // Not waiting, no entry into its epoll since: harvest.
        assert!(w.unattended(false, 5));
        // It entered its epoll and left meanwhile: it served something, not stuck.
        assert!(!w.unattended(false, 6));
        // Waiting right now: its own thread handles its events.
        assert!(!w.unattended(true, 6));
        assert!(w.unattended(false, 6));
    }

    #[test]
    fn parks_after_a_run_of_checks_with_every_worker_waiting() {
        let mut w = Watch::default();
        let at = (1..200).find(|_| w.check(true));
        assert_eq!(at, Some(PARK_AFTER as usize + 1));
        // A busy worker resets the count.
        let mut w = Watch::default();
        for _ in 0..40 {
            assert!(!w.check(true));
        }
        assert!(!w.check(false));
        for _ in 0..40 {
            assert!(!w.check(true));
        }
    }

    #[test]
    fn an_unpark_between_announcing_and_sleeping_is_not_lost() {
        let s = Standby::default();
        // still_needed says yes: park returns at once.
        s.park(|| true);
        assert!(!s.parked.load(Ordering::SeqCst));
    }
}
