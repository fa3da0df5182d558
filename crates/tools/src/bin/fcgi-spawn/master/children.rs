//! The pool supervisors the master forks: spawning one on its pool's socket, reaping them,
//! restarting one that died unasked (with back-off), noticing readiness, retiring old ones.

use super::{LogPipe, Master};
use crate::conf::PoolSpec;
use crate::pool_proc;
use fcgi_runtime::log::Level;
use fcgi_runtime::pool::notify::Notify;
use fcgi_runtime::pool::Mode;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// First delay before restarting a pool supervisor that died unasked; doubled per quick death.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A supervisor that lived this long resets its pool's back-off.
const BACKOFF_RESET: Duration = Duration::from_secs(30);
/// A new supervisor not ready after this long is reported (the old one keeps serving).
const SLOW_START: Duration = Duration::from_secs(30);

/// A pool supervisor the master forked.
pub(super) struct Child {
    pub(super) pool: String,
    pub(super) spec: Rc<PoolSpec>,
    pub(super) started: Instant,
    /// Serving: it sent READY=1, or (a library without notify) its first workers run.
    pub(super) ready: bool,
    /// It sent READY=1 at least once: it speaks sd_notify, so reloads wait for its READY=1.
    pub(super) speaks_notify: bool,
    /// The library's signal handlers are installed (signals before that would kill it).
    pub(super) handlers: bool,
    /// Asked to drain (SIGQUIT): an old supervisor or a removed pool.
    pub(super) retiring: bool,
    /// A reload of this supervisor (SIGHUP) waits for its READY=1.
    pub(super) awaiting: bool,
    pub(super) slow_reported: bool,
    /// Its last STATUS= text.
    pub(super) status: String,
    /// Its last WATCHDOG=1.
    pub(super) watchdog_at: Option<Instant>,
}

/// A pool section as it runs.
pub(super) struct PoolState {
    pub(super) spec: Rc<PoolSpec>,
    /// The supervisor of the current configuration.
    pub(super) active: Option<libc::pid_t>,
    /// Supervisors of an older configuration, drained once `active` is ready.
    pub(super) old: Vec<libc::pid_t>,
    pub(super) restart_at: Option<Instant>,
    pub(super) backoff: Duration,
}

/// Whether process `pid` handles SIGHUP and SIGCHLD (the library's supervisor installed its
/// handlers: from then on, the master's signals are safe to send).
pub(super) fn handlers_installed(pid: libc::pid_t) -> bool {
    let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let mask = st
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or(0);
    let bit = |s: libc::c_int| 1u64 << (s - 1);
    mask & bit(libc::SIGHUP) != 0 && mask & bit(libc::SIGCHLD) != 0
}

/// The children of `pid`.
fn children_of(pid: libc::pid_t) -> Vec<libc::pid_t> {
    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return s
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(c) = e
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<libc::pid_t>().ok());
        if ppid == Some(pid) {
            out.push(c);
        }
    }
    out
}

