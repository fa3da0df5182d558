//! What the supervisor watches in its workers and how it drains one: request timeouts (slow
//! log, terminate), lifetimes, the drains of exec'd programs that did not attach (SIGTERM to
//! their threads in accept), the listen queue; and the /proc readers (resident set size,
//! threads in accept).

use super::{kill, Stop, Sup};
use crate::pool::{listen, scoreboard, slowlog};
use crate::sys;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Sup<'_> {
    /// Sends the drain signal: SIGQUIT to a worker on this runtime; SIGTERM to an exec'd
    /// program that did not attach (libfcgi ends its accept loop on SIGTERM, after the
    /// request in hand).
    pub(super) fn ask_to_drain(&self, k: usize) {
        let w = &self.workers[k];
        let attached = self.board.slot(w.slot).attached.load(Ordering::Acquire) != 0;
        let sig = if self.cfg.exec && !attached {
            libc::SIGTERM
        } else {
            libc::SIGQUIT
        };
        kill(w.pid, sig);
    }

    pub(super) fn drain_deadline(&self) -> Option<Instant> {
        (!self.cfg.graceful_timeout.is_zero()).then(|| Instant::now() + self.cfg.graceful_timeout)
    }

    pub(super) fn drain_worker(&mut self, k: usize, why: &str) {
        let deadline = self.drain_deadline();
        let w = &mut self.workers[k];
        crate::fcgi_log!(Notice, "pool: draining worker {} ({why})", w.pid);
        w.draining = true;
        w.kill_at = deadline;
        self.ask_to_drain(k);
    }

    /// Drains the workers past their lifetime (`max_lifetime_ms` plus their own jitter), as
    /// for `max_memory`; the mode's maintenance that follows forks their replacements while
    /// they finish what they hold.
    pub(super) fn retire_old_workers(&mut self, now: Instant) {
        for k in 0..self.workers.len() {
            let w = &self.workers[k];
            if w.draining || w.retire_at.is_none_or(|t| now < t) {
                continue;
            }
            crate::fcgi_log!(
                Notice,
                "pool: worker {} reached its lifetime ({} ms); recycling it",
                w.pid,
                now.duration_since(w.started).as_millis()
            );
            let deadline = self.drain_deadline();
            let w = &mut self.workers[k];
            w.draining = true;
            w.kill_at = deadline;
            self.ask_to_drain(k);
        }
    }

    /// The slow log's crossing lines and the terminate timeout, from the workers' entries.
    pub(super) fn watch_requests(&mut self) {
        let slow = self.cfg.slowlog_timeout.as_millis() as u64;
        let term = self.cfg.terminate_timeout.as_millis() as u64;
        if slow == 0 && term == 0 {
            return;
        }
        let now = scoreboard::now_ms();
        let h = self.board.header();
        for w in &mut self.workers {
            if w.terminated {
                continue;
            }
            let slot = self.board.slot(w.slot);
            for e in &slot.entries {
                if !e.in_use() {
                    continue;
                }
                let start = e.start_ms.load(Ordering::Relaxed);
                let ms = now.saturating_sub(start);
                let hit_slow = slow > 0 && ms >= slow;
                let hit_term = term > 0 && ms >= term;
                if !hit_slow && !hit_term {
                    continue;
                }
                let Some(v) = e.read().filter(|v| v.start_ms == start) else {
                    continue;
                };
                let seen = e.slow_logged.load(Ordering::Relaxed);
                if hit_slow
                    && seen != start
                    && e.slow_logged
                        .compare_exchange(seen, start, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    h.slow_requests.fetch_add(1, Ordering::Relaxed);
                    slowlog::write(&slowlog::line(
                        &self.cfg.name,
                        w.pid,
                        v.start_unix_ms,
                        &v.method,
                        &v.uri,
                        ms,
                        true,
                    ));
                }
                if hit_term {
                    crate::fcgi_log!(
                        Error,
                        "pool {}: worker {} request {} {} ran {ms} ms \
                         (request_terminate_timeout_ms {term}); killing the worker",
                        self.cfg.name,
                        w.pid,
                        slowlog::printable(&v.method),
                        slowlog::printable(&v.uri)
                    );
                    kill(w.pid, libc::SIGKILL);
                    w.terminated = true;
                    w.draining = true;
                    w.kill_at = None;
                    break;
                }
            }
        }
    }

    /// A program not on this library (an exec'd libfcgi program) acts on its SIGTERM flag only
    /// when a blocked accept() is interrupted: a worker that was busy when the signal came goes
    /// back to waiting in accept(), and in a threaded program the signal may land on a thread
    /// that does not accept. So while such a worker drains, each tick SIGTERMs exactly the
    /// threads found blocked in accept (/proc/PID/task/TID/syscall), never one reading or
    /// writing a request (libfcgi turns EINTR there into a failed request).
    pub(super) fn nudge_foreign_drains(&self) {
        if !self.cfg.exec || self.stopping.is_some_and(|(k, _)| k == Stop::Fast) {
            return;
        }
        for w in self.workers.iter().filter(|w| w.draining && !w.terminated) {
            if self.board.slot(w.slot).attached.load(Ordering::Acquire) != 0 {
                continue;
            }
            for tid in threads_in_accept(w.pid) {
                // A thread of a child this parent has not reaped.
                let _ = sys::tgkill(w.pid, tid, libc::SIGTERM);
            }
        }
    }

    /// The longest accept queue seen on the TCP listeners (for the status page).
    pub(super) fn sample_listen_queue(&self) {
        let q = self
            .fds
            .iter()
            .filter_map(|&fd| listen::queue(fd))
            .map(|(len, _)| u64::from(len))
            .max()
            .unwrap_or(0);
        self.board
            .header()
            .max_listen_queue
            .fetch_max(q, Ordering::Relaxed);
    }
}

/// Resident set size of `pid` in bytes (/proc/PID/statm).
pub(super) fn rss_bytes(pid: libc::pid_t) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * sys::page_size())
}

/// Threads of `pid` blocked in accept(2) or accept4(2).
fn threads_in_accept(pid: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<libc::c_long>().ok())
                .is_some_and(|n| n == libc::SYS_accept || n == libc::SYS_accept4)
        })
        .collect()
}
