//! `fcgi-spawn --config FILE` (docs/fcgi-spawn.md, "Pool files"; man/fcgi-spawn.conf.5): pool
//! files in PHP-FPM's format under one master, and fcgi-spawn's loopback default (issue 22,
//! items 1 and 7). Real processes and sockets; every wait is a bounded poll for a cause (a log
//! line, a set of pids, a response), never a sleep that decides a verdict.
//!
//! 1. `-t`: exit codes, `[FILE:LINE]` in errors, the PHP-only warning, includes, usage errors;
//! 2. two pools from one file, each on its own socket (env[], clear_env, `$pool`, the pid
//!    file, a pool supervisor killed and restarted, a clean stop);
//! 3. a reload under fcgi-bench load: a pool changed (max_children 2 -> 3), one added, one
//!    removed, one unchanged; zero errors;
//! 4. a reload with a broken file: the pools keep serving, untouched;
//! 5. the loopback default (flag mode), `-a 0.0.0.0` and a pool file's bare port (every
//!    address, as FPM) with their warning;
//! 6. Debian's php8.2-fpm www.conf shape (its comments, its directives) running fcgiwrap;
//! 7. systemd notify: READY=1, RELOADING=1 / READY=1, STOPPING=1, WATCHDOG=1 from the master,
//!    and the relay of the pool supervisors' own messages (the library's sd_notify).

use crate::harness;
use crate::spawn_common::{
    bench_load, derefs_to_proc, environ, get_request, json_num, lf_webapp, send_request,
    spawn_command, temp_dir, users_id, NotifySock, SpawnProc,
};
use fcgi_runtime_tools::client::Request;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine; a hung test fails instead of hanging.
const WAIT: Duration = Duration::from_secs(20);

/// A pool section running lf_webapp on the project's library.
fn pool(name: &str, listen: &str, extra: &str) -> String {
    format!(
        "[{name}]\nlisten = {listen}\npm = static\npm.max_children = 2\n\
         command = {}\nenv[LD_LIBRARY_PATH] = {}\n{extra}\n",
        lf_webapp().display(),
        harness::lib_dir().display()
    )
}

/// fcgi-spawn with a clean environment (pools may run as root: `-R`, for root test runs).
fn spawn_cmd() -> Command {
    spawn_command(&[
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "JOURNAL_STREAM",
    ])
}

