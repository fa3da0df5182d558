#![allow(dead_code)]
//! The server under attack: tests/adversarial/adv_app.c (or a C example), started with a
//! chosen environment and descriptor limit, and what /proc says about it (RSS, threads,
//! descriptors, CPU time).

use crate::common;
use fcgi_runtime_tools::client::{Client, Request};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// adv_app.c, compiled once per test binary against the project's library.
pub fn adv_app() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| common::build_c("tests/adversarial/adv_app.c"))
}

/// How to start a server.
pub struct Spec<'a> {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub addr: String,
    pub env: &'a [(&'a str, &'a str)],
    /// RLIMIT_NOFILE soft limit for the server (None: inherited).
    pub nofile: Option<u64>,
    /// umask for the server (None: inherited).
    pub umask: Option<u32>,
}

impl<'a> Spec<'a> {
    /// adv_app on a fresh 127.0.0.1 port with `threads` threads.
    pub fn adv(threads: u32, env: &'a [(&'a str, &'a str)]) -> Spec<'a> {
        let addr = format!("127.0.0.1:{}", common::free_port());
        Spec {
            program: adv_app().clone(),
            args: vec![addr.clone(), threads.to_string()],
            addr,
            env,
            nofile: None,
            umask: None,
        }
    }

    /// A C example (it takes FCGI_ADDR from the environment).
    pub fn example(name: &str, addr: &str, args: &[&str], env: &'a [(&'a str, &'a str)]) -> Self {
        Spec {
            program: common::example(name),
            args: args.iter().map(|s| s.to_string()).collect(),
            addr: addr.to_string(),
            env,
            nofile: None,
            umask: None,
        }
    }
}

/// A running server; killed on drop. Its stderr (the library's log) goes to a file.
pub struct App {
    child: Child,
    pub addr: String,
    log: PathBuf,
}

impl App {
    /// Starts and waits until it accepts connections.
    pub fn start(spec: Spec<'_>) -> App {
        let app = App::spawn(spec);
        let deadline = Instant::now() + IO_TIMEOUT;
        while fcgi_runtime::addr::connect(&app.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "server did not listen on {}: {}",
                app.addr,
                app.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        app
    }

    /// Starts without waiting.
    pub fn spawn(spec: Spec<'_>) -> App {
        let log = std::env::temp_dir().join(format!(
            "adv-{}-{}.log",
            std::process::id(),
            crate::common::free_port()
        ));
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .env("FCGI_ADDR", &spec.addr)
            .env("LD_LIBRARY_PATH", common::lib_dir())
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            .env_remove(fcgi_runtime::sockperm::MODE_ENV)
            .env_remove(fcgi_runtime::sockperm::OWNER_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in spec.env {
            cmd.env(k, v);
        }
        let (nofile, umask) = (spec.nofile, spec.umask);
        // SAFETY: the closure only makes async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(move || {
                // Descriptors this test process inherited without close-on-exec (a harness's)
                // are not the server's business: it starts with 0, 1 and 2 only.
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                if let Some(n) = nofile {
                    let mut rl = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
                    rl.rlim_cur = n.min(rl.rlim_max);
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(m) = umask {
                    libc::umask(m);
                }
                Ok(())
            })
        };
        let child = cmd.spawn().expect("start server");
        App {
            child,
            addr: spec.addr,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the process to exit on its own.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails the test if the server died.
    pub fn assert_alive(&mut self) {
        if let Some(st) = self.child.try_wait().expect("try_wait") {
            panic!("server died: {st}; log: {}", self.log_text());
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn connect(&self) -> Client {
        let c =
            Client::connect(&self.addr).unwrap_or_else(|e| panic!("connect {}: {e}", self.addr));
        c.set_timeout(Some(IO_TIMEOUT)).expect("timeouts");
        c
    }

    /// A normal request on a new connection is answered in full.
    pub fn assert_serves(&mut self) {
        self.assert_alive();
        let mut c = self.connect();
        let body = common::body(10_000, 7);
        let r = Request::new(1)
            .param("QUERY_STRING", "")
            .param("REQUEST_METHOD", "POST")
            .stdin(body);
        let resp = c.request(&r).expect("normal request");
        let out = String::from_utf8_lossy(&resp.stdout);
        assert!(
            out.ends_with("STDIN_LENGTH=10000\n"),
            "unexpected answer: {out}"
        );
    }

    /// VmRSS in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_field(self.pid(), "VmRSS:")
    }

    /// Number of threads.
    pub fn threads(&self) -> u64 {
        status_field(self.pid(), "Threads:")
    }

    /// Number of open descriptors, less the ones each application thread's worker opens
    /// when the thread first waits for a request (an epoll and an eventfd): a thread that
    /// reaches its first accept late must not look like a leak. Those are bounded apart: at
    /// most two per thread of the process.
    pub fn fds(&self) -> usize {
        let (mut other, mut per_thread) = (0, 0);
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", self.pid())) {
            for e in dir.flatten() {
                match std::fs::read_link(e.path()) {
                    Ok(t) if t.starts_with("anon_inode:[eventpoll]") => per_thread += 1,
                    Ok(t) if t.starts_with("anon_inode:[eventfd]") => per_thread += 1,
                    _ => other += 1,
                }
            }
        }
        let threads = self.threads() as usize;
        assert!(
            per_thread <= 2 * threads + 1,
            "{per_thread} epoll and eventfd descriptors for {threads} threads"
        );
        other
    }

    /// User plus system CPU time, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the command name, which ends with the last ')'.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// Waits (bounded) until `cond` holds; returns whether it did.
    pub fn eventually(&self, what: &str, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + IO_TIMEOUT;
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("condition not reached: {what}");
        cond()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn status_field(pid: u32, name: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
}

/// Raises this process's RLIMIT_NOFILE soft limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit out-parameter.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    rl.rlim_cur = rl.rlim_max;
    // SAFETY: a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
    rl.rlim_cur
}

/// A CGI-like request with a QUERY_STRING.
pub fn req(id: u16, query: &str) -> Request {
    Request::new(id)
        .param("QUERY_STRING", query)
        .param("REQUEST_METHOD", "GET")
}
