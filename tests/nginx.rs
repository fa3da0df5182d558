//! End to end through a real web server: curl -> nginx -> fcgi-runtime, with the C examples
//! (`c-examples/echo`, `c-examples/hello`) as the applications.
//!
//! Every test starts its own fixture (see [`start`], on the shared [`Fixture`] of
//! `tests/support`): `echo -t 4` on a TCP port chosen here, a second `echo -t 4` on a Unix socket
//! in a temporary directory, `hello` on a listening socket inherited as fd 0 (the way a web
//! server or spawner starts a FastCGI application), and an nginx with its own configuration,
//! prefix, logs and temporary files in that directory, listening on a free port of 127.0.0.1.
//! Locations:
//!
//! | location       | upstream                                               |
//! |----------------|--------------------------------------------------------|
//! | `/echo`        | echo over TCP, `keepalive 8` + `fastcgi_keep_conn on`  |
//! | `/echo-nokeep` | the same echo, a new connection per request            |
//! | `/echo-unix`   | echo over the Unix socket                              |
//! | `/hello`       | hello over TCP                                         |
//!
//! One test has a fixture of its own: `prefork -w 2` behind `keepalive 8` (PHP's model).
//!
//! The examples are built by `tests/common` against the library of this cargo invocation.
//! nginx is required (CI installs it): when `/usr/sbin/nginx` is missing the tests fail, they do
//! not skip. Every HTTP request goes through `curl --max-time 30`; every wait is bounded. The
//! processes are killed when the fixture is dropped; the temporary directory is removed unless
//! the test failed (or `FCGI_TEST_KEEP=1`), and its path is printed so the logs can be read.

mod common;
mod support;

use common::fnv1a64;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::Duration;
use support::{
    check_echo, echo_lines, example_cmd, require, show, tcp_ready, unix_ready, Fixture, Response,
    IO_TIMEOUT, NGINX,
};

const CURL_MAX_TIME: u32 = 30;
const TEN_MIB: usize = 10 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------------

/// The fixture of every test: the three applications and nginx in front of them.
fn start() -> Fixture {
    require(NGINX, "nginx-light");
    let mut fx = Fixture::new("nginx");
    fx.curl_max_time = CURL_MAX_TIME;

    // `echo -t 4 -a 127.0.0.1:PORT` (the program listens itself, through fcgi_listen).
    let echo_port = fx.start_on_free_port(
        "echo-tcp",
        "cannot listen on",
        |port| {
            let mut cmd = example_cmd("echo", &["-t", "4", "-a", &format!("127.0.0.1:{port}")]);
            cmd.stdin(Stdio::null());
            cmd
        },
        |_, port| tcp_ready(port),
    );

    // `echo -t 4 -a /path/to.sock` (a Unix-domain socket, through fcgi_listen).
    let sock = fx.path("echo.sock");
    let mut cmd = example_cmd("echo", &["-t", "4", "-a"]);
    cmd.arg(&sock).stdin(Stdio::null());
    fx.spawn("echo-unix", &mut cmd);
    let probe = sock.clone();
    fx.wait_ready("echo-unix", move || unix_ready(&probe));

    // `hello` with a listening TCP socket as fd 0 (found by fcgi_init / fcgi_is_fastcgi).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let hello_port = listener.local_addr().expect("local_addr").port();
    let mut cmd = example_cmd("hello", &[]);
    cmd.stdin(Stdio::from(OwnedFd::from(listener)));
    fx.spawn("hello", &mut cmd);
    // The socket listens already; make sure the program did not die on start-up.
    thread::sleep(Duration::from_millis(50));
    fx.wait_ready("hello", || tcp_ready(hello_port));

    let (upstreams, locations) = nginx_blocks(echo_port, &sock, hello_port);
    fx.start_nginx(&upstreams, &locations);
    fx
}

