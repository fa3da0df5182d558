//! Connection deadlines: arming a connection's timer when its deadline moves earlier, and
//! what happens when one comes due (idle keep-alive, PARAMS, linger, an event loop's write
//! timeout). The heap itself is timers.rs; its timerfd sits in the epoll, so whichever thread
//! waits receives the expiry.

use super::config::{self, Limit};
use super::conn::{Conn, Phase};
use super::listener::LISTENER_TIMER;
use super::reactor::Reactor;
use super::timers::Entry;
use std::time::{Duration, Instant};

impl Reactor {
    /// Arms the timer of `conn` (slot `idx`) if its deadline moved earlier than the one armed.
    pub(super) fn rearm(&self, conn: &mut Conn, idx: u32) {
        let Some(d) = conn.deadline() else {
            return;
        };
        if conn.armed.is_some_and(|a| a <= d) {
            return;
        }
        conn.armed = Some(d);
        let mut t = self.timers.lock();
        if let Some(fire) = t.set(d, idx, conn.gen) {
            self.arm_timerfd(fire);
        }
    }

    /// A policy deadline of the listener (a fresh window or a pause ends).
    pub(super) fn listener_deadline(&self, at: Instant) {
        let mut t = self.timers.lock();
        if let Some(fire) = t.set_listener(at) {
            self.arm_timerfd(fire);
        }
    }

    /// The connection in slot `idx` closed: its timer goes.
    pub(super) fn disarm(&self, idx: u32) {
        self.timers.lock().remove(idx);
    }

    fn arm_timerfd(&self, fire: Instant) {
        self.timerfd
            .set(Some(fire.saturating_duration_since(Instant::now())));
    }

    /// Handles the timer entries due at `now` and sets the timerfd for the next.
    pub(super) fn fire_timers(&self, now: Instant) {
        let mut due = Vec::new();
        {
            let mut t = self.timers.lock();
            let next = t.expire(now, &mut due);
            self.timerfd
                .set(next.map(|f| f.saturating_duration_since(Instant::now())));
        }
        for e in due {
            if e.1 == LISTENER_TIMER {
                self.listener_timer(e);
            } else {
                self.conn_timer(e, now);
            }
        }
    }

    fn conn_timer(&self, (d, idx, gen): Entry, now: Instant) {
        let Some(mut g) = self.conns.lock_slot(idx) else {
            return;
        };
        let Some(conn) = g.as_mut().filter(|c| c.gen == gen) else {
            return;
        };
        if conn.armed != Some(d) {
            // Stale: the connection re-armed for another deadline since.
            return;
        }
        conn.armed = None;
        let write_timeout = Duration::from_millis(config::get(Limit::WriteTimeoutMs));
        if conn
            .io
            .room_wait_since()
            .is_some_and(|s| now.duration_since(s) >= write_timeout)
        {
            // The non-blocking face's write timeout (a blocking writer times itself out).
            crate::fcgi_log!(
                Warning,
                "write to {} timed out after {} ms; closing",
                conn.peer,
                write_timeout.as_millis()
            );
            self.close_conn(&mut g, idx);
            return;
        }
        match conn.deadline() {
            Some(_)
                if conn.lingering
                    && conn.io.pending_len() > 0
                    && now.duration_since(conn.linger_since) < write_timeout =>
            {
                // Output of the last request is still leaving: wait on, within the write
                // timeout.
                conn.idle_since = now;
                self.rearm(conn, idx);
            }
            Some(dl) if dl <= now => {
                if conn.lingering {
                    crate::fcgi_log!(Debug, "closing connection after linger");
                } else if conn.reqs.iter().any(|s| s.phase == Phase::Params) {
                    crate::fcgi_log!(
                        Warning,
                        "PARAMS from {} not complete within {} ms; closing the connection",
                        conn.peer,
                        config::get(Limit::ParamsTimeoutMs)
                    );
                } else {
                    crate::fcgi_log!(Debug, "closing idle connection from {}", conn.peer);
                }
                self.close_conn(&mut g, idx);
            }
            _ => self.rearm(conn, idx),
        }
    }
}
