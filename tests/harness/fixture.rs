//! The web-server and process fixture shared by `tests/web_servers/nginx.rs` (the C examples behind nginx)
//! and by `tests/libfcgi/binaries.rs` (fcgiwrap), `tests/libfcgi/cgi_fcgi.rs` (cgi-fcgi) and
//! `tests/libfcgi/perl.rs` (Perl's FCGI module), which run real, unmodified Debian programs on
//! the project's `libfcgi.so.0`. Generic helpers (free ports, FNV-1a, pseudo-random bodies, the
//! C examples) come from `tests/harness`.
//!
//! The library under test of the libfcgi programs is chosen with `FCGI_TEST_LIBFCGI`:
//! - unset or `project`: every libfcgi program runs with `LD_LIBRARY_PATH` naming the freshly
//!   built library ([`super::lib_dir`]), and each test asserts through `/proc/<pid>/maps` that
//!   the program really mapped it and not Debian's;
//! - `debian`: the same programs run on Debian's `/usr/lib/x86_64-linux-gnu/libfcgi.so.0` (no
//!   `LD_LIBRARY_PATH`), and the tests assert that one is mapped. This is the reference run: the
//!   tests pass there too, except where a test says libfcgi is wrong.
//!
//! [`Fixture`] owns a temporary directory, the processes a test starts (killed on drop, nginx
//! first) and an optional nginx with its own configuration, prefix and logs in that directory.
//! The directory is removed after a passing test and kept (its path printed) after a failure
//! or with `FCGI_TEST_KEEP=1`. The tools are required (CI installs them): a missing one fails the
//! test, it does not skip it.
#![allow(dead_code)]

use super::{manifest_dir, START_TIMEOUT};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

pub const NGINX: &str = "/usr/sbin/nginx";
pub const FCGIWRAP: &str = "/usr/sbin/fcgiwrap";
pub const SPAWN_FCGI: &str = "/usr/bin/spawn-fcgi";
pub const CGI_FCGI: &str = "/usr/bin/cgi-fcgi";
pub const PERL: &str = "/usr/bin/perl";
/// Debian's library, as `/proc/<pid>/maps` names it (`/lib` is a link to `/usr/lib`).
pub const DEBIAN_LIB: &str = "/usr/lib/x86_64-linux-gnu/libfcgi.so";

/// Polls `cond` every 10 ms for at most [`START_TIMEOUT`]; says whether it became true.
pub fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The first byte of `body` that breaks the repeated alphabet the test servers send for large
/// responses (`abc...zabc...`), if any.
pub fn alphabet_mismatch(body: &[u8]) -> Option<usize> {
    let alphabet = b"abcdefghijklmnopqrstuvwxyz";
    body.iter()
        .enumerate()
        .position(|(i, &b)| b != alphabet[i % alphabet.len()])
}
/// How long one run of a short-lived tool (cgi-fcgi, curl) may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Read/write timeout of the test's own sockets in the web-server and process tests (a web
/// server or a real program in between; [`super::IO_TIMEOUT`] is for direct FastCGI
/// connections).
pub const WEB_IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`Fixture::curl_max_time`].
const CURL_MAX_TIME: u32 = 60;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn unique() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// `tests/harness/scripts/<name>`.
pub fn script(name: &str) -> PathBuf {
    manifest_dir().join("tests/harness/scripts").join(name)
}

// ---------------------------------------------------------------------------------------------
// Which library
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lib {
    /// The project's build (the default).
    Project,
    /// Debian's libfcgi.so.0: the reference behaviour.
    Debian,
}

/// The library under test, from `FCGI_TEST_LIBFCGI` (see the module documentation).
pub fn lib() -> Lib {
    static LIB: OnceLock<Lib> = OnceLock::new();
    *LIB.get_or_init(|| match std::env::var("FCGI_TEST_LIBFCGI").as_deref() {
        Err(_) | Ok("") | Ok("project") => Lib::Project,
        Ok("debian") | Ok("system") => Lib::Debian,
        Ok(other) => panic!("FCGI_TEST_LIBFCGI={other:?}: want \"project\" or \"debian\""),
    })
}

/// Makes `cmd` (a program linked with libfcgi.so.0) run on the library under test.
pub fn on_lib(cmd: &mut Command) -> &mut Command {
    match lib() {
        Lib::Project => cmd.env("LD_LIBRARY_PATH", super::lib_dir()),
        Lib::Debian => cmd.env_remove("LD_LIBRARY_PATH"),
    }
}

