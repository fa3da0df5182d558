//! `python3 -m fcgi_runtime --workers N`: the Python package's worker processes on the
//! library's pool (bindings/python/fcgi_runtime/workers.py), real processes and sockets, the
//! applications of `tests/languages/python_workers/apps`. Nothing passes or fails on timing:
//! held requests wait for gate files, and every wait is a poll for a condition with a generous
//! deadline.
//!
//! - behind nginx: two workers answer (two pids), the fork is safe for Python (each worker
//!   draws its own random numbers, starts threads, logs), `wsgi.multiprocess`, the pool's
//!   status page;
//! - `--max-requests` recycles workers (more pids than workers, no request fails);
//! - `--timeout`: a runaway request (its gate never appears) gets its worker killed and
//!   fails; the next request is served by the replacement;
//! - SIGHUP under load (fcgi-bench): no request lost, and without `--preload` the new
//!   workers run the changed application code;
//! - SIGQUIT drains: a request held when it arrives completes, then the supervisor exits 0;
//! - ASGI with `--workers 2`: two pids, lifespan in each worker, recycling ends a worker's
//!   lifespan, SIGQUIT exits 0;
//! - binds: `unix:PATH` and `HOST:PORT` at once under workers, `fd://3` inherited (workers and
//!   one process), and an inherited descriptor the pool cannot take is refused.

use crate::harness::{self, live_children_of, tcp_ready, unix_ready, wait_for, Fixture};
use crate::python_wsgi::server::{python, Bind, Options, PythonEnv, Wsgi, SERVER};
use fcgi_runtime_tools::client::{Client, Request};
use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const APPS: &str = "tests/languages/python_workers/apps";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A reply's `NAME=value` line.
fn value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

/// One FastCGI request on a new connection to `addr` (HOST:PORT or a socket path); the
/// response's STDOUT, or the error.
fn get(addr: &str, query: &str) -> Result<String, String> {
    let mut c = Client::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    c.set_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let req = Request::new(1)
        .param("REQUEST_METHOD", "GET")
        .param("SCRIPT_NAME", "/")
        .param("REQUEST_URI", "/")
        .param("SERVER_PROTOCOL", "HTTP/1.1")
        .param("QUERY_STRING", query);
    let r = c.request(&req).map_err(|e| format!("request: {e}"))?;
    let text = String::from_utf8_lossy(&r.stdout).into_owned();
    if !text.contains("200 OK") && !text.contains("Status: 200") {
        return Err(format!("not a 200: {text:?}"));
    }
    Ok(text)
}

/// The worker pid that answered `get`.
fn get_pid(addr: &str, query: &str) -> Result<u32, String> {
    let text = get(addr, query)?;
    value(&text, "PID")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| format!("no PID in {text:?}"))
}

/// A pool of Python workers started by the test: `python -m fcgi_runtime SPEC ARGS`.
struct Workers {
    fx: Fixture,
    /// Where it listens (HOST:PORT or a socket path), for the FastCGI client.
    addr: String,
}

/// How [`Workers::start`] gives the server its socket.
enum Listen<'a> {
    /// `--bind 127.0.0.1:PORT` on a free port.
    Tcp,
    /// Exactly these arguments (the test made the sockets); `addr` is where to connect.
    Args(Vec<String>, &'a str),
}

