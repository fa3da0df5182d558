//! The log of `bindings/python` (`fcgi_runtime/log.py`): the library's own lines (received
//! through `fcgi_set_log_func`) and the servers' lines go through Python's `logging`, under
//! `fcgi_runtime.library`, `fcgi_runtime.server` and `fcgi_runtime.asgi`, with the library's
//! levels mapped; `--log-config` (a JSON dictConfig) and `--log-level` configure them; and
//! `wsgi.errors` still goes to the request's FCGI_STDERR, nginx's error log.
//!
//! The library line is provoked deterministically: eight bytes of a record of FastCGI version
//! 9 sent on a plain TCP connection to the server's port, which the library logs at WARNING
//! ("protocol error from 127.0.0.1: a record of version 9 (1 expected); closing the
//! connection"). Every wait is a bounded poll on the log; absences are checked after the
//! server exited (its log is then complete).
//!
//! `library_lines_from_every_thread_under_load_never_deadlock` is the deadlock audit of
//! bindings/python/fcgi_runtime/log.py put to work: the library's lines reach the hook (which
//! takes the GIL) from the WSGI server's threads inside blocking calls, from the library's own
//! standby thread and from inside the ASGI server's PyDLL calls, while every request makes a
//! PyDLL call that takes a library lock (`fcgi_is_aborted`). A deadlock shows as requests that
//! never complete (fcgi-bench's timeouts) and a server that does not stop.

use crate::harness;
use crate::python_asgi::start_behind_nginx;
use crate::python_wsgi::server::{python, wait_for, Wsgi};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// nginx's locations: everything through the kept-alive upstream.
const LOCATIONS: &str = r#"
        location / {
            @PARAMS@
            fastcgi_pass wsgi;
            fastcgi_keep_conn on;
        }"#;

/// The dictConfig of `--log-config`: the package's loggers at INFO into the file `server.log`
/// of the server's directory, as `NAME LEVEL MESSAGE`, not on stderr.
const CONFIG: &str = r#"{
  "version": 1,
  "formatters": {"plain": {"format": "%(name)s %(levelname)s %(message)s"}},
  "handlers": {
    "file": {"class": "logging.FileHandler", "filename": "server.log", "formatter": "plain"}
  },
  "loggers": {
    "fcgi_runtime": {"handlers": ["file"], "level": "INFO", "propagate": false}
  }
}
"#;

/// What the library logs for [`send_bad_record`].
const PROTOCOL_ERROR: &str =
    "protocol error from 127.0.0.1: a record of version 9 (1 expected); closing the connection";

/// A FastCGI record header of version 9 on a plain TCP connection to the server; waits
/// (bounded) until the server closes the connection.
fn send_bad_record(w: &Wsgi, port: u16) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| {
        w.fx.fail(&format!("connect to the server's port {port}: {e}"))
    });
    c.write_all(&[9, 1, 0, 1, 0, 0, 0, 0])
        .unwrap_or_else(|e| w.fx.fail(&format!("send the record: {e}")));
    c.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
}

fn file_log(w: &Wsgi) -> String {
    fs::read_to_string(w.fx.path("server.log")).unwrap_or_default()
}

fn wait_file_line(w: &Wsgi, line: &str) {
    let ok = wait_for(|| file_log(w).lines().any(|l| l == line));
    w.fx.check(ok, || {
        format!(
            "no line {line:?} in server.log:\n{}\n(stderr:\n{})",
            file_log(w),
            w.log()
        )
    });
}

/// SIGTERM; the server must exit with 0.
fn stop(w: &mut Wsgi) {
    w.check_alive();
    let st = w.signal_and_wait(libc::SIGTERM);
    w.fx.check(st.success(), || {
        format!(
            "exit status {st} after SIGTERM, want 0; stderr:\n{}",
            w.log()
        )
    });
}

fn start(py: &str, spec: &str, args: &[&str], apps: &str, tag: &str) -> (Wsgi, u16) {
    start_behind_nginx(py, spec, args, apps, LOCATIONS, tag, |fx| {
        fs::write(fx.path("log.json"), CONFIG).expect("write log.json");
    })
}