/// `NAME=VALUE` for the `LD_LIBRARY_PATH` that [`on_lib`] sets, if any (for programs that pass
/// their whole environment on, like cgi-fcgi).
pub fn lib_env() -> Option<(String, String)> {
    match lib() {
        Lib::Project => Some((
            "LD_LIBRARY_PATH".to_string(),
            super::lib_dir()
                .to_str()
                .expect("utf-8 lib dir")
                .to_string(),
        )),
        Lib::Debian => None,
    }
}

/// The libfcgi mappings of process `pid`, one path per line (empty if none or gone).
fn fcgi_maps(pid: u32) -> String {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut paths: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        // The file name, not the path: fixture directories are named fcgi-libfcgi-*.
        .filter(|p| {
            Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libfcgi.so"))
        })
        .collect();
    paths.dedup();
    paths.join("\n")
}

/// Whether process `pid` runs on the library under test: for [`Lib::Project`],
/// [`super::runs_project_lib`]; for [`Lib::Debian`], Debian's library is mapped.
pub fn runs_lib_under_test(pid: u32) -> bool {
    match lib() {
        Lib::Project => super::runs_project_lib(pid),
        Lib::Debian => {
            let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            maps.lines().any(|l| l.contains(DEBIAN_LIB))
        }
    }
}

/// Waits (bounded) until process `pid` has some libfcgi mapped, i.e. the dynamic loader is
/// done choosing one. False if it exited first or never mapped one.
pub fn wait_lib_mapped(pid: u32) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if !fcgi_maps(pid).is_empty() {
            return true;
        }
        if !is_alive(pid) {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Whether process `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

pub fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} not found: this test needs Debian's {package} (apt-get install {package}); \
         it fails instead of skipping because CI installs it"
    );
}

pub fn tcp_ready(port: u16) -> bool {
    TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(200),
    )
    .is_ok()
}

pub fn unix_ready(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

pub fn show(body: &[u8]) -> String {
    const MAX: usize = 2000;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]).into_owned();
    if body.len() > MAX {
        format!("{text}... ({} bytes in all)", body.len())
    } else {
        text
    }
}

/// SHA-256 of a file, in hex, by coreutils' `sha256sum`.
pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {} failed", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

/// The value of the first `NAME=value` line of `text`.
pub fn line_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

/// Runs `cmd` with `stdin` fed by a thread, collecting stdout and stderr; kills it and returns
/// `Err` if it takes longer than [`RUN_TIMEOUT`]. `before_stdin` runs with the child's pid
/// before any stdin byte is written and before its stdout is read, so a child that waits for
/// its input, or writes more than a pipe holds, is still running meanwhile.
pub fn run_with_stdin(
    cmd: &mut Command,
    stdin: Vec<u8>,
    before_stdin: impl FnOnce(u32),
) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let pid = child.id();
    let mut input = child.stdin.take().expect("piped stdin");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    // A panic in the check must not leave the child running.
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| before_stdin(pid)));
    if let Err(p) = checked {
        let _ = child.kill();
        let _ = child.wait();
        std::panic::resume_unwind(p);
    }
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let in_t = thread::spawn(move || {
        // The child may legitimately stop reading early; a broken pipe is not our error.
        let _ = input.write_all(&stdin);
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = err_t.join().unwrap_or_default();
                return Err(format!(
                    "{cmd:?} did not finish within {RUN_TIMEOUT:?}; stderr so far:\n{}",
                    show(&stderr)
                ));
            }
            Err(e) => return Err(format!("wait for {cmd:?}: {e}")),
        }
    };
    let _ = in_t.join();
    Ok(Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// Pids of the running processes whose executable is `exe` (a path unique to one test).
pub fn pids_of_exe(exe: &Path) -> Vec<u32> {
    let want = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
    let mut pids = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if fs::read_link(e.path().join("exe")).is_ok_and(|p| p == want) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Pids of the children of process `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(parent) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Pids of the live (not zombie) children of process `parent`.
pub fn live_children_of(parent: u32) -> std::collections::BTreeSet<u32> {
    children_of(parent)
        .into_iter()
        .filter(|&p| is_alive(p))
        .collect()
}

/// The end of a supervisor a test started (a pool, fcgi-spawn): kills it and then `workers`
/// (read before, while they were its children), and removes the test's directory `dir` unless
/// the test failed, when it is kept and named on stderr (`what` says whose files they are).
pub fn stop_supervisor(
    child: &mut std::process::Child,
    workers: std::collections::BTreeSet<u32>,
    dir: &Path,
    what: &str,
) {
    let _ = child.kill();
    let _ = child.wait();
    for w in workers {
        // SAFETY: kill(2) to a worker of the supervisor this test started.
        unsafe { libc::kill(w as libc::pid_t, libc::SIGKILL) };
    }
    if std::thread::panicking() {
        eprintln!("{what} files kept in {}", dir.display());
    } else {
        let _ = fs::remove_dir_all(dir);
    }
}

/// How many Unix-domain sockets process `pid` has open.
pub fn unix_sockets_of(pid: u32) -> usize {
    let table = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let inodes: std::collections::HashSet<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(6))
        .collect();
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| fs::read_link(e.path()).ok())
                .filter_map(|t| {
                    let t = t.to_str()?.to_string();
                    let ino = t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string();
                    Some(ino)
                })
                .filter(|ino| inodes.contains(ino.as_str()))
                .count()
        })
        .unwrap_or(0)
}

