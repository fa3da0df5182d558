//! The non-blocking face (`fcgi_loop_*`, include/fcgi.h) through c-examples/evloop: a
//! single-threaded epoll program whose requests each wait on a timer of its loop, driven over
//! raw FastCGI.
//!
//! - a thousand slow requests in flight at once, one thread in the process;
//! - many requests multiplexed on one connection, and large uploads (input back-pressure);
//! - a peer that does not read: the loop's write says FCGI_WOULD_BLOCK, the loop goes on
//!   serving others, memory stays bounded, and the response arrives whole once the peer reads;
//! - aborts (ABORT_REQUEST, a lost connection) reach a request that sleeps or waits for input;
//! - the runtime's own timers (keep-alive, PARAMS timeout) run from fcgi_loop_work's timeout
//!   with no traffic at all;
//! - blocking threads and the loop serving one socket in one process;
//! - SIGTERM: the requests in flight are finished, then the program exits 0.
//!
//! Nothing is decided by a sleep: the tests poll the program's own counters (`?stats`) with a
//! bound, and check concurrency by counting, not by timing.

mod common;

use common::{body, cgi_request, fnv1a64, IO_TIMEOUT};
use fcgi_runtime_protocol::record::{push_record, rtype};
use fcgi_runtime_tools::client::{Client, Response};
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// c-examples/evloop serving a TCP port; killed on drop.
struct Evloop {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Evloop {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Evloop {
        let addr = format!("127.0.0.1:{}", common::free_port());
        let log = std::env::temp_dir().join(format!(
            "evloop-{}-{}.log",
            std::process::id(),
            addr.replace([':', '.'], "-")
        ));
        let mut cmd = Command::new(common::example("evloop"));
        cmd.args(args)
            .env("FCGI_ADDR", &addr)
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("create log"));
        if std::env::var_os("FCGI_TEST_EXAMPLES_DIR").is_none() {
            cmd.env("LD_LIBRARY_PATH", common::lib_dir());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start evloop");
        let mut e = Evloop { child, addr, log };
        let deadline = Instant::now() + WAIT;
        while fcgi_runtime::addr::connect(&e.addr).is_err() {
            if let Some(st) = e.child.try_wait().expect("try_wait") {
                panic!(
                    "evloop exited before listening: {st}; log:\n{}",
                    e.log_text()
                );
            }
            assert!(Instant::now() < deadline, "evloop did not listen");
            thread::sleep(Duration::from_millis(10));
        }
        e
    }

    fn connect(&self) -> Client {
        let c = Client::connect(&self.addr).expect("connect to evloop");
        c.set_timeout(Some(IO_TIMEOUT)).expect("set timeouts");
        c
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The loop's counters (`?stats`), read over a new connection.
    fn stats(&self) -> HashMap<String, i64> {
        let mut c = self.connect();
        let r = c.request(&cgi_request(1, "stats")).expect("stats request");
        let text = String::from_utf8_lossy(&r.stdout).into_owned();
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(-1)))
            .collect()
    }

    /// Polls the counters until `ok` holds (at most [`WAIT`]); returns the last reading.
    fn wait_stats(
        &self,
        what: &str,
        ok: impl Fn(&HashMap<String, i64>) -> bool,
    ) -> HashMap<String, i64> {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.stats();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not reached; stats {s:?}; log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn threads(&self) -> usize {
        let st = fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        st.lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("Threads: line")
    }

    fn rss_kib(&self) -> u64 {
        let st = fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        st.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS: line")
    }
}

impl Drop for Evloop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("evloop log kept in {}", self.log.display());
        } else {
            let _ = fs::remove_file(&self.log);
        }
    }
}

/// What evloop answers for a request served by `by` ("loop" or "thread").
fn expected(by: &str, id: u16, stdin: &[u8], out: usize) -> Vec<u8> {
    let mut v = format!(
        "Content-Type: text/plain\r\n\r\nserved_by={by}\nrequest_id={id}\nstdin_length={}\n\
         stdin_fnv1a64={:016x}\n",
        stdin.len(),
        fnv1a64(stdin)
    )
    .into_bytes();
    v.extend((0..out).map(|i| b'a' + (i % 26) as u8));
    v
}