/// `fcgi-spawn ARGS`, to its end: (exit code, stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = spawn_cmd()
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .expect("run fcgi-spawn");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running master with its log in a file (its stderr, DIR/stderr, or the file's error_log);
/// killed with its whole tree on drop ([`SpawnProc`]).
struct Master {
    proc: SpawnProc,
    conf: PathBuf,
}

derefs_to_proc!(Master);

impl Master {
    /// Writes `text` as DIR/pool.conf and starts `fcgi-spawn -R --config` on it, with `env`.
    fn start(dir: PathBuf, text: &str, env: &[(&str, &str)]) -> Master {
        let log = dir.join("stderr");
        Master::start_logging(dir, text, env, log)
    }

    /// [`Master::start`] for a file whose error_log is `log`.
    fn start_logging(dir: PathBuf, text: &str, env: &[(&str, &str)], log: PathBuf) -> Master {
        let conf = dir.join("pool.conf");
        fs::write(&conf, text).expect("write the pool file");
        let mut cmd = spawn_cmd();
        cmd.arg("-R").arg("--config").arg(&conf);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = SpawnProc::start(dir, cmd, WAIT).master(log);
        let mut m = Master { proc, conf };
        m.wait_for(
            |m| m.log().contains("pool(s) ready (started)"),
            "every pool ready",
        );
        m
    }

    #[track_caller]
    fn wait_for(&mut self, cond: impl FnMut(&Master) -> bool, what: &str) {
        SpawnProc::wait_for(self, cond, what)
    }

    /// The live supervisor of pool `name` (from the master's "started" lines).
    fn supervisor(&self, name: &str) -> Option<u32> {
        let pat = format!("[pool {name}] supervisor ");
        self.log()
            .lines()
            .filter_map(|l| l.split_once(&pat).map(|(_, r)| r))
            .filter(|r| r.contains(" started on "))
            .filter_map(|r| r.split_whitespace().next()?.parse::<u32>().ok())
            .rfind(|&p| harness::is_alive(p) && harness::children_of(self.pid()).contains(&p))
    }

    /// Waits until pool `name` has a supervisor with `n` workers running lf_webapp; returns
    /// (supervisor, workers).
    #[track_caller]
    fn wait_pool(&mut self, name: &str, n: usize) -> (u32, BTreeSet<u32>) {
        let mut got = (0, BTreeSet::new());
        let app = lf_webapp();
        self.wait_for(
            |m| {
                let Some(sup) = m.supervisor(name) else {
                    return false;
                };
                let workers = harness::live_children_of(sup);
                let ok = workers.len() == n
                    && workers.iter().all(|w| {
                        fs::read_link(format!("/proc/{w}/exe")).ok().as_ref() == Some(&app)
                    });
                got = (sup, workers);
                ok
            },
            &format!("pool {name} with {n} workers"),
        );
        got
    }

    /// Rewrites the pool file and sends SIGHUP; waits for the reload's outcome line.
    fn reload(&mut self, text: &str) {
        self.reload_with(text, libc::SIGHUP)
    }

    /// [`Master::reload`] with `sig` (SIGHUP or SIGUSR2).
    fn reload_with(&mut self, text: &str, sig: libc::c_int) {
        let before = self.reload_outcomes();
        fs::write(&self.conf, text).expect("rewrite the pool file");
        self.signal(sig);
        self.wait_for(|m| m.reload_outcomes() > before, "the reload's outcome");
    }

    fn reload_outcomes(&self) -> usize {
        let log = self.log();
        log.matches("pool(s) ready (reloaded)").count() + log.matches("reload failed").count()
    }
}

fn request(uri: &str) -> Request {
    get_request(uri)
}

fn send(addr: &str, req: &Request) -> Result<String, String> {
    send_request(addr, req, WAIT)
}

/// A GET answered by lf_webapp (its echo of the params).
fn get(addr: &str, uri: &str) -> Result<String, String> {
    let out = send(addr, &request(uri))?;
    if out.contains(&format!("REQUEST_URI={uri}")) {
        Ok(out)
    } else {
        Err(format!("unexpected answer to {uri} on {addr}: {out:?}"))
    }
}

/// fcgi-bench on `addr` for `secs` seconds, in a thread: its --json report.
fn load(addr: &str, secs: u32) -> std::thread::JoinHandle<String> {
    bench_load(addr, 4, secs)
}

// ---------------------------------------------------------------------------------------------
// 1. -t
// ---------------------------------------------------------------------------------------------

#[test]
fn test_mode_exit_codes_and_messages() {
    let dir = temp_dir("t");
    let conf = dir.join("main.conf");
    let conf_s = conf.to_str().unwrap();
    fs::create_dir_all(dir.join("pool.d")).unwrap();
    fs::write(&conf, "[global]\npid = run.pid\ninclude = pool.d/*.conf\n").unwrap();
    fs::write(
        dir.join("pool.d/www.conf"),
        pool(
            "www",
            "$pool.sock",
            "php_admin_value[memory_limit] = 32M\nphp_flag[display_errors] = off",
        ),
    )
    .unwrap();
    fs::write(
        dir.join("pool.d/api.conf"),
        pool("api", "127.0.0.1:9999", ""),
    )
    .unwrap();
    let (code, err) = run(&["-R", "-t", "--config", conf_s]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("configuration file {conf_s} test is successful")),
        "{err}"
    );
    // One line names the PHP-only directives, with where they are.
    let php: Vec<&str> = err.lines().filter(|l| l.contains("PHP-only")).collect();
    assert_eq!(php.len(), 1, "{err}");
    assert!(
        php[0].contains("WARNING")
            && php[0].contains("php_admin_value[memory_limit]")
            && php[0].contains("php_flag[display_errors]")
            && php[0].contains("www.conf:8]"),
        "{err}"
    );
    // An unknown directive and a bad value: exit 1, file and line.
    fs::write(
        dir.join("pool.d/api.conf"),
        format!("{}pm.max_chidlren = 3\n", pool("api", "127.0.0.1:9999", "")),
    )
    .unwrap();
    let (code, err) = run(&["-R", "-t", "--config", conf_s]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("api.conf:8] unknown entry 'pm.max_chidlren'"),
        "{err}"
    );
    assert!(err.contains("test failed"), "{err}");
    fs::write(
        dir.join("pool.d/api.conf"),
        pool("api", "127.0.0.1:9999", "request_terminate_timeout = 30x"),
    )
    .unwrap();
    let (code, err) = run(&["-R", "-t", "--config", conf_s]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("api.conf:7] unable to parse value for entry 'request_terminate_timeout'"),
        "{err}"
    );
    // A missing file, a file with no pool.
    let (code, err) = run(&["-R", "-t", "--config", "/nonexistent/fcgi-spawn.conf"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("/nonexistent/fcgi-spawn.conf"), "{err}");
    fs::remove_dir_all(dir.join("pool.d")).unwrap();
    fs::create_dir_all(dir.join("pool.d")).unwrap();
    let (code, err) = run(&["-R", "-t", "--config", conf_s]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Nothing matches the include pattern"), "{err}");
    assert!(err.contains("No pool defined"), "{err}");
    // Usage errors: exit 2.
    for args in [
        &["--config", conf_s, "--", "/bin/true"][..],
        &["--config", conf_s, "-p", "9000"],
        &["--config", conf_s, "--max-children", "3"],
        &["-t", "--", "/bin/true"],
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// 2. Two pools from one file
// ---------------------------------------------------------------------------------------------

#[test]
fn two_pools_each_serve_their_own_socket() {
    let dir = temp_dir("two");
    let port = harness::free_port();
    let tcp = format!("127.0.0.1:{port}");
    let sock = dir.join("b.sock");
    let text = format!(
        "[global]\npid = master.pid\n\n{}\n{}",
        pool(
            "a",
            &tcp,
            "env[POOL] = $pool\nenv[FROM_MASTER] = $FCGI_SPAWN_CONF_MARK\n\
             rlimit_files = 1000\nprocess.priority = 5\nchdir = /tmp"
        ),
        pool(
            "b",
            "$pool.sock",
            "pm.max_children = 1\nclear_env = no\nenv[POOL] = $pool\nlisten.mode = 0666",
        ),
    );
    let mut m = Master::start(dir.clone(), &text, &[("FCGI_SPAWN_CONF_MARK", "marked")]);
    let (sup_a, workers_a) = m.wait_pool("a", 2);
    let (sup_b, workers_b) = m.wait_pool("b", 1);
    assert_ne!(sup_a, sup_b);
    let sups = harness::live_children_of(m.pid());
    assert_eq!(
        sups,
        [sup_a, sup_b].into_iter().collect(),
        "one supervisor per pool"
    );
    let sock_s = sock.to_str().unwrap();
    for i in 0..10 {
        get(&tcp, &format!("/a?i={i}")).unwrap_or_else(|e| panic!("{e}\n{}", m.log()));
        get(sock_s, &format!("/b?i={i}")).unwrap_or_else(|e| panic!("{e}\n{}", m.log()));
    }
    // Each worker serves its pool's socket on fd 0.
    for &w in workers_a.iter().chain(&workers_b) {
        let fd0 = fs::read_link(format!("/proc/{w}/fd/0")).expect("fd 0");
        assert!(fd0.to_string_lossy().starts_with("socket:"), "{fd0:?}");
        assert!(
            harness::runs_project_lib(w),
            "worker {w} not on the project's library"
        );
    }
    // env[]: `$pool`, `$NAME` from fcgi-spawn's environment; clear_env (FPM's default: yes).
    // rlimit_files, process.priority and chdir reach the programs.
    for &w in &workers_a {
        let limits = fs::read_to_string(format!("/proc/{w}/limits")).unwrap_or_default();
        let files = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or("");
        assert_eq!(
            files.split_whitespace().skip(3).take(2).collect::<Vec<_>>(),
            ["1000", "1000"],
            "{files}"
        );
        let stat = fs::read_to_string(format!("/proc/{w}/stat")).unwrap_or_default();
        let nice = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(16))
            .unwrap_or("");
        assert_eq!(nice, "5", "{stat}");
        assert_eq!(
            fs::read_link(format!("/proc/{w}/cwd")).ok().as_deref(),
            Some(Path::new("/tmp"))
        );
    }
    for &w in &workers_a {
        let env = environ(w);
        assert!(env.contains(&"POOL=a".to_string()), "{env:?}");
        assert!(env.contains(&"FROM_MASTER=marked".to_string()), "{env:?}");
        assert!(
            !env.iter().any(|v| v.starts_with("FCGI_SPAWN_CONF_MARK=")),
            "clear_env let fcgi-spawn's environment through: {env:?}"
        );
        assert!(
            env.iter()
                .any(|v| v.starts_with("FCGI_RUNTIME_SCOREBOARD=")),
            "{env:?}"
        );
        assert!(
            !env.iter().any(|v| v.starts_with("NOTIFY_SOCKET=")),
            "{env:?}"
        );
    }
    for &w in &workers_b {
        let env = environ(w);
        assert!(env.contains(&"POOL=b".to_string()), "{env:?}");
        assert!(
            env.contains(&"FCGI_SPAWN_CONF_MARK=marked".to_string()),
            "clear_env = no: {env:?}"
        );
    }
    let md = fs::metadata(&sock).expect("the socket of pool b ($pool.sock)");
    assert_eq!(md.permissions().mode() & 0o777, 0o666);
    let pid_file = dir.join("master.pid");
    assert_eq!(
        fs::read_to_string(&pid_file).expect("pid file").trim(),
        m.pid().to_string()
    );
    // A pool supervisor killed: logged, restarted (with back-off), serving again; the other
    // pool untouched.
    // SAFETY: kill(2) to a process of the tree this test started.
    unsafe { libc::kill(sup_a as libc::pid_t, libc::SIGKILL) };
    m.wait_for(
        |m| {
            m.log()
                .contains(&format!("[pool a] supervisor {sup_a} exited unexpectedly"))
        },
        "the master to see pool a's supervisor die",
    );
    let (sup_a2, _) = m.wait_pool("a", 2);
    assert_ne!(sup_a2, sup_a);
    get(&tcp, "/after-restart").unwrap_or_else(|e| panic!("{e}\n{}", m.log()));
    assert_eq!(m.supervisor("b"), Some(sup_b));
    assert_eq!(harness::live_children_of(sup_b), workers_b);
    // A clean stop: every pool supervisor gone, exit 0, the socket and pid files removed.
    m.signal(libc::SIGTERM);
    assert_eq!(m.wait_exit(), Some(0), "{}", m.log());
    assert!(!sock.exists(), "the socket file is left");
    assert!(!pid_file.exists(), "the pid file is left");
}

#[test]
fn error_log_gathers_every_process_and_reopens_on_sigusr1() {
    let dir = temp_dir("errorlog");
    let log = dir.join("fcgi.log");
    let addr = format!("127.0.0.1:{}", harness::free_port());
    let text = format!("[global]\nerror_log = fcgi.log\n{}", pool("www", &addr, ""));
    let mut m = Master::start_logging(dir.clone(), &text, &[], log.clone());
    let (sup, _) = m.wait_pool("www", 2);
    // The master's lines and its pool supervisor's (through its pipe), in one file.
    let text = m.log();
    assert!(text.contains("fcgi-spawn: NOTICE: master"), "{text}");
    assert!(
        text.contains(&format!(
            "pool started: pm static, max_children 2, 1 socket(s), pid {sup}"
        )),
        "{text}"
    );
    let stderr = fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    assert!(
        !stderr.contains("pool started"),
        "the pool's lines went to stderr: {stderr}"
    );
    // A rotation: the file renamed, SIGUSR1; the pool supervisor's next lines reach the new
    // file.
    let rotated = dir.join("fcgi.log.1");
    fs::rename(&log, &rotated).unwrap();
    m.signal(libc::SIGUSR1);
    m.wait_for(
        |m| {
            m.log()
                .lines()
                .any(|l| l.starts_with("fcgi-runtime:") && l.ends_with("pool: reopening log files"))
        },
        "the pool supervisor's line in the reopened error_log",
    );
    get(&addr, "/after-rotation").unwrap_or_else(|e| panic!("{e}\n{}", m.log()));
    m.signal(libc::SIGTERM);
    assert_eq!(m.wait_exit(), Some(0), "{}", m.log());
    assert!(m.log().contains("every pool stopped"), "{}", m.log());
}

#[test]
fn the_example_file_and_the_man_page() {
    harness::require(harness::FCGIWRAP, "fcgiwrap");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("etc/fcgi-spawn.conf");
    let (code, err) = run(&["-t", "--config", example.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("WARNING"), "{err}");
    // man/fcgi-spawn.conf.5 renders without a warning, where man is installed (CI has it).
    let page = root.join("man/fcgi-spawn.conf.5");
    let text = fs::read_to_string(&page).expect("the man page");
    for d in [
        "command",
        "listen.allowed_clients",
        "pm.max_requests_jitter",
        "pm.drain_delay",
        "clear_env",
        "include",
        "php_admin_value",
        "process_control_timeout",
    ] {
        assert!(text.contains(d), "the man page lacks {d}");
    }
    match Command::new("man")
        .arg("--warnings")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "80")
        .output()
    {
        Ok(out) => {
            assert!(out.status.success(), "{out:?}");
            let warnings = String::from_utf8_lossy(&out.stderr);
            assert!(warnings.trim().is_empty(), "man --warnings: {warnings}");
            assert!(String::from_utf8_lossy(&out.stdout).contains("fcgi-spawn.conf"));
        }
        Err(_) => assert!(
            std::env::var_os("CI").is_none(),
            "no man to render the page (install man-db)"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Reload under load
// ---------------------------------------------------------------------------------------------

#[test]
fn reload_under_load_changes_adds_and_removes_pools() {
    let dir = temp_dir("reload");
    let keep = format!("127.0.0.1:{}", harness::free_port());
    let grow = format!("127.0.0.1:{}", harness::free_port());
    let added = format!("127.0.0.1:{}", harness::free_port());
    let gone = dir.join("gone.sock");
    let before = format!(
        "{}{}{}",
        pool("keep", &keep, ""),
        pool("grow", &grow, ""),
        pool("gone", gone.to_str().unwrap(), "pm.max_children = 1"),
    );
    let mut m = Master::start(dir.clone(), &before, &[]);
    let (keep_sup, keep_w1) = m.wait_pool("keep", 2);
    let (grow_sup, _) = m.wait_pool("grow", 2);
    let (gone_sup, _) = m.wait_pool("gone", 1);
    get(gone.to_str().unwrap(), "/gone").expect("pool gone serves before the reload");

    let load_keep = load(&keep, 5);
    let load_grow = load(&grow, 5);
    // The pause only puts the reload in the middle of the load.
    std::thread::sleep(Duration::from_millis(1500));
    let after = format!(
        "{}{}{}",
        pool("keep", &keep, ""),
        pool("grow", &grow, "pm.max_children = 3"),
        pool("added", &added, ""),
    );
    m.reload(&after);
    assert!(
        m.log().contains("pool(s) ready (reloaded)"),
        "the reload failed:\n{}",
        m.log()
    );
    // Changed: a new supervisor with three workers; the old one drained and gone.
    let (grow_sup2, _) = m.wait_pool("grow", 3);
    assert_ne!(grow_sup2, grow_sup);
    m.wait_for(
        |_| !harness::is_alive(grow_sup),
        "the old supervisor of grow to exit",
    );
    // Unchanged: the same supervisor, a new generation of workers.
    let mut keep_w2 = BTreeSet::new();
    m.wait_for(
        |m| {
            keep_w2 = harness::live_children_of(keep_sup);
            m.supervisor("keep") == Some(keep_sup)
                && keep_w2.len() == 2
                && keep_w2.is_disjoint(&keep_w1)
        },
        "a new generation in the unchanged pool",
    );
    // Added: serves.
    m.wait_pool("added", 2);
    get(&added, "/added").unwrap_or_else(|e| panic!("{e}\n{}", m.log()));
    // Removed: its supervisor drained and gone, its socket closed and its file removed.
    m.wait_for(
        |_| !harness::is_alive(gone_sup),
        "the removed pool's supervisor to exit",
    );
    assert!(!gone.exists(), "the removed pool's socket file is left");
    assert!(get(gone.to_str().unwrap(), "/gone").is_err());

    for (name, l) in [("keep", load_keep), ("grow", load_grow)] {
        let json = l.join().expect("load thread");
        let n = json_num(&json, "requests");
        assert!(
            n > 200,
            "too little load on {name} to prove anything: {json}"
        );
        assert_eq!(json_num(&json, "errors"), 0, "{name}: {json}\n{}", m.log());
        eprintln!(
            "fcgi-spawn --config reload: pool {name}: {n} requests, 0 errors, {} retried",
            json_num(&json, "retried")
        );
    }
    m.signal(libc::SIGQUIT);
    assert_eq!(m.wait_exit(), Some(0), "{}", m.log());
}

// ---------------------------------------------------------------------------------------------
// 4. A broken file on reload
// ---------------------------------------------------------------------------------------------

#[test]
fn reload_with_a_broken_file_keeps_the_pools_serving() {
    let dir = temp_dir("broken");
    let a = format!("127.0.0.1:{}", harness::free_port());
    let b = format!("127.0.0.1:{}", harness::free_port());
    let good = format!("{}{}", pool("a", &a, ""), pool("b", &b, ""));
    let mut m = Master::start(dir, &good, &[]);
    let (sup_a, wa) = m.wait_pool("a", 2);
    let (sup_b, wb) = m.wait_pool("b", 2);
    // A typo in one pool, and another pool's new port: nothing may change.
    let broken = format!(
        "{}{}",
        pool("a", &a, "pm.max_children = 3\npm.max_requets = 10"),
        pool("b", &format!("127.0.0.1:{}", harness::free_port()), "")
    );
    m.reload(&broken);
    let log = m.log();
    assert!(log.contains("unknown entry 'pm.max_requets'"), "{log}");
    assert!(log.contains("pool.conf:8]"), "{log}");
    assert!(
        log.contains("reload failed: the pools keep running as they were"),
        "{log}"
    );
    assert_eq!(m.supervisor("a"), Some(sup_a));
    assert_eq!(m.supervisor("b"), Some(sup_b));
    assert_eq!(harness::live_children_of(sup_a), wa);
    assert_eq!(harness::live_children_of(sup_b), wb);
    for i in 0..5 {
        get(&a, &format!("/a{i}")).unwrap_or_else(|e| panic!("{e}\n{}", m.log()));
        get(&b, &format!("/b{i}")).unwrap_or_else(|e| panic!("{e}\n{}", m.log()));
    }
    // Mended: the next reload (SIGUSR2 this time, the same as SIGHUP) applies it.
    m.reload_with(
        &format!(
            "{}{}",
            pool("a", &a, "pm.max_children = 3"),
            pool("b", &b, "")
        ),
        libc::SIGUSR2,
    );
    assert!(m.log().contains("pool(s) ready (reloaded)"), "{}", m.log());
    assert!(m.log().contains("(SIGUSR2)"), "{}", m.log());
    m.wait_pool("a", 3);
    get(&a, "/mended").unwrap_or_else(|e| panic!("{e}\n{}", m.log()));
}

// ---------------------------------------------------------------------------------------------
// 5. The loopback default
// ---------------------------------------------------------------------------------------------

/// Whether a TCP connect to `addr` is refused (not merely slow).
fn refused(addr: &str) -> bool {
    let sa: std::net::SocketAddr = addr.parse().expect("address");
    match std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(5)) {
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

#[test]
fn loopback_default_and_every_address_when_asked() {
    let app = lf_webapp();
    let lib = harness::lib_dir().to_str().unwrap().to_string();
    // Flag mode without -a: 127.0.0.1 only, and the log says so.
    let flag_mode = |args: &[&str], tag: &str| -> (Child, PathBuf) {
        let dir = temp_dir(tag);
        let mut cmd = spawn_cmd();
        cmd.env("LD_LIBRARY_PATH", &lib)
            .args(args)
            .args(["-F", "1", "--"])
            .arg(&app)
            .stderr(File::create(dir.join("stderr")).expect("stderr"));
        (cmd.spawn().expect("fcgi-spawn"), dir)
    };
    let wait_log = |dir: &Path, what: &str| -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = fs::read_to_string(dir.join("stderr")).unwrap_or_default();
            if log.contains(what) {
                return log;
            }
            assert!(Instant::now() < deadline, "no '{what}' in:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let port = harness::free_port();
    let (mut child, dir) = flag_mode(&["-p", &port.to_string()], "loopback");
    let log = wait_log(&dir, "pool started");
    assert!(
        log.contains(&format!("listening on 127.0.0.1:{port} only")),
        "no line about the default address:\n{log}"
    );
    assert!(!log.contains("WARNING"), "{log}");
    let ok = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    while get(&ok, "/loopback").is_err() {
        assert!(Instant::now() < deadline, "no answer on {ok}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        refused(&format!("127.0.0.2:{port}")),
        "the default listens beyond 127.0.0.1"
    );
    let workers = harness::live_children_of(child.id());
    harness::stop_supervisor(&mut child, workers, &dir, "fcgi-spawn");

    // -a 0.0.0.0: every address, with a warning (no FCGI_WEB_SERVER_ADDRS).
    let port = harness::free_port();
    let (mut child, dir) = flag_mode(&["-a", "0.0.0.0", "-p", &port.to_string()], "everywhere");
    let log = wait_log(&dir, "pool started");
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARNING")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains(&format!("0.0.0.0:{port}")), "{log}");
    let other = format!("127.0.0.2:{port}");
    let deadline = Instant::now() + WAIT;
    while get(&other, "/everywhere").is_err() {
        assert!(Instant::now() < deadline, "no answer on {other}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let workers = harness::live_children_of(child.id());
    harness::stop_supervisor(&mut child, workers, &dir, "fcgi-spawn");

    // A pool file's bare port is every address, as in FPM; warned without
    // listen.allowed_clients, silent with it.
    let port = harness::free_port();
    let m = Master::start(
        temp_dir("bareport"),
        &pool("www", &port.to_string(), ""),
        &[],
    );
    let log = m.log();
    assert!(
        log.lines().any(|l| l.contains("WARNING")
            && l.contains(&format!("every address, port {port}"))
            && l.contains("listen.allowed_clients")),
        "{log}"
    );
    get(&format!("127.0.0.2:{port}"), "/bare").unwrap_or_else(|e| panic!("{e}\n{log}"));
    drop(m);
    let port = harness::free_port();
    let m = Master::start(
        temp_dir("allowed"),
        &pool(
            "www",
            &port.to_string(),
            "listen.allowed_clients = 127.0.0.1",
        ),
        &[],
    );
    assert!(!m.log().contains("WARNING"), "{}", m.log());
    // The list reaches the program as FCGI_WEB_SERVER_ADDRS: 127.0.0.1 is served.
    get(&format!("127.0.0.1:{port}"), "/allowed").unwrap_or_else(|e| panic!("{e}\n{}", m.log()));
    let sup = m.supervisor("www").expect("supervisor");
    for w in harness::live_children_of(sup) {
        assert!(
            environ(w).contains(&"FCGI_WEB_SERVER_ADDRS=127.0.0.1".to_string()),
            "{:?}",
            environ(w)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Debian's www.conf
// ---------------------------------------------------------------------------------------------

#[test]
fn fpm_www_conf_runs_fcgiwrap_unchanged() {
    harness::require(harness::FCGIWRAP, "fcgiwrap");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixture = fs::read_to_string(root.join("tests/tools/fixtures/php8.2-fpm-www.conf"))
        .expect("the www.conf fixture");
    let dir = temp_dir("www");
    let sock = dir.join("php8.2-fpm.sock");
    // The file as Debian ships it, but for the socket's place and the program to run.
    let text = format!(
        "{}\ncommand = {}\n",
        fixture.replace(
            "listen = /run/php/php8.2-fpm.sock",
            &format!("listen = {}", sock.display())
        ),
        harness::FCGIWRAP
    );
    assert!(
        fixture.contains("\nlisten = /run/php/php8.2-fpm.sock\n"),
        "the fixture's listen"
    );
    let conf = dir.join("www.conf");
    fs::write(&conf, &text).unwrap();
    let (code, err) = run(&["-t", "--config", conf.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("WARNING"), "{err}");
    let mut cmd = spawn_cmd();
    cmd.arg("--config")
        .arg(&conf)
        .stderr(File::create(dir.join("stderr")).unwrap());
    let mut m = Master {
        proc: SpawnProc::start_as_is(dir.clone(), cmd, WAIT).master(dir.join("stderr")),
        conf,
    };
    m.wait_for(
        |m| m.log().contains("pool(s) ready (started)"),
        "the www pool",
    );
    // pm = dynamic, pm.start_servers = 2.
    let sup = m.supervisor("www").expect("supervisor");
    let mut workers = BTreeSet::new();
    m.wait_for(
        |_| {
            workers = harness::live_children_of(sup);
            workers.len() == 2
                && workers.iter().all(|w| {
                    fs::read_link(format!("/proc/{w}/exe")).ok().as_deref()
                        == Some(Path::new(harness::FCGIWRAP))
                })
        },
        "two fcgiwrap workers",
    );
    let md = fs::metadata(&sock).expect("the socket");
    assert_eq!(
        md.permissions().mode() & 0o777,
        0o660,
        "listen.mode's default"
    );
    // SAFETY: getuid cannot fail.
    let is_root = unsafe { libc::getuid() } == 0;
    let www = users_id("/etc/passwd", "www-data");
    if let (true, Some(uid)) = (is_root, www) {
        assert_eq!(md.uid(), uid, "listen.owner = www-data");
        for &w in &workers {
            let st = fs::read_to_string(format!("/proc/{w}/status")).unwrap();
            let line = st.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
            assert!(
                line.split_whitespace()
                    .skip(1)
                    .all(|u| u == uid.to_string()),
                "worker {w} is not www-data: {line}"
            );
            let env = environ(w);
            assert!(env.contains(&"USER=www-data".to_string()), "{env:?}");
        }
    } else {
        assert!(
            m.log().contains("'user' directive is ignored"),
            "{}",
            m.log()
        );
    }
    let cgi = dir.join("hello.cgi");
    fs::write(
        &cgi,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello from %s\\n' \"$QUERY_STRING\"\n",
    )
    .unwrap();
    fs::set_permissions(&cgi, fs::Permissions::from_mode(0o755)).unwrap();
    for i in 0..4 {
        let req = request(&format!("/hello.cgi?n={i}"))
            .param("SCRIPT_FILENAME", cgi.to_str().unwrap())
            .param("DOCUMENT_ROOT", dir.to_str().unwrap());
        let out = send(sock.to_str().unwrap(), &req).unwrap_or_else(|e| panic!("{e}\n{}", m.log()));
        assert!(out.contains(&format!("hello from n={i}")), "{out}");
    }
    m.signal(libc::SIGQUIT);
    assert_eq!(m.wait_exit(), Some(0), "{}", m.log());
    assert!(!sock.exists());
}

// ---------------------------------------------------------------------------------------------
// 7. systemd notify
// ---------------------------------------------------------------------------------------------

/// A NOTIFY_SOCKET of the test's: the datagrams fcgi-spawn sends systemd (`got`: each one read).
struct FakeSystemd {
    sock: NotifySock,
    path: PathBuf,
}

impl std::ops::Deref for FakeSystemd {
    type Target = NotifySock;
    fn deref(&self) -> &NotifySock {
        &self.sock
    }
}

impl FakeSystemd {
    fn new(dir: &Path) -> FakeSystemd {
        let path = dir.join("notify.sock");
        FakeSystemd {
            sock: NotifySock::bind(&path, Duration::from_millis(100)),
            path,
        }
    }

    /// Waits for a datagram, not read before, with a line starting with each of `want`;
    /// returns it. Every datagram read is kept in `got`.
    #[track_caller]
    fn wait(&mut self, want: &[&str], m: &Master) -> String {
        let what = format!("{want:?}");
        self.wait_where(
            |d| want.iter().all(|w| d.lines().any(|l| l.starts_with(w))),
            &what,
            m,
        )
    }

    /// Waits for a datagram, not read before, for which `ok` holds.
    #[track_caller]
    fn wait_where(&mut self, ok: impl Fn(&str) -> bool, what: &str, m: &Master) -> String {
        let start = self.got.len();
        let i = self.sock.wait(start, ok, WAIT, |got| {
            format!("no datagram with {what}; got {got:?}\n{}", m.log())
        });
        self.got[i].clone()
    }
}

#[test]
fn systemd_notify_from_the_master() {
    let dir = temp_dir("notify");
    let mut sd = FakeSystemd::new(&dir);
    let a = format!("127.0.0.1:{}", harness::free_port());
    let b = format!("127.0.0.1:{}", harness::free_port());
    let text = format!("{}{}", pool("a", &a, ""), pool("b", &b, ""));
    let notify = sd.path.to_str().unwrap().to_string();
    let mut m = Master::start(
        dir,
        &text,
        &[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", "400000")],
    );
    // One READY=1, once every pool is ready, with a STATUS= naming them.
    let ready = sd.wait(&["READY=1", "STATUS="], &m);
    assert!(ready.contains("[a]") && ready.contains("[b]"), "{ready}");
    assert_eq!(
        sd.got.iter().filter(|d| d.contains("READY=1")).count(),
        1,
        "{:?}",
        sd.got
    );
    // The watchdog: pinged every WATCHDOG_USEC / 2.
    let pings = |sd: &FakeSystemd| sd.got.iter().filter(|d| d.contains("WATCHDOG=1")).count();
    let p0 = pings(&sd);
    sd.wait(&["WATCHDOG=1"], &m);
    sd.wait(&["WATCHDOG=1"], &m);
    assert!(pings(&sd) >= p0 + 2);
    // Programs never see a notify socket or the watchdog (the pool supervisors get the
    // master's relay: their environ in /proc is the one they were exec'd with, so the ignored
    // test below shows that through their READY=1).
    for name in ["a", "b"] {
        let sup = m.supervisor(name).expect("supervisor");
        for w in harness::live_children_of(sup) {
            let env = environ(w);
            assert!(
                !env.iter()
                    .any(|v| v.starts_with("NOTIFY_SOCKET=") || v.starts_with("WATCHDOG_")),
                "{env:?}"
            );
        }
    }
    // Reload: RELOADING=1 (with MONOTONIC_USEC), then READY=1 when the pools are ready.
    m.signal(libc::SIGHUP);
    sd.wait(&["RELOADING=1", "MONOTONIC_USEC="], &m);
    sd.wait(&["READY=1"], &m);
    // A broken file: RELOADING=1, then READY=1 with the failure in STATUS=.
    fs::write(&m.conf, "[a]\nnonsense = 1\n").unwrap();
    m.signal(libc::SIGHUP);
    let failed = sd.wait(&["READY=1", "STATUS=reload failed"], &m);
    assert!(failed.contains("nonsense"), "{failed}");
    // Stop: STOPPING=1.
    m.signal(libc::SIGTERM);
    sd.wait(&["STOPPING=1"], &m);
    assert_eq!(m.wait_exit(), Some(0), "{}", m.log());
}

/// The pool supervisors speak sd_notify to the master's private socket; the master relays.
#[test]
fn relays_the_pool_supervisors_notify() {
    let dir = temp_dir("relay");
    let mut sd = FakeSystemd::new(&dir);
    let a = format!("127.0.0.1:{}", harness::free_port());
    let notify = sd.path.to_str().unwrap().to_string();
    let mut m = Master::start(
        dir,
        &pool("a", &a, ""),
        &[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", "600000")],
    );
    // The pool supervisor's own READY=1 reached the master through the relay.
    m.wait_for(
        |m| m.log().contains("[pool a] ready (supervisor") && m.log().contains(": READY=1)"),
        "READY=1 from the pool supervisor",
    );
    // Its STATUS= text (the library's counts: "Ready: 2 workers, ...") shows in the
    // master's.
    sd.wait_where(
        |d| {
            d.lines()
                .any(|l| l.starts_with("STATUS=[a] Ready: 2 workers"))
        },
        "the pool supervisor's STATUS= in the master's",
        &m,
    );
    // A reload of the unchanged pool waits for its RELOADING=1 / READY=1.
    let sup = m.supervisor("a").expect("supervisor");
    m.signal(libc::SIGHUP);
    sd.wait(&["RELOADING=1"], &m);
    sd.wait(&["READY=1"], &m);
    assert_eq!(m.supervisor("a"), Some(sup));
    // Its watchdog pings keep the master's going; a stopped pool supervisor (SIGSTOP) stops
    // them: the master reports it and no longer pings systemd.
    sd.wait(&["WATCHDOG=1"], &m);
    // SAFETY: kill(2) to a process of the tree this test started.
    unsafe { libc::kill(sup as libc::pid_t, libc::SIGSTOP) };
    m.wait_for(
        |m| m.log().contains("stopped pinging"),
        "the hung pool supervisor reported",
    );
    // SAFETY: as above.
    unsafe { libc::kill(sup as libc::pid_t, libc::SIGCONT) };
    let n = sd.got.len();
    sd.wait(&["WATCHDOG=1"], &m);
    assert!(sd.got.len() > n);
}
