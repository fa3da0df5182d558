//! The parent: forks workers, reaps and replaces them, applies the pool mode, and turns
//! signals (through a self-pipe) into stop, graceful stop and reload. Single-threaded; it
//! never serves a request. See docs/pool-design.md.

use super::capture::{Capture, Pipes};
use super::config::{Mode, Settings};
use super::scoreboard::{self, Scoreboard};
use super::signals::{self, Saved};
use super::{hooks, Role};
use crate::sys;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// First delay before restarting a worker that died unasked; doubled per quick death.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A worker that lived this long resets its slot's back-off.
const BACKOFF_RESET: Duration = Duration::from_secs(30);
/// Fast stop: SIGKILL for workers still alive this long after SIGTERM.
const FAST_STOP: Duration = Duration::from_secs(1);
/// The poll loop's longest sleep (mode decisions, deadlines, memory checks).
const TICK: Duration = Duration::from_millis(100);
const MEMORY_CHECK: Duration = Duration::from_secs(1);
/// FPM's pacing of dynamic spawns and spare reaping: one round per second.
const DYNAMIC_ROUND: Duration = Duration::from_secs(1);
const MAX_SPAWN_BATCH: usize = 32;
/// `graceful_timeout_ms=0`: no deadline (ten years).
const NO_LIMIT: Duration = Duration::from_secs(10 * 365 * 86400);

struct Worker {
    pid: libc::pid_t,
    /// Killed by the parent for `request_terminate_timeout_ms` (its exit is planned).
    terminated: bool,
    slot: usize,
    index: usize,
    generation: u64,
    started: Instant,
    /// Asked to drain (or draining by itself): no longer counted, SIGKILL at `kill_at`.
    draining: bool,
    kill_at: Option<Instant>,
    /// When it reaches its lifetime (`max_lifetime_ms` plus its own jitter) and is recycled.
    retire_at: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Fast,
    Graceful,
}

struct Sup<'a> {
    cfg: &'a Settings,
    fds: &'a [RawFd],
    board: Scoreboard,
    saved: Saved,
    pipe: [RawFd; 2],
    workers: Vec<Worker>,
    generation: u64,
    /// Per worker index: earliest restart, current back-off step.
    backoff: Vec<(Instant, Duration)>,
    stopping: Option<(Stop, Instant)>,
    next_round: Instant,
    spawn_batch: usize,
    next_memory_check: Instant,
    /// On-demand: do not poll the sockets before this (after max_children was reached).
    listen_quiet_until: Instant,
    slot_warned: bool,
    /// Set in a forked worker.
    seat: Option<WorkerSeat>,
    /// `status_listen`, served by this loop (closed in a worker when `Sup` is dropped).
    status: Option<super::status_listen::StatusListener>,
    /// A graceful stop waiting out `drain_delay_ms` (ping answers 503 meanwhile).
    drain_at: Option<Instant>,
    /// Draws each worker's jitter (max_requests, lifetime).
    jitter: super::jitter::Jitter,
    /// systemd's notify socket (nothing when NOTIFY_SOCKET is unset).
    notify: super::notify::Notify,
    /// Workers' stdout and stderr (`catch_workers_output`).
    capture: Option<Capture>,
}

/// In a worker: where its scoreboard slot is, for a program it will exec.
#[derive(Clone, Copy, Debug)]
pub struct WorkerSeat {
    pub slot: usize,
    /// The scoreboard's memfd (-1 when the pool does not exec).
    pub board_fd: RawFd,
}

