//! `fcgi-spawn` (crates/tools/src/bin/fcgi-spawn, docs/fcgi-spawn.md): unmodified libfcgi programs under the
//! library's pool. Real processes and sockets; every wait is a bounded poll for a cause (a log
//! line, a set of pids, a response), never a sleep that decides a verdict.
//!
//! Programs: tests/harness/web/lf_webapp.c built against Debian's libfcgi-dev headers, run on the
//! project's libfcgi.so.0 (LD_LIBRARY_PATH) or on Debian's (no LD_LIBRARY_PATH), and Debian's
//! /usr/sbin/fcgiwrap.
//!
//! The tests, in the order of the brief (issue 7, part 4):
//! 1. TCP, three workers on our library;
//! 2. the status page (JSON, OpenMetrics, text, a held request shown Running);
//! 3. the slow log and its rotation (SIGUSR1);
//! 4. the request terminate timeout;
//! 5. reload (SIGHUP twice) under load with zero failures;
//! 6. Debian's libfcgi (workers not attached: drained with SIGTERM);
//! 7. fcgiwrap behind a Unix socket with -M;
//! 8. -n, -P, -C, -u/-g (root only), bad options and settings;
//! 9. systemd socket activation.

use crate::harness;
use crate::spawn_common::{
    bench_load, derefs_to_proc, get_request, lf_webapp, send_request, spawn_command, spawn_exe,
    temp_dir, users_id, SpawnProc,
};
use fcgi_runtime_tools::client::Request;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine; a hung test fails instead of hanging.
const WAIT: Duration = Duration::from_secs(20);

/// Which libfcgi.so.0 the program runs on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lib {
    Ours,
    Debian,
}

/// An fcgi-spawn command with a clean environment for the pool and the program on `lib`.
fn spawn_cmd(lib: Lib) -> Command {
    let mut cmd = spawn_command(&[]);
    match lib {
        Lib::Ours => cmd.env("LD_LIBRARY_PATH", harness::lib_dir()),
        Lib::Debian => cmd.env_remove("LD_LIBRARY_PATH"),
    };
    cmd
}

/// A running fcgi-spawn (its process, stderr and drop: [`SpawnProc`]) and where clients
/// connect.
struct Spawn {
    proc: SpawnProc,
    /// Where clients connect: `127.0.0.1:PORT` or a socket path.
    addr: String,
}

derefs_to_proc!(Spawn);

impl Spawn {
    /// `fcgi-spawn -a 127.0.0.1 -p PORT ARGS -- PROGRAM` on a fresh port.
    fn tcp(tag: &str, lib: Lib, args: &[&str], program: &[&str]) -> Spawn {
        let port = harness::free_port();
        let mut cmd = spawn_cmd(lib);
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .arg("--")
            .args(program);
        Spawn::start(tag, cmd, format!("127.0.0.1:{port}"), "pool started")
    }

    fn start(tag: &str, cmd: Command, addr: String, ready: &str) -> Spawn {
        Spawn::start_in(temp_dir(tag), cmd, addr, ready)
    }

    fn start_in(dir: PathBuf, cmd: Command, addr: String, ready: &str) -> Spawn {
        let proc = SpawnProc::start(dir, cmd, WAIT);
        let mut s = Spawn { proc, addr };
        let ready = ready.to_string();
        s.wait_for(|s| s.log().contains(&ready), "fcgi-spawn to start");
        s
    }

    /// Polls `cond` until it holds; fails the test after [`WAIT`] (or if fcgi-spawn exited).
    #[track_caller]
    fn wait_for(&mut self, cond: impl FnMut(&Spawn) -> bool, what: &str) {
        SpawnProc::wait_for(self, cond, what)
    }

    /// Waits until exactly `n` workers run and each has exec'd its program and mapped a
    /// libfcgi.
    #[track_caller]
    fn wait_workers(&mut self, n: usize) -> BTreeSet<u32> {
        let mut last = BTreeSet::new();
        self.wait_for(
            |s| {
                last = s.workers();
                last.len() == n && last.iter().all(|&p| maps_some_libfcgi(p))
            },
            &format!("{n} workers running their program"),
        );
        last
    }

