//! Smoke tests of the `fcgi-bench` load generator against the C examples. No timing assertions:
//! these check that it runs, verifies responses and reports, not how fast anything is.

use crate::harness;
use crate::harness::{Server, Transport};
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(harness::tool("fcgi-bench"))
        .args(args)
        .output()
        .expect("run fcgi-bench")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// True if `s` is exactly one JSON value.
fn valid_json(s: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(s).is_ok()
}

#[test]
fn hello_count_text_and_json() {
    let server = Server::start("hello", Transport::Tcp, &[]);
    let o = bench(&["-c", "2", "-n", "200", "--expect", "Hello", server.addr()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("requests  200 in"), "{}", text(&o));
    assert!(out.contains("ok 200, 0 errors"), "{}", text(&o));
    assert!(out.contains("errors    none"), "{}", text(&o));
    assert!(
        out.contains("connections never served: 0 of 2"),
        "{}",
        text(&o)
    );

    let o = bench(&["-c", "2", "-n", "200", "--json", server.addr()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let json = String::from_utf8_lossy(&o.stdout);
    let json = json.trim();
    assert!(valid_json(json), "{json}");
    assert!(json.contains("\"requests\":200"), "{json}");
    assert!(json.contains("\"errors\":0"), "{json}");
    for key in [
        "\"p50\":",
        "\"p90\":",
        "\"p99\":",
        "\"max\":",
        "\"latency_us\":",
    ] {
        assert!(json.contains(key), "{key} missing: {json}");
    }
}

#[test]
fn echo_body_multiplexed() {
    let server = Server::echo_mpx(Transport::Tcp, 2);
    let o = bench(&[
        "-c",
        "2",
        "-m",
        "4",
        "-b",
        "1000",
        "-n",
        "200",
        "--expect-stdin-length",
        "--expect",
        "CONTENT_LENGTH=1000",
        server.addr(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok 200, 0 errors"));
}

#[test]
fn echo_unix_stdin_length() {
    let server = Server::echo(Transport::Unix, 1);
    let o = bench(&[
        "-n",
        "5",
        "-b",
        "10",
        "--expect-stdin-length",
        server.addr(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Another length in STDOUT fails every response.
    let o = bench(&[
        "-n",
        "5",
        "-b",
        "10",
        "--expect",
        "STDIN_LENGTH=11\n",
        server.addr(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn no_keep_alive() {
    let server = Server::start("hello", Transport::Tcp, &[]);
    let o = bench(&["--no-keep", "-c", "2", "-n", "50", server.addr()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("requests  50 in"), "{}", text(&o));
    assert!(out.contains("no keep-alive"), "{}", text(&o));
}

#[test]
fn wrong_expect_fails() {
    let server = Server::start("hello", Transport::Tcp, &[]);
    let o = bench(&["-n", "20", "--expect", "Goodbye", server.addr()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("20 errors"), "{}", text(&o));
    assert!(out.contains("expect 20"), "{}", text(&o));
}

#[test]
fn connect_failure_is_reported() {
    let port = harness::free_port().to_string();
    let o = bench(&["-c", "2", "-n", "4", &port]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("connect 2"), "{}", text(&o));
    assert!(
        out.contains("connections never served: 2 of 2"),
        "{}",
        text(&o)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["-c", "0", "9000"],
        &["--no-keep", "-m", "4", "9000"],
        &["--frobnicate", "9000"],
    ] {
        let o = bench(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("usage: fcgi-bench"));
    }
    let o = bench(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
}

/// `fcgi-bench soak` for a few seconds with the server's pid; returns its output.
fn soak(server: &Server, extra: &[&str]) -> Output {
    let pid = server.pid().to_string();
    let mut args = vec![
        "soak",
        server.addr(),
        "--server-pid",
        &pid,
        "--max-upload",
        "1M",
        "--timeout",
        "20",
    ];
    args.extend_from_slice(extra);
    bench(&args)
}

#[test]
fn soak_passes_on_both_apis() {
    // The native API (soak-echo) and the libfcgi API (lf-echo on the project's libfcgi.so.0).
    for server in [
        Server::start("soak-echo", Transport::Tcp, &["-t", "2"]),
        Server::start("lf-echo", Transport::Fd0, &[]),
    ] {
        let o = soak(&server, &["--secs", "3", "--warmup", "1", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let json = String::from_utf8_lossy(&o.stdout);
        let json = json.trim();
        assert!(valid_json(json), "{json}");
        assert!(json.contains("\"errors\":0,"), "{json}");
        assert!(json.contains("\"pass\":true"), "{json}");
        // Every kind of request was served and verified at least once.
        for label in [
            "keep",
            "nokeep",
            "mux",
            "mux_abort",
            "upload",
            "abort_before_upload",
            "abort_during_upload",
            "abort_while_streaming",
            "after_abort",
            "final",
        ] {
            let key = format!("\"{label}\":");
            let n: u64 = json
                .split(&key)
                .nth(1)
                .and_then(|r| r.split([',', '}']).next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            assert!(n > 0, "no {label} request verified: {json}");
        }
        assert!(json.contains("\"rss_kib\":{\"min\":"), "{json}");
    }
}

#[test]
fn soak_fails_on_corrupt_responses() {
    // Every 40th request per thread echoes its body one byte short.
    let server = Server::start("soak-echo", Transport::Tcp, &["-t", "2", "-C", "40"]);
    let o = soak(&server, &["--secs", "2", "--warmup", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("echoed body:"), "{}", text(&o));
    assert!(out.contains("soak: FAIL:"), "{}", text(&o));
}

#[test]
fn soak_fails_on_a_leaking_server() {
    // 8 KiB leaked per request: every request verifies, memory does not stay bounded.
    let server = Server::start("soak-echo", Transport::Tcp, &["-t", "1", "-L", "8192"]);
    let o = soak(
        &server,
        &["--secs", "8", "--warmup", "1", "--kinds", "keep", "-c", "1"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("  errors    0\n"), "{}", text(&o));
    assert!(
        out.contains("RSS grew to") || out.contains("RSS keeps rising"),
        "{}",
        text(&o)
    );
}

#[test]
fn soak_fails_when_nothing_listens() {
    let port = harness::free_port().to_string();
    let o = bench(&["soak", &port, "--secs", "1", "--kinds", "keep"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("connect to"));
    let o = bench(&["soak", "--kinds", "bogus", &port]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// A FastCGI responder that answers one request per connection, then closes it whatever
/// FCGI_KEEP_CONN says: a keep-alive client sees every second request fail.
fn one_per_connection_server() -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut h = [0u8; 8];
            // Read records until the empty STDIN record.
            loop {
                if s.read_exact(&mut h).is_err() {
                    break;
                }
                let len = usize::from(u16::from_be_bytes([h[4], h[5]])) + usize::from(h[6]);
                let mut c = vec![0; len];
                if s.read_exact(&mut c).is_err() {
                    break;
                }
                if h[1] == 5 && h[4] == 0 && h[5] == 0 {
                    let (a, b) = (h[2], h[3]);
                    let body = b"Content-Type: text/plain\r\n\r\nok\n";
                    let mut out = vec![1, 6, a, b, 0, body.len() as u8, 0, 0];
                    out.extend_from_slice(body);
                    out.extend_from_slice(&[1, 6, a, b, 0, 0, 0, 0]);
                    out.extend_from_slice(&[1, 3, a, b, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                    let _ = s.write_all(&out);
                    break;
                }
            }
        }
    });
    addr
}

#[test]
fn keep_alive_worker_reconnects_after_a_closed_connection() {
    let addr = one_per_connection_server();
    let o = bench(&["-c", "1", "-n", "6", &addr]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // Requests 1, 3 and 5 open a connection and are served; 2, 4 and 6 find it closed.
    assert!(out.contains("ok 3, 3 errors"), "{}", text(&o));
    assert!(out.contains("closed 3"), "{}", text(&o));
}
