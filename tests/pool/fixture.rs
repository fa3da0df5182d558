//! The harness of the pool tests (tests/pool.rs, tests/pool_observe.rs): c-examples/pool
//! started with settings, its stderr in a file, its workers from /proc, fcgi-bench runs.
#![allow(dead_code)]

use crate::common;
use crate::support;
use fcgi_runtime_tools::client::{Client, Request};
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine; a hung pool fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(20);

/// A pool (c-examples/pool) with its stderr in a file; killed with its workers on drop.
pub struct Pool {
    pub child: Child,
    pub addr: String,
    pub dir: PathBuf,
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "fcgi-pool-{tag}-{}-{}",
        std::process::id(),
        common::free_port()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

pub fn pool_cmd() -> Command {
    let mut cmd = Command::new(common::example("pool"));
    if std::env::var_os("FCGI_TEST_EXAMPLES_DIR").is_none() {
        cmd.env("LD_LIBRARY_PATH", common::lib_dir());
    }
    cmd.env_remove("FCGI_ADDR")
        .env_remove("PHP_FCGI_CHILDREN")
        .env_remove("PHP_FCGI_MAX_REQUESTS")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("FCGI_WEB_SERVER_ADDRS")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

impl Pool {
    /// Starts the pool on a fresh TCP port with `settings` (NAME=VALUE) and `env`.
    pub fn start(tag: &str, settings: &[&str], env: &[(&str, &str)]) -> Pool {
        let addr = format!("127.0.0.1:{}", common::free_port());
        let mut cmd = pool_cmd();
        cmd.args(settings).env("FCGI_ADDR", &addr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Pool::spawn(tag, cmd, addr)
    }

    pub fn spawn(tag: &str, mut cmd: Command, addr: String) -> Pool {
        let dir = temp_dir(tag);
        let err = File::create(dir.join("stderr")).expect("stderr file");
        cmd.stderr(err);
        let child = cmd.spawn().expect("start c-examples/pool");
        let p = Pool { child, addr, dir };
        p.wait_for(|| p.log().contains("pool started"), "the pool to start");
        p
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    pub fn gate(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Polls `cond` until it holds; fails the test after [`WAIT`].
    #[track_caller]
    pub fn wait_for(&self, mut cond: impl FnMut() -> bool, what: &str) {
        let deadline = Instant::now() + WAIT;
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; pool stderr:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pool's workers (its child processes).
    pub fn workers(&self) -> BTreeSet<u32> {
        children_of(self.pid())
    }

    #[track_caller]
    pub fn wait_workers(&self, n: usize) -> BTreeSet<u32> {
        let mut last = BTreeSet::new();
        self.wait_for(
            || {
                last = self.workers();
                last.len() == n
            },
            &format!("{n} workers"),
        );
        last
    }

    /// One request; the worker pid of its answer, or the error.
    pub fn get(&self, query: &str) -> Result<u32, String> {
        get_pid(&self.addr, query)
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) to the pool this test started.
        unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
    }

    /// Waits for the parent to exit; its exit code.
    #[track_caller]
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code();
            }
            assert!(
                Instant::now() < deadline,
                "the pool did not exit; stderr:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pids of workers whose end the parent logged.
    pub fn ended_pids(&self) -> BTreeSet<u32> {
        self.log()
            .lines()
            .filter_map(|l| l.split("pool: worker ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let workers = self.workers();
        support::stop_supervisor(&mut self.child, workers, &self.dir, "pool");
    }
}

/// Processes whose parent is `ppid`, zombies left out.
pub fn children_of(ppid: u32) -> BTreeSet<u32> {
    support::live_children_of(ppid)
}

pub fn get_pid(addr: &str, query: &str) -> Result<u32, String> {
    let mut c = Client::connect(addr).map_err(|e| format!("connect: {e}"))?;
    c.set_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    let req = Request::new(1)
        .param("REQUEST_METHOD", "GET")
        .param("SCRIPT_NAME", "/")
        .param("QUERY_STRING", query);
    let r = c.request(&req).map_err(|e| format!("request: {e}"))?;
    let text = String::from_utf8_lossy(&r.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("PID="))
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| format!("no PID line in {text:?}"))
}

pub fn bench() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let b = profile.join("fcgi-bench");
    assert!(
        b.exists(),
        "{} missing: cargo builds it with the tests",
        b.display()
    );
    b
}

/// Runs fcgi-bench with `args` against `addr`; its JSON report.
pub fn run_bench(addr: &str, args: &[&str]) -> String {
    let out = Command::new(bench())
        .args(args)
        .args(["--retry-reused", "--json", addr, "/"])
        .output()
        .expect("run fcgi-bench");
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("fcgi-bench {args:?}: {json}");
    json
}

pub fn json_num(json: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("{key} missing in {json}"))
        + pat.len();
    json[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

pub fn hold_requests(
    p: &Pool,
    gate: &Path,
    n: usize,
) -> Vec<std::thread::JoinHandle<Result<u32, String>>> {
    let already = p.log().matches("waiting at").count();
    let q = format!("hold={}", gate.display());
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let addr = p.addr.clone();
            let q = q.clone();
            std::thread::spawn(move || get_pid(&addr, &q))
        })
        .collect();
    p.wait_for(
        || p.log().matches("waiting at").count() >= already + n,
        &format!("{n} held requests in workers"),
    );
    handles
}