    fn get(&self, uri: &str) -> Result<String, String> {
        get(&self.addr, uri)
    }

    #[track_caller]
    fn status(&self, query: &str) -> String {
        status(&self.addr, query).unwrap_or_else(|e| panic!("status page: {e}\n{}", self.log()))
    }
}

fn maps_some_libfcgi(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .any(|p| {
            Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libfcgi.so"))
        })
}

fn maps_debian_lib(pid: u32) -> bool {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines().any(|l| l.contains(harness::DEBIAN_LIB)) && !harness::runs_project_lib(pid)
}

/// A GET of `uri` (path?query) with the CGI params a web server sends; the response's stdout.
fn request(addr: &str, uri: &str) -> Request {
    get_request(uri).param("SERVER_NAME", addr)
}

fn send(addr: &str, req: &Request) -> Result<String, String> {
    send_request(addr, req, WAIT)
}

fn get(addr: &str, uri: &str) -> Result<String, String> {
    let out = send(addr, &request(addr, uri))?;
    if out.contains("REQUEST_URI=") || out.contains("Status: 200") {
        Ok(out)
    } else {
        Err(format!("unexpected answer to {uri}: {out:?}"))
    }
}

/// The status page: SCRIPT_NAME=/status with `query` as QUERY_STRING.
fn status(addr: &str, query: &str) -> Result<String, String> {
    let uri = if query.is_empty() {
        "/status".to_string()
    } else {
        format!("/status?{query}")
    };
    send(addr, &request(addr, &uri))
}

/// The number after `"key":` in a JSON text (the first one).
fn json_num(json: &str, key: &str) -> u64 {
    json_nums(json, key)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("{key} missing in {json}"))
}

/// Every number after `"key":` in a JSON text.
fn json_nums(json: &str, key: &str) -> Vec<u64> {
    let pat = format!("\"{key}\":");
    json.match_indices(&pat)
        .filter_map(|(at, _)| {
            json[at + pat.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse()
                .ok()
        })
        .collect()
}

/// The objects of the `"processes":[...]` array, as texts (they hold no nested objects).
fn json_processes(json: &str) -> Vec<String> {
    let Some(at) = json.find("\"processes\":[") else {
        panic!("no processes in {json}");
    };
    json[at..]
        .split('{')
        .skip(1)
        .map(|p| p.split('}').next().unwrap_or("").to_string())
        .collect()
}

/// The body of a response (after the CGI header block).
fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or(resp, |(_, b)| b)
}

/// Starts a request on a thread (each on its own connection).
fn in_background(addr: &str, uri: &str) -> std::thread::JoinHandle<Result<String, String>> {
    let addr = addr.to_string();
    let uri = uri.to_string();
    std::thread::spawn(move || get(&addr, &uri))
}

fn alive(pid: u32) -> bool {
    harness::is_alive(pid)
}

// ---------------------------------------------------------------------------------------------
// 1. TCP
// ---------------------------------------------------------------------------------------------

#[test]
fn tcp_three_workers_on_our_library() {
    let app = lf_webapp();
    let mut s = Spawn::tcp("tcp", Lib::Ours, &["-F", "3"], &[app.to_str().unwrap()]);
    let workers = s.wait_workers(3);
    for &w in &workers {
        assert!(
            harness::runs_project_lib(w),
            "worker {w} does not run on the project's libfcgi.so.0"
        );
        let exe = fs::read_link(format!("/proc/{w}/exe")).expect("exe");
        assert_eq!(exe, app, "worker {w} runs {}", exe.display());
        let fd0 = fs::read_link(format!("/proc/{w}/fd/0")).expect("fd 0");
        assert!(fd0.to_string_lossy().starts_with("socket:"), "{fd0:?}");
    }
    for i in 0..30 {
        let out = s
            .get(&format!("/hello?n={i}"))
            .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", s.log()));
        assert!(out.contains(&format!("QUERY_STRING=n={i}")), "{out}");
    }
    assert_eq!(s.workers(), workers, "no worker was replaced");
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0), "{}", s.log());
}