/// The upstream and location blocks of the table in the module documentation.
fn nginx_blocks(echo_port: u16, sock: &Path, hello_port: u16) -> (String, String) {
    let sock = sock.display();
    let upstreams = format!(
        r#"    upstream echo_keepalive {{
        server 127.0.0.1:{echo_port};
        keepalive 8;
    }}"#
    );
    let locations = format!(
        r#"        location = /echo {{
            @PARAMS@
            fastcgi_pass echo_keepalive;
            fastcgi_keep_conn on;
        }}
        location = /echo-nokeep {{
            @PARAMS@
            fastcgi_pass 127.0.0.1:{echo_port};
        }}
        location = /echo-unix {{
            @PARAMS@
            fastcgi_pass unix:{sock};
        }}
        location = /hello {{
            @PARAMS@
            fastcgi_pass 127.0.0.1:{hello_port};
        }}"#
    );
    (upstreams, locations)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn get_with_query_through_every_location() {
    let fx = start();
    for loc in ["/echo", "/echo-nokeep", "/echo-unix"] {
        let query = "a=1&b=two%20words&empty=";
        let r = fx.get(&format!("{loc}?{query}"));
        check_echo(
            &fx,
            &format!("GET {loc}"),
            &r,
            &echo_lines("GET", loc, query, b""),
        );
        fx.check(
            r.headers
                .to_ascii_lowercase()
                .contains("content-type: text/plain"),
            || format!("GET {loc}: no text/plain Content-Type in\n{}", r.headers),
        );
    }
    let r = fx.get("/hello?x=1");
    fx.check(r.status == 200 && r.body == b"Hello, World!\n", || {
        format!("GET /hello: status {}, body {:?}", r.status, show(&r.body))
    });
    fx.check_error_log(&[]);
}

#[test]
fn keepalive_location_serves_20_sequential_requests() {
    let fx = start();
    // One curl, 20 URLs: curl reuses its connection to nginx (curl_many checks it opened only
    // one), nginx its connection to echo.
    let paths: Vec<String> = (0..20).map(|i| format!("/echo?seq={i}")).collect();
    let responses = fx.curl_many(&paths);
    for (i, r) in responses.iter().enumerate() {
        let query = format!("seq={i}");
        check_echo(
            &fx,
            &format!("request {i} of 20"),
            r,
            &echo_lines("GET", "/echo", &query, b""),
        );
    }
    fx.check_error_log(&[]);
}

#[test]
fn post_10_mib_body_arrives_intact() {
    let fx = start();
    let body = common::body(TEN_MIB, 0x5eed_f00d);
    let file = fx.dir.join("upload.bin");
    fs::write(&file, &body).expect("write upload");
    let data = format!("@{}", file.display());
    for loc in ["/echo", "/echo-nokeep", "/echo-unix"] {
        let r = fx.curl(
            &[
                "--data-binary",
                &data,
                "-H",
                "Content-Type: application/octet-stream",
            ],
            &format!("{loc}?upload=1"),
        );
        let mut lines = echo_lines("POST", loc, "upload=1", &body);
        lines.push(format!("CONTENT_LENGTH={TEN_MIB}"));
        lines.push("CONTENT_TYPE=application/octet-stream".to_string());
        check_echo(&fx, &format!("POST 10 MiB to {loc}"), &r, &lines);
    }
    fx.check_error_log(&[]);
}

#[test]
fn response_of_10_mib_arrives_intact() {
    let fx = start();
    let r = fx.get(&format!("/hello?bytes={TEN_MIB}"));
    fx.check(r.status == 200, || {
        format!("status {}: {}", r.status, show(&r.body))
    });
    fx.check(r.body.len() == TEN_MIB, || {
        format!("got {} bytes, want {TEN_MIB}", r.body.len())
    });
    let bad = support::alphabet_mismatch(&r.body);
    fx.check(bad.is_none(), || {
        let at = bad.unwrap_or(0);
        format!(
            "content differs at byte {at}: {:?}",
            show(&r.body[at..r.body.len().min(at + 64)])
        )
    });
    fx.check(
        r.headers
            .to_ascii_lowercase()
            .contains(&format!("content-length: {TEN_MIB}")),
        || format!("no Content-Length: {TEN_MIB} in\n{}", r.headers),
    );
    fx.check_error_log(&[]);
}

#[test]
fn head_request_gets_200_and_no_body() {
    let fx = start();
    for path in ["/hello", "/echo", "/echo-unix"] {
        // Raw HTTP/1.1 with Connection: close, so that anything nginx sent after the headers
        // would be seen by read_to_end.
        let mut s = TcpStream::connect(("127.0.0.1", fx.port)).expect("connect to nginx");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        write!(
            s,
            "HEAD {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("send HEAD");
        // No half-close: nginx takes a client's EOF for an abort. It closes after the response.
        let mut raw = Vec::new();
        let res = s.read_to_end(&mut raw);
        fx.check(res.is_ok(), || format!("HEAD {path}: read failed: {res:?}"));
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        fx.check(head.starts_with("HTTP/1.1 200"), || {
            format!("HEAD {path}: want 200, got:\n{text}")
        });
        fx.check(rest.is_empty(), || {
            format!(
                "HEAD {path}: {} bytes after the headers:\n{text}",
                rest.len()
            )
        });
    }
    fx.check_error_log(&[]);
}

#[test]
fn sixteen_concurrent_clients_all_succeed() {
    let fx = start();
    // sleep_ms makes the requests overlap: 16 at once against 4 threads and 8 kept connections.
    let calls: Vec<_> = (0..16)
        .map(|i| fx.curl_spawn(&[], &format!("/echo?client={i}&sleep_ms=50")))
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let r = fx.curl_wait(call);
        let query = format!("client={i}&sleep_ms=50");
        check_echo(
            &fx,
            &format!("concurrent client {i}"),
            &r,
            &echo_lines("GET", "/echo", &query, b""),
        );
    }
    fx.check_error_log(&[]);
}

