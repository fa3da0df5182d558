//! `fcgi-spawn --config FILE`: the master of a pool file (docs/operations-design.md,
//! "Processes" and "Reload"; docs/fcgi-spawn.md, "Pool files").
//!
//! The master parses the file, opens every pool's listening socket and keeps it for as long as
//! some pool names it, forks one pool supervisor per pool (pool_proc.rs: the library's pool on
//! that socket), and stays single-threaded in a poll loop over a signalfd, the notify relay
//! and the error_log pipes. It restarts a pool supervisor that dies unasked (with back-off),
//! relays signals, re-reads the file on SIGHUP/SIGUSR2 (added pools start, removed ones drain,
//! changed ones get a new supervisor on the same socket before the old one drains, unchanged
//! ones get SIGHUP: a new generation of workers), and speaks to systemd (notify_relay.rs).
//!
//! Here: the master's state, its start and its poll loop. children.rs: spawning, reaping and
//! restarting pool supervisors; reload.rs: a reload; signals.rs: the signalfd and signals
//! relayed; systemd.rs: notify messages, STATUS= and the watchdog; logging.rs: the log and the
//! error_log pipes; global.rs: the [global] directives and the pid file; sockets.rs: the
//! listening sockets.

mod children;
mod global;
mod logging;
mod reload;
mod signals;
mod sockets;
mod systemd;

use self::children::{Child, PoolState};
use self::global::{apply_global, write_pid};
use self::logging::{LogPipe, Logger};
use self::sockets::{open_sock, Sock};
use crate::conf::{self, Config, Listen, PoolSpec};
use crate::notify_relay::Relay;
use fcgi_runtime::log::Level;
use fcgi_runtime::pool::notify::Notify;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The command line's part in master mode.
pub struct Args {
    pub file: PathBuf,
    pub allow_root: bool,
    /// -P: the pid file, instead of [global] pid.
    pub pid_file: Option<PathBuf>,
}

fn conf_options(allow_root: bool) -> conf::Options {
    conf::Options {
        is_root: crate::privs::is_root(),
        allow_root,
    }
}