/// Compiles a C file of `tests/harness/scripts/` against Debian's headers and `-lfcgi` (Debian's
/// `libfcgi.so` development link, never the project's), once per test binary, into
/// `target/<profile>/libfcgi-bin-tests/`. Returns the program's path.
pub fn compile_against_debian(source: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(s, _)| s == source) {
        return p.clone();
    }
    require("/usr/include/fcgiapp.h", "libfcgi-dev");
    let exe = std::env::current_exe().expect("current_exe");
    let out_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .join("libfcgi-bin-tests");
    fs::create_dir_all(&out_dir).expect("create build dir");
    let name = source.trim_end_matches(".c");
    let out = out_dir.join(name);
    let tmp = out_dir.join(format!("{name}.tmp{}", std::process::id()));
    let res = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-o"])
        .arg(&tmp)
        .arg(script(source))
        .arg("-lfcgi")
        .stdin(Stdio::null())
        .output()
        .expect("run cc");
    assert!(
        res.status.success(),
        "cc {source} -lfcgi failed ({}):\n{}{}",
        res.status,
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    fs::rename(&tmp, &out).expect("rename compiled program");
    built.push((source.to_string(), out.clone()));
    out
}

// ---------------------------------------------------------------------------------------------
// HTTP responses
// ---------------------------------------------------------------------------------------------

pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The response curl wrote to the files `body` and `headers`, which are removed.
    fn take(status: u16, body: &Path, headers: &Path) -> Response {
        let r = Response {
            status,
            headers: fs::read_to_string(headers).unwrap_or_default(),
            body: fs::read(body).unwrap_or_default(),
        };
        let _ = fs::remove_file(body);
        let _ = fs::remove_file(headers);
        r
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// A running curl started by [`Fixture::curl_spawn`] (curl's own --max-time bounds it).
pub struct CurlCall {
    label: String,
    child: Child,
    body: PathBuf,
    headers: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------------

pub struct Fixture {
    pub dir: PathBuf,
    /// nginx's port, once started.
    pub port: u16,
    /// curl's `--max-time` (seconds) for every request of [`Fixture::curl`],
    /// [`Fixture::curl_spawn`] and [`Fixture::curl_many`].
    pub curl_max_time: u32,
    /// nginx's `worker_connections` (clients and upstream connections together).
    pub nginx_worker_connections: u32,
    /// Started processes; nginx is moved to the front so it stops first.
    children: Vec<(String, Child)>,
    /// Processes the test did not start itself but found and owns (e.g. an application that
    /// cgi-fcgi -start spawned and left running), killed by pid on drop.
    adopted: Vec<u32>,
    /// Executables in the fixture directory whose processes are killed on drop, wherever they
    /// came from.
    owned_exes: Vec<PathBuf>,
}

impl Fixture {
    pub fn new(tag: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "fcgi-libfcgi-{tag}-{}-{}",
            std::process::id(),
            unique()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        Fixture {
            dir,
            port: 0,
            curl_max_time: CURL_MAX_TIME,
            nginx_worker_connections: 256,
            children: Vec::new(),
            adopted: Vec::new(),
            owned_exes: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Copies `tests/harness/scripts/<name>` (or any file) into the fixture directory with mode 0755,
    /// so the test never depends on the checkout's permission bits; returns the copy.
    pub fn install_executable(&self, from: &Path, name: &str) -> PathBuf {
        let to = self.path(name);
        fs::copy(from, &to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).expect("chmod 755");
        to
    }

    /// Starts `cmd` with stdout and stderr going to `<name>.out` / `<name>.err` in the
    /// fixture directory (stdin is /dev/null unless `cmd` says otherwise), in a process group
    /// of its own, so that whatever it forks (fcgiwrap's workers and CGI scripts) is killed with
    /// it. Returns its pid.
    pub fn spawn(&mut self, name: &str, cmd: &mut Command) -> u32 {
        let out = File::create(self.path(&format!("{name}.out"))).expect("log file");
        let err = File::create(self.path(&format!("{name}.err"))).expect("log file");
        cmd.stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => self.fail(&format!("cannot start {name} ({cmd:?}): {e}")),
        };
        let pid = child.id();
        self.children.push((name.to_string(), child));
        pid
    }

    /// Waits until `probe` succeeds while process `name` keeps running.
    pub fn wait_ready(&mut self, name: &str, probe: impl Fn() -> bool) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if probe() {
                return;
            }
            if let Some(status) = self.exited(name) {
                self.fail(&format!("{name} exited ({status}) before it was ready"));
            }
            if Instant::now() > deadline {
                self.fail(&format!("{name} not ready after {START_TIMEOUT:?}"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts `name` listening on a free port of 127.0.0.1: `make_cmd(port)` builds the command,
    /// `ready(pid, port)` says when it serves. If it exits first and its stderr contains
    /// `in_use` (the port was taken meanwhile), tries another port. Its logs end up under `name`.
    /// Returns the port.
    pub fn start_on_free_port(
        &mut self,
        name: &str,
        in_use: &str,
        mut make_cmd: impl FnMut(u16) -> Command,
        ready: impl Fn(u32, u16) -> bool,
    ) -> u16 {
        for attempt in 0..5 {
            let port = super::free_port();
            let this = format!("{name}-try{attempt}");
            let pid = self.spawn(&this, &mut make_cmd(port));
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if ready(pid, port) {
                    // Keep the logs under the plain name for the assertions.
                    self.rename(&this, name);
                    return port;
                }
                if self.exited(&this).is_some() {
                    if self.stderr_of(&this).contains(in_use) {
                        break;
                    }
                    self.fail(&format!("{this} exited before listening on port {port}"));
                }
                if Instant::now() > deadline {
                    self.fail(&format!("{this} not ready after {START_TIMEOUT:?}"));
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        self.fail(&format!("cannot start {name}: no free port"))
    }

    /// The exit status of process `name` if it has exited.
    pub fn exited(&mut self, name: &str) -> Option<ExitStatus> {
        let (_, child) = self.children.iter_mut().find(|(n, _)| n == name)?;
        child.try_wait().ok().flatten()
    }

    /// Waits (bounded) for process `name` to exit on its own; fails the test if it does not.
    pub fn wait_exit(&mut self, name: &str) -> ExitStatus {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(st) = self.exited(name) {
                return st;
            }
            if Instant::now() > deadline {
                self.fail(&format!("{name} did not exit within {START_TIMEOUT:?}"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM to process `name` every 500 ms until it exits (bounded by
    /// [`START_TIMEOUT`]) and returns its exit status. Repeated because Debian's libfcgi checks
    /// its shutdown flag just before accept(): a signal landing between the check and the call
    /// is only seen at the next one.
    pub fn sigterm_until_exit(&mut self, name: &str) -> ExitStatus {
        let pid = self.pid(name);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // SAFETY: kill(2) on the pid of a child this fixture started and has not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until {
                if let Some(st) = self.exited(name) {
                    return st;
                }
                thread::sleep(Duration::from_millis(5));
            }
            if Instant::now() > deadline {
                self.fail(&format!("{name} still runs after SIGTERM"));
            }
        }
    }

    /// The pid of nginx, once started.
    pub fn nginx_pid(&self) -> u32 {
        self.children
            .iter()
            .find(|(n, _)| n.starts_with("nginx"))
            .map(|(_, c)| c.id())
            .expect("nginx was started")
    }

    pub fn pid(&self, name: &str) -> u32 {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.id())
            .unwrap_or_else(|| panic!("no process named {name}"))
    }

    /// Renames process `old` (and its log files) to `new`.
    pub fn rename(&mut self, old: &str, new: &str) {
        for ext in ["out", "err"] {
            let _ = fs::rename(
                self.path(&format!("{old}.{ext}")),
                self.path(&format!("{new}.{ext}")),
            );
        }
        if let Some((n, _)) = self.children.iter_mut().find(|(n, _)| n == old) {
            *n = new.to_string();
        }
    }

    /// Takes ownership of a process the test did not start itself (killed on drop).
    pub fn adopt(&mut self, pid: u32) {
        self.adopted.push(pid);
    }

    /// Kills every process running `exe` (a file of the fixture directory) on drop.
    pub fn own_exe(&mut self, exe: &Path) {
        assert!(
            exe.starts_with(&self.dir),
            "{} is not in the fixture directory",
            exe.display()
        );
        self.owned_exes.push(exe.to_path_buf());
    }

    /// What process `name` wrote to its stderr so far.
    pub fn stderr_of(&self, name: &str) -> String {
        fs::read_to_string(self.path(&format!("{name}.err"))).unwrap_or_default()
    }

    /// Fails unless `pid` runs on the library under test.
    pub fn check_lib(&self, pid: u32, what: &str) {
        if !runs_lib_under_test(pid) {
            self.fail(&format!(
                "{what} (pid {pid}) does not run on the library under test ({:?}); its libfcgi \
                 mappings:\n{}",
                lib(),
                fcgi_maps(pid)
            ));
        }
    }

    /// Panics with `msg` and the tails of every log of the fixture.
    pub fn fail(&self, msg: &str) -> ! {
        let mut report = format!("{msg}\n(library under test: {:?})\n", lib());
        let mut logs: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.sort();
        for p in logs {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let is_log = name.ends_with(".err") || name == "error.log";
            if is_log && fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false) {
                let _ = write!(
                    report,
                    "\n--- {} (tail) ---\n{}\n",
                    p.display(),
                    tail(&p, 30)
                );
            }
        }
        panic!("{report}")
    }

    #[track_caller]
    pub fn check(&self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.fail(&msg());
        }
    }

    // -----------------------------------------------------------------------------------------
    // nginx
    // -----------------------------------------------------------------------------------------

    /// The CGI parameters every location passes (written to `fastcgi_params` in the fixture
    /// directory; a location that sets any `fastcgi_param` itself inherits none from above, so
    /// each location includes this file).
    fn write_fastcgi_params(&self) -> PathBuf {
        let p = self.path("fastcgi_params");
        fs::write(
            &p,
            "fastcgi_param QUERY_STRING      $query_string;
fastcgi_param REQUEST_METHOD    $request_method;
fastcgi_param CONTENT_TYPE      $content_type;
fastcgi_param CONTENT_LENGTH    $content_length;
fastcgi_param SCRIPT_NAME       $fastcgi_script_name;
fastcgi_param REQUEST_URI       $request_uri;
fastcgi_param DOCUMENT_URI      $document_uri;
fastcgi_param DOCUMENT_ROOT     $document_root;
fastcgi_param SERVER_PROTOCOL   $server_protocol;
fastcgi_param REQUEST_SCHEME    $scheme;
fastcgi_param GATEWAY_INTERFACE CGI/1.1;
fastcgi_param SERVER_SOFTWARE   nginx/$nginx_version;
fastcgi_param REMOTE_ADDR       $remote_addr;
fastcgi_param REMOTE_PORT       $remote_port;
fastcgi_param SERVER_ADDR       $server_addr;
fastcgi_param SERVER_PORT       $server_port;
fastcgi_param SERVER_NAME       $server_name;
fastcgi_param REDIRECT_STATUS   200;
",
        )
        .expect("write fastcgi_params");
        p
    }

    /// Starts nginx with `upstreams` (http-level blocks) and `locations` (inside the server
    /// block). In both, `@PARAMS@` stands for an `include` of the common CGI parameters.
    pub fn start_nginx(&mut self, upstreams: &str, locations: &str) {
        require(NGINX, "nginx-light");
        let params = self.write_fastcgi_params();
        let include = format!("include {};", params.display());
        let upstreams = upstreams.replace("@PARAMS@", &include);
        let locations = locations.replace("@PARAMS@", &include);
        self.port = self.start_nginx_http(|port| nginx_http(port, &upstreams, &locations));
    }

    /// Starts nginx on a free port with the http-level configuration `http_of(port)` (inside
    /// [`nginx_conf_around`], with `nginx_worker_connections`), retried on another port when
    /// the one chosen was taken meanwhile. Returns the port. The process is named `nginx` and
    /// is the first the fixture stops.
    pub fn start_nginx_http(&mut self, http_of: impl Fn(u16) -> String) -> u16 {
        require(NGINX, "nginx-light");
        let conf = self.path("nginx.conf");
        let error_log = self.path("error.log");
        let mut last = String::new();
        for attempt in 0..5 {
            let port = super::free_port();
            let text = nginx_conf_around(&self.dir, self.nginx_worker_connections, &http_of(port));
            fs::write(&conf, text).expect("write nginx.conf");
            let mut prefix = self.dir.as_os_str().to_owned();
            prefix.push("/");
            let mut cmd = Command::new(NGINX);
            cmd.arg("-e")
                .arg(&error_log)
                .arg("-p")
                .arg(prefix)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null());
            let name = format!("nginx-try{attempt}");
            self.spawn(&name, &mut cmd);
            let deadline = Instant::now() + START_TIMEOUT;
            let ok = loop {
                if tcp_ready(port) {
                    break true;
                }
                if self.exited(&name).is_some() || Instant::now() > deadline {
                    break false;
                }
                thread::sleep(Duration::from_millis(10));
            };
            if ok {
                self.rename(&name, "nginx");
                let i = self
                    .children
                    .iter()
                    .position(|(n, _)| n == "nginx")
                    .expect("nginx child");
                let nginx = self.children.remove(i);
                self.children.insert(0, nginx);
                return port;
            }
            last = tail(&error_log, 20);
            if !last.contains("Address already in use") {
                break;
            }
        }
        self.fail(&format!("cannot start nginx:\n{last}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `curl -sS -o BODY -D HEADERS -w %{http_code} EXTRA... URL` against nginx.
    pub fn curl(&self, extra: &[&str], path: &str) -> Response {
        let call = self.curl_spawn(extra, path);
        self.curl_wait(call)
    }

    /// Starts [`Fixture::curl`] without waiting for it (for concurrent requests).
    pub fn curl_spawn(&self, extra: &[&str], path: &str) -> CurlCall {
        let n = unique();
        let body = self.path(&format!("resp-{n}.body"));
        let headers = self.path(&format!("resp-{n}.headers"));
        let label = format!("curl {} {}", extra.join(" "), path);
        let max_time = self.curl_max_time.to_string();
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", &max_time, "--connect-timeout", "10"])
            .arg("-o")
            .arg(&body)
            .arg("-D")
            .arg(&headers)
            .args(["-w", "%{http_code}", "-H", "Expect:"])
            .args(extra)
            .arg(self.url(path))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| self.fail(&format!("{label}: cannot run curl: {e}")));
        CurlCall {
            label,
            child,
            body,
            headers,
        }
    }

    /// Waits for a [`Fixture::curl_spawn`] and returns its response.
    pub fn curl_wait(&self, call: CurlCall) -> Response {
        let CurlCall {
            label,
            child,
            body,
            headers,
        } = call;
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| self.fail(&format!("{label}: wait for curl: {e}")));
        self.check(out.status.success(), || {
            format!(
                "{label}: curl failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let status = code
            .parse()
            .unwrap_or_else(|_| self.fail(&format!("{label}: bad status {code:?}")));
        Response::take(status, &body, &headers)
    }

    /// One curl for all `paths`, in order, on one connection to nginx (curl reuses it).
    pub fn curl_many(&self, paths: &[String]) -> Vec<Response> {
        let n = unique();
        let files: Vec<(PathBuf, PathBuf)> = (0..paths.len())
            .map(|i| {
                (
                    self.path(&format!("many-{n}-{i}.body")),
                    self.path(&format!("many-{n}-{i}.headers")),
                )
            })
            .collect();
        let max_time = self.curl_max_time.to_string();
        // `--next` gives every URL its own options (-D is not per URL otherwise); curl still
        // reuses its connection.
        let mut cmd = Command::new("curl");
        cmd.stdin(Stdio::null());
        for (i, (p, (body, headers))) in paths.iter().zip(&files).enumerate() {
            if i > 0 {
                cmd.arg("--next");
            }
            cmd.args([
                "-sS",
                "--max-time",
                &max_time,
                "--connect-timeout",
                "10",
                "-w",
                "%{http_code} %{num_connects}\\n",
                "-H",
                "Expect:",
            ])
            .arg("-o")
            .arg(body)
            .arg("-D")
            .arg(headers)
            .arg(self.url(p));
        }
        let out = match cmd.output() {
            Ok(o) => o,
            Err(e) => self.fail(&format!("cannot run curl: {e}")),
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        self.check(out.status.success(), || {
            format!(
                "curl with {} URLs failed ({}): {}\n{stdout}",
                paths.len(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let lines: Vec<&str> = stdout.lines().collect();
        self.check(lines.len() == paths.len(), || {
            format!("want {} results, curl said:\n{stdout}", paths.len())
        });
        let connects: u32 = lines
            .iter()
            .filter_map(|l| l.split(' ').nth(1)?.parse::<u32>().ok())
            .sum();
        self.check(connects == 1, || {
            format!("curl opened {connects} connections to nginx, want 1:\n{stdout}")
        });
        lines
            .iter()
            .zip(files)
            .map(|(line, (body, headers))| {
                let status = line.split(' ').next().unwrap_or("").parse().unwrap_or(0);
                Response::take(status, &body, &headers)
            })
            .collect()
    }

    pub fn get(&self, path: &str) -> Response {
        self.curl(&[], path)
    }

    /// The lines of nginx's error.log at level error or worse, except those containing one of
    /// `allowed`.
    pub fn nginx_errors(&self, allowed: &[&str]) -> Vec<String> {
        let log = fs::read_to_string(self.path("error.log")).unwrap_or_default();
        log.lines()
            .filter(|l| {
                ["[error]", "[crit]", "[alert]", "[emerg]"]
                    .iter()
                    .any(|lvl| l.contains(lvl))
            })
            .filter(|l| !allowed.iter().any(|a| l.contains(a)))
            .map(str::to_string)
            .collect()
    }

    /// nginx must not have logged an error (other than lines containing one of `allowed`).
    pub fn check_error_log(&self, allowed: &[&str]) {
        let bad = self.nginx_errors(allowed);
        self.check(bad.is_empty(), || {
            format!("nginx logged errors:\n{}", bad.join("\n"))
        });
    }

    /// Whether nginx's error.log has a line containing `needle`.
    pub fn error_log_has(&self, needle: &str) -> bool {
        fs::read_to_string(self.path("error.log"))
            .unwrap_or_default()
            .contains(needle)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut() {
            // The child leads its own process group (see `spawn`); until it is reaped below,
            // the group id cannot name anything else.
            // SAFETY: kill(2) on the process group of a child this fixture started.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.kill();
        }
        for (_, child) in self.children.iter_mut() {
            let _ = child.wait();
        }
        let owned = self.owned_exes.iter().flat_map(|e| pids_of_exe(e));
        let pids: Vec<u32> = self.adopted.iter().copied().chain(owned).collect();
        for pid in pids {
            // SAFETY: kill(2) on a pid this test found running its own, uniquely named program.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        let keep = std::env::var_os("FCGI_TEST_KEEP").is_some_and(|v| v == "1");
        if thread::panicking() || keep {
            eprintln!("fixture files kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

// Shared by the web-server tests (nginx, lighttpd, HAProxy).

/// `c-examples/<name> ARGS`, on the library the examples were linked against (cargo's own
/// `LD_LIBRARY_PATH` may name other builds of libfcgi.so.0), without an inherited `FCGI_ADDR`.
pub fn example_cmd(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(super::example(name));
    cmd.args(args).env_remove("FCGI_ADDR");
    if std::env::var_os("FCGI_TEST_EXAMPLES_DIR").is_none() {
        cmd.env("LD_LIBRARY_PATH", super::lib_dir());
    }
    cmd
}

/// Whether `FCGI_ROLE=RESPONDER` is where an echo program puts it: first (a libfcgi program
/// printing its envp, in arrival order) or last before STDIN_LENGTH (a native-API program
/// printing what fcgi_loadenv visits, in PHP's order, where FCGI_ROLE, set first, comes last).
pub fn role_in_place(lines: &[&str]) -> bool {
    let vars_end = lines
        .iter()
        .position(|l| l.starts_with("STDIN_LENGTH="))
        .unwrap_or(lines.len());
    lines.first() == Some(&"FCGI_ROLE=RESPONDER")
        || (vars_end > 0 && lines[vars_end - 1] == "FCGI_ROLE=RESPONDER")
}

/// Checks an echo response (c-examples/echo and the like): 200, FCGI_ROLE in its place
/// ([`role_in_place`]), the given lines present, one STDIN_LENGTH and one STDIN_FNV1A64 line.
/// Returns the response's lines.
pub fn check_echo(fx: &Fixture, what: &str, r: &Response, lines: &[String]) -> Vec<String> {
    fx.check(r.status == 200, || {
        format!(
            "{what}: status {} (want 200), body:\n{}",
            r.status,
            show(&r.body)
        )
    });
    let text = r.text();
    let got: Vec<&str> = text.lines().collect();
    fx.check(role_in_place(&got), || {
        format!(
            "{what}: FCGI_ROLE=RESPONDER is neither the first variable (envp's arrival order) \
             nor the last (fcgi_loadenv's, PHP's order); body:\n{text}"
        )
    });
    for want in lines {
        fx.check(got.contains(&want.as_str()), || {
            format!("{what}: line {want:?} missing; body:\n{}", show(&r.body))
        });
    }
    for key in ["STDIN_LENGTH=", "STDIN_FNV1A64="] {
        fx.check(
            got.iter().filter(|l| l.starts_with(key)).count() == 1,
            || {
                format!(
                    "{what}: want exactly one {key} line; body:\n{}",
                    show(&r.body)
                )
            },
        );
    }
    got.iter().map(|l| l.to_string()).collect()
}

/// The lines c-examples/echo prints for a request to `uri?query` with `body`.
pub fn echo_lines(method: &str, uri: &str, query: &str, body: &[u8]) -> Vec<String> {
    vec![
        format!("REQUEST_METHOD={method}"),
        format!("QUERY_STRING={query}"),
        format!("REQUEST_URI={uri}?{query}"),
        format!("STDIN_LENGTH={}", body.len()),
        format!("STDIN_FNV1A64={:016x}", super::fnv1a64(body)),
    ]
}

// The kernel's socket tables: connections counted without asking either end.

/// `/proc/net/tcp` state of an established connection.
pub const TCP_ESTABLISHED: &str = "01";
/// `/proc/net/tcp` state of a connection this end closed first (kept for 60 s).
pub const TCP_TIME_WAIT: &str = "06";

/// `/proc/net/tcp` rows in `state` whose local port is `port`: for an application's port, its
/// ends of its connections (the port belongs to the application alone).
pub fn tcp_sockets(port: u16, state: &str) -> usize {
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && f.get(3) == Some(&state)
        })
        .count()
}

/// `/proc/net/tcp` rows in TIME_WAIT with `port` at either end: connections to that port that
/// closed in the last minute, whichever end closed first (that end keeps the row).
pub fn tcp_closed_with(port: u16) -> usize {
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port_of = |a: Option<&&str>| {
        a.and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(3) == Some(&TCP_TIME_WAIT)
                && (port_of(f.get(1)) == Some(port) || port_of(f.get(2)) == Some(port))
        })
        .count()
}

/// `/proc/net/unix` rows in state connected (`03`) bound to `path`: the server ends of the
/// connections to the listening socket (they carry its path; clients' ends carry none).
pub fn unix_connected_to(path: &Path) -> usize {
    let want = path.to_str().expect("utf-8 socket path");
    let table = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 8 && f[5] == "03" && f[7] == want
        })
        .count()
}

/// An nginx.conf for one foreground process whose logs, pid file and temporary files are in
/// `dir`, with `http` (text at the `http {}` level) inside its `http` block.
pub fn nginx_conf_around(dir: &Path, worker_connections: u32, http: &str) -> String {
    let d = dir.display();
    format!(
        r#"# generated by the tests (tests/harness/fixture.rs)
daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log info;
pid {d}/nginx.pid;

events {{
    worker_connections {worker_connections};
}}

http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    proxy_temp_path {d}/proxy_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    client_max_body_size 64m;

{http}}}
"#
    )
}

/// The fixture's http-level nginx configuration: keep-alive and FastCGI timeouts, `upstreams`,
/// and one server on 127.0.0.1:`port` with `locations`.
fn nginx_http(port: u16, upstreams: &str, locations: &str) -> String {
    format!(
        r#"    keepalive_timeout 60s;
    keepalive_requests 10000;

    fastcgi_connect_timeout 10s;
    fastcgi_send_timeout 30s;
    fastcgi_read_timeout 30s;

{upstreams}

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;

{locations}
    }}
"#
    )
}