#[test]
fn fnv1a64_matches_the_c_examples() {
    // The reference values of the FNV-1a 64 specification.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

/// PHP's model behind nginx with upstream keep-alive: two single-threaded processes sharing
/// one listening socket (`prefork -w 2`). nginx keeps up to 8 connections to them and sends a
/// request on any idle one; a connection held by the process whose only thread runs a slow
/// request would park the request behind it while the other process is idle. By default
/// (`FCGI_RUNTIME_RELAY=auto`: the listening socket is shared) the busy process relays such a
/// request to the listening socket, where the idle process takes it (crates/runtime/src/relay.rs),
/// so 8 concurrent fast requests sent while the slow one runs are all answered, by the other
/// process, well before the slow one ends (curl gives each 8 s; the slow one takes 25 s), and
/// nginx never meets a closed connection.
#[test]
fn a_busy_single_threaded_worker_parks_no_kept_alive_request() {
    let fx = fast_requests_beside_a_slow_one("nginx-relay", &[]);
    fx.check_error_log(&[]);
}

/// The same with the opt-in alternative, `FCGI_RUNTIME_SHED_IDLE=1` (crates/runtime/src/shed.rs): the
/// busy process closes its idle connections when its thread takes the slow request, and nginx
/// opens new ones, which the idle process accepts.
#[test]
fn a_busy_single_threaded_worker_sheds_its_idle_connections_when_asked() {
    fast_requests_beside_a_slow_one(
        "nginx-shed",
        &[("FCGI_RUNTIME_RELAY", "0"), ("FCGI_RUNTIME_SHED_IDLE", "1")],
    );
}

/// Two `prefork` processes behind nginx keep-alive with `env`; 8 fast requests during a slow
/// one must all be answered by the process that is not busy.
fn fast_requests_beside_a_slow_one(name: &str, env: &[(&str, &str)]) -> Fixture {
    require(NGINX, "nginx-light");
    let mut fx = Fixture::new(name);
    fx.curl_max_time = CURL_MAX_TIME;
    let port = fx.start_on_free_port(
        "prefork",
        "cannot listen on",
        |port| {
            let mut cmd = example_cmd("prefork", &["-w", "2"]);
            cmd.env("FCGI_ADDR", format!("127.0.0.1:{port}"))
                .envs(env.iter().copied())
                .stdin(Stdio::null());
            cmd
        },
        |_, port| tcp_ready(port),
    );
    let upstreams = format!(
        r#"    upstream single_threaded {{
        server 127.0.0.1:{port};
        keepalive 8;
    }}"#
    );
    let locations = r#"        location /pf {
            @PARAMS@
            fastcgi_pass single_threaded;
            fastcgi_keep_conn on;
        }"#;
    fx.start_nginx(&upstreams, locations);

    // nginx opens connections to both processes and keeps them.
    let pids = |rs: Vec<Response>| -> Vec<String> {
        rs.iter()
            .map(|r| {
                fx.check(r.status == 200, || format!("status {}", r.status));
                r.text().trim().to_string()
            })
            .collect()
    };
    for round in 0..3 {
        let calls: Vec<_> = (0..8)
            .map(|i| fx.curl_spawn(&[], &format!("/pf?warm={round}-{i}&sleep_ms=20")))
            .collect();
        pids(calls.into_iter().map(|c| fx.curl_wait(c)).collect());
    }

    // The slow request; it has reached a process once that process's thread sleeps in it.
    let slow = fx.curl_spawn(&[], "/pf?slow=1&sleep_ms=25000");
    thread::sleep(Duration::from_millis(500));

    let calls: Vec<_> = (0..8)
        .map(|i| fx.curl_spawn(&["--max-time", "8"], &format!("/pf?fast={i}")))
        .collect();
    let answered = pids(calls.into_iter().map(|c| fx.curl_wait(c)).collect());
    // Every fast request was answered by the process that is not busy.
    let distinct: std::collections::BTreeSet<&String> = answered.iter().collect();
    fx.check(distinct.len() == 1, || {
        format!("fast requests answered by more than one process: {answered:?}")
    });
    drop(slow);
    fx
}