#[track_caller]
fn check(r: &Response, want: &[u8], what: &str) {
    assert_eq!(r.protocol_status, 0, "{what}: protocol status");
    if r.stdout != want {
        let head = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned();
        panic!(
            "{what}: response differs ({} bytes, want {}):\n{}\n--- want ---\n{}",
            r.stdout.len(),
            want.len(),
            head(&r.stdout),
            head(want)
        );
    }
}

fn raise_nofile() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

#[test]
fn a_thousand_slow_requests_are_in_flight_at_once_on_one_thread() {
    const N: usize = 1000;
    raise_nofile();
    let e = Evloop::start(&[], &[]);
    let mut conns: Vec<Client> = (0..N).map(|_| e.connect()).collect();
    for c in &mut conns {
        c.send_request(&cgi_request(1, "sleep_ms=2000"))
            .expect("send slow request");
    }
    // All of them asleep in the loop at once (the stats request is one more in flight).
    let s = e.wait_stats("1,000 requests in flight", |s| s["in_flight"] > N as i64);
    assert_eq!(e.threads(), 1, "the process has one thread; stats {s:?}");
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c.read_response(1).expect("slow response");
        check(
            &r,
            &expected("loop", 1, b"", 0),
            &format!("slow request {i}"),
        );
    }
    let s = e.stats();
    assert!(s["max_in_flight"] > N as i64, "stats {s:?}");
    assert_eq!(e.threads(), 1);
}

#[test]
fn requests_multiplexed_on_one_connection_and_large_uploads_are_served_together() {
    let e = Evloop::start(&[], &[]);
    let mut c = e.connect();
    // Forty requests on one connection, each with a body, interleaved with each other: the
    // records of all of them are written before any response is read.
    let ids: Vec<u16> = (1..=40).collect();
    let bodies: Vec<Vec<u8>> = ids
        .iter()
        .map(|&id| body(10_000 + 997 * id as usize, id as u64))
        .collect();
    let mut wire = Vec::new();
    for &id in &ids {
        let r = cgi_request(id, "sleep_ms=300").keep_conn(true);
        let mut head = Vec::new();
        fcgi_runtime_tools::client::encode_begin_and_params(&r, &mut head);
        wire.extend_from_slice(&head);
    }
    for off in (0..60_000).step_by(4000) {
        for (&id, b) in ids.iter().zip(&bodies) {
            if off < b.len() {
                push_record(
                    &mut wire,
                    rtype::STDIN,
                    id,
                    &b[off..b.len().min(off + 4000)],
                );
            }
        }
    }
    for &id in &ids {
        push_record(&mut wire, rtype::STDIN, id, b"");
    }
    c.send_raw(&wire).expect("send multiplexed requests");
    let s = e.wait_stats("forty requests in flight", |s| s["in_flight"] > 40);
    assert!(s["max_in_flight"] > 40);
    let got = c.read_responses(&ids).expect("multiplexed responses");
    for (&id, b) in ids.iter().zip(&bodies) {
        check(
            &got[&id],
            &expected("loop", id, b, 0),
            &format!("request {id}"),
        );
    }

    // An 8 MiB upload (64 KiB input buffer: reading resumes as the loop takes the bytes), and
    // eight 1 MiB uploads on their own connections at once.
    let big = body(8 << 20, 77);
    let r = c
        .request(&cgi_request(41, "").stdin(big.clone()))
        .expect("8 MiB upload");
    check(&r, &expected("loop", 41, &big, 0), "8 MiB upload");
    let addr = e.addr.clone();
    let uploads: Vec<_> = (0..8u64)
        .map(|i| {
            let addr = addr.clone();
            thread::spawn(move || {
                let b = body(1 << 20, 100 + i);
                let mut c = Client::connect(&addr).expect("connect");
                c.set_timeout(Some(IO_TIMEOUT)).expect("set timeouts");
                let r = c
                    .request(&cgi_request(1, "").stdin(b.clone()))
                    .expect("upload");
                check(&r, &expected("loop", 1, &b, 0), &format!("upload {i}"));
            })
        })
        .collect();
    for u in uploads {
        u.join().expect("upload thread");
    }
}

