//! The accept policy of a server: how many connections to take from the listen backlog now,
//! and when to look again. Pure: the time is an argument, the accepting itself is the
//! reactor's (reactor.rs); unit-tested with a fake clock below. See docs/runtime-design.md,
//! "Accepting".
//!
//! - **One connection per waiting thread.** As many connections as application threads wait
//!   in accept, less the work already waiting for them: ready requests, and connections
//!   accepted within [`FRESH_WINDOW`] whose first request no thread has taken yet. The rest
//!   stay in the kernel's backlog, where other processes sharing the socket (a pre-fork pool)
//!   can take them.
//! - **Silent connections** (a fresh one that stays silent for its whole window) switch the
//!   policy to batches of [`SILENT_BATCH`] for [`SILENT_HOLD`], so a client that opens
//!   connections and sends nothing cannot slow accepting to one per window.
//! - **Back-off** after accept(2) ran out of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM): a
//!   pause from 10 ms doubling to 500 ms; a closed connection ends it early; logged at most
//!   once per 10 s with the count of failures not logged.
//! - **The connection limit** (FCGI_MAX_CONNS): accepting stops until a connection closes;
//!   logged at most once per 10 s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long an accepted connection that has not delivered a request yet keeps a waiting thread
/// reserved for itself: long enough for a web server's first request to arrive, short enough
/// that silent connections do not stop accepting.
pub const FRESH_WINDOW: Duration = Duration::from_millis(100);
/// After a fresh connection stayed silent for a whole [`FRESH_WINDOW`], fresh connections stop
/// holding threads for this long (renewed by every further silent one).
pub const SILENT_HOLD: Duration = Duration::from_secs(1);
/// Connections accepted per round while fresh connections hold no thread, or for an event
/// loop.
pub const SILENT_BATCH: usize = 64;
/// First pause after a resource failure; doubled per consecutive failure up to
/// [`BACKOFF_MAX`], reset by a successful accept.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
pub const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// At most one log line per this interval about failures or the limit.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the policy allows now.
#[derive(Debug, PartialEq, Eq)]
pub struct Budget {
    /// Connections that may be accepted now.
    pub n: usize,
    /// `n` is a batch (silent connections are about, or an event loop serves): once it is
    /// taken, the backlog may be looked at again at once.
    pub batch: bool,
    /// When the backlog should be looked at again even if no new connection arrives (the
    /// listener is edge-triggered): a fresh window or a pause ends.
    pub recheck: Option<Instant>,
}

/// What the threads and the server look like at the moment of asking.
#[derive(Clone, Copy, Debug, Default)]
pub struct Demand {
    /// Application threads waiting in accept.
    pub waiting: usize,
    /// Requests ready and not yet taken.
    pub ready: usize,
    /// An event loop serves this listener: it takes as many connections as come.
    pub loops: bool,
    /// A connection closed since the last look (a descriptor was freed).
    pub closed: bool,
}

#[derive(Debug)]
pub struct AcceptPolicy {
    /// Connections accepted recently whose first request no thread has taken yet (slot,
    /// generation, accepted at).
    fresh: VecDeque<(u32, u32, Instant)>,
    silent_until: Option<Instant>,
    paused_until: Option<Instant>,
    backoff: Duration,
    full_logged: Option<Instant>,
    err_logged: Option<Instant>,
    err_unlogged: u64,
}

impl Default for AcceptPolicy {
    fn default() -> Self {
        AcceptPolicy {
            fresh: VecDeque::new(),
            silent_until: None,
            paused_until: None,
            backoff: BACKOFF_MIN,
            full_logged: None,
            err_logged: None,
            err_unlogged: 0,
        }
    }
}

impl AcceptPolicy {
    /// How many connections may be accepted at `now`. `still_fresh(slot, generation)` tells
    /// whether a connection accepted earlier is still open with no request taken.
    pub fn budget(
        &mut self,
        now: Instant,
        d: Demand,
        still_fresh: impl Fn(u32, u32) -> bool,
    ) -> Budget {
        if d.closed && self.paused_until.is_some() {
            self.paused_until = Some(now);
        }
        let mut silent = false;
        self.fresh.retain(|&(idx, gen, at)| {
            if !still_fresh(idx, gen) {
                return false;
            }
            let in_window = now.duration_since(at) < FRESH_WINDOW;
            silent |= !in_window;
            in_window
        });
        if silent {
            self.silent_until = Some(now + SILENT_HOLD);
        }
        let silent_mode = self.silent_until.is_some_and(|u| now < u);
        let mut n = if silent_mode {
            // Silent connections are about: a fresh one is no sign of a request coming, so
            // the backlog is taken as fast as it comes while a thread waits in accept.
            if d.waiting == 0 {
                0
            } else {
                SILENT_BATCH
            }
        } else {
            d.waiting.saturating_sub(self.fresh.len() + d.ready)
        };
        if d.loops {
            n = n.max(SILENT_BATCH);
        }
        let mut recheck = None;
        if !silent_mode && d.waiting > 0 && n == 0 {
            // Fresh connections stand for the waiting threads; look again when the oldest
            // stops counting.
            recheck = self.fresh.front().map(|&(_, _, at)| at + FRESH_WINDOW);
        }
        if let Some(until) = self.paused_until {
            if now < until {
                // Out of descriptors or memory a moment ago: the connections wait in the
                // backlog until the pause ends.
                return Budget {
                    n: 0,
                    batch: false,
                    recheck: Some(until),
                };
            }
        }
        Budget {
            n,
            batch: silent_mode || d.loops,
            recheck,
        }
    }