// ---------------------------------------------------------------------------------------------
// 2. The status page
// ---------------------------------------------------------------------------------------------

#[test]
fn status_page_json_openmetrics_and_text() {
    let app = lf_webapp();
    let mut s = Spawn::tcp(
        "status",
        Lib::Ours,
        &["-F", "3", "--status-path", "/status", "--name", "spawnpool"],
        &[app.to_str().unwrap()],
    );
    let workers = s.wait_workers(3);
    s.get("/warm").expect("a request");
    let j1 = s.status("json&full");
    assert!(j1.contains("application/json"), "{j1}");
    let json1 = body(&j1);
    assert!(json1.contains("\"pool\":\"spawnpool\""), "{json1}");
    assert_eq!(json_num(json1, "total processes"), 3, "{json1}");
    let a1 = json_num(json1, "accepted conn");
    let pids: BTreeSet<u32> = json_nums(json1, "pid")
        .into_iter()
        .map(|p| p as u32)
        .collect();
    assert_eq!(
        pids, workers,
        "status pids vs children of fcgi-spawn: {json1}"
    );
    for p in &pids {
        assert!(
            harness::children_of(s.pid()).contains(p),
            "{p} is not a child of fcgi-spawn"
        );
    }
    s.get("/more").expect("a request");
    let json2 = s.status("json");
    let a2 = json_num(body(&json2), "accepted conn");
    assert!(a2 > a1, "accepted conn did not grow: {a1} then {a2}");

    let om = s.status("openmetrics");
    assert!(
        om.lines()
            .any(|l| l.trim() == "fcgi_pool_total_processes{pool=\"spawnpool\"} 3"),
        "{om}"
    );
    let text = s.status("");
    assert!(
        text.lines()
            .any(|l| l.starts_with("pool:") && l.contains("spawnpool")),
        "{text}"
    );

    // A request held at a gate shows as Running with its URI.
    let gate = s.path("gate");
    let uri = format!("/held?hold={}", gate.display());
    let before = s.log().matches("waiting at").count();
    let held = in_background(&s.addr, &uri);
    s.wait_for(
        |s| s.log().matches("waiting at").count() > before,
        "the held request in a worker",
    );
    let full = s.status("json&full");
    let running: Vec<String> = json_processes(body(&full))
        .into_iter()
        .filter(|p| {
            p.contains("\"state\":\"Running\"") && p.contains(&format!("\"request uri\":\"{uri}\""))
        })
        .collect();
    assert_eq!(
        running.len(),
        1,
        "the held request is not Running with its URI: {full}"
    );
    File::create(&gate).expect("open the gate");
    held.join().expect("client").expect("the held request");
}

// ---------------------------------------------------------------------------------------------
// 3. The slow log
// ---------------------------------------------------------------------------------------------