impl Master {
    pub(super) fn spawn(&mut self, name: &str) {
        let Some(ps) = self.pools.get(name) else {
            return;
        };
        let spec = ps.spec.clone();
        let Some(sock) = self.sockets.get(&spec.listen) else {
            self.log
                .line(Level::Error, &format!("[pool {name}] no socket"));
            return;
        };
        let listen_fd = sock.fd.as_raw_fd();
        let pipe = if self.error_log.is_some() {
            match fcgi_runtime::sys::pipe(libc::O_CLOEXEC) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.log
                        .line(Level::Error, &format!("[pool {name}] pipe: {e}"));
                    None
                }
            }
        } else {
            None
        };
        let master = std::process::id() as libc::pid_t;
        let watchdog_usec = self
            .systemd
            .as_ref()
            .and_then(Notify::watchdog_interval)
            .map(|d| d.as_micros() as u64);
        // SAFETY: the master has one thread; the child runs pool_proc::run, which never
        // returns into the master's code.
        match unsafe { fcgi_runtime::sys::fork() } {
            Ok(0) => pool_proc::run(pool_proc::Start {
                spec: &spec,
                listen_fd,
                log_fd: pipe.map(|p| p[1]),
                notify: &self.relay.address,
                watchdog_usec,
                master,
            }),
            Ok(pid) => {
                if let Some([r, w]) = pipe {
                    let _ = fcgi_runtime::sys::close(w);
                    let _ = fcgi_runtime::sys::add_status_flags(r, libc::O_NONBLOCK);
                    self.pipes.push(LogPipe {
                        // SAFETY: the pipe's read end, owned from here on.
                        fd: unsafe { OwnedFd::from_raw_fd(r) },
                        buf: Vec::new(),
                    });
                }
                self.children.insert(
                    pid,
                    Child {
                        pool: name.to_string(),
                        spec: spec.clone(),
                        started: Instant::now(),
                        ready: false,
                        speaks_notify: false,
                        handlers: false,
                        retiring: false,
                        awaiting: false,
                        slow_reported: false,
                        status: String::new(),
                        watchdog_at: None,
                    },
                );
                if let Some(ps) = self.pools.get_mut(name) {
                    ps.active = Some(pid);
                    ps.restart_at = None;
                }
                self.log.line(
                    Level::Notice,
                    &format!(
                        "[pool {name}] supervisor {pid} started on {} (pm {}, max_children {})",
                        spec.listen,
                        spec.settings.mode.name(),
                        spec.settings.max_children
                    ),
                );
            }
            Err(e) => {
                if let Some([r, w]) = pipe {
                    let _ = fcgi_runtime::sys::close(r);
                    let _ = fcgi_runtime::sys::close(w);
                }
                self.log
                    .line(Level::Error, &format!("[pool {name}] fork: {e}"));
                self.schedule_restart(name, Duration::ZERO);
            }
        }
    }

    fn schedule_restart(&mut self, name: &str, lived: Duration) {
        let Some(ps) = self.pools.get_mut(name) else {
            return;
        };
        if lived >= BACKOFF_RESET {
            ps.backoff = Duration::ZERO;
        }
        ps.backoff = if ps.backoff.is_zero() {
            BACKOFF_MIN
        } else {
            (ps.backoff * 2).min(BACKOFF_MAX)
        };
        ps.active = None;
        ps.restart_at = Some(Instant::now() + ps.backoff);
    }

    pub(super) fn reap(&mut self) {
        loop {
            let (pid, status) = match fcgi_runtime::sys::waitpid_nohang(-1) {
                Ok((pid, status)) if pid > 0 => (pid, status),
                _ => return,
            };
            let Some(c) = self.children.remove(&pid) else {
                continue;
            };
            let lived = c.started.elapsed();
            let name = c.pool.clone();
            for ps in self.pools.values_mut() {
                ps.old.retain(|&o| o != pid);
            }
            let active = self.pools.get(&name).is_some_and(|p| p.active == Some(pid));
            if active && self.stopping.is_none() {
                self.schedule_restart(&name, lived);
                let next = self.pools.get(&name).map(|p| p.backoff).unwrap_or_default();
                self.log.line(
                    Level::Error,
                    &format!(
                        "[pool {name}] supervisor {pid} exited unexpectedly ({}); restarting \
                         in {} ms",
                        fcgi_runtime::sys::describe_wait_status(status),
                        next.as_millis()
                    ),
                );
            } else {
                if active {
                    if let Some(ps) = self.pools.get_mut(&name) {
                        ps.active = None;
                    }
                }
                self.log.line(
                    Level::Notice,
                    &format!(
                        "[pool {name}] supervisor {pid} exited ({})",
                        fcgi_runtime::sys::describe_wait_status(status)
                    ),
                );
            }
        }
    }

    /// `how`: what showed it (its READY=1, or its first workers running their program).
    pub(super) fn on_ready(&mut self, pid: libc::pid_t, how: &str) {
        let Some(c) = self.children.get_mut(&pid) else {
            return;
        };
        c.ready = true;
        c.handlers = true;
        let name = c.pool.clone();
        let retiring = c.retiring;
        self.log.line(
            Level::Notice,
            &format!("[pool {name}] ready (supervisor {pid}: {how})"),
        );
        if retiring {
            return;
        }
        let old = match self.pools.get_mut(&name) {
            Some(ps) if ps.active == Some(pid) => std::mem::take(&mut ps.old),
            _ => Vec::new(),
        };
        for o in old {
            self.retire(o);
        }
    }

    /// SIGQUIT to a supervisor of an older configuration or of a removed pool: its workers
    /// finish what they hold (the socket stays open in the master and in its replacement).
    pub(super) fn retire(&mut self, pid: libc::pid_t) {
        let Some(c) = self.children.get_mut(&pid) else {
            return;
        };
        if c.retiring {
            return;
        }
        c.retiring = true;
        let name = c.pool.clone();
        self.log.line(
            Level::Notice,
            &format!("[pool {name}] draining the old supervisor {pid} (SIGQUIT)"),
        );
        self.deliver(pid, libc::SIGQUIT);
    }

    /// The periodic work: readiness of new supervisors (when the library sends no READY=1),
    /// restarts that are due, systemd's READY=1, STATUS= and watchdog.
    pub(super) fn tick(&mut self) {
        let now = Instant::now();
        let pids: Vec<libc::pid_t> = self.children.keys().copied().collect();
        for pid in pids {
            let Some(c) = self.children.get_mut(&pid) else {
                continue;
            };
            if !c.handlers && handlers_installed(pid) {
                c.handlers = true;
            }
            if c.ready || !c.handlers || c.retiring {
                continue;
            }
            let s = &c.spec.settings;
            let initial = match s.mode {
                Mode::Static => s.max_children,
                Mode::Dynamic => s.start_servers(),
                Mode::OnDemand => 0,
            };
            let exe = self.own_exe.clone();
            let running = children_of(pid)
                .into_iter()
                .filter(|w| {
                    let e = std::fs::read_link(format!("/proc/{w}/exe")).ok();
                    e.is_some() && e != exe
                })
                .count();
            if running >= initial {
                self.on_ready(pid, &format!("{running} worker(s) run the program"));
            } else if !c.slow_reported && now.duration_since(c.started) > SLOW_START {
                c.slow_reported = true;
                let name = c.pool.clone();
                self.log.line(
                    Level::Warning,
                    &format!(
                        "[pool {name}] supervisor {pid} is not ready after {} s ({running} of \
                         {initial} workers run their program); an older one keeps serving",
                        SLOW_START.as_secs()
                    ),
                );
            }
        }
        if self.stopping.is_none() {
            let due: Vec<String> = self
                .pools
                .iter()
                .filter(|(_, p)| p.active.is_none() && p.restart_at.is_some_and(|t| t <= now))
                .map(|(n, _)| n.clone())
                .collect();
            for name in due {
                self.spawn(&name);
            }
        }
        self.systemd_tick(now);
    }
}
