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

use crate::conf::{self, Config, Listen, Note, PoolSpec};
use crate::notify_relay::{self, Relay, Systemd};
use crate::{limits, pool_proc, socket};
use fcgi_runtime::log::Level;
use fcgi_runtime::pool::Mode;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// First delay before restarting a pool supervisor that died unasked; doubled per quick death.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A supervisor that lived this long resets its pool's back-off.
const BACKOFF_RESET: Duration = Duration::from_secs(30);
/// A new supervisor not ready after this long is reported (the old one keeps serving).
const SLOW_START: Duration = Duration::from_secs(30);
/// STATUS= to systemd at most this often.
const STATUS_EVERY: Duration = Duration::from_secs(1);

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

/// The master's log: `fcgi-spawn: LEVEL: text` on fd 2 (`<N>fcgi-spawn: text` when fd 2 is
/// systemd's journal), one write per line; below `threshold` dropped.
struct Logger {
    threshold: Level,
    journal: bool,
}

impl Logger {
    fn stderr() -> Logger {
        let mut l = Logger {
            threshold: Level::Notice,
            journal: false,
        };
        l.stderr_changed();
        l
    }

    /// Reads again whether fd 2 is the journal's stream (JOURNAL_STREAM=dev:ino).
    fn stderr_changed(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let want = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
            let (d, i) = v.trim().split_once(':')?;
            Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
        });
        // fd 2 stays open: the File is forgotten, not closed.
        // SAFETY: fd 2 is open for the life of the process.
        let f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(2) });
        let got = f.metadata().ok().map(|m| (m.dev(), m.ino()));
        self.journal = want.is_some() && got == want;
    }

    fn line(&self, level: Level, text: &str) {
        if level < self.threshold {
            return;
        }
        let line = if self.journal {
            format!("<{}>fcgi-spawn: {text}\n", syslog_priority(level))
        } else {
            let name = match level {
                Level::Debug => "DEBUG",
                Level::Notice => "NOTICE",
                Level::Warning => "WARNING",
                Level::Error => "ERROR",
                Level::Alert => "ALERT",
            };
            format!("fcgi-spawn: {name}: {text}\n")
        };
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn notes(&self, notes: &[Note]) {
        for n in notes {
            match n {
                Note::Notice(t) => self.line(Level::Notice, t),
                Note::Warning(t) => self.line(Level::Warning, t),
            }
        }
    }
}

fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Debug => 7,
        Level::Notice => 5,
        Level::Warning => 4,
        Level::Error => 3,
        Level::Alert => 1,
    }
}

/// A listening socket the master holds for the pools that name it.
struct Sock {
    fd: OwnedFd,
    unix: Option<socket::UnixFile>,
    backlog: i32,
    mode: u32,
    owner: (Option<u32>, Option<u32>),
}

fn open_sock(spec: &PoolSpec) -> Result<Sock, String> {
    let (fd, unix) = match &spec.listen {
        Listen::Tcp(sa) => {
            let open = |sa: std::net::SocketAddr| {
                fcgi_runtime::addr::listen_with(
                    &fcgi_runtime::addr::ListenAddr::Tcp(sa),
                    spec.backlog,
                    false,
                )
            };
            let fd = match open(*sa) {
                // `listen = PORT` on a host without IPv6: every IPv4 address.
                Err(e)
                    if sa.ip().is_unspecified()
                        && sa.is_ipv6()
                        && e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
                {
                    open(std::net::SocketAddr::from(([0, 0, 0, 0], sa.port())))
                }
                r => r,
            }
            .map_err(|e| format!("[pool {}] cannot listen on {sa}: {e}", spec.name))?;
            (fd, None)
        }
        Listen::Unix(p) => {
            let path = p
                .to_str()
                .ok_or_else(|| format!("[pool {}] the socket path is not UTF-8", spec.name))?;
            let (fd, file) =
                socket::unix(path, spec.backlog, spec.sock_owner, Some(spec.sock_mode))
                    .map_err(|e| format!("[pool {}] {e}", spec.name))?;
            (fd, Some(file))
        }
    };
    Ok(Sock {
        fd,
        unix,
        backlog: spec.backlog,
        mode: spec.sock_mode,
        owner: spec.sock_owner,
    })
}

