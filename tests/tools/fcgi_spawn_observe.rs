//! Health, drain and observation of a pool run by `fcgi-spawn` (issue 22: ping, drain delay,
//! `status_listen`, the access log, metrics). The pool's settings are given with
//! `--set NAME=VALUE`; the program is tests/harness/web/lf_webapp.c (an unmodified libfcgi
//! program) on the project's libfcgi.so.0, so its runtime attaches to the scoreboard and
//! reads the settings from there.
//!
//! Real processes and sockets; every wait is a bounded poll for an observable state (a log
//! line, a response), never a sleep that decides a verdict.

use crate::harness;
use crate::spawn_common::{
    derefs_to_proc, get_request, json_num, lf_webapp, send_request, spawn_command, SpawnProc,
};
use fcgi_runtime_tools::client::{Client, Request};
use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Long enough for a loaded CI machine; a hung test fails instead of hanging.
const WAIT: Duration = Duration::from_secs(30);

/// A running `fcgi-spawn -a 127.0.0.1 -p PORT ARGS -- lf_webapp`, its stderr in a file;
/// stopped with its workers on drop ([`SpawnProc`]).
struct Pool {
    proc: SpawnProc,
    addr: String,
}

derefs_to_proc!(Pool);

impl Pool {
    fn start(tag: &str, args: &[&str]) -> Pool {
        let dir = std::env::temp_dir().join(format!(
            "fcgi-observe-{tag}-{}-{}",
            std::process::id(),
            harness::unique()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        Pool::start_in(dir, args)
    }

    fn start_in(dir: PathBuf, args: &[&str]) -> Pool {
        Pool::start_env(dir, args, &[], &[])
    }

    /// With `env` added to fcgi-spawn's (and the program's) environment and `app_args` after
    /// the program.
    fn start_env(dir: PathBuf, args: &[&str], env: &[(&str, &str)], app_args: &[&str]) -> Pool {
        let app = lf_webapp();
        let port = harness::free_port();
        let mut cmd = spawn_command(&[]);
        cmd.env("LD_LIBRARY_PATH", harness::lib_dir());
        cmd.envs(env.iter().copied());
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .arg("--")
            .arg(&app)
            .args(app_args);
        let mut p = Pool {
            proc: SpawnProc::start(dir, cmd, WAIT),
            addr: format!("127.0.0.1:{port}"),
        };
        p.wait_for(|p| p.log().contains("pool started"), "fcgi-spawn to start");
        p
    }

    /// Polls `cond` until it holds; fails after [`WAIT`] or if fcgi-spawn exited.
    #[track_caller]
    fn wait_for(&mut self, cond: impl FnMut(&Pool) -> bool, what: &str) {
        SpawnProc::wait_for(self, cond, what)
    }

    /// Waits until `n` workers run and each answers (a request per worker would not prove
    /// it: polls until `n` distinct worker pids are children and the pool answers).
    #[track_caller]
    fn wait_workers(&mut self, n: usize) {
        self.wait_for(
            |p| {
                harness::live_children_of(p.child.id()).len() == n
                    && send(&p.addr, "/warm").is_ok_and(|r| r.contains("REQUEST_URI="))
            },
            &format!("{n} workers"),
        );
    }

    /// Holds one request in a worker at the gate `name` (the worker logs "waiting at").
    #[track_caller]
    fn hold(&mut self, name: &str) -> (PathBuf, std::thread::JoinHandle<Result<String, String>>) {
        let gate = self.path(name);
        let before = self.log().matches("waiting at").count();
        let addr = self.addr.clone();
        let uri = format!("/held?hold={}", gate.display());
        let h = std::thread::spawn(move || send(&addr, &uri));
        self.wait_for(
            |p| p.log().matches("waiting at").count() > before,
            "a request held in a worker",
        );
        (gate, h)
    }
}

/// A GET of `uri` (path?query) with a web server's CGI params; the response's stdout.
fn send(addr: &str, uri: &str) -> Result<String, String> {
    send_req(addr, &get_request(uri).param("SERVER_NAME", addr))
}

/// The status line's code of a CGI response (200 without a Status header).
fn code(resp: &str) -> u16 {
    let head = resp.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .find_map(|l| l.strip_prefix("Status: "))
        .and_then(|v| v.get(..3)?.parse().ok())
        .unwrap_or(200)
}

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or(resp, |(_, b)| b)
}

#[track_caller]
fn ok(addr: &str, uri: &str) -> String {
    send(addr, uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Ping and drain
// ---------------------------------------------------------------------------------------------

/// `ping_path` answers `ping_response` (default `pong`) from the worker's runtime; the
/// application never sees it.
#[test]
fn fcgi_spawn_observe_ping_default_and_custom() {
    let mut p = Pool::start("ping", &["-F", "1", "--set", "ping_path=/ping"]);
    p.wait_workers(1);
    let r = ok(&p.addr, "/ping");
    assert_eq!((code(&r), body(&r)), (200, "pong"), "{r}");
    assert!(r.contains("Content-Type: text/plain"), "{r}");
    // Another path still reaches the application.
    assert!(ok(&p.addr, "/pingx").contains("REQUEST_URI=/pingx"));
    drop(p);

    let mut p = Pool::start(
        "ping-custom",
        &[
            "-F",
            "1",
            "--set",
            "ping_path=/health",
            "--set",
            "ping_response=ready to serve",
        ],
    );
    p.wait_workers(1);
    let r = ok(&p.addr, "/health?x=1");
    assert_eq!((code(&r), body(&r)), (200, "ready to serve"), "{r}");
    drop(p);

    // A worker's own recycling (max_requests) is not the pool draining: the request that
    // reaches the limit is a ping answered 200, each time by a new worker.
    let mut p = Pool::start(
        "ping-recycle",
        &["-F", "1", "--max-requests", "1", "--set", "ping_path=/ping"],
    );
    p.wait_for(
        |p| harness::live_children_of(p.child.id()).len() == 1,
        "the worker",
    );
    for _ in 0..3 {
        let r = ok(&p.addr, "/ping");
        assert_eq!((code(&r), body(&r)), (200, "pong"), "{r}");
    }
    p.wait_for(
        |p| p.log().matches("ended after 1 requests").count() >= 2,
        "the recycled workers",
    );
}

/// SIGQUIT with `drain_delay_ms`: ping answers 503 at once while ordinary requests still
/// succeed; a second SIGQUIT ends the delay and the pool stops gracefully.
#[test]
fn fcgi_spawn_observe_drain_delay_ping_503_while_serving() {
    let mut p = Pool::start(
        "drain",
        &[
            "-F",
            "2",
            "--set",
            "ping_path=/ping",
            "--set",
            "drain_delay_ms=600000",
        ],
    );
    p.wait_workers(2);
    assert_eq!(code(&ok(&p.addr, "/ping")), 200);
    p.signal(libc::SIGQUIT);
    p.wait_for(
        |p| p.log().contains("graceful stop in 600000 ms"),
        "the drain delay",
    );
    let r = ok(&p.addr, "/ping");
    assert_eq!(code(&r), 503, "{r}");
    for i in 0..10 {
        let r = ok(&p.addr, &format!("/during-delay-{i}"));
        assert!(r.contains(&format!("REQUEST_URI=/during-delay-{i}")), "{r}");
    }
    assert!(!p.log().contains("pool: graceful stop\n"), "{}", p.log());
    // A request held across the end of the delay finishes (the drain waits for it).
    let (gate, held) = p.hold("gate");
    p.signal(libc::SIGQUIT);
    p.wait_for(
        |p| p.log().contains("pool: graceful stop\n"),
        "the graceful stop",
    );
    File::create(&gate).expect("open the gate");
    let r = held.join().expect("client").expect("the held request");
    assert!(r.contains("REQUEST_URI=/held"), "{r}");
    assert_eq!(p.wait_exit(), Some(0), "{}", p.log());
}

// ---------------------------------------------------------------------------------------------
// status_listen
// ---------------------------------------------------------------------------------------------

/// The supervisor answers status (every format) and ping on `status_listen` while each of the
/// pool's two workers holds a request; other paths get 404.
#[test]
fn fcgi_spawn_observe_status_listen_with_every_worker_busy() {
    let sport = harness::free_port();
    let saddr = format!("127.0.0.1:{sport}");
    let mut p = Pool::start(
        "status-listen",
        &[
            "-F",
            "2",
            "--name",
            "busy",
            "--status-path",
            "/status",
            "--set",
            "ping_path=/ping",
            "--set",
            &format!("status_listen={saddr}"),
        ],
    );
    p.wait_workers(2);
    let (g1, h1) = p.hold("gate1");
    let (g2, h2) = p.hold("gate2");

    let j = ok(&saddr, "/status?json&full");
    assert!(j.contains("application/json"), "{j}");
    let json = body(&j);
    assert!(json.contains("\"pool\":\"busy\""), "{json}");
    assert_eq!(json_num(json, "active processes"), 2, "{json}");
    assert_eq!(json_num(json, "idle processes"), 0, "{json}");
    assert_eq!(json.matches("\"state\":\"Running\"").count(), 2, "{json}");
    // Every key of FPM's JSON (sapi/fpm/fpm/fpm_status.c), so FPM dashboards read it.
    for key in [
        "pool",
        "process manager",
        "start time",
        "start since",
        "accepted conn",
        "listen queue",
        "max listen queue",
        "listen queue len",
        "idle processes",
        "active processes",
        "total processes",
        "max active processes",
        "max children reached",
        "slow requests",
        "processes",
        "pid",
        "state",
        "requests",
        "request duration",
        "request method",
        "request uri",
        "content length",
        "user",
        "script",
        "last request cpu",
        "last request memory",
    ] {
        assert!(
            json.contains(&format!("\"{key}\":")),
            "FPM's key {key} missing: {json}"
        );
    }
    let text = ok(&saddr, "/status");
    assert!(
        text.lines()
            .any(|l| l.starts_with("active processes:") && l.ends_with(" 2")),
        "{text}"
    );
    let om = ok(&saddr, "/status?openmetrics");
    assert!(
        om.contains("fcgi_pool_active_processes{pool=\"busy\"} 2"),
        "{om}"
    );
    let r = ok(&saddr, "/ping");
    assert_eq!((code(&r), body(&r)), (200, "pong"), "{r}");
    let r = ok(&saddr, "/elsewhere");
    assert_eq!(code(&r), 404, "{r}");
    // Several clients at once, each on its own connection.
    let many: Vec<_> = (0..6)
        .map(|_| {
            let a = saddr.clone();
            std::thread::spawn(move || send(&a, "/ping"))
        })
        .collect();
    for h in many {
        let r = h.join().expect("client").expect("ping");
        assert_eq!(code(&r), 200, "{r}");
    }

    File::create(&g1).expect("gate 1");
    File::create(&g2).expect("gate 2");
    for h in [h1, h2] {
        let r = h.join().expect("client").expect("held request");
        assert!(r.contains("REQUEST_URI=/held"), "{r}");
    }
    // A graceful stop: the supervisor's ping answers 503 too.
    let (g3, h3) = p.hold("gate3");
    p.signal(libc::SIGQUIT);
    p.wait_for(
        |p| p.log().contains("pool: graceful stop"),
        "the graceful stop",
    );
    let r = ok(&saddr, "/ping");
    assert_eq!(code(&r), 503, "{r}");
    File::create(&g3).expect("gate 3");
    h3.join().expect("client").expect("held request");
    assert_eq!(p.wait_exit(), Some(0), "{}", p.log());
}

// ---------------------------------------------------------------------------------------------
// The access log
// ---------------------------------------------------------------------------------------------

/// Sends `req`; the response's stdout.
fn send_req(addr: &str, req: &Request) -> Result<String, String> {
    send_request(addr, req, WAIT)
}

fn lines_of(p: &std::path::Path) -> Vec<String> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// FPM's letters, field by field, from a request with known params and a response with a
/// known status and header; then rotation: rename, SIGUSR1, the new file gets the lines.
#[test]
fn fcgi_spawn_observe_access_log_fields_and_reopen() {
    let dir = std::env::temp_dir().join(format!(
        "fcgi-observe-access-{}-{}",
        std::process::id(),
        harness::unique()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    let log = dir.join("access.log");
    let format = "%R|%m|%r|%Q%q|%s|%{X-Big}o|%{mili}d|%{micro}d|%n|%p|%P|%{HTTP_X_TEST}e|%f|%l\
                  |%u|%t|%{%s}T|%{kilo}M|%C|%%";
    let mut p = Pool::start_in(
        dir,
        &[
            "-F",
            "2",
            "--name",
            "logged",
            "--set",
            &format!("access_log={}", log.display()),
            "--set",
            &format!("access_format={format}"),
        ],
    );
    p.wait_workers(2);
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let uri = "/app.php?status=404&hdr=3&x=1";
    let req = Request::new(1)
        .param("REQUEST_METHOD", "POST")
        .param("SCRIPT_NAME", "/app.php")
        .param("SCRIPT_FILENAME", "/srv/www/app.php")
        .param("REQUEST_URI", uri)
        .param("QUERY_STRING", "status=404&hdr=3&x=1")
        .param("CONTENT_LENGTH", "5")
        .param("REMOTE_ADDR", "10.1.2.3")
        .param("REMOTE_USER", "alice")
        .param("HTTP_X_TEST", "t1")
        .stdin(b"hello".to_vec());
    let r = send_req(&p.addr, &req).expect("the request");
    assert_eq!(code(&r), 404, "{r}");
    let app_line = || {
        lines_of(&log)
            .into_iter()
            .find(|l| l.contains("|/app.php|"))
    };
    p.wait_for(|_| app_line().is_some(), "the access log line");
    let t1 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let line = app_line().unwrap();
    let f: Vec<&str> = line.split('|').collect();
    assert_eq!(f.len(), 20, "{line}");
    assert_eq!(
        f[0..6],
        [
            "10.1.2.3",
            "POST",
            "/app.php",
            "?status=404&hdr=3&x=1",
            "404",
            "hhh"
        ],
        "{line}"
    );
    let micro: u64 = f[7]
        .parse()
        .unwrap_or_else(|_| panic!("%{{micro}}d in {line}"));
    assert_eq!(f[6], format!("{:.3}", micro as f64 / 1000.0), "{line}");
    assert_eq!(f[8], "logged", "{line}");
    let worker: u32 = f[9].parse().expect("%p");
    assert!(
        harness::children_of(p.child.id()).contains(&worker),
        "{line}"
    );
    assert_eq!(f[10], p.child.id().to_string(), "%P: {line}");
    assert_eq!(
        f[11..15],
        ["t1", "/srv/www/app.php", "5", "alice"],
        "{line}"
    );
    // %t: 07/Dec/2026:20:40:01 +0000
    let t = f[15];
    assert!(
        t.len() == 26
            && &t[2..3] == "/"
            && &t[6..7] == "/"
            && &t[11..12] == ":"
            && &t[20..21] == " ",
        "%t: {line}"
    );
    let end: u64 = f[16].parse().expect("%{%s}T");
    assert!(
        (t0..=t1).contains(&end),
        "%{{%s}}T {end} not in {t0}..={t1}: {line}"
    );
    assert!(f[17].parse::<u64>().expect("%{kilo}M") > 0, "{line}");
    f[18].parse::<f64>().expect("%C");
    assert_eq!(f[19], "%", "{line}");

    // A request with no query, no user: %Q%q and %u are empty, %s is 200, %{X-Big}o is -.
    ok(&p.addr, "/plain");
    p.wait_for(
        |_| lines_of(&log).iter().any(|l| l.contains("|/plain|")),
        "the second line",
    );
    let l2 = lines_of(&log)
        .into_iter()
        .find(|l| l.contains("|/plain|"))
        .unwrap();
    let f2: Vec<&str> = l2.split('|').collect();
    assert_eq!(f2[2..6], ["/plain", "", "200", "-"], "{l2}");
    assert_eq!(f2[14], "", "%u: {l2}");

    // Rotation.
    let rotated = p.path("access.log.1");
    fs::rename(&log, &rotated).expect("rotate");
    let n = p.log().matches("reopening log files").count();
    p.signal(libc::SIGUSR1);
    p.wait_for(
        |p| p.log().matches("reopening log files").count() > n,
        "the reopen",
    );
    let mut sent = 0;
    p.wait_for(
        |p| {
            sent += 1;
            ok(&p.addr, &format!("/after-{sent}"));
            lines_of(&log).iter().any(|l| l.contains("|/after-"))
        },
        "lines in the new file",
    );
    // Each request's line is written once it has been answered: wait for all of them.
    let after = |p: &std::path::Path| {
        lines_of(p)
            .iter()
            .filter(|l| l.contains("|/after-"))
            .count()
    };
    p.wait_for(
        |_| after(&log) + after(&rotated) == sent,
        "a line for each request after the rotation",
    );
    let new = lines_of(&log);
    let old = lines_of(&rotated);
    assert!(new.iter().all(|l| l.contains("|/after-")), "{new:?}");
    assert!(old.iter().any(|l| l.contains("|/app.php|")), "{old:?}");
    assert!(old.iter().any(|l| l.contains("|/plain|")), "{old:?}");
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// Parses a metrics text with Debian's python3-prometheus-client: the strict OpenMetrics
/// parser (`om`) or the Prometheus text parser. Returns one `name{k=v,...} value` per sample,
/// labels sorted, or the parser's error.
fn parse_metrics(text: &str, om: bool) -> Result<Vec<(String, f64)>, String> {
    harness::require(
        "/usr/lib/python3/dist-packages/prometheus_client/openmetrics/parser.py",
        "python3-prometheus-client",
    );
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
from prometheus_client.parser import text_string_to_metric_families as prom
parse = om if sys.argv[1] == "om" else prom
text = sys.stdin.read()
for fam in parse(text):
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value!r}")
"#;
    use std::io::Write;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script, if om { "om" } else { "prom" }])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .expect("write to the parser");
    let out = child.wait_with_output().expect("parser output");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

/// The value of the sample named exactly `key` (`name{labels}`).
#[track_caller]
fn sample(samples: &[(String, f64)], key: &str) -> f64 {
    samples
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no sample {key} in {samples:#?}"))
}

/// `?openmetrics` passes the strict OpenMetrics parser, `?prometheus` the Prometheus text
/// parser; the counters, the histogram and the gauges hold plausible values: connections
/// counted apart from requests (several requests on one kept connection), slow requests in
/// the histogram's upper buckets, max_children, open connections while a request is held,
/// per-worker series labelled by slot (no pid).
#[test]
fn fcgi_spawn_observe_openmetrics_strict_and_prometheus() {
    let mut p = Pool::start(
        "metrics",
        &["-F", "2", "--name", "m", "--status-path", "/status"],
    );
    p.wait_workers(2);
    // Five requests on one kept connection, three slow ones (30 ms) on their own.
    let mut c = Client::connect(&p.addr).expect("connect");
    c.set_timeout(Some(WAIT)).unwrap();
    for i in 0..5 {
        let req = Request::new(1)
            .keep_conn(true)
            .param("REQUEST_METHOD", "GET")
            .param("SCRIPT_NAME", format!("/kept-{i}"))
            .param("QUERY_STRING", "");
        let r = c.request(&req).expect("a request on the kept connection");
        assert!(String::from_utf8_lossy(&r.stdout).contains("/kept-"));
    }
    drop(c);
    for _ in 0..3 {
        ok(&p.addr, "/slow?sleep_ms=30");
    }
    let (gate, held) = p.hold("gate");

    let resp = ok(&p.addr, "/status?openmetrics&full");
    assert!(
        resp.contains("Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{resp}"
    );
    let text = body(&resp);
    assert!(text.ends_with("# EOF\n"), "{text}");
    let om = parse_metrics(text, true).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let requests = sample(&om, "fcgi_pool_requests_total{pool=m}");
    let conns = sample(&om, "fcgi_pool_accepted_connections_total{pool=m}");
    // 5 kept + 3 slow + 1 held + this one, and the warm-up requests on their own connections.
    assert!(requests >= 10.0, "{text}");
    assert!(
        conns >= 6.0 && conns <= requests - 4.0,
        "connections {conns} vs requests {requests}: {text}"
    );
    assert_eq!(sample(&om, "fcgi_pool_max_children{pool=m}"), 2.0);
    assert_eq!(sample(&om, "fcgi_pool_up{pool=m}"), 1.0);
    assert_eq!(sample(&om, "fcgi_pool_draining{pool=m}"), 0.0);
    // The held request's connection and this one.
    assert!(
        sample(&om, "fcgi_pool_open_connections{pool=m}") >= 2.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &om,
            "fcgi_pool_refused_requests_total{pool=m,reason=overloaded}"
        ),
        0.0
    );
    let count = sample(&om, "fcgi_pool_request_duration_seconds_count{pool=m}");
    let fast = sample(
        &om,
        "fcgi_pool_request_duration_seconds_bucket{le=0.025,pool=m}",
    );
    let inf = sample(
        &om,
        "fcgi_pool_request_duration_seconds_bucket{le=+Inf,pool=m}",
    );
    let sum = sample(&om, "fcgi_pool_request_duration_seconds_sum{pool=m}");
    assert_eq!(count, inf);
    assert!(count >= 8.0, "{text}");
    assert!(
        inf - fast >= 3.0,
        "the slow requests are not above 25 ms: {text}"
    );
    assert!(sum >= 0.09, "{text}");
    // Per-worker series: keyed by slot, never by pid or state.
    let per_worker: Vec<&(String, f64)> = om
        .iter()
        .filter(|(k, _)| k.starts_with("fcgi_pool_process_requests_total{"))
        .collect();
    assert_eq!(per_worker.len(), 2, "{text}");
    assert!(
        per_worker.iter().all(|(k, _)| k.contains("slot=")),
        "{text}"
    );
    assert!(!text.contains("pid=") && !text.contains("state="), "{text}");

    let resp = ok(&p.addr, "/status?prometheus");
    assert!(
        resp.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{resp}"
    );
    let text = body(&resp);
    assert!(!text.contains("# EOF"), "{text}");
    let prom = parse_metrics(text, false).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(sample(&prom, "fcgi_pool_requests_total{pool=m}") >= requests);
    assert!(sample(&prom, "fcgi_pool_request_duration_seconds_count{pool=m}") >= count);

    File::create(&gate).expect("open the gate");
    held.join().expect("client").expect("held request");
}

/// A request refused with FCGI_OVERLOADED (one worker of two threads, `FCGI_RUNTIME_MAX_REQS=1`,
/// a request held: the second thread accepts, the runtime refuses) is counted under
/// `reason="overloaded"`.
#[test]
fn fcgi_spawn_observe_overloaded_refusals_are_counted() {
    let dir = std::env::temp_dir().join(format!(
        "fcgi-observe-overloaded-{}-{}",
        std::process::id(),
        harness::unique()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    let sport = harness::free_port();
    let saddr = format!("127.0.0.1:{sport}");
    let mut p = Pool::start_env(
        dir,
        &[
            "-F",
            "1",
            "--name",
            "o",
            "--set",
            &format!("status_listen={saddr}"),
        ],
        &[("FCGI_RUNTIME_MAX_REQS", "1")],
        &["-t", "2"],
    );
    p.wait_workers(1);
    let (gate, held) = p.hold("gate");
    let mut c = Client::connect(&p.addr).expect("connect");
    c.set_timeout(Some(WAIT)).unwrap();
    let req = Request::new(1)
        .param("REQUEST_METHOD", "GET")
        .param("SCRIPT_NAME", "/refused");
    let r = c.request(&req).expect("an answer");
    assert_eq!(r.protocol_status, 2, "FCGI_OVERLOADED expected: {r:?}");
    // The supervisor answers: the worker's only request slot is taken.
    let resp = ok(&saddr, "/status?openmetrics");
    let om = parse_metrics(body(&resp), true).unwrap_or_else(|e| panic!("{e}\n{resp}"));
    assert_eq!(
        sample(
            &om,
            "fcgi_pool_refused_requests_total{pool=o,reason=overloaded}"
        ),
        1.0,
        "{resp}"
    );
    File::create(&gate).expect("open the gate");
    held.join().expect("client").expect("held request");
}

/// `status_listen` never stalls the supervisor: a client sending garbage is closed; eight
/// silent clients (the most served at once) hold every place, yet the supervisor handles a
/// signal and the pool serves; they are closed at their deadline, and a status request that
/// waited in the backlog meanwhile is answered.
#[test]
fn fcgi_spawn_observe_status_listen_survives_silent_and_garbage_clients() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let sport = harness::free_port();
    let saddr = format!("127.0.0.1:{sport}");
    let mut p = Pool::start(
        "status-listen-hostile",
        &["-F", "1", "--set", &format!("status_listen={saddr}")],
    );
    p.wait_workers(1);
    let closed = |s: &mut TcpStream| {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut b = [0u8; 64];
        matches!(s.read(&mut b), Ok(0) | Err(_))
    };
    let mut garbage = TcpStream::connect(&saddr).expect("connect");
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send garbage");
    assert!(closed(&mut garbage), "a client sending garbage is closed");

    let mut silent: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(&saddr).expect("connect"))
        .collect();
    // A status request queued behind them (in the listening socket's backlog).
    let queued = {
        let a = saddr.clone();
        std::thread::spawn(move || send(&a, "/status?json"))
    };
    let n = p.log().matches("reopening log files").count();
    p.signal(libc::SIGUSR1);
    p.wait_for(
        |p| p.log().matches("reopening log files").count() > n,
        "the supervisor to handle SIGUSR1",
    );
    assert!(ok(&p.addr, "/served").contains("REQUEST_URI=/served"));
    for s in &mut silent {
        assert!(closed(s), "a silent client is closed at its deadline");
    }
    let r = queued
        .join()
        .expect("client")
        .expect("the queued status request");
    assert!(r.contains("\"total processes\":1"), "{r}");
}