    /// A connection was accepted.
    pub fn accepted(&mut self, idx: u32, gen: u32, now: Instant) {
        self.paused_until = None;
        self.backoff = BACKOFF_MIN;
        self.fresh.push_back((idx, gen, now));
    }

    /// accept(2) failed for want of a resource: accepting pauses. Returns the pause and, when
    /// the failure is to be logged, the number of failures since the last report.
    pub fn resource_error(&mut self, now: Instant) -> (Duration, Option<u64>) {
        let pause = self.backoff;
        self.paused_until = Some(now + pause);
        self.backoff = (pause * 2).min(BACKOFF_MAX);
        if self
            .err_logged
            .is_some_and(|at| now.duration_since(at) < LOG_INTERVAL)
        {
            self.err_unlogged += 1;
            return (pause, None);
        }
        self.err_logged = Some(now);
        (pause, Some(std::mem::take(&mut self.err_unlogged)))
    }

    /// The connection limit was reached; returns true when that is to be logged.
    pub fn reached_limit(&mut self, now: Instant) -> bool {
        if self
            .full_logged
            .is_some_and(|at| now.duration_since(at) < LOG_INTERVAL)
        {
            return false;
        }
        self.full_logged = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn demand(waiting: usize) -> Demand {
        Demand {
            waiting,
            ..Demand::default()
        }
    }

    #[test]
    fn one_connection_per_waiting_thread_less_the_work_already_waiting() {
        let t0 = Instant::now();
        let mut p = AcceptPolicy::default();
        assert_eq!(p.budget(t0, demand(0), |_, _| true).n, 0);
        assert_eq!(p.budget(t0, demand(3), |_, _| true).n, 3);
        let d = Demand {
            waiting: 3,
            ready: 2,
            ..Demand::default()
        };
        assert_eq!(p.budget(t0, d, |_, _| true).n, 1);
        // Two fresh connections stand for two of the three threads.
        p.accepted(1, 1, t0);
        p.accepted(2, 1, t0);
        assert_eq!(p.budget(t0 + ms(1), demand(3), |_, _| true).n, 1);
        // Once their first request is taken they no longer count.
        assert_eq!(p.budget(t0 + ms(2), demand(3), |i, _| i != 1).n, 2);
    }

    #[test]
    fn a_fresh_connection_holds_its_thread_for_its_window_then_the_policy_rechecks() {
        let t0 = Instant::now();
        let mut p = AcceptPolicy::default();
        p.accepted(1, 1, t0);
        let b = p.budget(t0 + ms(10), demand(1), |_, _| true);
        assert_eq!(
            b,
            Budget {
                n: 0,
                batch: false,
                recheck: Some(t0 + FRESH_WINDOW)
            }
        );
        // Past the window the connection counts as silent: batches for SILENT_HOLD.
        let b = p.budget(t0 + FRESH_WINDOW, demand(1), |_, _| true);
        assert_eq!(b.n, SILENT_BATCH);
        assert!(b.batch);
        // No thread waiting: nothing, even in silent mode.
        assert_eq!(p.budget(t0 + ms(200), demand(0), |_, _| true).n, 0);
        // After the hold, back to one per waiting thread.
        let later = t0 + FRESH_WINDOW + SILENT_HOLD + ms(1);
        assert_eq!(p.budget(later, demand(1), |_, _| true).n, 1);
    }

    #[test]
    fn an_event_loop_takes_batches() {
        let t0 = Instant::now();
        let mut p = AcceptPolicy::default();
        let d = Demand {
            loops: true,
            ..Demand::default()
        };
        assert_eq!(p.budget(t0, d, |_, _| true).n, SILENT_BATCH);
    }

    #[test]
    fn resource_failures_back_off_doubling_and_log_once_per_interval() {
        let t0 = Instant::now();
        let mut p = AcceptPolicy::default();
        assert_eq!(p.resource_error(t0), (ms(10), Some(0)));
        assert_eq!(
            p.budget(t0 + ms(5), demand(4), |_, _| true),
            Budget {
                n: 0,
                batch: false,
                recheck: Some(t0 + ms(10))
            }
        );
        assert_eq!(p.budget(t0 + ms(10), demand(4), |_, _| true).n, 4);
        assert_eq!(p.resource_error(t0 + ms(10)), (ms(20), None));
        assert_eq!(p.resource_error(t0 + ms(30)), (ms(40), None));
        let mut pause = ms(40);
        for i in 0..10 {
            pause = p.resource_error(t0 + ms(100 + i)).0;
        }
        assert_eq!(pause, BACKOFF_MAX);
        // The next report counts the failures it did not log.
        assert_eq!(p.resource_error(t0 + LOG_INTERVAL + ms(1)).1, Some(12));
        // A success resets the back-off.
        p.accepted(9, 1, t0 + LOG_INTERVAL + ms(600));
        assert_eq!(p.resource_error(t0 + LOG_INTERVAL + ms(700)).0, BACKOFF_MIN);
    }

    #[test]
    fn a_closed_connection_ends_the_pause_early() {
        let t0 = Instant::now();
        let mut p = AcceptPolicy::default();
        p.resource_error(t0);
        p.resource_error(t0 + ms(1));
        assert_eq!(p.budget(t0 + ms(2), demand(1), |_, _| true).n, 0);
        let d = Demand {
            waiting: 1,
            closed: true,
            ..Demand::default()
        };
        assert_eq!(p.budget(t0 + ms(3), d, |_, _| true).n, 1);
    }

    #[test]
    fn the_limit_is_logged_once_per_interval() {
        let t0 = Instant::now();
        let mut p = AcceptPolicy::default();
        assert!(p.reached_limit(t0));
        assert!(!p.reached_limit(t0 + ms(5000)));
        assert!(p.reached_limit(t0 + LOG_INTERVAL));
    }
}