#[test]
fn slow_log_lines_and_rotation() {
    let app = lf_webapp();
    let dir = temp_dir("slowlog");
    let log = dir.join("slow.log");
    let port = harness::free_port();
    let mut cmd = spawn_cmd(Lib::Ours);
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-F", "2"])
        .args(["--status-path", "/status", "--slowlog"])
        .arg(&log)
        .args(["--slowlog-timeout-ms", "300", "--", app.to_str().unwrap()]);
    let mut s = Spawn::start_in(dir, cmd, format!("127.0.0.1:{port}"), "pool started");
    s.wait_workers(2);

    // The parent writes its line only while the request runs, so the request waits at a gate
    // until that line is there (a loaded machine may delay the parent's 100 ms tick), then
    // sleeps 1000 ms; the worker writes its line when the request ends.
    let slow_request = |s: &mut Spawn, gate: &Path, log: &Path| -> String {
        let uri = format!("/slow?hold={}&sleep_ms=1000", gate.display());
        let has = |what: &str| {
            fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains(what) && l.contains(&format!("GET {uri} ")))
        };
        let req = in_background(&s.addr, &uri);
        s.wait_for(|_| has("still running after"), "the parent's slow line");
        File::create(gate).expect("open the gate");
        req.join().expect("client").expect("the slow request");
        s.wait_for(|_| has(" took "), "the worker's slow line");
        fs::read_to_string(log).unwrap_or_default()
    };
    let gate1 = s.path("gate1");
    let first = slow_request(&mut s, &gate1, &log);
    assert_eq!(first.lines().count(), 2, "{first}");
    let json = s.status("json");
    assert!(json_num(body(&json), "slow requests") >= 1, "{json}");

    // Rotation: rename, SIGUSR1, another slow request: the new file gets its lines.
    let rotated = s.path("slow.log.1");
    fs::rename(&log, &rotated).expect("rotate");
    let reopen_before = s.log().matches("reopening log files").count();
    s.signal(libc::SIGUSR1);
    s.wait_for(
        |s| s.log().matches("reopening log files").count() > reopen_before,
        "the parent to reopen",
    );
    let gate2 = s.path("gate2");
    let second = slow_request(&mut s, &gate2, &log);
    assert_eq!(second.lines().count(), 2, "{second}");
    assert!(second.lines().all(|l| l.contains("gate2")), "{second}");
    let old = fs::read_to_string(&rotated).unwrap_or_default();
    assert_eq!(
        old.lines().count(),
        2,
        "the rotated file got lines after SIGUSR1:\n{old}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. request_terminate_timeout_ms
// ---------------------------------------------------------------------------------------------

#[test]
fn request_terminate_timeout_kills_the_worker() {
    let app = lf_webapp();
    let mut s = Spawn::tcp(
        "terminate",
        Lib::Ours,
        &["-F", "2", "--request-terminate-timeout-ms", "500"],
        &[app.to_str().unwrap()],
    );
    let before = s.wait_workers(2);
    let uri = "/long?sleep_ms=5000";
    let started = Instant::now();
    let r = s.get(uri);
    assert!(r.is_err(), "the killed request was answered: {r:?}");
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "the request was not cut short"
    );
    let mut line = String::new();
    s.wait_for(
        |s| {
            line = s
                .log()
                .lines()
                .find(|l| l.contains("request_terminate_timeout_ms 500"))
                .unwrap_or("")
                .to_string();
            !line.is_empty()
        },
        "the terminate log line",
    );
    assert!(line.contains(&format!("request GET {uri} ran")), "{line}");
    let pid: u32 = line
        .split("worker ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line}"));
    assert!(before.contains(&pid), "{pid} not among {before:?}");
    s.wait_for(|_| !alive(pid), "the killed worker to be gone");
    let after = s.wait_workers(2);
    assert!(!after.contains(&pid));
    assert_eq!(
        after.difference(&before).count(),
        1,
        "{before:?} -> {after:?}"
    );
    for _ in 0..5 {
        s.get("/after").expect("a request after the kill");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Reload under load
// ---------------------------------------------------------------------------------------------

#[test]
fn reload_under_load_loses_nothing() {
    let app = lf_webapp();
    let mut s = Spawn::tcp("reload", Lib::Ours, &["-F", "3"], &[app.to_str().unwrap()]);
    let first = s.wait_workers(3);
    let load = bench_load(&s.addr, 8, 4);
    let mut generations = vec![first];
    for _ in 0..2 {
        // The pauses only spread the reloads over the run.
        std::thread::sleep(Duration::from_millis(1000));
        s.signal(libc::SIGHUP);
        let prev = generations.last().expect("one").clone();
        let mut now = BTreeSet::new();
        s.wait_for(
            |s| {
                now = s.workers();
                now.len() == 3 && now.is_disjoint(&prev)
            },
            "a new generation of workers, the old one gone",
        );
        generations.push(now);
    }
    let json = load.join().expect("load thread");
    let n = json_num(&json, "requests");
    let retried = json_num(&json, "retried");
    assert!(n > 500, "too little load to prove anything: {json}");
    assert_eq!(json_num(&json, "errors"), 0, "{json}\n{}", s.log());
    for (i, a) in generations.iter().enumerate() {
        for b in &generations[i + 1..] {
            assert!(a.is_disjoint(b), "generations overlap: {a:?} {b:?}");
        }
    }
    let last = s.wait_workers(3);
    assert_eq!(&last, generations.last().expect("one"));
    for &w in &last {
        assert!(harness::runs_project_lib(w));
    }
    eprintln!("fcgi-spawn reload: {n} requests, 0 errors, {retried} retried, 2 reloads");
}

// ---------------------------------------------------------------------------------------------
// 6. Debian's libfcgi
// ---------------------------------------------------------------------------------------------

#[test]
fn debian_libfcgi_workers_reload_and_stop() {
    let app = lf_webapp();
    // Debian's libfcgi checks its SIGTERM flag only when accept(2) is interrupted: a worker
    // that got SIGTERM during a request, or whose SIGTERM landed on a thread other than the one
    // in accept, would go on waiting in accept. The parent re-sends SIGTERM to the threads it
    // finds blocked in accept (docs/fcgi-spawn.md), so the old workers must exit long before
    // graceful_timeout_ms (far beyond the test's waits: a SIGKILL cannot rescue the test).
    let mut s = Spawn::tcp(
        "debian",
        Lib::Debian,
        &["-F", "2", "--graceful-timeout-ms", "600000"],
        &[app.to_str().unwrap()],
    );
    let first = s.wait_workers(2);
    for &w in &first {
        assert!(
            maps_debian_lib(w),
            "worker {w} does not run on Debian's libfcgi"
        );
        let env = fs::read(format!("/proc/{w}/environ")).unwrap_or_default();
        assert!(
            String::from_utf8_lossy(&env).contains("FCGI_RUNTIME_SCOREBOARD="),
            "the scoreboard is passed even when the program cannot use it"
        );
    }
    for i in 0..10 {
        s.get(&format!("/deb?i={i}"))
            .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", s.log()));
    }
    // A request in a worker (held at a gate, then 500 ms of work) across the reload.
    let gate = s.path("gate");
    let uri = format!("/inflight?hold={}&sleep_ms=500", gate.display());
    let waiting = s.log().matches("waiting at").count();
    let inflight = in_background(&s.addr, &uri);
    s.wait_for(
        |s| s.log().matches("waiting at").count() > waiting,
        "the request in a worker",
    );
    s.signal(libc::SIGHUP);
    // The new generation starts beside the busy old worker, which SIGTERM lets finish.
    let mut now = BTreeSet::new();
    s.wait_for(
        |s| {
            now = s.workers();
            now.difference(&first).count() == 2
        },
        "the new generation",
    );
    File::create(&gate).expect("open the gate");
    let out = inflight.join().expect("client thread").unwrap_or_else(|e| {
        panic!(
            "the in-flight request failed across the reload: {e}\n{}",
            s.log()
        )
    });
    assert!(out.contains("QUERY_STRING=hold="), "{out}");
    let mut second = BTreeSet::new();
    s.wait_for(
        |s| {
            second = s.workers();
            second.len() == 2 && second.is_disjoint(&first)
        },
        "every old worker replaced",
    );
    for &w in &first {
        s.wait_for(|_| !alive(w), "the old workers to exit");
    }
    let killed: Vec<u32> = first
        .iter()
        .copied()
        .filter(|w| {
            s.log()
                .contains(&format!("worker {w} did not finish draining"))
        })
        .collect();
    assert!(
        killed.is_empty(),
        "old workers {killed:?} needed SIGKILL\n{}",
        s.log()
    );
    for &w in &second {
        s.wait_for(|_| maps_debian_lib(w), "new workers on Debian's libfcgi");
    }
    s.get("/after-reload").expect("a request after the reload");
    s.signal(libc::SIGQUIT);
    assert_eq!(s.wait_exit(), Some(0), "{}", s.log());
    assert!(s.log().contains("pool stopped"), "{}", s.log());
    for &w in &second {
        let deadline = Instant::now() + WAIT;
        while alive(w) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(w), "worker {w} outlived the stop");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. fcgiwrap behind a Unix socket
// ---------------------------------------------------------------------------------------------

#[test]
fn fcgiwrap_on_a_unix_socket_with_mode() {
    harness::require(harness::FCGIWRAP, "fcgiwrap");
    let dir = temp_dir("fcgiwrap");
    let sock = dir.join("wrap.sock");
    // A stale socket file (nobody listens) is replaced, as spawn-fcgi does.
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("stale socket"));
    assert!(sock.exists());
    let cgi = dir.join("hello.cgi");
    fs::write(
        &cgi,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello from cgi %s\\n' \"$QUERY_STRING\"\n",
    )
    .expect("write cgi");
    fs::set_permissions(&cgi, fs::Permissions::from_mode(0o755)).expect("chmod cgi");
    let mut cmd = spawn_cmd(Lib::Ours);
    cmd.arg("-s")
        .arg(&sock)
        .args(["-M", "0660", "-F", "2", "--", harness::FCGIWRAP]);
    let mut s = Spawn::start_in(dir, cmd, sock.to_str().unwrap().to_string(), "pool started");
    let workers = s.wait_workers(2);
    let md = fs::metadata(&sock).expect("stat the socket");
    assert!(md.file_type().is_socket());
    assert_eq!(md.permissions().mode() & 0o7777, 0o660, "socket mode");
    for &w in &workers {
        assert!(
            harness::runs_project_lib(w),
            "fcgiwrap {w} is not on our library"
        );
    }
    for i in 0..4 {
        let req = request(&s.addr, &format!("/hello.cgi?n={i}"))
            .param("SCRIPT_FILENAME", cgi.to_str().unwrap())
            .param("DOCUMENT_ROOT", s.dir.to_str().unwrap());
        let out = send(&s.addr, &req).unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
        assert!(out.contains(&format!("hello from cgi n={i}")), "{out}");
    }
    // A second fcgi-spawn on the live socket refuses, exit 1, and leaves it alone.
    let out = spawn_cmd(Lib::Ours)
        .arg("-s")
        .arg(&sock)
        .args(["--", harness::FCGIWRAP])
        .output()
        .expect("second fcgi-spawn");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already in use"),
        "{out:?}"
    );
    send(
        &s.addr,
        &request(&s.addr, "/hello.cgi").param("SCRIPT_FILENAME", cgi.to_str().unwrap()),
    )
    .expect("the first one still serves");
    // A clean stop removes the socket file.
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0), "{}", s.log());
    assert!(!sock.exists(), "the socket file is left behind");
}