impl Workers {
    /// Starts the server with the applications of `apps` (and the fixture directory, for
    /// applications a test writes there) on PYTHONPATH; waits until it is ready and, if
    /// `workers` > 0, until it has that many live workers.
    fn start(
        python: &str,
        tag: &str,
        spec: &str,
        args: &[&str],
        listen: Listen<'_>,
        workers: usize,
        prepare: impl Fn(&mut Command, &Path),
    ) -> Workers {
        let mut fx = Fixture::new(tag);
        let dir = fx.dir.clone();
        let make_cmd = |extra: &[String]| {
            let mut cmd = Command::new(python);
            cmd.args(["-m", "fcgi_runtime", spec])
                .args(args)
                .args(extra)
                .current_dir(&dir)
                .python_env(&[Path::new(APPS), &dir])
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null());
            prepare(&mut cmd, &dir);
            cmd
        };
        let addr = match listen {
            Listen::Tcp => {
                let port = fx.start_on_free_port(
                    SERVER,
                    "Address already in use",
                    |port| make_cmd(&["--bind".into(), format!("127.0.0.1:{port}")]),
                    |_, port| tcp_ready(port),
                );
                format!("127.0.0.1:{port}")
            }
            Listen::Args(extra, addr) => {
                let mut cmd = make_cmd(&extra);
                fx.spawn(SERVER, &mut cmd);
                let a = addr.to_string();
                fx.wait_ready(SERVER, move || {
                    if a.starts_with('/') {
                        unix_ready(Path::new(&a))
                    } else {
                        TcpReady::check(&a)
                    }
                });
                addr.to_string()
            }
        };
        let w = Workers { fx, addr };
        if workers > 0 {
            w.wait_workers(workers);
        }
        w
    }

    fn pid(&self) -> u32 {
        self.fx.pid(SERVER)
    }

    fn log(&self) -> String {
        self.fx.stderr_of(SERVER)
    }

    fn workers(&self) -> BTreeSet<u32> {
        live_children_of(self.pid())
    }

    fn wait_workers(&self, n: usize) -> BTreeSet<u32> {
        let mut last = BTreeSet::new();
        let ok = wait_for(|| {
            last = self.workers();
            last.len() == n
        });
        self.fx.check(ok, || {
            format!("not {n} workers (have {last:?}); log:\n{}", self.log())
        });
        last
    }

    /// Waits (bounded) for `cond`, failing with `what` and the server's log.
    fn wait(&self, what: &str, cond: impl FnMut() -> bool) {
        let ok = wait_for(cond);
        self.fx.check(ok, || {
            format!("{what}: never happened; log:\n{}", self.log())
        });
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the supervisor this test started and has not reaped.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, sig);
        }
    }

    /// The answers of new connections until both of `want` distinct pids were seen.
    fn wait_pids(&self, want: usize) -> BTreeSet<u32> {
        let mut seen = BTreeSet::new();
        let addr = self.addr.clone();
        self.wait(&format!("answers from {want} workers"), || {
            match get_pid(&addr, "") {
                Ok(pid) => {
                    seen.insert(pid);
                }
                Err(e) => self.fx.fail(&format!("a request failed: {e}")),
            }
            seen.len() >= want
        });
        seen
    }

    /// SIGQUIT, then the supervisor exits 0 (bounded).
    fn quit(mut self) {
        self.signal(libc::SIGQUIT);
        let st = self.fx.wait_exit(SERVER);
        self.fx.check(st.success(), || {
            format!(
                "exit status {st} after SIGQUIT, want 0; log:\n{}",
                self.log()
            )
        });
    }
}

/// `tcp_ready` for a HOST:PORT string.
struct TcpReady;
impl TcpReady {
    fn check(addr: &str) -> bool {
        addr.rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .is_some_and(tcp_ready)
    }
}

/// A held request (`?hold=GATE`) on its own thread; joins to its result.
fn hold(addr: &str, gate: &Path) -> std::thread::JoinHandle<Result<String, String>> {
    let addr = addr.to_string();
    let q = format!("hold={}", gate.display());
    std::thread::spawn(move || get(&addr, &q))
}