/// Runs the pool until it stops (`Ok(Role::Stopped)` in the parent) or, in each forked
/// worker, returns `Ok(Role::Worker(index))` with the worker's seat.
pub fn run(cfg: &Settings, fds: &[RawFd]) -> Result<(Role, Option<WorkerSeat>), String> {
    if let Some(level) = cfg.log_level {
        crate::log::set_threshold(level);
        // For the programs workers exec (the pool checked that this process has one thread).
        std::env::set_var(crate::log::LEVEL_ENV, level.name().to_ascii_lowercase());
    }
    let board = Scoreboard::new(cfg.max_children * 2, cfg.exec)
        .map_err(|e| format!("pool: cannot map the scoreboard: {e}"))?;
    publish_settings(&board, cfg);
    super::slowlog::configure(&cfg.slowlog).map_err(|e| format!("pool: {e}"))?;
    // A bad access_format or an access log that cannot be opened stops the pool here.
    super::access_log::check(&cfg.access_log, &cfg.access_format)
        .map_err(|e| format!("pool: {e}"))?;
    let status = open_status_listen(cfg)?;
    let pipe = sys::pipe(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .map_err(|e| format!("pool: cannot create the signal pipe: {e}"))?;
    let saved = match signals::install_parent(pipe[1]) {
        Ok(s) => s,
        Err(e) => {
            close_pipe(&pipe);
            return Err(format!("pool: cannot install signal handlers: {e}"));
        }
    };
    let now = Instant::now();
    let mut sup = Sup {
        cfg,
        fds,
        board,
        saved,
        pipe,
        workers: Vec::new(),
        generation: 1,
        backoff: vec![(now, Duration::ZERO); cfg.max_children],
        stopping: None,
        next_round: now,
        spawn_batch: 1,
        next_memory_check: now + MEMORY_CHECK,
        listen_quiet_until: now,
        slot_warned: false,
        seat: None,
        status,
        drain_at: None,
        jitter: super::jitter::Jitter::new(),
        notify: super::notify::Notify::from_env(),
        capture: cfg
            .catch_workers_output
            .then(|| Capture::new(&cfg.name, cfg.decorate_workers_output)),
    };
    crate::fcgi_log!(
        Notice,
        "pool started: pm {}, max_children {}, {} socket(s), pid {}",
        cfg.mode.name(),
        cfg.max_children,
        fds.len(),
        std::process::id()
    );
    let initial = match cfg.mode {
        Mode::Static => cfg.max_children,
        Mode::Dynamic => cfg.start_servers(),
        Mode::OnDemand => 0,
    };
    for _ in 0..initial {
        if let Some(role) = sup.spawn_next() {
            return Ok((role, sup.seat));
        }
    }
    sup.notify.send("READY=1");
    let role = sup.main_loop();
    if role == Role::Stopped {
        signals::restore(&sup.saved);
        close_pipe(&sup.pipe);
        crate::fcgi_log!(Notice, "pool stopped");
    }
    Ok((role, sup.seat))
}

/// The settings workers read from the header (exec'd programs have no other source).
fn publish_settings(board: &Scoreboard, cfg: &Settings) {
    let h = board.header();
    let mode = match cfg.mode {
        Mode::Static => 0,
        Mode::Dynamic => 1,
        Mode::OnDemand => 2,
    };
    h.mode.store(mode, Ordering::Relaxed);
    h.max_children
        .store(cfg.max_children as u32, Ordering::Relaxed);
    h.max_requests.store(cfg.max_requests, Ordering::Relaxed);
    h.slowlog_timeout_ms
        .store(cfg.slowlog_timeout.as_millis() as u64, Ordering::Relaxed);
    h.terminate_timeout_ms
        .store(cfg.terminate_timeout.as_millis() as u64, Ordering::Relaxed);
    h.pool_name.store(cfg.name.as_bytes());
    h.status_path.store(cfg.status_path.as_bytes());
    h.slowlog_path.store(cfg.slowlog.as_bytes());
    h.ping_path.store(cfg.ping_path.as_bytes());
    h.ping_response.store(cfg.ping_response.as_bytes());
    h.access_log.store(cfg.access_log.as_bytes());
    h.access_format.store(cfg.access_format.as_bytes());
}

/// Opens `status_listen` if set. It answers the status page at `status_path` (`/status` when
/// unset) and ping at `ping_path` (`/ping` when unset).
fn open_status_listen(
    cfg: &Settings,
) -> Result<Option<super::status_listen::StatusListener>, String> {
    if cfg.status_listen.is_empty() {
        return Ok(None);
    }
    let or = |v: &str, d: &str| if v.is_empty() { d } else { v }.as_bytes().to_vec();
    let paths = super::status_listen::Paths {
        status: or(&cfg.status_path, "/status"),
        ping: or(&cfg.ping_path, "/ping"),
        ping_body: cfg.ping_response.as_bytes().to_vec(),
    };
    super::status_listen::StatusListener::open(&cfg.status_listen, paths).map(Some)
}

fn close_pipe(p: &[RawFd; 2]) {
    for &fd in p {
        // Descriptors of the pool's own pipe, closed once.
        let _ = sys::close(fd);
    }
}

fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // A worker this parent forked and has not reaped yet.
    let _ = sys::kill(pid, sig);
}

/// Resident set size of `pid` in bytes (/proc/PID/statm).
fn rss_bytes(pid: libc::pid_t) -> Option<u64> {
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

fn describe(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("ended (status {status:#x})")
    }
}

