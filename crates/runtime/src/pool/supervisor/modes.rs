//! The pool modes' worker counts: dynamic (spare servers, FPM's pacing) and on-demand
//! (spawn on a pending connection, reap the idle).

use super::{Sup, DYNAMIC_ROUND, MAX_SPAWN_BATCH};
use crate::pool::config::Mode;
use crate::pool::{scoreboard, Role};
use crate::sys;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Sup<'_> {
    /// Running, not draining.
    pub(super) fn active(&self) -> usize {
        self.workers.iter().filter(|w| !w.draining).count()
    }

    /// Active workers that are starting or have no request in flight.
    fn idle(&self) -> Vec<usize> {
        (0..self.workers.len())
            .filter(|&k| {
                let w = &self.workers[k];
                let s = self.board.slot(w.slot);
                !w.draining && s.in_flight.load(Ordering::Relaxed) == 0
            })
            .collect()
    }

    pub(super) fn maintain_dynamic(&mut self, now: Instant) -> Option<Role> {
        if now < self.next_round {
            return None;
        }
        let idle = self.idle();
        let active = self.active();
        if idle.len() < self.cfg.min_spare {
            self.next_round = now + DYNAMIC_ROUND;
            if active >= self.cfg.max_children {
                self.board
                    .header()
                    .max_children_reached
                    .fetch_add(1, Ordering::Relaxed);
                crate::fcgi_log!(
                    Warning,
                    "pool: server reached max_children ({}); consider raising it",
                    self.cfg.max_children
                );
                return None;
            }
            let n = (self.cfg.min_spare - idle.len())
                .min(self.spawn_batch)
                .min(self.cfg.max_children - active);
            for _ in 0..n {
                if let Some(role) = self.spawn_next() {
                    return Some(role);
                }
            }
            self.spawn_batch = (self.spawn_batch * 2).min(MAX_SPAWN_BATCH);
            return None;
        }
        self.spawn_batch = 1;
        if idle.len() > self.cfg.max_spare {
            self.next_round = now + DYNAMIC_ROUND;
            // The worker idle the longest goes.
            let k = *idle
                .iter()
                .min_by_key(|&&k| {
                    self.board
                        .slot(self.workers[k].slot)
                        .idle_since_ms
                        .load(Ordering::Relaxed)
                })
                .expect("non-empty");
            self.drain_worker(k, "above max_spare_servers");
        }
        None
    }

    pub(super) fn maintain_ondemand(&mut self, now: Instant) -> Option<Role> {
        let now_ms = scoreboard::now_ms();
        let timeout = self.cfg.idle_timeout.as_millis() as u64;
        for k in self.idle() {
            let w = &self.workers[k];
            let s = self.board.slot(w.slot);
            if s.state.load(Ordering::Acquire) != scoreboard::RUNNING {
                continue;
            }
            let since = s.idle_since_ms.load(Ordering::Relaxed);
            if now_ms.saturating_sub(since) >= timeout {
                self.drain_worker(k, "idle for process_idle_timeout_ms");
            }
        }
        if self.wants_listener_poll(now) && self.connection_pending() {
            if self.active() >= self.cfg.max_children {
                self.board
                    .header()
                    .max_children_reached
                    .fetch_add(1, Ordering::Relaxed);
                self.listen_quiet_until = now + DYNAMIC_ROUND;
                return None;
            }
            return self.spawn_next();
        }
        None
    }

    /// On-demand: the parent watches the sockets only while no worker could take a
    /// connection (none idle or starting).
    pub(super) fn wants_listener_poll(&self, now: Instant) -> bool {
        self.cfg.mode == Mode::OnDemand
            && self.stopping.is_none()
            && now >= self.listen_quiet_until
            && self.idle().is_empty()
    }

    fn connection_pending(&self) -> bool {
        let mut pfds: Vec<libc::pollfd> = self
            .fds
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // Not waiting.
        let n = sys::poll(&mut pfds, 0).unwrap_or(0);
        n > 0 && pfds.iter().any(|p| p.revents & libc::POLLIN != 0)
    }
}