#[test]
fn two_workers_behind_nginx_fork_safety_and_status() {
    let Some(py) = python(&[]) else { return };
    let w = Wsgi::start_with(
        &py,
        "workers_app:app",
        Bind::Tcp,
        Options {
            args: [
                "--workers",
                "2",
                "--threads",
                "2",
                "--preload",
                "--status-path",
                "/status",
            ]
            .map(String::from)
            .to_vec(),
            apps: APPS,
            tag: "pyworkers-nginx".into(),
            nginx_worker_connections: 256,
        },
    );
    let sup = w.fx.pid(SERVER);
    let mut workers = BTreeSet::new();
    let ok = wait_for(|| {
        workers = live_children_of(sup);
        workers.len() == 2
    });
    w.fx.check(ok, || format!("two workers: {workers:?}"));
    // Parallel requests through nginx until both workers answered.
    let mut by_pid: std::collections::BTreeMap<u32, String> = Default::default();
    let ok = wait_for(|| {
        let paths: Vec<String> = (0..8).map(|i| format!("/pid?{i}")).collect();
        for r in w.fx.curl_many(&paths) {
            w.fx.check(r.status == 200, || {
                format!("status {}: {}", r.status, r.text())
            });
            let text = r.text();
            let pid: u32 = value(&text, "PID")
                .and_then(|p| p.parse().ok())
                .expect("PID");
            by_pid.insert(pid, text);
        }
        by_pid.len() >= 2
    });
    w.fx.check(ok, || format!("answers from one worker only: {by_pid:?}"));
    let pids: BTreeSet<u32> = by_pid.keys().copied().collect();
    w.fx.check(pids == workers, || {
        format!("answered by {pids:?}, the supervisor's workers are {workers:?}")
    });
    w.fx.check(!pids.contains(&sup), || "the supervisor answered".into());
    // The application was preloaded: without PyOS_AfterFork_Child's hooks both workers would
    // draw the same first random number from the state they inherited.
    let randoms: BTreeSet<&str> = by_pid
        .values()
        .map(|t| value(t, "FIRST_RANDOM").expect("FIRST_RANDOM"))
        .collect();
    w.fx.check(randoms.len() == 2, || {
        format!("both workers drew the same random numbers: {by_pid:?}")
    });
    for t in by_pid.values() {
        w.fx.check(value(t, "MULTIPROCESS") == Some("True"), || {
            format!("wsgi.multiprocess is not True: {t}")
        });
    }
    // Threads ran and logging works in both workers.
    let log = w.log();
    for pid in &pids {
        let line = format!("workers_app: served by {pid} (thread ran: True)");
        w.fx.check(log.contains(&line), || format!("no {line:?} in:\n{log}"));
    }
    // The pool's status page, through nginx.
    let r = w.fx.get("/status");
    let text = r.text();
    w.fx.check(r.status == 200, || format!("/status: {}: {text}", r.status));
    for want in ["process manager:     static", "total processes:     2"] {
        w.fx.check(text.contains(want), || {
            format!("/status lacks {want:?}:\n{text}")
        });
    }
    let r = w.fx.get("/status?json&full");
    let text = r.text();
    for pid in &pids {
        w.fx.check(text.contains(&format!("\"pid\":{pid}")), || {
            format!("/status?json&full does not list worker {pid}:\n{text}")
        });
    }
    w.finish();
}

#[test]
fn max_requests_recycles_workers() {
    let Some(py) = python(&[]) else { return };
    let w = Workers::start(
        &py,
        "pyworkers-recycle",
        "workers_app:app",
        &["--workers", "2", "--max-requests", "5"],
        Listen::Tcp,
        2,
        |_, _| {},
    );
    let mut seen = BTreeSet::new();
    for i in 0..30 {
        let pid = get_pid(&w.addr, "")
            .unwrap_or_else(|e| w.fx.fail(&format!("request {i} failed: {e}\n{}", w.log())));
        seen.insert(pid);
    }
    // Each worker serves at most 5 requests: 30 need at least 6 processes.
    w.fx.check(seen.len() >= 6, || {
        format!("30 requests answered by only {seen:?}; log:\n{}", w.log())
    });
    w.fx.check(w.log().contains("ended after 5 requests"), || {
        format!("no worker ended after 5 requests:\n{}", w.log())
    });
    w.quit();
}