/// The server's start line (`start`, then ` (library PATH)`) in the configured log file; then a
/// malformed record sent to `port` gives the library's warning there, under its logger.
fn started_then_library_warning(w: &Wsgi, port: u16, start: &str) {
    wait_file_line(
        w,
        &format!(
            "{start} (library {})",
            harness::lib_dir().join("libfcgi.so").display()
        ),
    );
    send_bad_record(w, port);
    wait_file_line(w, &format!("fcgi_runtime.library WARNING {PROTOCOL_ERROR}"));
}

#[test]
fn wsgi_library_and_server_lines_through_a_dict_config() {
    let Some(py) = python(&["json", "logging.config"]) else {
        return;
    };
    let (mut w, port) = start(
        &py,
        "plain_app:application",
        &["--threads", "2", "--log-config", "log.json"],
        "tests/languages/python_wsgi/apps",
        "pylog-wsgi",
    );
    started_then_library_warning(
        &w,
        port,
        &format!("fcgi_runtime.server INFO serving on 127.0.0.1:{port} with 2 threads"),
    );
    // An application error: the server's line and traceback in the log, and the traceback on
    // wsgi.errors, which is the request's FCGI_STDERR: nginx's error log.
    let r = w.fx.get("/error");
    w.fx.check(r.status == 500, || format!("/error: {}", r.status));
    wait_file_line(
        &w,
        "fcgi_runtime.server ERROR GET /error: application error",
    );
    wait_file_line(&w, "ValueError: deliberate error before start_response");
    let seen = wait_for(|| {
        w.fx.error_log_has("FastCGI sent in stderr")
            && w.fx
                .error_log_has("ValueError: deliberate error before start_response")
    });
    w.fx.check(seen, || {
        "wsgi.errors did not reach nginx's error log (FCGI_STDERR)".to_string()
    });
    let r = w.fx.get("/hello");
    w.fx.check(r.status == 200 && r.text() == "Hello, World!\n", || {
        format!("/hello: {} {}", r.status, r.text())
    });
    stop(&mut w);
    wait_file_line(&w, "fcgi_runtime.server INFO stopped");
    // The configuration sent the package's lines to the file only.
    let err = w.log();
    for absent in [
        "protocol error",
        "serving on",
        "stopped",
        "application error",
    ] {
        w.fx.check(!err.contains(absent), || {
            format!("stderr has {absent:?} though the configuration logs to a file:\n{err}")
        });
    }
}

#[test]
fn asgi_library_lines_from_the_loop_through_a_dict_config() {
    let Some(py) = python(&["asyncio", "json", "logging.config"]) else {
        return;
    };
    // The library logs this line inside fcgi_loop_work, called through PyDLL with the GIL
    // held: the hook runs on the thread that already holds it.
    let (mut w, port) = start(
        &py,
        "plain_asgi:application",
        &["--asgi", "--log-config", "log.json"],
        "tests/languages/python_asgi/apps",
        "pylog-asgi",
    );
    started_then_library_warning(
        &w,
        port,
        &format!("fcgi_runtime.asgi INFO serving ASGI on 127.0.0.1:{port}, one thread"),
    );
    let r = w.fx.get("/error");
    w.fx.check(r.status == 500, || format!("/error: {}", r.status));
    wait_file_line(&w, "fcgi_runtime.asgi ERROR GET /error: application error");
    let r = w.fx.get("/hello");
    w.fx.check(r.status == 200 && r.text() == "Hello, World!\n", || {
        format!("/hello: {} {}", r.status, r.text())
    });
    stop(&mut w);
    wait_file_line(&w, "fcgi_runtime.asgi INFO stopped");
    let err = w.log();
    w.fx.check(!err.contains("protocol error"), || {
        format!("stderr has the library's line though the configuration logs to a file:\n{err}")
    });
}

