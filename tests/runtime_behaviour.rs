//! The runtime's promises beyond the wire format, against the C examples over real sockets:
//! limits and timeouts (set through the FCGI_RUNTIME_* environment), roles, allowed clients,
//! IPv6, shutdown, and idle keep-alive connections that pin no thread.

mod common;

use common::{assert_output, cgi_request, echo_expected_for, example, free_port, Transport};
use fcgi_runtime_protocol::record::{
    push_begin_request, push_nv_pair, push_record, push_stream_end, rtype,
};
use fcgi_runtime_tools::client::{encode_begin_and_params, Client, Request};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// An example program with a chosen environment; its stderr (the library's log) is kept.
struct Proc {
    child: Child,
    addr: String,
    log: std::path::PathBuf,
}

impl Proc {
    fn start(program: &str, addr: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let log = std::env::temp_dir().join(format!(
            "fcgi-rb-{}-{}.log",
            std::process::id(),
            free_port()
        ));
        let mut cmd = Command::new(example(program));
        cmd.args(args)
            .env("FCGI_ADDR", addr)
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start example");
        let p = Proc {
            child,
            addr: addr.to_string(),
            log,
        };
        let deadline = Instant::now() + IO_TIMEOUT;
        while fcgi_runtime::addr::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "{program} did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    fn echo(env: &[(&str, &str)], threads: &str) -> Proc {
        let addr = format!("127.0.0.1:{}", free_port());
        Proc::start("echo", &addr, &["-t", threads], env)
    }

    fn connect(&self) -> Client {
        let c = Client::connect(&self.addr).expect("connect");
        c.set_timeout(Some(IO_TIMEOUT)).expect("timeouts");
        c
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    fn terminate_and_expect_clean_exit(&mut self) {
        // SAFETY: kill(2) takes no pointers; the pid is our own child's (`Child::id`).
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + IO_TIMEOUT;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "exit status {status}: {}",
            self.log_text()
        );
    }