#[test]
fn a_peer_that_does_not_read_gets_would_block_and_the_loop_serves_others() {
    const OUT: usize = 64 << 20;
    let e = Evloop::start(&[], &[]);
    let rss_before = e.rss_kib();
    let mut slow = e.connect();
    slow.send_request(&cgi_request(1, &format!("out={OUT}")))
        .expect("send big request");
    // The socket fills up and the loop's writes say FCGI_WOULD_BLOCK...
    let s = e.wait_stats("a write that would block", |s| s["would_block"] > 0);
    // ... while other requests are served, and memory stays bounded by the write-behind limit
    // (256 KiB), far below the 64 MiB response.
    for i in 0..20u16 {
        let mut c = e.connect();
        let r = c.request(&cgi_request(i + 1, "")).expect("other request");
        check(
            &r,
            &expected("loop", i + 1, b"", 0),
            "request beside the stuck one",
        );
    }
    let grown = e.rss_kib().saturating_sub(rss_before);
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} KiB while a 64 MiB response waited; stats {s:?}"
    );
    // Now read it: it arrives whole.
    let r = slow.read_response(1).expect("big response");
    check(&r, &expected("loop", 1, b"", OUT), "64 MiB response");
    let s = e.stats();
    assert_eq!(s["in_flight"], 1, "only the stats request is left: {s:?}");
}

/// Reads the END_REQUEST of an aborted request `id`, which the runtime sends alone.
fn end_request_only(c: &mut Client, id: u16) {
    let rec = c
        .read_record()
        .expect("read")
        .expect("END_REQUEST, not EOF");
    assert_eq!((rec.rtype, rec.id), (rtype::END_REQUEST, id), "{rec:?}");
}

#[test]
fn aborts_reach_requests_that_sleep_or_wait_for_input() {
    let e = Evloop::start(&[], &[]);
    // 1: asleep on the loop's timer heap, then ABORT_REQUEST: the runtime answers END_REQUEST
    // at once and the loop hears of it through fcgi_loop_woken.
    let mut a = e.connect();
    a.send_request(&cgi_request(1, "sleep_ms=600000").keep_conn(true))
        .expect("send");
    e.wait_stats("the request asleep", |s| s["in_flight"] == 2);
    let mut abort = Vec::new();
    push_record(&mut abort, rtype::ABORT_REQUEST, 1, b"");
    a.send_raw(&abort).expect("send ABORT_REQUEST");
    end_request_only(&mut a, 1);
    e.wait_stats("the abort seen by the loop", |s| {
        s["aborted"] == 1 && s["in_flight"] == 1
    });
    assert!(
        e.log_text().contains("evloop: request 1 aborted"),
        "{}",
        e.log_text()
    );
    // The kept connection serves the next request.
    let r = a
        .request(&cgi_request(2, "").keep_conn(true))
        .expect("next");
    check(&r, &expected("loop", 2, b"", 0), "request after the abort");

    // 2: waiting for the rest of its body, then ABORT_REQUEST.
    let req = cgi_request(3, "").keep_conn(true);
    let mut w = Vec::new();
    fcgi_runtime_tools::client::encode_begin_and_params(&req, &mut w);
    push_record(&mut w, rtype::STDIN, 3, b"part of a body");
    a.send_raw(&w).expect("send half a request");
    e.wait_stats("the request reading", |s| s["in_flight"] == 2);
    let mut abort = Vec::new();
    push_record(&mut abort, rtype::ABORT_REQUEST, 3, b"");
    a.send_raw(&abort).expect("send ABORT_REQUEST");
    end_request_only(&mut a, 3);
    e.wait_stats("the second abort", |s| {
        s["aborted"] == 2 && s["in_flight"] == 1
    });

    // 3: the connection of a sleeping request goes away.
    let mut b = e.connect();
    b.send_request(&cgi_request(1, "sleep_ms=600000"))
        .expect("send");
    e.wait_stats("the request asleep", |s| s["in_flight"] == 2);
    drop(b);
    e.wait_stats("the lost connection seen", |s| {
        s["aborted"] == 3 && s["in_flight"] == 1
    });
}