#[test]
fn log_level_warning_drops_the_info_lines_and_keeps_the_library_warning() {
    let Some(py) = python(&["json"]) else { return };
    let apps = "tests/languages/python_wsgi/apps";
    // The command line's default: stderr, the servers' lines as `fcgi_runtime: ...`, the
    // library's as the library writes them, at info and above.
    let (mut w, port) = start(
        &py,
        "plain_app:application",
        &["--threads", "2"],
        apps,
        "pylog-default",
    );
    send_bad_record(&w, port);
    w.wait_log(&format!("fcgi-runtime: WARNING: {PROTOCOL_ERROR}"));
    w.wait_log(&format!(
        "fcgi_runtime: serving on 127.0.0.1:{port} with 2 threads"
    ));
    stop(&mut w);
    w.wait_log("fcgi_runtime: stopped");
    drop(w);

    let (mut w, port) = start(
        &py,
        "plain_app:application",
        &["--threads", "2", "--log-level", "warning"],
        apps,
        "pylog-warning",
    );
    send_bad_record(&w, port);
    w.wait_log(&format!("fcgi-runtime: WARNING: {PROTOCOL_ERROR}"));
    let r = w.fx.get("/hello");
    w.fx.check(r.status == 200, || format!("/hello: {}", r.status));
    stop(&mut w);
    let err = w.log();
    for absent in ["serving on", "stopped", "signal 15"] {
        w.fx.check(!err.contains(absent), || {
            format!("--log-level warning: stderr has the info line {absent:?}:\n{err}")
        });
    }
}

/// Requests fcgi-bench sends during the flood of library lines, and the malformed records.
const LOAD_REQUESTS: usize = 6000;
const BAD_RECORDS: usize = 1200;

fn load_with_library_lines(py: &str, args: &[&str], tag: &str, logger: &str) {
    let (mut w, port) = start(
        py,
        args[0],
        &args[1..],
        "tests/languages/python_logging/apps",
        tag,
    );
    let bench = harness::tool("fcgi-bench");
    let addr = format!("127.0.0.1:{port}");
    let load = std::thread::spawn(move || {
        Command::new(bench)
            .args([
                "-c",
                "8",
                "-n",
                &LOAD_REQUESTS.to_string(),
                "--timeout",
                "30",
            ])
            .args(["--expect", "Hello", "--json", &addr, "/hello"])
            .stdin(Stdio::null())
            .output()
            .expect("run fcgi-bench")
    });
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..BAD_RECORDS / 4 {
                    send_bad_record(&w, port);
                }
            });
        }
    });
    let out = load.join().expect("the fcgi-bench thread");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        w.fx.fail(&format!(
            "fcgi-bench: not JSON ({e}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    });
    w.fx.check(
        out.status.success() && v["ok"] == LOAD_REQUESTS && v["errors"] == 0,
        || format!("fcgi-bench during the flood of library lines: {v}"),
    );
    let line = format!("fcgi_runtime.library WARNING {PROTOCOL_ERROR}");
    let all = wait_for(|| file_log(&w).lines().filter(|l| *l == line).count() == BAD_RECORDS);
    w.fx.check(all, || {
        format!(
            "{} of {BAD_RECORDS} library lines in server.log",
            file_log(&w).lines().filter(|l| *l == line).count()
        )
    });
    stop(&mut w);
    wait_file_line(&w, &format!("{logger} INFO stopped"));
}

#[test]
fn library_lines_from_every_thread_under_load_never_deadlock() {
    let Some(py) = python(&["asyncio", "json", "logging.config"]) else {
        return;
    };
    // --log-level debug: every line of the library, its debug ones too, goes through the hook.
    load_with_library_lines(
        &py,
        &[
            "logging_app:application",
            "--threads",
            "8",
            "--log-config",
            "log.json",
            "--log-level",
            "debug",
        ],
        "pylog-load-wsgi",
        "fcgi_runtime.server",
    );
    load_with_library_lines(
        &py,
        &[
            "logging_app:asgi",
            "--asgi",
            "--log-config",
            "log.json",
            "--log-level",
            "debug",
        ],
        "pylog-load-asgi",
        "fcgi_runtime.asgi",
    );
}
