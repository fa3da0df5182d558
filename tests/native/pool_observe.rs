//! The pool's observability (docs/pool-design.md), through c-examples/pool: real processes and
//! sockets, bounded waits, verdicts from the status page's content and the log files.
//!
//! - the status page (text, JSON, Prometheus) is answered by the runtime, not the application,
//!   and shows the pool's and each worker's numbers, with a held request as Running and its URI;
//! - the slow log gets a line from the parent while a request runs past the threshold and one
//!   from the worker when it ends; SIGUSR1 reopens it (log rotation);
//! - the request terminate timeout kills the worker of a runaway request, logs it, and the pool
//!   serves on with a replacement.

use crate::harness;
use crate::pool_fixture::*;
use fcgi_runtime_tools::client::{Client, Request};
use std::fs::File;
use std::path::Path;

/// One request to `path` with `query`: (stdout as text, the response's Content-Type).
fn fetch(addr: &str, path: &str, query: &str) -> (String, String) {
    let mut c = Client::connect(addr).expect("connect");
    c.set_timeout(Some(WAIT)).expect("timeout");
    let req = Request::new(1)
        .param("REQUEST_METHOD", "GET")
        .param("SCRIPT_NAME", path)
        .param("REQUEST_URI", format!("{path}?{query}"))
        .param("QUERY_STRING", query);
    let r = c.request(&req).expect("request");
    let text = String::from_utf8_lossy(&r.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or(("", &text));
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    (body.to_string(), ctype)
}

fn status_json(p: &Pool) -> serde_json::Value {
    let (body, ctype) = fetch(&p.addr, "/status", "json&full");
    assert_eq!(ctype, "application/json", "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("invalid JSON ({e}): {body}"))
}

fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

#[test]
fn status_page_in_text_json_and_prometheus() {
    let p = Pool::start(
        "status",
        &["max_children=3", "status_path=/status", "name=obs"],
        &[],
    );
    let workers = p.wait_workers(3);
    for _ in 0..5 {
        p.get("").expect("plain request");
    }

    // JSON, with one request held in a worker.
    let gate = p.gate("open");
    let held = hold_requests(&p, &gate, 1);
    // A worker records that its request ended just after the answer left, so the page may
    // still show the last plain request running: ask again until only the held request and
    // the status request itself are.
    let mut j = status_json(&p);
    harness::wait_for(|| {
        j = status_json(&p);
        num(&j, "active processes") <= 2
    });
    assert_eq!(j["pool"], "obs");
    assert_eq!(j["process manager"], "static");
    assert_eq!(num(&j, "total processes"), 3, "{j}");
    // The held request and the status request itself.
    assert_eq!(num(&j, "active processes"), 2, "{j}");
    assert_eq!(num(&j, "idle processes"), 1, "{j}");
    let accepted = num(&j, "accepted conn");
    assert!(accepted >= 7, "5 plain + held + status: {j}");
    let procs = j["processes"].as_array().expect("processes");
    let pids: std::collections::BTreeSet<u32> =
        procs.iter().map(|w| num(w, "pid") as u32).collect();
    assert_eq!(pids, workers, "the page's pids are the pool's workers");
    let hold_q = format!("hold={}", gate.display());
    let running: Vec<_> = procs
        .iter()
        .filter(|w| {
            w["request uri"]
                .as_str()
                .is_some_and(|u| u.contains(&hold_q))
        })
        .collect();
    assert_eq!(running.len(), 1, "the held request is shown once: {j}");
    assert_eq!(running[0]["state"], "Running");
    assert_eq!(running[0]["request method"], "GET");
    let served: u64 = procs.iter().map(|w| num(w, "requests")).sum();
    assert_eq!(
        served, accepted,
        "per-worker requests add up to accepted conn: {j}"
    );

    File::create(&gate).expect("open the gate");
    for h in held {
        h.join().expect("join").expect("held request answered");
    }
    let mut j2 = status_json(&p);
    harness::wait_for(|| {
        j2 = status_json(&p);
        num(&j2, "active processes") <= 1
    });
    assert!(num(&j2, "accepted conn") > accepted, "accepted grows: {j2}");
    assert_eq!(
        num(&j2, "active processes"),
        1,
        "only the status request: {j2}"
    );
    assert!(num(&j2, "max active processes") >= 2, "{j2}");

    // Prometheus text format (OpenMetrics: tests/tools/fcgi_spawn_observe.rs, with a parser).
    let (prom, ctype) = fetch(&p.addr, "/status", "prometheus&full");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert!(
        prom.lines()
            .any(|l| l == "fcgi_pool_total_processes{pool=\"obs\"} 3"),
        "{prom}"
    );
    assert!(prom.contains("# TYPE fcgi_pool_accepted_connections_total counter"));
    assert!(prom.contains("# TYPE fcgi_pool_request_duration_seconds histogram"));
    let (om, ctype) = fetch(&p.addr, "/status", "openmetrics");
    assert_eq!(
        ctype,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let per_worker = prom
        .lines()
        .filter(|l| l.starts_with("fcgi_pool_process_requests_total{"))
        .count();
    assert_eq!(per_worker, 3, "{prom}");
    for l in prom.lines().filter(|l| !l.starts_with('#')) {
        let (_, v) = l.rsplit_once(' ').expect("sample line");
        assert!(v.parse::<f64>().is_ok(), "sample value in {l:?}");
    }

    // Plain text (FPM's layout).
    let (text, ctype) = fetch(&p.addr, "/status", "");
    assert_eq!(ctype, "text/plain");
    assert!(
        text.lines().any(|l| l == format!("{:<21}obs", "pool:")),
        "{text}"
    );
    assert!(text.contains("total processes:     3"), "{text}");
    assert!(
        !text.contains("pid:"),
        "no per-worker part without full: {text}"
    );

    // Another path reaches the application.
    assert!(p.get("").is_ok());
    assert!(
        !p.log().contains("/status"),
        "the application never saw the status requests"
    );
}

#[test]
fn slow_log_lines_and_reopen_on_sigusr1() {
    let dir = std::env::temp_dir().join(format!("fcgi-slowlog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("slow.log");
    let p = Pool::start(
        "slowlog",
        &[
            "max_children=2",
            "slowlog_timeout_ms=200",
            &format!("slowlog={}", log.display()),
            "status_path=/status",
        ],
        &[],
    );
    p.wait_workers(2);
    p.get("sleep_ms=1").expect("a fast request");
    let pid = p.get("sleep_ms=900&tag=first").expect("slow request");
    // The worker writes its line after the response left: wait for it.
    let count = |path: &Path, tag: &str| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(tag))
            .count()
    };
    p.wait_for(|| count(&log, "tag=first") >= 2, "two slow-log lines");
    let text = std::fs::read_to_string(&log).expect("slow log written");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("tag=first")).collect();
    assert_eq!(lines.len(), 2, "a crossing line and an end line: {text}");
    assert!(
        lines.iter().any(|l| l.contains("still running after")
            && l.contains(&format!("pid {pid}:"))
            && l.contains("GET /?sleep_ms=900&tag=first")),
        "{text}"
    );
    let took = lines
        .iter()
        .find_map(|l| l.split(" took ").nth(1))
        .unwrap_or_else(|| panic!("no end line: {text}"));
    let ms: u64 = took.trim_end_matches(" ms").parse().expect("duration");
    assert!(ms >= 900, "the end line has the whole duration: {ms}");
    assert!(
        !text.contains("sleep_ms=1 "),
        "a fast request is not logged: {text}"
    );
    let j = status_json(&p);
    assert_eq!(num(&j, "slow requests"), 1, "counted once: {j}");

    // Rotation: move the file, SIGUSR1, the next lines go to a new file.
    let rotated = dir.join("slow.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    p.signal(libc::SIGUSR1);
    p.wait_for(|| log.exists(), "the parent to reopen the slow log");
    p.get("sleep_ms=600&tag=second").expect("slow request");
    p.wait_for(
        || count(&log, "tag=second") >= 2,
        "both lines in the reopened file",
    );
    assert_eq!(count(&log, "tag=second"), 2);
    let old = std::fs::read_to_string(&rotated).expect("rotated log");
    assert!(!old.contains("tag=second"), "{old}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn terminate_timeout_kills_a_runaway_worker() {
    let p = Pool::start(
        "terminate",
        &["max_children=2", "request_terminate_timeout_ms=300"],
        &[],
    );
    let before = p.wait_workers(2);
    let addr = p.addr.clone();
    let runaway = std::thread::spawn(move || crate::pool_fixture::get_pid(&addr, "sleep_ms=60000"));
    let r = runaway.join().expect("join");
    assert!(r.is_err(), "the runaway request has no answer: {r:?}");
    p.wait_for(
        || p.log().contains("request_terminate_timeout_ms 300"),
        "the terminate log line",
    );
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains("killing the worker"))
        .expect("kill line");
    assert!(line.contains("GET /?sleep_ms=60000"), "{line}");
    let killed: u32 = line
        .split("worker ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("pid in the line");
    assert!(before.contains(&killed));
    p.wait_for(
        || !Path::new(&format!("/proc/{killed}")).exists(),
        "the worker to go",
    );
    let after = p.wait_workers(2);
    assert!(!after.contains(&killed));
    for _ in 0..10 {
        p.get("").expect("the pool serves on");
    }
    assert!(
        !p.log().contains("replacing it"),
        "a terminated worker is not a crash (no back-off): {}",
        p.log()
    );
}

/// Through the C API (forked workers, not exec'd programs): ping from the worker's runtime, an
/// access log line, and `status_listen` on a Unix socket answering status and ping while the
/// only worker holds a request.
#[test]
fn ping_access_log_and_status_listen_on_a_unix_socket() {
    let dir = temp_dir("observe-capi");
    let log = dir.join("access.log");
    let sock = dir.join("status.sock");
    let mut p = Pool::start(
        "observe-capi",
        &[
            "max_children=1",
            "name=capi",
            "ping_path=/ping",
            "ping_response=alive",
            &format!("access_log={}", log.display()),
            "access_format=%m %r%Q%q %s %n %{micro}d",
            &format!("status_listen={}", sock.display()),
        ],
        &[],
    );
    p.wait_workers(1);
    let (body, ctype) = fetch(&p.addr, "/ping", "");
    assert_eq!((body.as_str(), ctype.as_str()), ("alive", "text/plain"));
    p.get("a=1").expect("a request");
    let has = |what: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(what))
    };
    p.wait_for(|| has("GET /ping 200 capi "), "the ping's access log line");
    p.wait_for(
        || has("GET /?a=1 200 capi "),
        "the request's access log line",
    );

    let gate = p.gate("open");
    let held = hold_requests(&p, &gate, 1);
    let addr = sock.to_str().unwrap();
    let (body, _) = fetch(addr, "/ping", "");
    assert_eq!(body, "alive");
    let (json, ctype) = fetch(addr, "/status", "json");
    assert_eq!(ctype, "application/json", "{json}");
    let j: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(
        (j["pool"].as_str(), num(&j, "active processes")),
        (Some("capi"), 1)
    );
    File::create(&gate).expect("open the gate");
    for h in held {
        h.join().expect("client").expect("held request");
    }
    // The supervisor removes its status socket when it stops (a worker never does).
    assert!(sock.exists());
    p.signal(libc::SIGQUIT);
    assert_eq!(p.wait_exit(), Some(0), "{}", p.log());
    assert!(!sock.exists(), "{} left behind", sock.display());
}
