//! No descriptor leak across 10,000 requests: a native-API server (c-examples/echo.c, two
//! threads) and a libfcgi-API one (tests/compare/lf_app.c) serve 5,000 requests one connection
//! each, 4,900 on ten kept-alive connections and 100 that the client abandons after PARAMS
//! (the connection closes mid-request). After every client connection is closed, the count of
//! entries in /proc/PID/fd (less each thread's epoll and eventfd) must come back to what it was after warm-up: nothing the requests
//! opened stays open. (Waiting for the server to notice the closed connections is bounded; no
//! timing is asserted.)

mod common;
mod memsafe;

use fcgi_runtime_tools::client::encode_begin_and_params;
use memsafe::{check_response, compile, request_for, start, work_dir, Prog, Running};
use std::time::{Duration, Instant};

/// Descriptors open in the process, less the epoll and eventfd each application thread's
/// worker opens when the thread first waits for a request (a thread that reaches its first
/// accept after the warm-up must not look like a leak); those are bounded apart, at most
/// two per thread.
fn fd_count(pid: u32) -> usize {
    let (mut other, mut per_thread) = (0, 0);
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read /proc/PID/fd") {
        let Ok(e) = e else { continue };
        match std::fs::read_link(e.path()) {
            Ok(t) if t.starts_with("anon_inode:[eventpoll]") => per_thread += 1,
            Ok(t) if t.starts_with("anon_inode:[eventfd]") => per_thread += 1,
            _ => other += 1,
        }
    }
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .unwrap_or(0);
    assert!(
        per_thread <= 2 * threads + 1,
        "{per_thread} epoll and eventfd descriptors for {threads} threads"
    );
    other
}

/// Waits (at most 20 s, or 3 s when `want` is 0: the lowest count seen then) until the count
/// is at most `want`; returns the last count.
fn settle(pid: u32, want: usize) -> usize {
    let wait = if want == 0 { 3 } else { 20 };
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut low = usize::MAX;
    loop {
        let n = fd_count(pid);
        low = low.min(n);
        if n <= want || Instant::now() > deadline {
            return low;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn one_per_connection(s: &Running, p: &Prog, from: usize, n: usize) {
    for i in from..from + n {
        let mut c = s.connect();
        let resp = c.request(&request_for(p, 1, i, false)).expect("request");
        check_response(p, &resp);
    }
}

fn kept_alive(s: &Running, p: &Prog, conns: usize, per_conn: usize) {
    for k in 0..conns {
        let mut c = s.connect();
        for i in 0..per_conn {
            let req = request_for(p, (i % 3 + 1) as u16, k * per_conn + i, true);
            let resp = c.request(&req).expect("kept-alive request");
            check_response(p, &resp);
        }
    }
}

fn abandoned(s: &Running, p: &Prog, n: usize) {
    for i in 0..n {
        let mut c = s.connect();
        let mut buf = Vec::new();
        encode_begin_and_params(&request_for(p, 1, i, false), &mut buf);
        c.send_raw(&buf).expect("send BEGIN and PARAMS");
        // Dropped here: the server sees the connection close before STDIN ends.
    }
}

fn no_fd_leak(name: &str) {
    let p = memsafe::program(name);
    let dir = work_dir(&format!("fd-leak-{name}"));
    let exe = compile(&p, &dir, &[]);
    let s = start(&p, &[exe.display().to_string()], &[], &dir.join("err"));
    let pid = s.pid();
    // Warm-up: every kind once, so threads, polls and caches exist.
    one_per_connection(&s, &p, 0, 50);
    kept_alive(&s, &p, 2, 25);
    abandoned(&s, &p, 5);
    // The baseline: the warm-up's connections all closed (the server has no client now).
    let base = settle(pid, 0);

    one_per_connection(&s, &p, 0, 5_000);
    kept_alive(&s, &p, 10, 490);
    abandoned(&s, &p, 100);
    let after = settle(pid, base);
    eprintln!("{name}: {base} descriptors after warm-up, {after} after 10,000 requests");
    assert_eq!(
        after, base,
        "{name}: descriptors open after warm-up {base}, after 10,000 requests {after}"
    );
    // Still serving.
    one_per_connection(&s, &p, 0, 1);
    let st = s.terminate(Duration::from_secs(30));
    assert!(st.success(), "{name}: exit status {st}");
}

#[test]
fn native_api_keeps_no_descriptor() {
    no_fd_leak("echo");
}

#[test]
fn libfcgi_api_keeps_no_descriptor() {
    no_fd_leak("lf_app");
}