// ---------------------------------------------------------------------------------------------
// 8. Options
// ---------------------------------------------------------------------------------------------

#[test]
fn no_fork_execs_the_program_in_place() {
    let app = lf_webapp();
    let dir = temp_dir("nofork");
    let pidfile = dir.join("app.pid");
    let port = harness::free_port();
    let mut cmd = spawn_cmd(Lib::Ours);
    cmd.args([
        "-n",
        "-a",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-C",
        "2",
        "-P",
    ])
    .arg(&pidfile)
    .args(["--", app.to_str().unwrap()]);
    let err = File::create(dir.join("stderr")).expect("stderr");
    let mut child = cmd.stderr(err).spawn().expect("fcgi-spawn -n");
    let pid = child.id();
    let deadline = Instant::now() + WAIT;
    while fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref() != Some(&app)
        || !harness::tcp_ready(port)
    {
        assert!(
            Instant::now() < deadline && child.try_wait().expect("try_wait").is_none(),
            "fcgi-spawn -n did not become the program: {}",
            fs::read_to_string(dir.join("stderr")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let fd0 = fs::read_link(format!("/proc/{pid}/fd/0")).expect("fd 0");
    assert!(fd0.to_string_lossy().starts_with("socket:"), "{fd0:?}");
    assert!(harness::children_of(pid).is_empty(), "-n forked");
    let out = get(&format!("127.0.0.1:{port}"), "/nofork").expect("a request");
    assert!(out.contains("REQUEST_URI=/nofork"), "{out}");
    assert!(harness::runs_project_lib(pid));
    let written = fs::read_to_string(&pidfile).expect("pid file");
    assert_eq!(written.trim(), pid.to_string());
    let env =
        String::from_utf8_lossy(&fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
            .into_owned();
    assert!(
        env.split('\0').any(|v| v == "PHP_FCGI_CHILDREN=2"),
        "{env:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn pid_file_and_php_fcgi_children() {
    let app = lf_webapp();
    let dir = temp_dir("pidfile");
    let pidfile = dir.join("spawn.pid");
    // An old pid file is overwritten, as spawn-fcgi does.
    fs::write(&pidfile, "999999\n").expect("old pid file");
    let port = harness::free_port();
    let mut cmd = spawn_cmd(Lib::Ours);
    cmd.args([
        "-a",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-F",
        "2",
        "-C",
        "4",
        "-P",
    ])
    .arg(&pidfile)
    .args(["--", app.to_str().unwrap()]);
    let mut s = Spawn::start_in(dir, cmd, format!("127.0.0.1:{port}"), "pool started");
    let workers = s.wait_workers(2);
    let written = fs::read_to_string(&pidfile).expect("pid file");
    assert_eq!(written.trim(), s.pid().to_string());
    for &w in &workers {
        let env =
            String::from_utf8_lossy(&fs::read(format!("/proc/{w}/environ")).unwrap_or_default())
                .into_owned();
        let vars: Vec<&str> = env.split('\0').collect();
        assert!(
            vars.contains(&"PHP_FCGI_CHILDREN=4"),
            "worker {w}: {vars:?}"
        );
        assert!(
            vars.iter()
                .any(|v| v.starts_with("FCGI_RUNTIME_SCOREBOARD=")),
            "worker {w}: {vars:?}"
        );
    }
    // -C is for the program: the pool keeps its -F count.
    assert_eq!(s.workers().len(), 2);
    s.get("/").expect("a request");
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0), "{}", s.log());
    assert!(!pidfile.exists(), "the pid file is left after a clean stop");
}

#[test]
fn user_and_group_when_root() {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: -u/-g need root (spawn-fcgi ignores them otherwise)");
        return;
    }
    let nobody = users_id("/etc/passwd", "nobody");
    let nogroup = users_id("/etc/group", "nogroup");
    let (Some(uid), Some(gid)) = (nobody, nogroup) else {
        eprintln!("skipped: no user nobody or group nogroup");
        return;
    };
    let app = lf_webapp();
    // The program and the library must be reachable by nobody.
    let reachable = [app.as_path(), harness::lib_dir()]
        .iter()
        .all(|p| world_reachable(p));
    if !reachable {
        eprintln!(
            "skipped: {} or the library is not reachable by nobody",
            app.display()
        );
        return;
    }
    let mut s = Spawn::tcp(
        "users",
        Lib::Ours,
        &["-F", "2", "-u", "nobody", "-g", "nogroup"],
        &[app.to_str().unwrap()],
    );
    let workers = s.wait_workers(2);
    for pid in workers.iter().copied().chain([s.pid()]) {
        let st = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let field = |name: &str| {
            st.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|r| r.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert!(
            field("Uid:").iter().all(|u| *u == uid.to_string()),
            "pid {pid}: {st}"
        );
        assert!(
            field("Gid:").iter().all(|g| *g == gid.to_string()),
            "pid {pid}: {st}"
        );
        let groups = field("Groups:");
        assert!(
            !groups.contains(&"0".to_string()),
            "pid {pid} kept root's groups: {groups:?}"
        );
    }
    s.get("/as-nobody").expect("a request");
}

/// Whether every directory up to `p` is searchable by others and `p` readable.
fn world_reachable(p: &Path) -> bool {
    p.ancestors().all(|a| {
        fs::metadata(a).is_ok_and(|m| {
            let mode = m.permissions().mode();
            if m.is_dir() {
                mode & 0o001 != 0
            } else {
                mode & 0o004 != 0
            }
        })
    })
}

#[test]
fn bad_options_and_settings_exit_2() {
    let run = |args: &[&str]| {
        let out = spawn_cmd(Lib::Ours)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run fcgi-spawn");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let port = harness::free_port().to_string();
    let (code, err) = run(&["-x", "-p", &port, "--", "/bin/true"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("unknown option -x") && err.contains("usage:"),
        "{err}"
    );
    let (code, err) = run(&["--frob", "--", "/bin/true"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = run(&["-p", &port]);
    assert_eq!(code, Some(2), "no program: {err}");
    for bad in [
        &["--pm", "lazy"][..],
        &["--set", "nope=1"],
        &["-F", "0"],
        &["--max-requests", "many"],
        &["--status-path", "status"],
        &["--pm", "dynamic", "--max-children", "2", "--max-spare", "5"],
    ] {
        let mut args = vec!["-a", "127.0.0.1", "-p", &port];
        args.extend_from_slice(bad);
        args.extend(["--", "/bin/true"]);
        let (code, err) = run(&args);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(err.contains("fcgi-spawn:"), "{bad:?}: {err}");
    }
    let (code, out) = {
        let o = spawn_cmd(Lib::Ours)
            .arg("--help")
            .stdout(Stdio::piped())
            .output()
            .expect("--help");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    assert_eq!(code, Some(0));
    assert!(
        out.contains("usage: fcgi-spawn") && out.contains("--status-path"),
        "{out}"
    );
    // A startup error (the port is taken): exit 1 with the reason.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = l.local_addr().expect("addr").port().to_string();
    let (code, err) = run(&["-a", "127.0.0.1", "-p", &taken, "--", "/bin/true"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("Address already in use") || err.contains("in use"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. systemd socket activation
// ---------------------------------------------------------------------------------------------

#[test]
fn systemd_socket_activation() {
    let app = lf_webapp();
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let fd = l.as_raw_fd();
    // LISTEN_PID must be fcgi-spawn's own pid: a shell sets it to its $$ and execs fcgi-spawn
    // in the same process (setenv after fork in this multi-threaded test would not be safe).
    let inner = spawn_cmd(Lib::Ours);
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(spawn_exe())
        .args(["-F", "2", "--", app.to_str().unwrap()]);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.stdin(Stdio::null()).stdout(Stdio::null());
    // SAFETY: dup2/fcntl are async-signal-safe; the listener becomes fd 3 (inheritable) in the
    // child only.
    unsafe {
        sh.pre_exec(move || {
            if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut s = Spawn::start("systemd", sh, addr, "pool started");
    drop(l);
    let workers = s.wait_workers(2);
    for &w in &workers {
        let env =
            String::from_utf8_lossy(&fs::read(format!("/proc/{w}/environ")).unwrap_or_default())
                .into_owned();
        assert!(
            !env.contains("LISTEN_FDS="),
            "LISTEN_FDS reached the program"
        );
        let fd0 = fs::read_link(format!("/proc/{w}/fd/0")).expect("fd 0");
        assert!(fd0.to_string_lossy().starts_with("socket:"), "{fd0:?}");
    }
    for i in 0..10 {
        s.get(&format!("/sd?i={i}"))
            .unwrap_or_else(|e| panic!("request {i} on systemd's socket: {e}\n{}", s.log()));
    }
}