/// A pool supervisor the master forked.
struct Child {
    pool: String,
    spec: Rc<PoolSpec>,
    started: Instant,
    /// Serving: it sent READY=1, or (a library without notify) its first workers run.
    ready: bool,
    /// It sent READY=1 at least once: it speaks sd_notify, so reloads wait for its READY=1.
    speaks_notify: bool,
    /// The library's signal handlers are installed (signals before that would kill it).
    handlers: bool,
    /// Asked to drain (SIGQUIT): an old supervisor or a removed pool.
    retiring: bool,
    /// A reload of this supervisor (SIGHUP) waits for its READY=1.
    awaiting: bool,
    slow_reported: bool,
    /// Its last STATUS= text.
    status: String,
    /// Its last WATCHDOG=1.
    watchdog_at: Option<Instant>,
}

/// A pool section as it runs.
struct PoolState {
    spec: Rc<PoolSpec>,
    /// The supervisor of the current configuration.
    active: Option<libc::pid_t>,
    /// Supervisors of an older configuration, drained once `active` is ready.
    old: Vec<libc::pid_t>,
    restart_at: Option<Instant>,
    backoff: Duration,
}

/// An error_log pipe: a pool supervisor's stderr (and its programs').
struct LogPipe {
    fd: OwnedFd,
    buf: Vec<u8>,
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
    systemd: Option<Systemd>,
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
    let systemd = Systemd::from_env();
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
    let sigfd = signals().unwrap_or_else(|e| fail(&log, format!("signalfd: {e}")));
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

/// The global directives fcgi-spawn applies to itself: error_log (fd 2 then points at it),
/// log_level, rlimits and priority (inherited by every pool supervisor).
fn apply_global(
    conf: &Config,
    log: &mut Logger,
    error_log: &mut Option<PathBuf>,
    previous: Option<&conf::Global>,
) -> Result<(), String> {
    let g = &conf.global;
    log.threshold = g.log_level.unwrap_or(Level::Notice);
    if *error_log != g.error_log {
        match &g.error_log {
            Some(path) => open_error_log(path)?,
            None => {
                let saved = ORIGINAL_STDERR.load(std::sync::atomic::Ordering::Relaxed);
                if saved >= 0 {
                    let _ = fcgi_runtime::sys::dup2(saved, 2);
                }
            }
        }
        log.stderr_changed();
        *error_log = g.error_log.clone();
    }
    if previous.is_some_and(|p| {
        p.rlimit_files == g.rlimit_files
            && p.rlimit_core == g.rlimit_core
            && p.priority == g.priority
    }) {
        return Ok(());
    }
    if let Some(v) = g.rlimit_files {
        limits::set_rlimit(libc::RLIMIT_NOFILE, "rlimit_files", v)?;
    }
    if let Some(v) = g.rlimit_core {
        limits::set_rlimit(libc::RLIMIT_CORE, "rlimit_core", v)?;
    }
    if let Some(p) = g.priority {
        limits::set_priority(p)?;
    }
    Ok(())
}

/// fcgi-spawn's stderr before error_log replaced it (-1: not replaced yet).
static ORIGINAL_STDERR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Opens error_log (append, created 0600 as FPM does) and puts it on fd 2.
fn open_error_log(path: &Path) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    if ORIGINAL_STDERR.load(Ordering::Relaxed) < 0 {
        use std::os::fd::{BorrowedFd, IntoRawFd};
        // SAFETY: fd 2 is open for the life of the process; it is only duplicated here
        // (close-on-exec).
        let saved = unsafe { BorrowedFd::borrow_raw(2) }
            .try_clone_to_owned()
            .map_or(-1, |fd| fd.into_raw_fd());
        ORIGINAL_STDERR.store(saved, Ordering::Relaxed);
    }
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("failed to open error_log ({}): {e}", path.display()))?;
    fcgi_runtime::sys::dup2(f.as_raw_fd(), 2)
        .map_err(|e| format!("cannot put error_log on fd 2: {e}"))?;
    Ok(())
}

