//! The supervisor's signals (read from its self-pipe): fast stop, graceful stop (after
//! `drain_delay_ms`), reload (a new generation of workers), log reopening.

use super::{kill, Stop, Sup, FAST_STOP, NO_LIMIT};
use crate::pool::config::Mode;
use crate::pool::{scoreboard, signals, slowlog, Role};
use crate::sys;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Sup<'_> {
    /// Handles the signals queued on the pipe. `Some` in a worker forked by a reload.
    pub(super) fn read_signals(&mut self) -> Option<Role> {
        let mut buf = [0u8; 64];
        loop {
            // The pool's non-blocking pipe: EAGAIN once it is empty.
            let n = match sys::read(self.pipe[0], &mut buf) {
                Ok(n) if n > 0 => n,
                _ => return None,
            };
            for &b in &buf[..n] {
                if let Some(role) = self.on_signal(b as libc::c_int) {
                    return Some(role);
                }
            }
        }
    }

    fn on_signal(&mut self, sig: libc::c_int) -> Option<Role> {
        let now = Instant::now();
        match sig {
            libc::SIGTERM | libc::SIGINT => {
                if self.stopping.is_some_and(|(k, _)| k == Stop::Fast) {
                    return None;
                }
                crate::fcgi_log!(Notice, "pool: fast stop (signal {sig})");
                self.notify.send("STOPPING=1");
                self.stopping = Some((Stop::Fast, now + FAST_STOP));
                for w in &self.workers {
                    kill(w.pid, libc::SIGTERM);
                }
            }
            libc::SIGQUIT => {
                if self.stopping.is_some() {
                    return None;
                }
                self.notify.send("STOPPING=1");
                if self.drain_at.is_none() && !self.cfg.drain_delay.is_zero() {
                    // Ping answers 503 from now; the workers serve on until the delay ends
                    // (or a second SIGQUIT), so a load balancer stops sending first.
                    crate::fcgi_log!(
                        Notice,
                        "pool: graceful stop in {} ms (drain_delay_ms; ping answers 503)",
                        self.cfg.drain_delay.as_millis()
                    );
                    self.board.header().draining.store(1, Ordering::Release);
                    self.drain_at = Some(now + self.cfg.drain_delay);
                    return None;
                }
                self.graceful_stop();
            }
            libc::SIGHUP | libc::SIGUSR2 if self.stopping.is_none() && self.drain_at.is_none() => {
                return self.reload();
            }
            libc::SIGUSR1 => {
                crate::fcgi_log!(Notice, "pool: reopening log files");
                signals::count_reopen();
                slowlog::reopen_now();
                // Only to workers on this runtime: libfcgi takes SIGUSR1 as "exit".
                for w in &self.workers {
                    if self.board.slot(w.slot).attached.load(Ordering::Acquire) != 0 {
                        kill(w.pid, libc::SIGUSR1);
                    }
                }
            }
            _ => {} // SIGCHLD: reaped below.
        }
        None
    }

    /// Graceful stop: the pool drains (ping answers 503), every worker is asked to drain.
    pub(super) fn graceful_stop(&mut self) {
        crate::fcgi_log!(Notice, "pool: graceful stop");
        self.drain_at = None;
        self.board.header().draining.store(1, Ordering::Release);
        let limit = match self.cfg.graceful_timeout {
            d if d.is_zero() => NO_LIMIT,
            d => d,
        };
        self.stopping = Some((Stop::Graceful, Instant::now() + limit));
        for k in 0..self.workers.len() {
            self.workers[k].draining = true;
            self.ask_to_drain(k);
        }
    }

    /// Graceful reload: the old generation is set aside, a new one forked (by the mode's
    /// rules, at once), then the old one is asked to drain. The sockets stay open throughout,
    /// so no connection is refused; connections in the backlog go to the new workers.
    pub(super) fn reload(&mut self) -> Option<Role> {
        self.generation += 1;
        crate::fcgi_log!(Notice, "pool: reload (generation {})", self.generation);
        self.notify.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            scoreboard::now_ms() * 1000
        ));
        let old: Vec<libc::pid_t> = self
            .workers
            .iter()
            .filter(|w| !w.draining)
            .map(|w| w.pid)
            .collect();
        for w in self.workers.iter_mut().filter(|w| !w.draining) {
            w.draining = true;
        }
        let n = match self.cfg.mode {
            Mode::Static => self.cfg.max_children,
            Mode::Dynamic => self.cfg.start_servers(),
            Mode::OnDemand => 0,
        };
        for _ in 0..n {
            if let Some(role) = self.spawn_next() {
                return Some(role);
            }
        }
        self.notify.send("READY=1");
        let deadline = self.drain_deadline();
        for k in 0..self.workers.len() {
            if old.contains(&self.workers[k].pid) {
                self.workers[k].kill_at = deadline;
                self.ask_to_drain(k);
            }
        }
        None
    }
}