    /// The library logged a line containing `what`.
    fn assert_logged(&self, what: &str) {
        let log = self.log_text();
        assert!(log.contains(what), "no {what:?} in the log: {log}");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The server closed the connection without sending anything more.
fn assert_eof(c: &mut Client) {
    match c.read_record() {
        Ok(None) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection to be closed, got {other:?}"),
    }
}

/// Reads records until END_REQUEST for `id`; returns its protocol status.
fn protocol_status_of(c: &mut Client, id: u16) -> u8 {
    loop {
        let r = c
            .read_record()
            .expect("read")
            .expect("END_REQUEST before EOF");
        if r.id == id && r.rtype == rtype::END_REQUEST {
            return r.content[4];
        }
    }
}

#[test]
fn params_larger_than_the_limit_close_the_connection_with_a_log_line() {
    let p = Proc::echo(&[("FCGI_RUNTIME_MAX_PARAMS_BYTES", "256")], "1");
    let mut c = p.connect();
    let big = cgi_request(1, "x=1").param("HTTP_COOKIE", vec![b'c'; 1000]);
    c.send_request(&big).expect("send");
    assert_eof(&mut c);
    // The process goes on serving.
    let mut c = p.connect();
    let ok = cgi_request(1, "small=1");
    assert_output(&c.request(&ok).unwrap().stdout, &echo_expected_for(&ok));
    p.assert_logged("larger than the limit (FCGI_LIMIT_MAX_PARAMS_BYTES)");
}

#[test]
fn too_many_params_close_the_connection() {
    let p = Proc::echo(&[("FCGI_RUNTIME_MAX_PARAMS_COUNT", "8")], "1");
    let mut c = p.connect();
    let mut req = cgi_request(1, "");
    for i in 0..20 {
        req = req.param(format!("P{i}"), "v");
    }
    c.send_request(&req).expect("send");
    assert_eof(&mut c);
    p.assert_logged("more pairs than the limit (FCGI_LIMIT_MAX_PARAMS_COUNT)");
}

#[test]
fn requests_past_the_per_connection_limit_are_overloaded() {
    let p = Proc::echo(
        &[
            ("FCGI_RUNTIME_MPXS_CONNS", "1"),
            ("FCGI_RUNTIME_MAX_REQS_PER_CONN", "2"),
        ],
        "2",
    );
    let mut c = p.connect();
    let mut wire = Vec::new();
    let reqs: Vec<Request> = (1..=3)
        .map(|i| cgi_request(i, "sleep_ms=200").keep_conn(true))
        .collect();
    for r in &reqs {
        encode_begin_and_params(r, &mut wire);
    }
    c.send_raw(&wire).unwrap();
    // The third is refused at once; the first two are served once their STDIN ends.
    assert_eq!(protocol_status_of(&mut c, 3), 2, "FCGI_OVERLOADED");
    let mut tail = Vec::new();
    push_stream_end(&mut tail, rtype::STDIN, 1);
    push_stream_end(&mut tail, rtype::STDIN, 2);
    c.send_raw(&tail).unwrap();
    let got = c.read_responses(&[1, 2]).expect("responses");
    for r in &reqs[..2] {
        assert_output(&got[&r.id].stdout, &echo_expected_for(r));
        assert_eq!(got[&r.id].protocol_status, 0);
    }
}

#[test]
fn without_multiplexing_a_second_request_gets_cant_mpx_conn() {
    let p = Proc::echo(&[("FCGI_RUNTIME_MPXS_CONNS", "0")], "2");
    let mut c = p.connect();
    let vals = c.get_values(&["FCGI_MPXS_CONNS"]).unwrap();
    assert_eq!(vals, vec![("FCGI_MPXS_CONNS".to_string(), "0".to_string())]);
    let mut wire = Vec::new();
    let first = cgi_request(1, "sleep_ms=100").keep_conn(true);
    encode_begin_and_params(&first, &mut wire);
    encode_begin_and_params(&cgi_request(2, "").keep_conn(true), &mut wire);
    push_stream_end(&mut wire, rtype::STDIN, 1);
    c.send_raw(&wire).unwrap();
    assert_eq!(protocol_status_of(&mut c, 2), 1, "FCGI_CANT_MPX_CONN");
    assert_output(
        &c.read_response(1).unwrap().stdout,
        &echo_expected_for(&first),
    );
}

#[test]
fn requests_past_the_process_limit_are_overloaded_and_reported() {
    let p = Proc::echo(&[("FCGI_RUNTIME_MAX_REQS", "1")], "2");
    let mut a = p.connect();
    assert_eq!(a.get_values(&["FCGI_MAX_REQS"]).unwrap()[0].1, "1");
    let slow = cgi_request(1, "sleep_ms=300");
    a.send_request(&slow).unwrap();
    // Let the first request be admitted before the second arrives.
    let mut b = p.connect();
    b.get_values(&["FCGI_MAX_CONNS"]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut wire = Vec::new();
    encode_begin_and_params(&cgi_request(1, ""), &mut wire);
    b.send_raw(&wire).unwrap();
    assert_eq!(protocol_status_of(&mut b, 1), 2, "FCGI_OVERLOADED");
    assert_output(
        &a.read_response(1).unwrap().stdout,
        &echo_expected_for(&slow),
    );
    p.assert_logged("FCGI_OVERLOADED");
}

#[test]
fn connections_past_the_limit_wait_in_the_backlog() {
    let p = Proc::echo(&[("FCGI_RUNTIME_MAX_CONNS", "2")], "1");
    let port: u16 = p.addr.rsplit_once(':').unwrap().1.parse().unwrap();
    // Two kept-alive connections, each past its first request (so neither counts as a fresh
    // connection that holds the thread back from accepting). The readiness probe's
    // connection counts until the server sees it closed: the first answer may wait for that.
    let served = |p: &Proc, id: u16| {
        let mut d = p.connect();
        let r = cgi_request(id, "").keep_conn(true);
        assert_output(&d.request(&r).unwrap().stdout, &echo_expected_for(&r));
        d
    };
    let a = served(&p, 1);
    let mut b = served(&p, 2);
    // A third connection is neither accepted nor dropped: the kernel holds it in the listen
    // backlog (PHP's layer behaves so; php-cgi sets FCGI_MAX_CONNS=1 without children).
    let mut c = p.connect();
    c.send_raw(&{
        let mut w = Vec::new();
        push_record(&mut w, rtype::GET_VALUES, 0, &[]);
        w
    })
    .unwrap();
    let want = "connection limit reached: 2 connections open (limit 2)";
    let deadline = Instant::now() + IO_TIMEOUT;
    while tcp_listen_backlog(port) != Some(1) || !p.log_text().contains(want) {
        assert!(
            Instant::now() < deadline,
            "the third connection is not waiting in the backlog at the limit (backlog {:?}); \
             log: {}",
            tcp_listen_backlog(port),
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The open connections are still served meanwhile.
    let r = cgi_request(3, "").keep_conn(true);
    assert_output(&b.request(&r).unwrap().stdout, &echo_expected_for(&r));
    // A slot frees up once a connection goes: the waiting one is accepted and answered.
    drop(a);
    let r = c
        .read_record()
        .expect("read")
        .expect("the waiting connection is answered, not closed");
    assert_eq!(r.rtype, rtype::GET_VALUES_RESULT);
    assert_eq!(tcp_listen_backlog(port), Some(0));
}

/// Connections waiting in the accept queue of the listening socket on `port`, from the
/// kernel's table (`/proc/net/tcp`: state 0A, rx_queue is the accept queue's length).
fn tcp_listen_backlog(port: u16) -> Option<usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let local_port = f
            .get(1)?
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())?;
        if local_port != port || f.get(3) != Some(&"0A") {
            return None;
        }
        let rx = f.get(4)?.split_once(':')?.1;
        usize::from_str_radix(rx, 16).ok()
    })
}

#[test]
fn slow_params_hit_the_params_timeout() {
    let p = Proc::echo(&[("FCGI_RUNTIME_PARAMS_TIMEOUT_MS", "200")], "1");
    let mut c = p.connect();
    let mut wire = Vec::new();
    push_begin_request(&mut wire, 1, 1, true);
    let mut pairs = Vec::new();
    push_nv_pair(&mut pairs, b"REQUEST_METHOD", b"GET");
    push_record(&mut wire, rtype::PARAMS, 1, &pairs);
    c.send_raw(&wire).unwrap();
    // PARAMS never end: the server gives up and closes.
    assert_eof(&mut c);
    p.assert_logged("not complete within 200 ms");
}

#[test]
fn idle_keepalive_connections_time_out() {
    let p = Proc::echo(&[("FCGI_RUNTIME_KEEPALIVE_TIMEOUT_MS", "200")], "1");
    let mut c = p.connect();
    let r = cgi_request(1, "").keep_conn(true);
    assert_output(&c.request(&r).unwrap().stdout, &echo_expected_for(&r));
    assert_eof(&mut c);
}

#[test]
fn idle_keepalive_connections_pin_no_thread() {
    // One application thread, fifty kept connections: every one is still served.
    let p = Proc::echo(&[], "1");
    let mut conns: Vec<Client> = (0..50).map(|_| p.connect()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let r = cgi_request(1, &format!("conn={i}")).keep_conn(true);
        assert_output(&c.request(&r).unwrap().stdout, &echo_expected_for(&r));
    }
    for (i, c) in conns.iter_mut().enumerate().rev() {
        let r = cgi_request(7, &format!("again={i}")).keep_conn(true);
        assert_output(&c.request(&r).unwrap().stdout, &echo_expected_for(&r));
    }
}

#[test]
fn small_input_buffers_still_deliver_a_large_body_exactly() {
    let p = Proc::echo(&[("FCGI_RUNTIME_STDIN_BUFFER_BYTES", "1024")], "2");
    let mut c = p.connect();
    let r = cgi_request(1, "sleep_ms=50").stdin(common::body(3 << 20, 9));
    assert_output(&c.request(&r).unwrap().stdout, &echo_expected_for(&r));
}

#[test]
fn authorizer_allows_and_denies() {
    let addr = format!("127.0.0.1:{}", free_port());
    let p = Proc::start("authorizer", &addr, &[], &[]);
    let mut c = p.connect();
    let ok = Request::new(1)
        .role(2)
        .param("HTTP_AUTHORIZATION", "Bearer letmein");
    let out = String::from_utf8(c.request(&ok).unwrap().stdout).unwrap();
    assert!(out.starts_with("Status: 200\r\n"), "{out}");
    assert!(out.contains("Variable-AUTH_USER: demo\r\n"), "{out}");
    let mut c = p.connect();
    let no = Request::new(1)
        .role(2)
        .param("HTTP_AUTHORIZATION", "Bearer nope");
    let out = String::from_utf8(c.request(&no).unwrap().stdout).unwrap();
    assert!(out.starts_with("Status: 403\r\n"), "{out}");
}

#[test]
fn filter_reads_stdin_then_data() {
    let addr = format!("127.0.0.1:{}", free_port());
    let p = Proc::start("filter", &addr, &[], &[]);
    let mut c = p.connect();
    let data = b"hello, filtered world";
    let req = Request::new(1)
        .role(3)
        .param("FCGI_DATA_LENGTH", data.len().to_string())
        .param("FCGI_DATA_LAST_MOD", "0")
        .stdin("ignored stdin")
        .data(data.to_vec());
    let r = c.request(&req).unwrap();
    assert_eq!(
        r.stdout,
        b"Content-Type: text/plain\r\n\r\nHELLO, FILTERED WORLD"
    );
    assert_eq!(r.app_status, 0);
    let mut c = p.connect();
    let bad = Request::new(1)
        .role(3)
        .param("FCGI_DATA_LENGTH", "99")
        .data("abc");
    let r = c.request(&bad).unwrap();
    assert_eq!(r.app_status, 1);
    assert!(!r.stderr.is_empty());
}

#[test]
fn allowed_clients_filter_tcp_peers() {
    let refused = Proc::echo(&[("FCGI_WEB_SERVER_ADDRS", "10.1.2.3, 2001:db8::/32")], "1");
    let mut c = refused.connect();
    c.send_request(&cgi_request(1, "")).ok();
    assert_eof(&mut c);
    refused.assert_logged("disallowed");
    let allowed = Proc::echo(&[("FCGI_WEB_SERVER_ADDRS", "10.0.0.0/8,127.0.0.0/8")], "1");
    let mut c = allowed.connect();
    let r = cgi_request(1, "");
    assert_output(&c.request(&r).unwrap().stdout, &echo_expected_for(&r));
}

#[test]
fn allowed_clients_refuse_unix_peers() {
    let dir = std::env::temp_dir().join(format!("fcgi-rb-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let p = Proc::start(
        "echo",
        path.to_str().unwrap(),
        &[],
        &[("FCGI_WEB_SERVER_ADDRS", "127.0.0.1")],
    );
    let mut c = p.connect();
    c.send_request(&cgi_request(1, "")).ok();
    assert_eof(&mut c);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serves_over_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine; skipping");
        return;
    }
    let addr = format!("[::1]:{}", free_port());
    let p = Proc::start("echo", &addr, &["-t", "1"], &[]);
    let mut c = p.connect();
    let r = cgi_request(1, "v6=1");
    assert_output(&c.request(&r).unwrap().stdout, &echo_expected_for(&r));
}

#[test]
fn sigterm_wakes_blocked_accepts_and_the_process_exits_cleanly() {
    let mut p = Proc::echo(&[], "4");
    let r = cgi_request(1, "");
    assert_output(
        &p.connect().request(&r).unwrap().stdout,
        &echo_expected_for(&r),
    );
    p.terminate_and_expect_clean_exit();
}

#[test]
fn fd0_transport_detects_fastcgi_mode() {
    // The listening socket is inherited on fd 0 (FastCGI §2.2) and nothing else is given.
    let s = common::Server::echo(Transport::Fd0, 1);
    let mut c = s.connect();
    let r = cgi_request(1, "fd0=1");
    assert_output(&c.request(&r).unwrap().stdout, &echo_expected_for(&r));
}

#[test]
fn get_values_flood_from_a_peer_that_never_reads_is_cut_off() {
    let p = Proc::echo(&[("FCGI_RUNTIME_WRITE_BEHIND_BYTES", "0")], "1");
    let mut c = p.connect();
    let mut q = Vec::new();
    push_nv_pair(&mut q, b"FCGI_MAX_CONNS", b"");
    let mut one = Vec::new();
    push_record(&mut one, rtype::GET_VALUES, 0, &q);
    let burst: Vec<u8> = one.iter().copied().cycle().take(one.len() * 4096).collect();
    // Send until the server gives up on us; never read.
    let mut closed = false;
    for _ in 0..2000 {
        if c.send_raw(&burst).is_err() {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "the server kept accepting GET_VALUES it could not answer"
    );
    p.assert_logged("does not read");
}

#[test]
fn a_slow_reader_gets_all_of_a_large_response_on_a_closing_connection() {
    // The connection is not kept, so it starts closing as soon as the response is handed
    // over; a reader that waits longer than the linger time must still get every byte.
    let addr = format!("127.0.0.1:{}", free_port());
    // A write-behind buffer larger than the response: the application finishes at once and
    // what the socket did not take waits in the runtime while the reader sleeps.
    let p = Proc::start(
        "hello",
        &addr,
        &[],
        &[("FCGI_RUNTIME_WRITE_BEHIND_BYTES", "33554432")],
    );
    let mut c = p.connect();
    let len = 16 << 20;
    let req = Request::new(1).param("QUERY_STRING", format!("bytes={len}"));
    c.send_request(&req).unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    let r = c.read_response(1).expect("whole response");
    let body_at = r
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers")
        + 4;
    assert_eq!(r.stdout.len() - body_at, len);
    assert_eq!(r.protocol_status, 0);
}

#[test]
fn preforked_workers_serve_concurrently_and_stop_on_sigterm() {
    // The parent listens and creates its request object, then forks: no thread or poll may
    // exist yet (prefork exits 3 if the parent has more than one thread when it forks).
    let addr = format!("127.0.0.1:{}", free_port());
    let mut p = Proc::start("prefork", &addr, &["-w", "2"], &[]);
    // Two slow requests at once on two connections, three times: each worker has its own
    // reactor after the fork, and two different processes answer (a worker whose only thread
    // is busy does not accept; the other one does).
    for round in 0..3 {
        let pids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|i| {
                    let p = &p;
                    s.spawn(move || {
                        if i == 1 {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        let mut c = p.connect();
                        let r = c
                            .request(&cgi_request(1, "sleep_ms=250"))
                            .expect("response");
                        String::from_utf8(r.stdout).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(pids.iter().all(|o| o.contains("PID=")), "{pids:?}");
        assert_ne!(
            pids[0], pids[1],
            "round {round}: both requests were served by one worker"
        );
    }
    p.terminate_and_expect_clean_exit();
}

/// A panic inside the runtime never leaves a thread hanging. The test hook
/// FCGI_RUNTIME_TEST_PANIC=2 makes the round that reads the first bytes of the second
/// connection to send any panic (Proc::start's probe sends none). By then one thread of echo is blocked in
/// fcgi_read on the second connection's unfinished body and the other waits in accept: both
/// calls return their error, every later accept returns -1, echo ends (it exits once every
/// thread's accept returned -1), both connections are closed, and one line says why.
#[test]
fn a_panic_inside_the_runtime_fails_the_server_and_every_call_returns() {
    let mut p = Proc::echo(&[("FCGI_RUNTIME_TEST_PANIC", "2")], "2");
    // The first connection: BEGIN, PARAMS and a part of a body that never ends.
    let mut a = p.connect();
    let mut post = Request::new(1);
    post.keep_conn = true;
    post.params = vec![(b"REQUEST_METHOD".to_vec(), b"POST".to_vec())];
    let mut bytes = Vec::new();
    encode_begin_and_params(&post, &mut bytes);
    push_record(&mut bytes, rtype::STDIN, 1, b"part of a body");
    // GET_VALUES after it: its answer shows the request's records were read (and the
    // request handed to a thread, which now waits for the rest of the body).
    let mut q = Vec::new();
    push_nv_pair(&mut q, b"FCGI_MAX_REQS", b"");
    push_record(&mut bytes, rtype::GET_VALUES, 0, &q);
    a.send_raw(&bytes).unwrap();
    let rec = a.read_record().unwrap().expect("GET_VALUES_RESULT");
    assert_eq!(rec.rtype, rtype::GET_VALUES_RESULT);
    // The next connection: its first input panics the round that reads it.
    let mut b = p.connect();
    b.send_request(&cgi_request(1, "x=1")).unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    let status = loop {
        if let Some(st) = p.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "echo still runs {IO_TIMEOUT:?} after the panic: {}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}: {}", p.log_text());
    assert_closed_or_answered_with_an_error(&mut a);
    assert_closed_or_answered_with_an_error(&mut b);
    let log = p.log_text();
    let failed = log.matches("failed (a panic inside the runtime)").count();
    assert_eq!(failed, 1, "want exactly one failure line: {log}");
}

/// The connection ends without a complete response: closed, reset, or an END_REQUEST whose
/// output did not reach the client (the runtime marks the connection broken).
fn assert_closed_or_answered_with_an_error(c: &mut Client) {
    loop {
        match c.read_record() {
            Ok(None) => return,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("reading: {e}"),
            Ok(Some(r)) => assert_ne!(
                r.rtype,
                rtype::END_REQUEST,
                "a request completed after the panic"
            ),
        }
    }
}