/// The pid file as FPM writes it: the old one unlinked, a new one created, the master's pid.
fn write_pid(path: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| writeln!(f, "{}", std::process::id()))
        .map_err(|e| format!("Unable to create the PID file ({}): {e}", path.display()))
}

/// The master's signals: every one blocked and read from a signalfd (those it does not act
/// on, SIGPIPE included, are read and dropped). Pool supervisors unblock them.
fn signals() -> std::io::Result<OwnedFd> {
    use fcgi_runtime::sys::signal;
    let set = signal::all_signals();
    // The process has one thread: blocking here blocks the signals for the whole process.
    signal::block_all();
    // SAFETY: a valid, initialised signal set; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor signalfd just returned, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn describe(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status:#x}")
    }
}

fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "a signal",
    }
}

/// Whether process `pid` handles SIGHUP and SIGCHLD (the library's supervisor installed its
/// handlers: from then on, the master's signals are safe to send).
fn handlers_installed(pid: libc::pid_t) -> bool {
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
        if self.systemd.as_ref().is_some_and(|s| s.watchdog.is_some()) {
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

    fn read_signals(&mut self) {
        // signalfd_siginfo: 128 bytes, the signal's number first (u32).
        let mut buf = [0u8; 128];
        while let Ok(128) = fcgi_runtime::sys::read(self.sigfd.as_raw_fd(), &mut buf) {
            let signo = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
            self.on_signal(signo as libc::c_int);
        }
    }

    fn on_signal(&mut self, sig: libc::c_int) {
        match sig {
            libc::SIGCHLD => self.reap(),
            libc::SIGHUP | libc::SIGUSR2 if self.stopping.is_none() => self.reload(sig),
            libc::SIGTERM | libc::SIGINT => self.stop(Stop::Fast, sig),
            libc::SIGQUIT => self.stop(Stop::Graceful, sig),
            libc::SIGUSR1 => {
                self.log
                    .line(Level::Notice, "reopening log files (SIGUSR1)");
                if let Some(p) = self.error_log.clone() {
                    match open_error_log(&p) {
                        Ok(()) => self.log.stderr_changed(),
                        Err(e) => self.log.line(Level::Error, &e),
                    }
                }
                let pids: Vec<libc::pid_t> = self.children.keys().copied().collect();
                for pid in pids {
                    self.deliver(pid, libc::SIGUSR1);
                }
            }
            _ => {}
        }
    }

    /// Sends `sig` to a pool supervisor once it can take it: before the library's handlers are
    /// installed, a stop becomes SIGTERM (the supervisor has no worker yet) and other signals
    /// are dropped (it starts with the current configuration and logs anyway).
    fn deliver(&mut self, pid: libc::pid_t, sig: libc::c_int) {
        let Some(c) = self.children.get_mut(&pid) else {
            return;
        };
        if !c.handlers && handlers_installed(pid) {
            c.handlers = true;
        }
        let sig = match (c.handlers, sig) {
            (true, s) => s,
            (false, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT) => libc::SIGTERM,
            (false, _) => return,
        };
        let _ = fcgi_runtime::sys::kill(pid, sig);
    }

    fn stop(&mut self, kind: Stop, sig: libc::c_int) {
        match (self.stopping, kind) {
            (Some(Stop::Fast), _) | (Some(Stop::Graceful), Stop::Graceful) => return,
            _ => {}
        }
        self.stopping = Some(kind);
        self.log.line(
            Level::Notice,
            &format!(
                "{} ({}): stopping {} pool supervisor(s)",
                if kind == Stop::Fast {
                    "fast stop"
                } else {
                    "graceful stop"
                },
                signal_name(sig),
                self.children.len()
            ),
        );
        if let Some(sd) = &self.systemd {
            sd.send("STOPPING=1");
        }
        for p in self.pools.values_mut() {
            p.restart_at = None;
        }
        let sig = if kind == Stop::Fast {
            libc::SIGTERM
        } else {
            libc::SIGQUIT
        };
        let pids: Vec<libc::pid_t> = self.children.keys().copied().collect();
        for pid in pids {
            self.deliver(pid, sig);
        }
    }

    fn spawn(&mut self, name: &str) {
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
            .and_then(|s| s.watchdog)
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

    fn reap(&mut self) {
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
                        describe(status),
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
                        describe(status)
                    ),
                );
            }
        }
    }

    fn read_notify(&mut self) {
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

    /// `how`: what showed it (its READY=1, or its first workers running their program).
    fn on_ready(&mut self, pid: libc::pid_t, how: &str) {
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
    fn retire(&mut self, pid: libc::pid_t) {
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
    fn tick(&mut self) {
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

    fn systemd_tick(&mut self, now: Instant) {
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
        if let Some(every) = sd.watchdog {
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

    fn reload(&mut self, sig: libc::c_int) {
        self.log.line(
            Level::Notice,
            &format!(
                "reloading {} ({})",
                self.args.file.display(),
                signal_name(sig)
            ),
        );
        if let Some(sd) = &self.systemd {
            sd.send(&format!(
                "RELOADING=1\nMONOTONIC_USEC={}",
                notify_relay::monotonic_usec()
            ));
        }
        let failed = |m: &mut Master, e: String| {
            m.log.line(Level::Error, &e);
            m.log.line(
                Level::Error,
                "reload failed: the pools keep running as they were",
            );
            m.phase = Phase::Running;
            if let Some(sd) = &m.systemd {
                sd.send(&format!("READY=1\nSTATUS=reload failed: {e}"));
            }
        };
        let mut notes = Vec::new();
        let new = conf::load_noting(
            &self.args.file,
            conf_options(self.args.allow_root),
            &mut notes,
        );
        self.log.notes(&notes);
        let new = match new {
            Ok(c) => c,
            Err(e) => return failed(self, e),
        };
        // New sockets first: if one cannot be opened, nothing changes.
        let mut opened: Vec<(Listen, Sock)> = Vec::new();
        for p in &new.pools {
            if self.sockets.contains_key(&p.listen) || opened.iter().any(|(l, _)| *l == p.listen) {
                continue;
            }
            match open_sock(p) {
                Ok(s) => opened.push((p.listen.clone(), s)),
                Err(e) => {
                    for (_, s) in &opened {
                        if let Some(u) = &s.unix {
                            u.remove();
                        }
                    }
                    return failed(self, e);
                }
            }
        }
        let old_global = self.conf.global.clone();
        if let Err(e) = apply_global(&new, &mut self.log, &mut self.error_log, Some(&old_global)) {
            self.log.line(Level::Error, &e);
        }
        let new_pid = self
            .args
            .pid_file
            .clone()
            .or_else(|| new.global.pid.clone());
        if new_pid != self.pid_file {
            self.remove_pid_file();
            if let Some(p) = &new_pid {
                if let Err(e) = write_pid(p) {
                    self.log.line(Level::Error, &e);
                }
            }
            self.pid_file = new_pid;
        }
        for (l, s) in opened {
            self.sockets.insert(l, s);
        }
        // Sockets kept: their backlog, mode and owner as the file now says.
        for p in &new.pools {
            let spec = p;
            let Some(s) = self.sockets.get_mut(&spec.listen) else {
                continue;
            };
            if s.backlog != spec.backlog {
                let _ = fcgi_runtime::sys::listen(s.fd.as_raw_fd(), spec.backlog);
                s.backlog = spec.backlog;
            }
            if let (Some(u), true) = (
                &s.unix,
                s.mode != spec.sock_mode || s.owner != spec.sock_owner,
            ) {
                use std::os::unix::fs::PermissionsExt;
                if spec.sock_owner != (None, None) {
                    let _ = std::os::unix::fs::chown(&u.path, spec.sock_owner.0, spec.sock_owner.1);
                }
                let _ = std::fs::set_permissions(
                    &u.path,
                    std::fs::Permissions::from_mode(spec.sock_mode),
                );
                s.mode = spec.sock_mode;
                s.owner = spec.sock_owner;
            }
        }
        // Pools removed.
        let removed: Vec<String> = self
            .pools
            .keys()
            .filter(|n| !new.pools.iter().any(|p| p.name == **n))
            .cloned()
            .collect();
        for name in removed {
            if let Some(ps) = self.pools.remove(&name) {
                self.log.line(
                    Level::Notice,
                    &format!("[pool {name}] removed from the file"),
                );
                for pid in ps.active.into_iter().chain(ps.old) {
                    self.retire(pid);
                }
            }
        }
        // Pools added, changed, unchanged.
        for p in &new.pools {
            let name = p.name.clone();
            match self.pools.get_mut(&name) {
                None => {
                    self.log
                        .line(Level::Notice, &format!("[pool {name}] added to the file"));
                    self.pools.insert(
                        name.clone(),
                        PoolState {
                            spec: Rc::new(p.clone()),
                            active: None,
                            old: Vec::new(),
                            restart_at: None,
                            backoff: Duration::ZERO,
                        },
                    );
                    self.spawn(&name);
                }
                Some(ps) if *ps.spec == *p => {
                    if let Some(pid) = ps.active {
                        if let Some(c) = self.children.get_mut(&pid) {
                            if c.ready && c.speaks_notify {
                                c.awaiting = true;
                            }
                        }
                        self.log.line(
                            Level::Notice,
                            &format!(
                                "[pool {name}] unchanged: SIGHUP to supervisor {pid} (new workers)"
                            ),
                        );
                        self.deliver(pid, libc::SIGHUP);
                    }
                }
                Some(ps) => {
                    self.log.line(
                        Level::Notice,
                        &format!(
                            "[pool {name}] changed: a new supervisor, then the old one drains"
                        ),
                    );
                    if let Some(a) = ps.active.take() {
                        ps.old.push(a);
                    }
                    ps.spec = Rc::new(p.clone());
                    ps.backoff = Duration::ZERO;
                    ps.restart_at = None;
                    self.spawn(&name);
                }
            }
        }
        // Sockets no pool names any more: closed here (supervisors still draining hold their
        // own copies), their files removed.
        let names: Vec<Listen> = new.pools.iter().map(|p| p.listen.clone()).collect();
        let gone: Vec<Listen> = self
            .sockets
            .keys()
            .filter(|l| !names.contains(l))
            .cloned()
            .collect();
        for l in gone {
            if let Some(s) = self.sockets.remove(&l) {
                if let Some(u) = &s.unix {
                    u.remove();
                }
                self.log
                    .line(Level::Notice, &format!("closed {l} (no pool names it)"));
            }
        }
        self.conf = new;
        self.phase = Phase::Reloading;
    }

    /// Reads an error_log pipe; complete lines go to fd 2 (error_log), one write each.
    fn read_pipe(&mut self, fd: RawFd) {
        let Some(i) = self.pipes.iter().position(|p| p.fd.as_raw_fd() == fd) else {
            return;
        };
        let mut buf = [0u8; 8192];
        loop {
            match fcgi_runtime::sys::read(fd, &mut buf) {
                Ok(0) => {
                    let p = self.pipes.remove(i);
                    if !p.buf.is_empty() {
                        let mut line = p.buf;
                        line.push(b'\n');
                        let _ = std::io::stderr().write_all(&line);
                    }
                    return;
                }
                Ok(n) => {
                    let p = &mut self.pipes[i];
                    p.buf.extend_from_slice(&buf[..n]);
                    if let Some(end) = p.buf.iter().rposition(|&b| b == b'\n') {
                        let rest = p.buf.split_off(end + 1);
                        let _ = std::io::stderr().write_all(&p.buf);
                        p.buf = rest;
                    } else if p.buf.len() > 16 * 1024 {
                        p.buf.push(b'\n');
                        let _ = std::io::stderr().write_all(&p.buf);
                        p.buf.clear();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn remove_pid_file(&self) {
        if let Some(path) = &self.pid_file {
            let ours = std::fs::read_to_string(path)
                .is_ok_and(|s| s.trim() == std::process::id().to_string());
            if ours {
                let _ = std::fs::remove_file(path);
            }
        }
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
