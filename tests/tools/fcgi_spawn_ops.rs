//! fcgi-spawn's operations side (issue 22, items 4, 5 and 8; docs/fcgi-spawn.md, docs/install.md):
//! the recycling spread (`max_requests_jitter`, `max_lifetime_ms` + its jitter), systemd's
//! notify protocol read from a NOTIFY_SOCKET of the test's own, log levels and the journal's
//! `<N>` prefixes, `log_level` in the supervisor and the exec'd programs, and
//! `catch_workers_output`. Real processes and sockets; every wait is a bounded poll for a log
//! line, a datagram or a set of pids.
//!
//! Run: `cargo test --release --test tools -- fcgi_spawn_ops`

use crate::harness;
use crate::spawn_common::{
    derefs_to_proc, environ, lf_webapp, spawn_command, temp_dir, NotifySock, SpawnProc,
};
use fcgi_runtime_tools::client::{Client, Request};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// `fcgi-spawn -a 127.0.0.1 -p PORT ARGS -- PROGRAM` with a clean environment, its stderr in
/// `dir/stderr`.
fn spawn_cmd(port: u16, args: &[&str], program: &[&str]) -> Command {
    let mut cmd = spawn_command(&[
        "FCGI_RUNTIME_LOG_LEVEL",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "JOURNAL_STREAM",
    ]);
    cmd.env("LD_LIBRARY_PATH", harness::lib_dir());
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .arg("--")
        .args(program);
    cmd
}

/// A running fcgi-spawn ([`SpawnProc`]) and where clients connect.
struct Spawn {
    proc: SpawnProc,
    addr: String,
}

derefs_to_proc!(Spawn);

impl Spawn {
    /// Starts `cmd` with stderr into `dir/stderr` and waits for `n` workers.
    fn start(dir: PathBuf, cmd: Command, port: u16, n: usize) -> Spawn {
        Spawn::started(SpawnProc::start(dir, cmd, WAIT), port, n)
    }

    fn start_with_stderr(dir: PathBuf, cmd: Command, port: u16, n: usize) -> Spawn {
        Spawn::started(SpawnProc::start_as_is(dir, cmd, WAIT), port, n)
    }

    /// Waits for `n` workers.
    fn started(proc: SpawnProc, port: u16, n: usize) -> Spawn {
        let mut s = Spawn {
            proc,
            addr: format!("127.0.0.1:{port}"),
        };
        s.wait_for(|s| s.workers().len() == n, &format!("{n} workers"));
        s
    }

    #[track_caller]
    fn wait_for(&mut self, cond: impl FnMut(&Spawn) -> bool, what: &str) {
        SpawnProc::wait_for(self, cond, what)
    }
}

fn get(addr: &str, uri: &str) -> Result<String, String> {
    let req = Request::new(1)
        .param("REQUEST_METHOD", "GET")
        .param("SCRIPT_NAME", uri)
        .param("REQUEST_URI", uri)
        .param("QUERY_STRING", "")
        .param("SERVER_PROTOCOL", "HTTP/1.1")
        .param("GATEWAY_INTERFACE", "CGI/1.1");
    let mut c = Client::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    c.set_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    let r = c.request(&req).map_err(|e| format!("request: {e}"))?;
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    if out.contains("REQUEST_URI=") {
        Ok(out)
    } else {
        Err(format!("unexpected answer to {uri}: {out:?}"))
    }
}

/// The numbers after `word` in the lines of `log` holding `marker`, by the pid after
/// "worker ".
fn per_pid(log: &str, marker: &str, word: &str) -> BTreeMap<u32, u64> {
    log.lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| {
            let pid = l.split("worker ").nth(1)?.split(' ').next()?.parse().ok()?;
            let n = l.split(word).nth(1)?;
            let n: String = n.chars().take_while(|c| c.is_ascii_digit()).collect();
            Some((pid, n.parse().ok()?))
        })
        .collect()
}

