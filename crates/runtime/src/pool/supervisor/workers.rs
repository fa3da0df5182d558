//! Forking, reaping and replacing workers: the restart back-off, the stop deadlines, the
//! memory limit, and what a forked child does before it becomes a worker.

use super::watch::rss_bytes;
use super::{
    close_pipe, kill, Stop, Sup, Worker, WorkerSeat, BACKOFF_MAX, BACKOFF_MIN, BACKOFF_RESET,
    MEMORY_CHECK,
};
use crate::pool::capture::Pipes;
use crate::pool::config::Mode;
use crate::pool::{hooks, scoreboard, signals, Role};
use crate::sys;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Sup<'_> {
    /// Reaps exited workers, then (unless stopping) keeps the mode's worker count, drains
    /// what must drain, and kills what overstayed. `Some` in a newly forked worker.
    pub(super) fn reap_and_maintain(&mut self) -> Option<Role> {
        self.reap();
        let now = Instant::now();
        if let Some((kind, deadline)) = self.stopping {
            if now >= deadline {
                for w in &self.workers {
                    crate::fcgi_log!(
                        Warning,
                        "pool: worker {} still running at the {} stop deadline; killing it",
                        w.pid,
                        if kind == Stop::Fast {
                            "fast"
                        } else {
                            "graceful"
                        }
                    );
                    kill(w.pid, libc::SIGKILL);
                }
                // Wait for them (SIGKILL cannot be ignored).
                self.stopping = Some((kind, now + Duration::from_secs(3600)));
            }
            self.nudge_foreign_drains();
            return None;
        }
        // Workers that started draining by themselves (max_requests) or overstayed.
        let deadline = self.drain_deadline();
        for w in &mut self.workers {
            let st = self.board.slot(w.slot).state.load(Ordering::Acquire);
            if st == scoreboard::DRAINING && !w.draining {
                w.draining = true;
            }
            if w.draining && w.kill_at.is_none() {
                w.kill_at = deadline;
            }
            if w.kill_at.is_some_and(|k| now >= k) {
                crate::fcgi_log!(
                    Warning,
                    "pool: worker {} did not finish draining within {} ms; killing it",
                    w.pid,
                    self.cfg.graceful_timeout.as_millis()
                );
                kill(w.pid, libc::SIGKILL);
                w.kill_at = Some(now + Duration::from_secs(3600));
            }
        }
        if self.cfg.max_memory > 0 && now >= self.next_memory_check {
            self.next_memory_check = now + MEMORY_CHECK;
            for k in 0..self.workers.len() {
                let w = &mut self.workers[k];
                if w.draining {
                    continue;
                }
                if let Some(rss) = rss_bytes(w.pid).filter(|&r| r > self.cfg.max_memory) {
                    crate::fcgi_log!(
                        Notice,
                        "pool: worker {} uses {rss} bytes (max_memory {}); recycling it",
                        w.pid,
                        self.cfg.max_memory
                    );
                    w.draining = true;
                    w.kill_at = deadline;
                    self.ask_to_drain(k);
                }
            }
        }
        self.retire_old_workers(now);
        self.watch_requests();
        self.sample_listen_queue();
        self.nudge_foreign_drains();
        let busy = self
            .workers
            .iter()
            .filter(|w| self.board.slot(w.slot).in_flight.load(Ordering::Relaxed) > 0)
            .count() as u64;
        self.board
            .header()
            .max_active
            .fetch_max(busy, Ordering::Relaxed);
        match self.cfg.mode {
            Mode::Static => {
                for i in 0..self.cfg.max_children {
                    let served = self.workers.iter().any(|w| !w.draining && w.index == i);
                    if !served && now >= self.backoff[i].0 {
                        if let Some(role) = self.spawn(i) {
                            return Some(role);
                        }
                    }
                }
                None
            }
            Mode::Dynamic => self.maintain_dynamic(now),
            Mode::OnDemand => self.maintain_ondemand(now),
        }
    }

    /// Collects exited workers, logs them and frees their slots; a worker that died without
    /// being asked to stop delays its index's restart (back-off).
    fn reap(&mut self) {
        let now = Instant::now();
        let mut k = 0;
        while k < self.workers.len() {
            let pid = self.workers[k].pid;
            // A child of this process; -1 (an error) as waitpid(2) returns it.
            let (r, status) = sys::waitpid_nohang(pid).unwrap_or((-1, 0));
            if r != pid {
                k += 1;
                continue;
            }
            let w = self.workers.swap_remove(k);
            if let Some(c) = &mut self.capture {
                c.finish(pid);
            }
            let slot = self.board.slot(w.slot);
            let served = slot.served.load(Ordering::Relaxed);
            // Draining by itself (max_requests) counts as asked: its slot says so.
            let planned = w.draining
                || w.terminated
                || self.stopping.is_some()
                || slot.state.load(Ordering::Acquire) == scoreboard::DRAINING;
            let clean = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            slot.pid.store(0, Ordering::Relaxed);
            slot.state.store(scoreboard::FREE, Ordering::Release);
            if planned && clean {
                crate::fcgi_log!(
                    Notice,
                    "pool: worker {pid} (index {}, generation {}) ended after {served} requests",
                    w.index,
                    w.generation
                );
                continue;
            }
            let lived = now.duration_since(w.started);
            if w.index < self.backoff.len() && !planned {
                let (_, step) = self.backoff[w.index];
                let step = if lived >= BACKOFF_RESET || step.is_zero() {
                    BACKOFF_MIN
                } else {
                    (step * 2).min(BACKOFF_MAX)
                };
                self.backoff[w.index] = (now + step, step);
            }
            let level = if planned {
                crate::log::Level::Notice
            } else {
                crate::log::Level::Warning
            };
            crate::log::log(
                level,
                format_args!(
                    "pool: worker {pid} (index {}) ended ({}) after {served} requests and {} ms{}",
                    w.index,
                    crate::sys::describe_wait_status(status),
                    lived.as_millis(),
                    if planned { "" } else { "; replacing it" }
                ),
            );
        }
    }

    /// Forks a worker for the lowest index no active worker holds and whose back-off has
    /// ended (a crash loop is paced in every mode).
    pub(super) fn spawn_next(&mut self) -> Option<Role> {
        let now = Instant::now();
        let i = (0..self.cfg.max_children).find(|&i| {
            now >= self.backoff[i].0 && !self.workers.iter().any(|w| !w.draining && w.index == i)
        })?;
        self.spawn(i)
    }

    /// Forks a worker for index `i`. `Some` in the child.
    fn spawn(&mut self, index: usize) -> Option<Role> {
        let Some(slot) = self.board.free_slot() else {
            if !self.slot_warned {
                self.slot_warned = true;
                crate::fcgi_log!(
                    Warning,
                    "pool: every scoreboard slot is taken (draining workers); waiting"
                );
            }
            return None;
        };
        self.slot_warned = false;
        let s = self.board.slot(slot);
        s.state.store(scoreboard::STARTING, Ordering::Release);
        s.generation.store(self.generation, Ordering::Relaxed);
        s.served.store(0, Ordering::Relaxed);
        s.in_flight.store(0, Ordering::Relaxed);
        s.attached.store(0, Ordering::Relaxed);
        s.last_entry.store(0, Ordering::Relaxed);
        s.last_duration_ms.store(0, Ordering::Relaxed);
        let own_max = match self.cfg.max_requests {
            0 => 0,
            m => m.saturating_add(self.jitter.upto(self.cfg.max_requests_jitter)),
        };
        s.max_requests
            .store(own_max.min(u64::from(u32::MAX)) as u32, Ordering::Relaxed);
        let lifetime = (!self.cfg.max_lifetime.is_zero()).then(|| {
            let j = self.cfg.max_lifetime_jitter.as_millis() as u64;
            self.cfg.max_lifetime + Duration::from_millis(self.jitter.upto(j))
        });
        for e in &s.entries {
            e.used.store(0, Ordering::Relaxed);
            e.slow_logged.store(0, Ordering::Relaxed);
            e.write(0, 0, b"", b"");
        }
        s.started_unix
            .store(scoreboard::unix_ms() / 1000, Ordering::Relaxed);
        s.idle_since_ms
            .store(scoreboard::now_ms(), Ordering::Relaxed);
        let pipes = self.capture.as_ref().and_then(|_| {
            Pipes::new()
                .map_err(|e| {
                    crate::fcgi_log!(
                        Error,
                        "pool: cannot make the worker's output pipes ({e}); it shares ours"
                    )
                })
                .ok()
        });
        let parent = std::process::id() as libc::pid_t;
        let mask = signals::block_all();
        // SAFETY: the parent is single-threaded (checked before the pool started), so the
        // child may run any code.
        let forked = unsafe { sys::fork() };
        if let Ok(0) = forked {
            if let Some(c) = &mut self.capture {
                c.forget_in_child();
            }
            if let Some(p) = pipes {
                p.into_stdio();
            }
            self.become_worker(slot, index, parent, &mask);
            return Some(Role::Worker(index));
        }
        signals::set_mask(&mask);
        let pid = match forked {
            Ok(pid) => pid,
            Err(e) => {
                s.state.store(scoreboard::FREE, Ordering::Release);
                if let Some(p) = &pipes {
                    p.close();
                }
                crate::fcgi_log!(Error, "pool: fork failed: {e}");
                return None;
            }
        };
        s.pid.store(pid, Ordering::Relaxed);
        if let (Some(c), Some(p)) = (&mut self.capture, pipes) {
            c.add(pid, p);
        }
        self.workers.push(Worker {
            pid,
            terminated: false,
            slot,
            index,
            generation: self.generation,
            started: Instant::now(),
            draining: false,
            kill_at: None,
            retire_at: lifetime.map(|l| Instant::now() + l),
        });
        crate::fcgi_log!(
            Debug,
            "pool: worker {pid} (index {index}) started: max_requests {own_max}, lifetime {}",
            lifetime.map_or("unlimited".to_string(), |l| format!("{} ms", l.as_millis()))
        );
        None
    }

    /// In the child after fork: leave the parent's machinery, attach to the scoreboard.
    fn become_worker(
        &mut self,
        slot: usize,
        _index: usize,
        parent: libc::pid_t,
        mask: &libc::sigset_t,
    ) {
        close_pipe(&self.pipe);
        signals::install_worker(&self.saved);
        // The worker gets SIGTERM if the parent dies (then checks it did not die before this
        // call).
        let _ = sys::set_parent_death_signal(libc::SIGTERM);
        if sys::parent_pid() != parent {
            crate::terminate();
        }
        let me = self.board.slot(slot);
        me.pid
            .store(std::process::id() as libc::pid_t, Ordering::Relaxed);
        if !self.cfg.exec {
            // An exec'd program attaches by itself, if it runs on this library.
            hooks::attach(self.board.header(), me);
        }
        me.state.store(scoreboard::RUNNING, Ordering::Release);
        self.workers.clear();
        self.seat = Some(WorkerSeat {
            slot,
            board_fd: self.board.fd(),
        });
        signals::set_mask(mask);
        // The hooks point into the mapping: never unmapped in a worker.
        self.board.keep_mapped();
    }
}