#[test]
fn timeout_kills_a_runaway_request() {
    let Some(py) = python(&[]) else { return };
    let w = Workers::start(
        &py,
        "pyworkers-timeout",
        "workers_app:app",
        &["--workers", "1", "--timeout", "1"],
        Listen::Tcp,
        1,
        |_, _| {},
    );
    let before = w.workers();
    // The gate never appears: only the timeout ends this request.
    let gate = w.fx.path("never");
    let r = hold(&w.addr, &gate).join().expect("thread");
    w.fx.check(r.is_err(), || {
        format!("the runaway request was answered: {r:?}")
    });
    w.fx.check(
        w.log().contains(&format!("holding {}", gate.display())),
        || format!("the request never reached the application:\n{}", w.log()),
    );
    let pid = get_pid(&w.addr, "").unwrap_or_else(|e| w.fx.fail(&e));
    w.fx.check(!before.contains(&pid), || {
        format!("answered by {pid}, the killed worker {before:?}")
    });
    w.fx.check(w.log().contains("killing the worker"), || {
        format!("the pool did not log the kill:\n{}", w.log())
    });
    w.quit();
}

#[test]
fn sighup_under_load_loses_nothing_and_reloads_code() {
    reload_under_load("workers_app.py", &["--threads", "2"]);
}

#[test]
fn asgi_sighup_under_load_loses_nothing_and_reloads_code() {
    reload_under_load("asgi_workers_app.py", &["--asgi"]);
}