/// Continuous load on `threads` connections until `stop`; counts answers and failures.
fn load(
    addr: &str,
    threads: usize,
    stop: &Arc<AtomicBool>,
) -> (Arc<AtomicU64>, Vec<std::thread::JoinHandle<Vec<String>>>) {
    let ok = Arc::new(AtomicU64::new(0));
    let handles = (0..threads)
        .map(|t| {
            let (addr, stop, ok) = (addr.to_string(), stop.clone(), ok.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match get(&addr, &format!("/load/{t}/{i}")) {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.push(e),
                    }
                    i += 1;
                }
                failures
            })
        })
        .collect();
    (ok, handles)
}

// ---------------------------------------------------------------------------------------------
// Recycling spread
// ---------------------------------------------------------------------------------------------

/// A pool of 4 with max_requests 20 and jitter 20: each worker is drawn its own limit (the
/// supervisor's debug line at spawn), recycles after exactly that many requests, and the limits
/// differ.
#[test]
fn max_requests_jitter_spreads_recycling() {
    let app = lf_webapp();
    let port = harness::free_port();
    let cmd = spawn_cmd(
        port,
        &[
            "-F",
            "4",
            "--set",
            "max_requests=20",
            "--set",
            "max_requests_jitter=20",
            "--set",
            "log_level=debug",
        ],
        &[app.to_str().unwrap()],
    );
    let mut s = Spawn::start(temp_dir("jitter"), cmd, port, 4);
    let mut i = 0;
    s.wait_for(
        |s| {
            for _ in 0..10 {
                let r = get(&s.addr, &format!("/r{i}"));
                assert!(r.is_ok(), "request {i}: {r:?}\n{}", s.log());
                i += 1;
            }
            per_pid(&s.log(), "ended after", "ended after ").len() >= 8
        },
        "8 workers recycled",
    );
    let log = s.log();
    let drawn = per_pid(&log, ") started: max_requests", "max_requests ");
    let ended = per_pid(&log, "ended after", "ended after ");
    for (pid, served) in &ended {
        let own = drawn
            .get(pid)
            .unwrap_or_else(|| panic!("no limit drawn for {pid}:\n{log}"));
        assert!((20..=40).contains(own), "worker {pid}: limit {own}\n{log}");
        assert_eq!(
            served, own,
            "worker {pid} recycled off its own limit\n{log}"
        );
    }
    let distinct: BTreeSet<u64> = ended.values().copied().collect();
    assert!(
        distinct.len() >= 2,
        "every worker recycled at the same count {distinct:?}\n{log}"
    );
    assert!(log.contains("fcgi-runtime: DEBUG: pool: worker"), "{log}");
}

/// Lifetime 1 s + jitter 0..=2 s, 3 workers under continuous load: workers retire no earlier
/// than their own drawn lifetime, the drawn lifetimes differ, and no request fails.
#[test]
fn max_lifetime_recycles_at_spread_times_under_load() {
    let app = lf_webapp();
    let port = harness::free_port();
    let cmd = spawn_cmd(
        port,
        &[
            "-F",
            "3",
            "--set",
            "max_lifetime_ms=1000",
            "--set",
            "max_lifetime_jitter_ms=2000",
            "--set",
            "log_level=debug",
        ],
        &[app.to_str().unwrap()],
    );
    let mut s = Spawn::start(temp_dir("lifetime"), cmd, port, 3);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, handles) = load(&s.addr, 3, &stop);
    s.wait_for(
        |s| s.log().matches("reached its lifetime").count() >= 6,
        "6 workers past their lifetime",
    );
    let before = ok.load(Ordering::Relaxed);
    s.wait_for(
        |_| ok.load(Ordering::Relaxed) > before + 20,
        "load after the recycling",
    );
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("load thread"))
        .collect();
    let log = s.log();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}\n{log}",
        failures.len()
    );
    let drawn = per_pid(&log, ") started: max_requests", "lifetime ");
    let retired = per_pid(&log, "reached its lifetime", "lifetime (");
    assert!(retired.len() >= 6, "{log}");
    for (pid, age) in &retired {
        let own = drawn
            .get(pid)
            .unwrap_or_else(|| panic!("no lifetime for {pid}:\n{log}"));
        assert!(
            (1000..=3000).contains(own),
            "worker {pid}: lifetime {own}\n{log}"
        );
        assert!(
            age >= own,
            "worker {pid} retired at {age} ms, before {own} ms\n{log}"
        );
    }
    let distinct: BTreeSet<u64> = drawn.values().copied().collect();
    assert!(
        distinct.len() >= 2,
        "one lifetime for all: {distinct:?}\n{log}"
    );
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0), "{log}");
}