/// `-t`: checks the file; exit 0 ("test is successful", as FPM) or 1 with the reason.
pub fn test(file: &Path, allow_root: bool) -> ! {
    let log = Logger::stderr();
    let mut notes = Vec::new();
    let r = conf::load_noting(file, conf_options(allow_root), &mut notes);
    log.notes(&notes);
    match r {
        Ok(_) => {
            log.line(
                Level::Notice,
                &format!("configuration file {} test is successful", file.display()),
            );
            std::process::exit(0)
        }
        Err(e) => {
            log.line(Level::Error, &e);
            log.line(
                Level::Error,
                &format!("configuration file {} test failed", file.display()),
            );
            std::process::exit(1)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    Fast,
    Graceful,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Starting,
    Running,
    Reloading,
}

struct Master {
    args: Args,
    conf: Config,
    log: Logger,
    sockets: BTreeMap<Listen, Sock>,
    pools: BTreeMap<String, PoolState>,
    children: BTreeMap<libc::pid_t, Child>,
    pipes: Vec<LogPipe>,
    /// error_log, opened (fd 2 points at it).
    error_log: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    sigfd: OwnedFd,
    relay: Relay,
    /// systemd's NOTIFY_SOCKET (None when systemd is not listening).
    systemd: Option<Notify>,
    phase: Phase,
    stopping: Option<Stop>,
    next_watchdog: Instant,
    watchdog_warned: bool,
    last_status: String,
    next_status: Instant,
    own_exe: Option<PathBuf>,
}

/// Runs the master; never returns.
pub fn run(args: Args) -> ! {
    let mut log = Logger::stderr();
    let mut notes = Vec::new();
    let conf = conf::load_noting(&args.file, conf_options(args.allow_root), &mut notes);
    log.notes(&notes);
    let conf = match conf {
        Ok(c) => c,
        Err(e) => {
            log.line(Level::Error, &e);
            log.line(
                Level::Error,
                &format!(
                    "failed to load configuration file '{}'",
                    args.file.display()
                ),
            );
            std::process::exit(1)
        }
    };
    let fail = |log: &Logger, msg: String| -> ! {
        log.line(Level::Error, &msg);
        std::process::exit(1)
    };
    let mut error_log = None;
    if let Err(e) = apply_global(&conf, &mut log, &mut error_log, None) {
        fail(&log, e);
    }
    let systemd = Some(Notify::from_env()).filter(Notify::enabled);
    let relay = Relay::open().unwrap_or_else(|e| fail(&log, format!("notify socket: {e}")));
    let mut sockets: BTreeMap<Listen, Sock> = BTreeMap::new();
    for p in &conf.pools {
        match open_sock(p) {
            Ok(s) => {
                sockets.insert(p.listen.clone(), s);
            }
            Err(e) => {
                for s in sockets.values() {
                    if let Some(u) = &s.unix {
                        u.remove();
                    }
                }
                fail(&log, e)
            }
        }
    }
    for v in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    let pid_file = args.pid_file.clone().or_else(|| conf.global.pid.clone());
    if let Some(p) = &pid_file {
        if let Err(e) = write_pid(p) {
            fail(&log, e);
        }
    }
    let sigfd = signals::signals().unwrap_or_else(|e| fail(&log, format!("signalfd: {e}")));
    let now = Instant::now();
    let mut m = Master {
        args,
        conf,
        log,
        sockets,
        pools: BTreeMap::new(),
        children: BTreeMap::new(),
        pipes: Vec::new(),
        error_log,
        pid_file,
        sigfd,
        relay,
        systemd,
        phase: Phase::Starting,
        stopping: None,
        next_watchdog: now,
        watchdog_warned: false,
        last_status: String::new(),
        next_status: now,
        own_exe: std::fs::read_link("/proc/self/exe").ok(),
    };
    m.log.line(
        Level::Notice,
        &format!(
            "master {} started: {} pool(s) from {}",
            std::process::id(),
            m.conf.pools.len(),
            m.args.file.display()
        ),
    );
    let specs: Vec<Rc<PoolSpec>> = m.conf.pools.iter().map(|p| Rc::new(p.clone())).collect();
    for spec in specs {
        let name = spec.name.clone();
        m.pools.insert(
            name.clone(),
            PoolState {
                spec,
                active: None,
                old: Vec::new(),
                restart_at: None,
                backoff: Duration::ZERO,
            },
        );
        m.spawn(&name);
    }
    m.main_loop()
}

impl Master {
    fn main_loop(&mut self) -> ! {
        loop {
            let timeout = self.timeout();
            let mut fds = vec![
                libc::pollfd {
                    fd: self.sigfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.relay.fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            for p in &self.pipes {
                fds.push(libc::pollfd {
                    fd: p.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            let ms = timeout.as_millis().min(60_000) as i32;
            let _ = fcgi_runtime::sys::poll(&mut fds, ms);
            if fds[0].revents != 0 {
                self.read_signals();
            }
            if fds[1].revents != 0 {
                self.read_notify();
            }
            let ready_pipes: Vec<RawFd> = fds[2..]
                .iter()
                .filter(|f| f.revents != 0)
                .map(|f| f.fd)
                .collect();
            for fd in ready_pipes {
                self.read_pipe(fd);
            }
            self.tick();
            if self.stopping.is_some() && self.children.is_empty() {
                self.finish();
            }
        }
    }

    /// How long the loop may sleep.
    fn timeout(&self) -> Duration {
        let now = Instant::now();
        let mut t = Duration::from_secs(5);
        if self.children.values().any(|c| !c.ready || !c.handlers)
            || self.pools.values().any(|p| p.restart_at.is_some())
        {
            t = t.min(Duration::from_millis(50));
        }
        if self
            .systemd
            .as_ref()
            .is_some_and(|s| s.watchdog_interval().is_some())
        {
            t = t.min(self.next_watchdog.saturating_duration_since(now));
        }
        if self.systemd.is_some() {
            t = t.min(
                self.next_status
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(50)),
            );
        }
        t
    }

    /// Every pool supervisor is gone: the pid file and the Unix socket files go, exit 0.
    fn finish(&mut self) -> ! {
        let fds: Vec<RawFd> = self.pipes.iter().map(|p| p.fd.as_raw_fd()).collect();
        for fd in fds {
            self.read_pipe(fd);
        }
        self.remove_pid_file();
        for s in self.sockets.values() {
            if let Some(u) = &s.unix {
                u.remove();
            }
        }
        self.log.line(Level::Notice, "every pool stopped; exiting");
        std::process::exit(0)
    }
}
