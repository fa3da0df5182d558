//! What the fcgi-spawn test files share: the tools' paths, the libfcgi test program, a running
//! fcgi-spawn ([`SpawnProc`]), temporary directories and small readers of /proc and the status
//! page's JSON.

use crate::harness;
use fcgi_runtime_tools::client::{Client, Request};
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::ops::DerefMut;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn spawn_exe() -> PathBuf {
    harness::tool("fcgi-spawn")
}

pub fn bench_exe() -> PathBuf {
    let b = spawn_exe().with_file_name("fcgi-bench");
    assert!(b.exists(), "{} missing: cargo builds it", b.display());
    b
}

/// fcgi-spawn with a clean environment: none of the variables that would change what it or its
/// pool does (spawn-fcgi's and PHP's, socket activation, the library's own), nor those in
/// `more`; stdin and stdout /dev/null.
pub fn spawn_command(more: &[&str]) -> Command {
    let mut cmd = Command::new(spawn_exe());
    for v in [
        "PHP_FCGI_CHILDREN",
        "PHP_FCGI_MAX_REQUESTS",
        "LISTEN_FDS",
        "LISTEN_PID",
        "FCGI_WEB_SERVER_ADDRS",
        "FCGI_RUNTIME_SCOREBOARD",
    ]
    .iter()
    .chain(more)
    {
        cmd.env_remove(v);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    cmd
}

/// tests/harness/web/lf_webapp.c compiled once against Debian's headers and `-lfcgi` (the
/// program is an unmodified libfcgi program; which library it runs on is chosen at run time).
pub fn lf_webapp() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            harness::require("/usr/include/fcgiapp.h", "libfcgi-dev");
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let dir = spawn_exe()
                .parent()
                .expect("target/<profile>")
                .join("fcgi-spawn-tests");
            fs::create_dir_all(&dir).expect("build dir");
            let out = dir.join("lf_webapp");
            let tmp = dir.join(format!("lf_webapp.tmp{}", std::process::id()));
            let res = Command::new("cc")
                .args(["-O2", "-Wall", "-Wextra", "-Werror", "-I"])
                .arg(root.join("tests/harness/web"))
                .arg(root.join("tests/harness/web/lf_webapp.c"))
                .arg("-o")
                .arg(&tmp)
                .args(["-lfcgi", "-lpthread"])
                .stdin(Stdio::null())
                .output()
                .expect("run cc");
            assert!(
                res.status.success(),
                "cc lf_webapp.c -lfcgi failed:\n{}",
                String::from_utf8_lossy(&res.stderr)
            );
            fs::rename(&tmp, &out).expect("rename");
            out
        })
        .clone()
}