// ---------------------------------------------------------------------------------------------
// systemd notify
// ---------------------------------------------------------------------------------------------

/// Datagrams from a NOTIFY_SOCKET of the test's own.
struct NotifyReader {
    sock: NotifySock,
}

impl NotifyReader {
    fn bind(path: &Path) -> NotifyReader {
        NotifyReader {
            sock: NotifySock::bind(path, Duration::from_millis(200)),
        }
    }

    /// Reads until a message satisfying `want` arrives after the `from`-th; its index.
    #[track_caller]
    fn wait(&mut self, from: usize, want: impl Fn(&str) -> bool, what: &str) -> usize {
        self.sock.wait(from, want, WAIT, |got| {
            format!("no {what} from the supervisor; got {got:?}")
        })
    }
}

#[test]
fn systemd_notify_ready_status_reload_stop_and_watchdog() {
    let app = lf_webapp();
    let dir = temp_dir("notify");
    let sock_path = dir.join("notify.sock");
    let mut rd = NotifyReader::bind(&sock_path);
    let port = harness::free_port();
    let mut cmd = spawn_cmd(port, &["-F", "2"], &[app.to_str().unwrap()]);
    cmd.env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "300000");
    let mut s = Spawn::start(dir, cmd, port, 2);
    let ready = rd.wait(0, |m| m == "READY=1", "READY=1");
    let w = rd.wait(0, |m| m == "WATCHDOG=1", "WATCHDOG=1");
    rd.wait(w + 1, |m| m == "WATCHDOG=1", "a second WATCHDOG=1");
    get(&s.addr, "/one").expect("a request");
    rd.wait(
        0,
        |m| {
            m.starts_with("STATUS=Ready: 2 workers, ")
                && m.ends_with(" requests")
                && !m.ends_with(" 0 requests")
        },
        "STATUS= with the counts after a request",
    );
    // The workers' programs get none of systemd's variables.
    s.wait_for(
        |s| {
            s.workers().iter().all(|&p| {
                environ(p)
                    .iter()
                    .any(|v| v.starts_with("FCGI_RUNTIME_SCOREBOARD="))
            })
        },
        "workers exec'd",
    );
    for p in s.workers() {
        let env = environ(p);
        assert!(
            !env.iter()
                .any(|v| v.starts_with("NOTIFY_SOCKET=") || v.starts_with("WATCHDOG_")),
            "worker {p} environment: {env:?}"
        );
    }
    s.signal(libc::SIGHUP);
    let reloading = rd.wait(
        ready + 1,
        |m| m.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "RELOADING=1",
    );
    rd.wait(
        reloading + 1,
        |m| m == "READY=1",
        "READY=1 after the reload",
    );
    s.signal(libc::SIGTERM);
    rd.wait(reloading + 1, |m| m == "STOPPING=1", "STOPPING=1");
    assert_eq!(s.wait_exit(), Some(0), "{}", s.log());
}

