//! The parent: forks workers, reaps and replaces them, applies the pool mode, and turns
//! signals (through a self-pipe) into stop, graceful stop and reload. Single-threaded; it
//! never serves a request. See docs/pool-design.md.
//!
//! Here: its state, its start and its poll loop. control.rs: signals turned into stop, graceful
//! stop and reload; workers.rs: forking, reaping and replacing workers; modes.rs: the pool
//! modes' worker counts; watch.rs: request timeouts, lifetimes, drains, the listen queue.

mod control;
mod modes;
mod watch;
mod workers;

use super::capture::Capture;
use super::config::{Mode, Settings};
use super::scoreboard::Scoreboard;
use super::signals::{self, Saved};
use super::Role;
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
}