/// fcgi-bench on `addr` with `conns` connections for `secs` seconds, in a thread: its --json
/// report.
pub fn bench_load(addr: &str, conns: u32, secs: u32) -> std::thread::JoinHandle<String> {
    let addr = addr.to_string();
    let exe = bench_exe();
    std::thread::spawn(move || {
        let out = Command::new(exe)
            .args([
                "-c",
                &conns.to_string(),
                "-d",
                &secs.to_string(),
                "--timeout",
                "20",
                "--retry-reused",
                "--json",
            ])
            .arg(&addr)
            .arg("/")
            .stdin(Stdio::null())
            .output()
            .expect("run fcgi-bench");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// A GET of `uri` (path?query) with the CGI params a web server sends.
pub fn get_request(uri: &str) -> Request {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    Request::new(1)
        .param("REQUEST_METHOD", "GET")
        .param("SCRIPT_NAME", path)
        .param("REQUEST_URI", uri)
        .param("QUERY_STRING", query)
        .param("SERVER_PROTOCOL", "HTTP/1.1")
        .param("GATEWAY_INTERFACE", "CGI/1.1")
        .param("REMOTE_ADDR", "127.0.0.1")
}

/// Sends `req` to `addr` (each read and write bounded by `timeout`); the response's stdout.
pub fn send_request(addr: &str, req: &Request, timeout: Duration) -> Result<String, String> {
    let mut c = Client::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    c.set_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let r = c.request(req).map_err(|e| format!("request: {e}"))?;
    Ok(String::from_utf8_lossy(&r.stdout).into_owned())
}

/// A fresh directory, mode 0777: reachable by the users `-u` and pool files switch to.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "fcgi-spawn-{tag}-{}-{}",
        std::process::id(),
        harness::unique()
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("create temp dir");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).expect("chmod temp dir");
    d
}

/// The environment of process `pid` (/proc/PID/environ), empty when it is gone.
pub fn environ(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// The id of user or group `name` in `file` (/etc/passwd, /etc/group).
pub fn users_id(file: &str, name: &str) -> Option<u32> {
    fs::read_to_string(file)
        .ok()?
        .lines()
        .find(|l| l.split(':').next() == Some(name))?
        .split(':')
        .nth(2)?
        .parse()
        .ok()
}

/// The first number after `"key":` in the status page's JSON.
pub fn json_num(json: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("{key} missing in {json}"));
    json[at + pat.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// A running fcgi-spawn with its stderr (its own, the pool's and the programs') in DIR/stderr:
/// what each test file's own struct wraps (and derefs to). Killed on drop with its workers (a
/// master's: its pool supervisors and their workers); DIR is removed unless the test failed.
pub struct SpawnProc {
    pub child: Child,
    pub dir: PathBuf,
    /// Where its log goes: DIR/stderr, or a pool file's error_log.
    log: PathBuf,
    /// How long a wait may take before the test fails (a loaded CI machine).
    wait: Duration,
    /// A master of a pool file (`--config`): its children are pool supervisors.
    master: bool,
}

impl SpawnProc {
    /// Starts `cmd` with its stderr in `dir/stderr`; `wait`: how long a wait may take.
    pub fn start(dir: PathBuf, mut cmd: Command, wait: Duration) -> SpawnProc {
        cmd.stderr(File::create(dir.join("stderr")).expect("stderr file"));
        SpawnProc::start_as_is(dir, cmd, wait)
    }

    /// [`SpawnProc::start`] for a `cmd` whose stderr the caller set.
    pub fn start_as_is(dir: PathBuf, mut cmd: Command, wait: Duration) -> SpawnProc {
        let child = cmd.spawn().expect("start fcgi-spawn");
        let log = dir.join("stderr");
        SpawnProc {
            child,
            dir,
            log,
            wait,
            master: false,
        }
    }

    /// This fcgi-spawn is a master (`--config`) whose log goes to `log`.
    pub fn master(mut self, log: PathBuf) -> SpawnProc {
        self.log = log;
        self.master = true;
        self
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Its live children: the workers (a master's: its pool supervisors).
    pub fn workers(&self) -> BTreeSet<u32> {
        harness::live_children_of(self.pid())
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) to the fcgi-spawn this test started.
        unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
    }

    /// Polls `cond` on `owner` (a test file's struct around a SpawnProc) until it holds; fails
    /// the test after the wait (or if fcgi-spawn exited).
    #[track_caller]
    pub fn wait_for<T: DerefMut<Target = SpawnProc>>(
        owner: &mut T,
        mut cond: impl FnMut(&T) -> bool,
        what: &str,
    ) {
        let deadline = Instant::now() + owner.wait;
        while !cond(owner) {
            if let Ok(Some(st)) = owner.child.try_wait() {
                panic!(
                    "fcgi-spawn exited ({st}) waiting for {what}; stderr:\n{}",
                    owner.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; stderr:\n{}",
                owner.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for fcgi-spawn to exit; its exit code.
    #[track_caller]
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code();
            }
            assert!(
                Instant::now() < deadline,
                "fcgi-spawn did not exit; stderr:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SpawnProc {
    fn drop(&mut self) {
        let children = self.workers();
        if self.master {
            let tree: BTreeSet<u32> = children
                .iter()
                .flat_map(|&s| harness::live_children_of(s))
                .chain(children.iter().copied())
                .collect();
            harness::stop_supervisor(&mut self.child, tree, &self.dir, "fcgi-spawn --config");
        } else {
            harness::stop_supervisor(&mut self.child, children, &self.dir, "fcgi-spawn");
        }
    }
}

/// A NOTIFY_SOCKET of the test's own: the datagrams fcgi-spawn sends systemd, each one read
/// kept in `got`.
pub struct NotifySock {
    sock: UnixDatagram,
    pub got: Vec<String>,
}

impl NotifySock {
    /// Binds `path`; a read waits at most `poll`.
    pub fn bind(path: &Path, poll: Duration) -> NotifySock {
        NotifySock::on(
            UnixDatagram::bind(path).expect("bind the notify socket"),
            poll,
        )
    }

    /// Reads `sock`; a read waits at most `poll`.
    pub fn on(sock: UnixDatagram, poll: Duration) -> NotifySock {
        sock.set_read_timeout(Some(poll)).expect("timeout");
        NotifySock {
            sock,
            got: Vec::new(),
        }
    }

    /// Reads until a datagram after the `from`-th satisfies `ok`; its index. Fails the test
    /// after `wait`, with `fail(every datagram read)`.
    #[track_caller]
    pub fn wait(
        &mut self,
        from: usize,
        ok: impl Fn(&str) -> bool,
        wait: Duration,
        fail: impl Fn(&[String]) -> String,
    ) -> usize {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(i) = (from..self.got.len()).find(|&i| ok(&self.got[i])) {
                return i;
            }
            assert!(Instant::now() < deadline, "{}", fail(&self.got));
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.got
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

/// `Deref` and `DerefMut` to [`SpawnProc`] for a test file's struct around one (its `proc`
/// field).
macro_rules! derefs_to_proc {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = $crate::spawn_common::SpawnProc;
            fn deref(&self) -> &Self::Target {
                &self.proc
            }
        }

        impl std::ops::DerefMut for $t {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.proc
            }
        }
    };
}
pub(crate) use derefs_to_proc;