/// NOTIFY_SOCKET may name an abstract socket (`@name`), as systemd's does in containers.
#[test]
fn systemd_notify_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let app = lf_webapp();
    let name = format!(
        "fcgi-spawn-ops-{}-{}",
        std::process::id(),
        harness::unique()
    );
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
    let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract");
    let mut rd = NotifyReader {
        sock: NotifySock::on(sock, Duration::from_millis(200)),
    };
    let port = harness::free_port();
    let mut cmd = spawn_cmd(port, &["-F", "1"], &[app.to_str().unwrap()]);
    cmd.env("NOTIFY_SOCKET", format!("@{name}"));
    let mut s = Spawn::start(temp_dir("notify-abstract"), cmd, port, 1);
    rd.wait(0, |m| m == "READY=1", "READY=1");
    s.signal(libc::SIGQUIT);
    rd.wait(0, |m| m == "STOPPING=1", "STOPPING=1");
    assert_eq!(s.wait_exit(), Some(0), "{}", s.log());
}

// ---------------------------------------------------------------------------------------------
// Log levels and the journal
// ---------------------------------------------------------------------------------------------

/// With JOURNAL_STREAM naming the supervisor's stderr, lines carry `<N>` prefixes (notice 5,
/// warning 4); without it, level names.
#[test]
fn journal_stream_gets_priority_prefixes() {
    let app = lf_webapp();
    for journal in [true, false] {
        let dir = temp_dir("journal");
        let err = File::create(dir.join("stderr")).expect("stderr file");
        let md = err.metadata().expect("fstat");
        let port = harness::free_port();
        let mut cmd = spawn_cmd(port, &["-F", "2"], &[app.to_str().unwrap()]);
        if journal {
            cmd.env("JOURNAL_STREAM", format!("{}:{}", md.dev(), md.ino()));
        } else {
            // A stream that is not this stderr: level names.
            cmd.env("JOURNAL_STREAM", format!("{}:{}", md.dev(), md.ino() + 1));
        }
        cmd.stderr(err);
        let mut s = Spawn::start_with_stderr(dir, cmd, port, 2);
        let victim = *s.workers().iter().next().expect("a worker");
        // SAFETY: kill(2) to a worker of the fcgi-spawn this test started.
        unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
        let (notice, warning) = if journal {
            (
                "<5>fcgi-runtime: pool started",
                format!("<4>fcgi-runtime: pool: worker {victim} "),
            )
        } else {
            (
                "fcgi-runtime: NOTICE: pool started",
                format!("fcgi-runtime: WARNING: pool: worker {victim} "),
            )
        };
        s.wait_for(
            |s| {
                s.log()
                    .lines()
                    .any(|l| l.starts_with(&warning) && l.contains("killed by signal 9"))
            },
            "the warning for the killed worker",
        );
        let log = s.log();
        assert!(
            log.lines()
                .any(|l| l == notice || l.starts_with(&format!("{notice}:"))),
            "{log}"
        );
        if journal {
            for l in log.lines().filter(|l| l.contains("fcgi-runtime")) {
                assert!(l.starts_with('<'), "a line without a priority: {l}\n{log}");
            }
        } else {
            assert!(!log.contains("<5>"), "{log}");
        }
        s.signal(libc::SIGTERM);
        assert_eq!(s.wait_exit(), Some(0), "{log}");
    }
}

/// `log_level=warning`: the supervisor drops notices but logs warnings; the exec'd programs
/// get FCGI_RUNTIME_LOG_LEVEL, which their runtime reads.
#[test]
fn log_level_applies_to_supervisor_and_workers() {
    let app = lf_webapp();
    let port = harness::free_port();
    let cmd = spawn_cmd(
        port,
        &["-F", "2", "--set", "log_level=warning"],
        &[app.to_str().unwrap()],
    );
    let mut s = Spawn::start(temp_dir("level"), cmd, port, 2);
    s.wait_for(
        |s| {
            s.workers().iter().all(|&p| {
                environ(p)
                    .iter()
                    .any(|v| v == "FCGI_RUNTIME_LOG_LEVEL=warning")
            })
        },
        "workers with FCGI_RUNTIME_LOG_LEVEL=warning",
    );
    let victim = *s.workers().iter().next().expect("a worker");
    // SAFETY: kill(2) to a worker of the fcgi-spawn this test started.
    unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
    s.wait_for(
        |s| {
            s.log()
                .contains(&format!("fcgi-runtime: WARNING: pool: worker {victim} "))
        },
        "the warning for the killed worker",
    );
    get(&s.addr, "/x").expect("a request");
    let log = s.log();
    assert!(
        !log.contains("NOTICE"),
        "a notice past log_level=warning:\n{log}"
    );
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0), "{log}");
    assert!(!s.log().contains("NOTICE"), "{}", s.log());
}