/// SIGHUP while fcgi-bench runs, the application (a copy of `app_file`, without --preload)
/// rewritten just before: no request fails, and the new workers run the new code.
fn reload_under_load(app_file: &str, args: &[&str]) {
    let Some(py) = python(&[]) else { return };
    let mut all = vec!["--workers", "2", "--status-path", "/status"];
    all.extend_from_slice(args);
    let w = Workers::start(
        &py,
        &format!("pyworkers-reload-{}", app_file.trim_end_matches(".py")),
        "reload_app:app",
        &all,
        Listen::Tcp,
        0,
        |_, dir| {
            let src = std::fs::read_to_string(root().join(APPS).join(app_file))
                .expect("read the application");
            std::fs::write(dir.join("reload_app.py"), src).expect("write reload_app.py");
        },
    );
    let first = w.wait_workers(2);
    let text = get(&w.addr, "").unwrap_or_else(|e| w.fx.fail(&e));
    w.fx.check(value(&text, "VERSION") == Some("1"), || text.clone());
    let addr = w.addr.clone();
    let bench = harness::tool("fcgi-bench");
    let load = std::thread::spawn(move || {
        let out = Command::new(bench)
            .args([
                "-c",
                "8",
                "-d",
                "10",
                "--timeout",
                "30",
                "--retry-reused",
                "--json",
            ])
            .args(["--expect", "PID="])
            .args([addr.as_str(), "/"])
            .output()
            .expect("run fcgi-bench");
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    // The load runs once the pool counts its connections.
    w.wait("fcgi-bench's load", || {
        get_status(&w.addr).is_some_and(|n| n > 50)
    });
    // The new code: a longer VERSION (the file's size changes too).
    let src = std::fs::read_to_string(w.fx.dir.join("reload_app.py")).expect("read");
    let changed = src.replace("VERSION = \"1\"", "VERSION = \"two\"");
    assert_ne!(src, changed, "VERSION line not found");
    std::fs::write(w.fx.dir.join("reload_app.py"), changed).expect("rewrite reload_app.py");
    w.signal(libc::SIGHUP);
    let mut now = BTreeSet::new();
    w.wait("a new generation of workers, the old one gone", || {
        now = w.workers();
        now.len() == 2 && now.is_disjoint(&first)
    });
    let text = get(&w.addr, "").unwrap_or_else(|e| w.fx.fail(&e));
    w.fx.check(value(&text, "VERSION") == Some("two"), || {
        format!("after SIGHUP the workers run the old code: {text}")
    });
    let json = load.join().expect("load thread");
    eprintln!("fcgi-bench during the reload: {json}");
    let n = json_num(&json, "requests");
    w.fx.check(n > 100, || {
        format!("too little load to prove anything: {json}")
    });
    w.fx.check(json_num(&json, "errors") == 0, || {
        format!("requests lost during the reload: {json}\n{}", w.log())
    });
    w.quit();
}

/// The pool's "accepted conn" from its status page.
fn get_status(addr: &str) -> Option<u64> {
    let mut c = Client::connect(addr).ok()?;
    c.set_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = Request::new(1)
        .param("REQUEST_METHOD", "GET")
        .param("SCRIPT_NAME", "/status")
        .param("REQUEST_URI", "/status");
    let r = c.request(&req).ok()?;
    let text = String::from_utf8_lossy(&r.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("accepted conn:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The number `key` of fcgi-bench's JSON report.
fn json_num(json: &str, key: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key:?} in {json}"))
}

#[test]
fn sigquit_drains_a_held_request_then_exits_0() {
    let Some(py) = python(&[]) else { return };
    let w = Workers::start(
        &py,
        "pyworkers-quit",
        "workers_app:app",
        &["--workers", "2"],
        Listen::Tcp,
        2,
        |_, _| {},
    );
    let gate = w.fx.path("go");
    let held = hold(&w.addr, &gate);
    w.wait("the held request in a worker", || {
        w.log().contains(&format!("holding {}", gate.display()))
    });
    w.signal(libc::SIGQUIT);
    w.wait("the pool's graceful stop", || {
        w.log().contains("graceful stop")
    });
    std::fs::write(&gate, b"").expect("open the gate");
    let r = held.join().expect("thread");
    w.fx.check(r.as_ref().is_ok_and(|t| t.contains("PID=")), || {
        format!("the held request did not complete: {r:?}\n{}", w.log())
    });
    let mut w = w;
    let st = w.fx.wait_exit(SERVER);
    w.fx.check(st.success(), || {
        format!("exit status {st} after SIGQUIT, want 0; log:\n{}", w.log())
    });
}

#[test]
fn asgi_two_workers_lifespan_and_recycling() {
    let Some(py) = python(&[]) else { return };
    let w = Workers::start(
        &py,
        "pyworkers-asgi",
        "asgi_workers_app:app",
        &["--asgi", "--workers", "2", "--max-requests", "3"],
        Listen::Tcp,
        2,
        |_, _| {},
    );
    let mut seen = BTreeSet::new();
    for i in 0..12 {
        let pid = get_pid(&w.addr, "")
            .unwrap_or_else(|e| w.fx.fail(&format!("request {i} failed: {e}\n{}", w.log())));
        seen.insert(pid);
    }
    // At most 3 requests per worker: 12 need at least 4 processes.
    w.fx.check(seen.len() >= 4, || {
        format!("12 requests answered by only {seen:?}; log:\n{}", w.log())
    });
    let log = w.log();
    for pid in &seen {
        w.fx.check(log.contains(&format!("lifespan startup {pid}")), || {
            format!("no lifespan startup in worker {pid}:\n{log}")
        });
    }
    // A recycled worker ran its lifespan shutdown before it exited.
    w.wait("a recycled worker's lifespan shutdown", || {
        seen.iter()
            .any(|pid| w.log().contains(&format!("lifespan shutdown {pid}")))
    });
    w.quit();
}

#[test]
fn unix_and_tcp_binds_at_once_under_workers() {
    let Some(py) = python(&[]) else { return };
    let port = harness::free_port();
    let tcp = format!("127.0.0.1:{port}");
    let sock_name = "both.sock";
    let w = Workers::start(
        &py,
        "pyworkers-binds",
        "workers_app:app",
        &["--workers", "2", "--bind", &tcp],
        Listen::Args(vec!["--bind".into(), format!("unix:{sock_name}")], &tcp),
        2,
        |_, _| {},
    );
    let sock = w.fx.dir.join(sock_name);
    w.wait("the Unix socket", || unix_ready(&sock));
    let a = get_pid(&w.addr, "").unwrap_or_else(|e| w.fx.fail(&e));
    let b = get_pid(sock.to_str().expect("utf-8"), "").unwrap_or_else(|e| w.fx.fail(&e));
    let workers = w.workers();
    w.fx.check(workers.contains(&a) && workers.contains(&b), || {
        format!("answers from {a} and {b}, workers {workers:?}")
    });
    w.quit();
}

/// A listening socket on a free port of 127.0.0.1 that the child gets as fd 3.
fn inherited_listener() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    (l, addr)
}

fn give_fd3(cmd: &mut Command, fd: i32) {
    inherit_as(cmd, fd, 3);
}

/// The child gets descriptor `fd` (close-on-exec in this process, as Rust opens them) as
/// descriptor `target`, kept across exec. When `fd` already is `target`, dup2 would change
/// nothing and leave close-on-exec set: the flag is cleared instead.
fn inherit_as(cmd: &mut Command, fd: i32, target: i32) {
    // SAFETY: dup2 and fcntl between fork and exec: async-signal-safe, no allocation.
    unsafe {
        cmd.pre_exec(move || {
            let r = if fd == target {
                libc::fcntl(target, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn inherited_fd_under_workers_and_in_one_process() {
    let Some(py) = python(&[]) else { return };
    // Workers: fd://3 in systemd's layout is the pool's own socket.
    let (l, addr) = inherited_listener();
    let fd = l.as_raw_fd();
    let w = Workers::start(
        &py,
        "pyworkers-fd",
        "workers_app:app",
        &["--workers", "2"],
        Listen::Args(vec!["--bind".into(), "fd://3".into()], &addr),
        2,
        |cmd, _| give_fd3(cmd, fd),
    );
    drop(l);
    let pids = w.wait_pids(2);
    let workers = w.workers();
    w.fx.check(pids == workers, || {
        format!("answered by {pids:?}, workers {workers:?}")
    });
    w.quit();

    // One process (threads): fd://3 and a Unix socket at once.
    let (l, addr) = inherited_listener();
    let fd = l.as_raw_fd();
    let w = Workers::start(
        &py,
        "pyworkers-fd1",
        "workers_app:app",
        &["--threads", "2", "--bind", "unix:one.sock"],
        Listen::Args(vec!["--bind".into(), "fd://3".into()], &addr),
        0,
        |cmd, _| give_fd3(cmd, fd),
    );
    drop(l);
    let sock = w.fx.dir.join("one.sock");
    w.wait("the Unix socket", || unix_ready(&sock));
    let a = get_pid(&w.addr, "").unwrap_or_else(|e| w.fx.fail(&e));
    let b = get_pid(sock.to_str().expect("utf-8"), "").unwrap_or_else(|e| w.fx.fail(&e));
    w.fx.check(a == w.pid() && b == w.pid(), || {
        format!("one process serves both: {a}, {b}, server {}", w.pid())
    });
    let mut w = w;
    let st = w.fx.sigterm_until_exit(SERVER);
    w.fx.check(st.success(), || format!("exit {st} after SIGTERM"));
}

#[test]
fn inherited_fd_the_pool_cannot_take_is_refused() {
    let Some(py) = python(&[]) else { return };
    let (l, _addr) = inherited_listener();
    let fd = l.as_raw_fd();
    let mut fx = Fixture::new("pyworkers-fdrefuse");
    let mut cmd = Command::new(&py);
    cmd.args(["-m", "fcgi_runtime", "workers_app:app", "--workers", "2"])
        .args(["--bind", "fd://5"])
        .current_dir(&fx.dir)
        .python_env(&[Path::new(APPS)]);
    inherit_as(&mut cmd, fd, 5);
    fx.spawn(SERVER, &mut cmd);
    let st = fx.wait_exit(SERVER);
    let log = fx.stderr_of(SERVER);
    fx.check(st.code() == Some(1), || {
        format!("exit {st}, want 1; log:\n{log}")
    });
    fx.check(log.contains("fd://5 is neither"), || {
        format!("no clear refusal:\n{log}")
    });
    drop(l);
}
