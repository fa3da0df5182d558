//! The libfcgi API's request lifecycle on the runtime: threads accepting at once without a
//! mutex, multiplexing, SIGTERM and FCGX_ShutdownPending waking blocked accepts, aborts,
//! FCGX_Free, FCGX_FClose, Filter data, GET_VALUES with the runtime's real limits.
//!
//! The program is tests/lifecycle/lf_life.c, an ordinary libfcgi program (fcgiapp.h), linked
//! against the project's libfcgi.so.0.

mod common;

use fcgi_runtime_tools::client::{Client, Request};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn program() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| common::build_c("tests/lifecycle/lf_life.c"))
}

/// The running program; killed on drop.
struct App {
    child: Child,
    addr: String,
    stderr: PathBuf,
}

impl App {
    fn start(threads: u32, env: &[(&str, &str)]) -> App {
        let addr = format!("127.0.0.1:{}", common::free_port());
        let stderr = std::env::temp_dir().join(format!(
            "lf_life-{}-{}.err",
            std::process::id(),
            addr.replace([':', '.'], "_")
        ));
        let mut cmd = Command::new(program());
        cmd.arg(&addr)
            .arg(threads.to_string())
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            // cargo's LD_LIBRARY_PATH may name another build of libfcgi.so.0 first.
            .env("LD_LIBRARY_PATH", common::lib_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start lf_life");
        let mut app = App {
            child,
            addr,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while fcgi_runtime::addr::connect(&app.addr).is_err() {
            if let Some(st) = app.child.try_wait().expect("try_wait") {
                panic!("lf_life exited early: {st}: {}", app.log());
            }
            assert!(Instant::now() < deadline, "lf_life does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            common::runs_project_lib(app.child.id()),
            "lf_life is not running on the project's libfcgi"
        );
        app
    }

    fn connect(&self) -> Client {
        let c = Client::connect(&self.addr).expect("connect");
        c.set_timeout(Some(common::IO_TIMEOUT)).expect("timeout");
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (bounded) for the program to exit on its own; returns its exit code.
    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "lf_life did not exit: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

fn req(id: u16) -> Request {
    common::cgi_request(id, "")
}

fn body(resp: &fcgi_runtime_tools::client::Response) -> String {
    String::from_utf8_lossy(&resp.stdout).into_owned()
}

#[test]
fn sigterm_wakes_every_blocked_accept() {
    let mut app = App::start(3, &[]);
    // One request first, so all three threads are known to be up and back in accept.
    let r = app.connect().request(&req(1)).expect("request");
    assert!(body(&r).contains("stdin=0"), "{}", body(&r));
    app.signal(libc::SIGTERM);
    assert_eq!(app.wait_exit(), 0, "{}", app.log());
    let log = app.log();
    assert_eq!(log.matches("accept rc=-4").count(), 3, "{log}");
}

#[test]
fn shutdown_pending_wakes_the_other_threads() {
    let mut app = App::start(3, &[]);
    let r = app
        .connect()
        .request(&req(1).param("SHUTDOWN", "1"))
        .expect("request");
    assert!(body(&r).contains("stdin=0"), "{}", body(&r));
    assert_eq!(app.wait_exit(), 0, "{}", app.log());
    let log = app.log();
    assert_eq!(log.matches("accept rc=-9999").count(), 3, "{log}");
}

/// Four threads in FCGX_Accept_r at once, no mutex: four requests that each wait until all
/// four are being served can only complete if they are served concurrently.
#[test]
fn threads_accept_concurrently_without_a_mutex() {
    let app = App::start(4, &[]);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let mut c = app.connect();
            std::thread::spawn(move || c.request(&req(1).param("BARRIER", "4")).expect("request"))
        })
        .collect();
    for h in handles {
        let r = h.join().expect("join");
        assert!(body(&r).contains("stdin=0"), "{}", body(&r));
    }
}

/// Two requests multiplexed on one connection, served at the same time by two threads.
#[test]
fn requests_multiplexed_on_one_connection() {
    let app = App::start(2, &[]);
    let mut c = app.connect();
    let mut bytes = Vec::new();
    for id in [1u16, 2] {
        fcgi_runtime_tools::client::encode_request(
            &req(id)
                .keep_conn(true)
                .param("BARRIER", "2")
                .stdin(vec![b'x'; id as usize * 10]),
            &mut bytes,
        );
    }
    c.send_raw(&bytes).expect("send");
    let rs = c.read_responses(&[1, 2]).expect("responses");
    assert!(body(&rs[&1]).contains("stdin=10 "), "{}", body(&rs[&1]));
    assert!(body(&rs[&2]).contains("stdin=20 "), "{}", body(&rs[&2]));
    // The connection is still usable.
    let r = c.request(&req(3).keep_conn(true)).expect("third");
    assert!(body(&r).contains("id=3"), "{}", body(&r));
}

#[test]
fn get_values_reports_the_runtime_limits() {
    let app = App::start(1, &[("FCGI_RUNTIME_MAX_REQS", "77")]);
    let vals = app
        .connect()
        .get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
        .expect("get values");
    let get = |n: &str| vals.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get("FCGI_MAX_REQS").as_deref(), Some("77"), "{vals:?}");
    assert_eq!(get("FCGI_MPXS_CONNS").as_deref(), Some("1"), "{vals:?}");
    assert!(get("FCGI_MAX_CONNS").is_some(), "{vals:?}");
}

#[test]
fn exit_status_and_explicit_fclose() {
    let app = App::start(1, &[]);
    let mut c = app.connect();
    let r = c
        .request(
            &req(1)
                .keep_conn(true)
                .param("STATUS", "7")
                .param("FCLOSE", "1"),
        )
        .expect("request");
    assert_eq!(r.app_status, 7);
    assert_eq!(r.protocol_status, 0);
    assert_eq!(String::from_utf8_lossy(&r.stderr), "to stderr\n");
    assert!(!body(&r).contains("late"), "{}", body(&r));
    // Exactly one END_REQUEST: the next request on the kept connection is answered normally.
    let r = c.request(&req(1).keep_conn(true)).expect("second");
    assert!(body(&r).contains("stdin=0"), "{}", body(&r));
    let log = app.log();
    assert!(!log.contains("fclose failed"), "{log}");
    assert!(!log.contains("write after fclose succeeded"), "{log}");
}

#[test]
fn free_with_close_drops_the_connection_and_serving_goes_on() {
    let app = App::start(1, &[]);
    let mut c = app.connect();
    c.send_request(&req(1).keep_conn(true).param("FREE", "1"))
        .expect("send");
    // Output flushed before FCGX_Free arrives, then the connection closes: no END_REQUEST.
    let mut ended = false;
    while let Some(rec) = c.read_record().expect("read") {
        ended |= rec.rtype == 3;
    }
    assert!(!ended, "FCGX_Free(r, 1) must not send END_REQUEST");
    let r = app.connect().request(&req(1)).expect("next connection");
    assert!(body(&r).contains("stdin=0"), "{}", body(&r));
}

#[test]
fn filter_reads_stdin_then_data() {
    let app = App::start(1, &[]);
    let r = app
        .connect()
        .request(
            &req(1)
                .role(3)
                .param("FCGI_DATA_LENGTH", "5000")
                .stdin(vec![b'a'; 1234])
                .data(vec![b'd'; 5000]),
        )
        .expect("request");
    assert!(
        body(&r).contains("stdin=1234 data=5000 err=0"),
        "{}",
        body(&r)
    );
}

#[test]
fn start_filter_data_on_a_responder_is_a_call_sequence_error() {
    let app = App::start(1, &[]);
    let r = app
        .connect()
        .request(&req(1).param("SEQ", "1").stdin(b"abc".to_vec()))
        .expect("request");
    assert!(body(&r).contains("seq=-1/-5"), "{}", body(&r));
}

/// ABORT_REQUEST while the application is blocked reading stdin: END_REQUEST comes at once
/// (not when the application finishes), and the application's read fails with ECONNABORTED.
#[test]
fn abort_while_reading_stdin() {
    let app = App::start(1, &[]);
    let mut c = app.connect();
    let mut bytes = Vec::new();
    fcgi_runtime_tools::client::encode_begin_and_params(
        &req(1).keep_conn(true).param("ANNOUNCE", "1"),
        &mut bytes,
    );
    fcgi_runtime_protocol::record::push_record(&mut bytes, 5, 1, b"partial");
    c.send_raw(&bytes).expect("send");
    // The application has the request once it announces itself; the STDIN stream stays
    // open, so it then blocks in FCGX_GetStr.
    let first = c.read_record().expect("read").expect("STDOUT record");
    assert_eq!(first.rtype, 6, "{first:?}");
    let mut abort = Vec::new();
    fcgi_runtime_protocol::record::push_record(&mut abort, 2, 1, &[]);
    c.send_raw(&abort).expect("abort");
    let rec = loop {
        let rec = c
            .read_record()
            .expect("read")
            .expect("END_REQUEST before EOF");
        if rec.rtype == 3 {
            break rec;
        }
    };
    assert_eq!(rec.id, 1);
    assert_eq!(rec.content[4], 0, "FCGI_REQUEST_COMPLETE");
    // The kept connection serves the next request.
    let r = c.request(&req(2).keep_conn(true)).expect("next");
    assert!(body(&r).contains("id=2"), "{}", body(&r));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.log().contains("read-error=") {
        assert!(Instant::now() < deadline, "no read error: {}", app.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        app.log()
            .contains(&format!("read-error={}", libc::ECONNABORTED)),
        "{}",
        app.log()
    );
}

/// A request struct thrown away after each request (stack-allocated, re-initialised): the
/// per-thread state cache keeps memory flat. Checked via /proc/pid/status VmRSS across many
/// requests on a kept connection.
#[test]
fn many_requests_keep_memory_flat() {
    let app = App::start(1, &[]);
    let mut c = app.connect();
    let rss = |pid: u32| -> u64 {
        let mut s = String::new();
        std::fs::File::open(format!("/proc/{pid}/status"))
            .and_then(|mut f| f.read_to_string(&mut s))
            .expect("status");
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .expect("VmRSS")
    };
    for _ in 0..500 {
        c.request(&req(1).keep_conn(true).stdin(vec![b'z'; 3000]))
            .expect("warm-up");
    }
    let before = rss(app.child.id());
    for _ in 0..5000 {
        c.request(&req(1).keep_conn(true).stdin(vec![b'z'; 3000]))
            .expect("request");
    }
    let after = rss(app.child.id());
    assert!(
        after < before + 2048,
        "RSS grew from {before} kB to {after} kB over 5000 requests"
    );
}