// ---------------------------------------------------------------------------------------------
// catch_workers_output
// ---------------------------------------------------------------------------------------------

/// A worker (sh, which then execs lf_webapp) writes interleaved stdout and stderr lines, one
/// of 3,000 bytes (past FPM's 1,024), one of 70,000 (split only at 64 KiB), and a partial last
/// line, logged when the worker exits. Decorated and raw.
#[test]
fn catch_workers_output_lines_decorated_and_raw() {
    let app = lf_webapp();
    let script = r#"long=$(head -c 3000 /dev/zero | tr '\0' a)
printf 'out-1 %s\n' "$long"
printf 'err-1\n' >&2
printf 'out-2\n'
huge=$(head -c 70000 /dev/zero | tr '\0' b)
printf 'err-2 %s\n' "$huge" >&2
printf 'partial-err' >&2
exec "$0""#;
    let a3000 = "a".repeat(3000);
    for decorate in [true, false] {
        let port = harness::free_port();
        let cmd = spawn_cmd(
            port,
            &[
                "-F",
                "1",
                "--set",
                "catch_workers_output=yes",
                "--set",
                &format!(
                    "decorate_workers_output={}",
                    if decorate { "yes" } else { "no" }
                ),
            ],
            &["sh", "-c", script, app.to_str().unwrap()],
        );
        let mut s = Spawn::start(temp_dir("capture"), cmd, port, 1);
        let pid = *s.workers().iter().next().expect("the worker");
        let (out, err) = if decorate {
            (
                format!("fcgi-runtime: WARNING: [pool www] child {pid} said into stdout: \""),
                format!("fcgi-runtime: WARNING: [pool www] child {pid} said into stderr: \""),
            )
        } else {
            (String::new(), String::new())
        };
        let q = if decorate { "\"" } else { "" };
        let want_out = [format!("{out}out-1 {a3000}{q}"), format!("{out}out-2{q}")];
        let piece1 = format!("err-2 {}", "b".repeat(64 * 1024 - 6));
        let piece2 = "b".repeat(70000 - (64 * 1024 - 6));
        let want_err = [
            format!("{err}err-1{q}"),
            format!("{err}{piece1}{q}"),
            format!("{err}{piece2}{q}"),
        ];
        s.wait_for(
            |s| {
                let log = s.log();
                want_out
                    .iter()
                    .chain(&want_err)
                    .all(|w| log.lines().any(|l| l == w))
            },
            "the worker's lines in the log",
        );
        get(&s.addr, "/served").expect("the exec'd program serves");
        s.signal(libc::SIGTERM);
        assert_eq!(s.wait_exit(), Some(0), "{}", s.log());
        let log = s.log();
        let lines: Vec<&str> = log.lines().collect();
        let at = |w: &str| lines.iter().position(|l| *l == w).expect("seen above");
        assert!(at(&want_out[0]) < at(&want_out[1]), "stdout out of order");
        assert!(
            at(&want_err[0]) < at(&want_err[1]) && at(&want_err[1]) < at(&want_err[2]),
            "stderr out of order"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{err}partial-err"))),
            "the partial last line was not logged at exit:\n{}",
            &log[log.len().saturating_sub(2000)..]
        );
    }
}