#[test]
fn the_runtime_timers_run_from_the_work_timeout_without_traffic() {
    let e = Evloop::start(
        &[],
        &[
            ("FCGI_RUNTIME_KEEPALIVE_TIMEOUT_MS", "300"),
            ("FCGI_RUNTIME_PARAMS_TIMEOUT_MS", "300"),
        ],
    );
    // An idle kept connection is closed by the keep-alive timer: nothing else happens in the
    // loop meanwhile, so only fcgi_loop_work's timeout can wake it for that.
    let mut c = e.connect();
    let r = c
        .request(&cgi_request(1, "").keep_conn(true))
        .expect("request");
    check(&r, &expected("loop", 1, b"", 0), "request");
    common::assert_closed(&mut c);
    // A timer armed outside fcgi_loop_work: the keep-alive timer fires while the request
    // sleeps (no deadline while a request is served), and the next one starts only when the
    // request ends, after the loop computed its wait; the loop must still hear of it.
    let mut c = e.connect();
    let r = c
        .request(&cgi_request(2, "sleep_ms=600").keep_conn(true))
        .expect("slow request");
    check(&r, &expected("loop", 2, b"", 0), "slow request");
    common::assert_closed(&mut c);
    // A request whose PARAMS never end is closed by the PARAMS timer.
    let mut c = e.connect();
    let mut w = Vec::new();
    push_record(&mut w, rtype::BEGIN_REQUEST, 1, &[0, 1, 1, 0, 0, 0, 0, 0]);
    c.send_raw(&w).expect("send BEGIN_REQUEST");
    common::assert_closed(&mut c);
    assert!(
        e.log_text().contains("PARAMS from"),
        "the PARAMS timeout is logged: {}",
        e.log_text()
    );
}

#[test]
fn the_loop_and_blocking_threads_serve_one_socket() {
    let e = Evloop::start(&["-t", "2"], &[]);
    let mut seen: HashMap<String, usize> = HashMap::new();
    // Waves of concurrent requests until both faces have served some (bounded).
    for wave in 0..30 {
        let mut cs: Vec<(Client, Vec<u8>)> = (0..12u64)
            .map(|i| {
                let mut c = e.connect();
                let b = body(1000 + i as usize * 100, wave * 100 + i);
                c.send_request(&cgi_request(1, "sleep_ms=100").stdin(b.clone()))
                    .expect("send");
                (c, b)
            })
            .collect();
        for (c, b) in &mut cs {
            let r = c.read_response(1).expect("response");
            let text = String::from_utf8_lossy(&r.stdout).into_owned();
            let by = if text.contains("served_by=thread") {
                "thread"
            } else {
                "loop"
            };
            check(&r, &expected(by, 1, b, 0), "mixed request");
            *seen.entry(by.to_string()).or_default() += 1;
        }
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "both faces served requests: {seen:?}");
}

#[test]
fn sigterm_finishes_the_requests_in_flight_then_exits() {
    let mut e = Evloop::start(&[], &[]);
    let mut cs: Vec<Client> = (0..5).map(|_| e.connect()).collect();
    for c in &mut cs {
        c.send_request(&cgi_request(1, "sleep_ms=500"))
            .expect("send");
    }
    e.wait_stats("five requests asleep", |s| s["in_flight"] == 6);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(e.child.id() as libc::pid_t, libc::SIGTERM) };
    for c in &mut cs {
        let r = c.read_response(1).expect("response after SIGTERM");
        check(
            &r,
            &expected("loop", 1, b"", 0),
            "request finished after SIGTERM",
        );
    }
    let deadline = Instant::now() + WAIT;
    let st = loop {
        if let Some(st) = e.child.try_wait().expect("try_wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "evloop did not exit after SIGTERM"
        );
        thread::sleep(Duration::from_millis(10));
    };
    assert!(st.success(), "exit status {st}; log:\n{}", e.log_text());
}