impl Sup<'_> {
    fn main_loop(&mut self) -> Role {
        loop {
            if let Some(role) = self.read_signals() {
                return role;
            }
            if self.stopping.is_none() && self.drain_at.is_some_and(|t| Instant::now() >= t) {
                self.graceful_stop();
            }
            if let Some(role) = self.reap_and_maintain() {
                return role;
            }
            self.tell_systemd();
            if let Some(c) = &mut self.capture {
                c.read_all();
            }
            if let Some((_, _)) = self.stopping {
                if self.workers.is_empty() {
                    return Role::Stopped;
                }
            }
            self.wait();
        }
    }

    /// Handles the signals queued on the pipe. `Some` in a worker forked by a reload.
    fn read_signals(&mut self) -> Option<Role> {
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
                super::slowlog::reopen_now();
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
    fn graceful_stop(&mut self) {
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
    fn reload(&mut self) -> Option<Role> {
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

    /// Sends the drain signal: SIGQUIT to a worker on this runtime; SIGTERM to an exec'd
    /// program that did not attach (libfcgi ends its accept loop on SIGTERM, after the
    /// request in hand).
    fn ask_to_drain(&self, k: usize) {
        let w = &self.workers[k];
        let attached = self.board.slot(w.slot).attached.load(Ordering::Acquire) != 0;
        let sig = if self.cfg.exec && !attached {
            libc::SIGTERM
        } else {
            libc::SIGQUIT
        };
        kill(w.pid, sig);
    }

    fn drain_deadline(&self) -> Option<Instant> {
        (!self.cfg.graceful_timeout.is_zero()).then(|| Instant::now() + self.cfg.graceful_timeout)
    }

    /// Reaps exited workers, then (unless stopping) keeps the mode's worker count, drains
    /// what must drain, and kills what overstayed. `Some` in a newly forked worker.
    fn reap_and_maintain(&mut self) -> Option<Role> {
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

    /// Drains the workers past their lifetime (`max_lifetime_ms` plus their own jitter), as
    /// for `max_memory`; the mode's maintenance that follows forks their replacements while
    /// they finish what they hold.
    fn retire_old_workers(&mut self, now: Instant) {
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

    /// systemd: the watchdog ping when due, and STATUS= with the counts when they changed.
    fn tell_systemd(&mut self) {
        if !self.notify.enabled() {
            return;
        }
        self.notify.watchdog();
        let text = if self.stopping.is_some() {
            format!("Stopping: {} workers left", self.workers.len())
        } else {
            let busy = self
                .workers
                .iter()
                .filter(|w| {
                    !w.draining && self.board.slot(w.slot).in_flight.load(Ordering::Relaxed) > 0
                })
                .count();
            format!(
                "Ready: {} workers, {busy} busy, {} requests",
                self.active(),
                self.board.header().accepted.load(Ordering::Relaxed)
            )
        };
        self.notify.status(text);
    }

    /// Running, not draining.
    fn active(&self) -> usize {
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

    fn maintain_dynamic(&mut self, now: Instant) -> Option<Role> {
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

    fn maintain_ondemand(&mut self, now: Instant) -> Option<Role> {
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
    fn wants_listener_poll(&self, now: Instant) -> bool {
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

    fn drain_worker(&mut self, k: usize, why: &str) {
        let deadline = self.drain_deadline();
        let w = &mut self.workers[k];
        crate::fcgi_log!(Notice, "pool: draining worker {} ({why})", w.pid);
        w.draining = true;
        w.kill_at = deadline;
        self.ask_to_drain(k);
    }

    /// The slow log's crossing lines and the terminate timeout, from the workers' entries.
    fn watch_requests(&mut self) {
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
                    super::slowlog::write(&super::slowlog::line(
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
                        super::slowlog::printable(&v.method),
                        super::slowlog::printable(&v.uri)
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
    fn nudge_foreign_drains(&self) {
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
    fn sample_listen_queue(&self) {
        let q = self
            .fds
            .iter()
            .filter_map(|&fd| super::listen::queue(fd))
            .map(|(len, _)| u64::from(len))
            .max()
            .unwrap_or(0);
        self.board
            .header()
            .max_listen_queue
            .fetch_max(q, Ordering::Relaxed);
    }

    /// Sleeps until a signal arrives, a connection waits (on-demand), or the tick ends.
    fn wait(&mut self) {
        let now = Instant::now();
        let mut pfds = vec![libc::pollfd {
            fd: self.pipe[0],
            events: libc::POLLIN,
            revents: 0,
        }];
        if self.wants_listener_poll(now) && self.active() < self.cfg.max_children {
            pfds.extend(self.fds.iter().map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            }));
        }
        if let Some(st) = &self.status {
            st.poll_fds(&mut pfds);
        }
        if let Some(c) = &self.capture {
            pfds.extend(c.fds().map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            }));
        }
        let _ = sys::poll(&mut pfds, TICK.as_millis() as libc::c_int);
        // Also on a timeout: connections past their deadline close.
        self.serve_status();
    }

    /// Serves `status_listen` as far as it goes without waiting.
    fn serve_status(&mut self) {
        let draining = self.board.header().draining.load(Ordering::Acquire) != 0;
        let pool_fd = self.fds.first().copied().unwrap_or(-1);
        if let Some(st) = &mut self.status {
            st.serve(&self.board, pool_fd, draining);
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
                    "pool: worker {pid} (index {}) {} after {served} requests and {} ms{}",
                    w.index,
                    describe(status),
                    lived.as_millis(),
                    if planned { "" } else { "; replacing it" }
                ),
            );
        }
    }

    /// Forks a worker for the lowest index no active worker holds and whose back-off has
    /// ended (a crash loop is paced in every mode).
    fn spawn_next(&mut self) -> Option<Role> {
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
