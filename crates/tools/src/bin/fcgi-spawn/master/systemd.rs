//! The master's side of systemd's notify protocol: the pool supervisors' messages through the
//! relay (READY=1, RELOADING=1, STATUS=, WATCHDOG=1), and its own READY=1, STATUS= text and
//! watchdog pings.

use super::{Master, Phase};
use crate::notify_relay;
use fcgi_runtime::log::Level;
use std::time::{Duration, Instant};

/// STATUS= to systemd at most this often.
const STATUS_EVERY: Duration = Duration::from_secs(1);

impl Master {
    pub(super) fn read_notify(&mut self) {
        while let Some((pid, msg)) = self.relay.recv() {
            let Some(c) = self.children.get_mut(&pid) else {
                continue;
            };
            let mut became_ready = false;
            for (k, v) in notify_relay::fields(&msg) {
                match (k, v) {
                    ("READY", "1") => {
                        c.speaks_notify = true;
                        c.awaiting = false;
                        if !c.ready {
                            became_ready = true;
                        }
                    }
                    ("RELOADING", "1") => c.awaiting = true,
                    ("STATUS", s) => c.status = s.to_string(),
                    ("WATCHDOG", "1") => c.watchdog_at = Some(Instant::now()),
                    _ => {}
                }
            }
            if became_ready {
                self.on_ready(pid, "READY=1");
            }
        }
    }

    /// Every pool's current supervisor is ready and no reload waits for a READY=1.
    fn all_ready(&self) -> bool {
        self.pools.values().all(|p| {
            p.active
                .and_then(|a| self.children.get(&a))
                .is_some_and(|c| c.ready && !c.awaiting)
        })
    }

    fn status_text(&self) -> String {
        let mut parts = Vec::new();
        for (name, p) in &self.pools {
            let c = p.active.and_then(|a| self.children.get(&a));
            let state = match c {
                None => "restarting".to_string(),
                Some(c) if !c.ready => "starting".to_string(),
                Some(c) if c.status.is_empty() => "ready".to_string(),
                Some(c) => c.status.clone(),
            };
            parts.push(format!("[{name}] {state}"));
        }
        let draining = self.children.values().filter(|c| c.retiring).count();
        let mut s = parts.join("; ");
        if draining > 0 {
            s.push_str(&format!("; {draining} old supervisor(s) draining"));
        }
        s
    }

    pub(super) fn systemd_tick(&mut self, now: Instant) {
        if self.stopping.is_none() && self.phase != Phase::Running && self.all_ready() {
            let what = if self.phase == Phase::Starting {
                "started"
            } else {
                "reloaded"
            };
            self.log.line(
                Level::Notice,
                &format!("all {} pool(s) ready ({what})", self.pools.len()),
            );
            self.phase = Phase::Running;
            let status = self.status_text();
            if let Some(sd) = &self.systemd {
                sd.send(&format!("READY=1\nSTATUS={status}"));
            }
            self.last_status = status;
            self.next_status = now + STATUS_EVERY;
        }
        let Some(sd) = &self.systemd else {
            return;
        };
        if now >= self.next_status {
            let status = self.status_text();
            if status != self.last_status {
                sd.send(&format!("STATUS={status}"));
                self.last_status = status;
            }
            self.next_status = now + STATUS_EVERY;
        }
        if let Some(every) = sd.watchdog_interval() {
            if now >= self.next_watchdog {
                // A pool supervisor that pings its watchdog and stopped doing so for longer
                // than the watchdog's interval is hung: systemd should know.
                let hung: Vec<String> = self
                    .children
                    .iter()
                    .filter(|(_, c)| !c.retiring)
                    .filter(|(_, c)| c.watchdog_at.is_some_and(|t| now.duration_since(t) > every))
                    .map(|(pid, c)| format!("[pool {}] supervisor {pid}", c.pool))
                    .collect();
                if hung.is_empty() {
                    sd.send("WATCHDOG=1");
                    self.watchdog_warned = false;
                } else if !self.watchdog_warned {
                    self.watchdog_warned = true;
                    self.log.line(
                        Level::Error,
                        &format!(
                            "watchdog: {} stopped pinging; not pinging systemd",
                            hung.join(", ")
                        ),
                    );
                }
                self.next_watchdog = now + every / 2;
            }
        }
    }
}
