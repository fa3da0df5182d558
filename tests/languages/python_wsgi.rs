//! The Python WSGI server of `bindings/python` (ctypes over the native API), as a real process
//! behind nginx: a Flask application and plain PEP 3333 applications
//! (`tests/languages/python_wsgi/apps`), every one wrapped in `wsgiref.validate.validator`. A validator
//! assertion is logged by the server with its traceback, and every test fails if the server's
//! log has an `AssertionError` (see `validator_violations_are_caught` for the proof that it
//! would).
//!
//! Skipped, with the reason printed, when no python3 (with Flask for the Flask tests) is found,
//! except under `CI=true`, where `.ci/run` installs them and a missing one fails.
//!
//! Nothing is decided by a sleep: streaming and concurrency are proved with gate files the
//! test creates only after it has seen the state it waits for, all waits are bounded polls.
//!
//! `throughput_vs_c_hello` (ignored: a measurement, not a verdict) runs fcgi-bench against the
//! Python hello and the C hellos of bench/apps (lf_app.c on Debian's and this project's
//! libfcgi.so.0, native_app.c); see `bindings/python/README.md`.

#[allow(dead_code)]
pub mod server;

use crate::harness;
use crate::harness::http;
use crate::harness::{sha256_file, show};
use server::{check_streamed_while_produced, python, wait_for, Bind, PythonEnv, Wsgi};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const FLASK: &str = "flask_app:application";
const PLAIN: &str = "plain_app:application";
/// 20 MiB, the upload.
const UPLOAD: usize = 20 * 1024 * 1024;

fn flask_python() -> Option<String> {
    python(&["wsgiref.validate", "flask"])
}

fn plain_python() -> Option<String> {
    python(&["wsgiref.validate"])
}

#[test]
fn flask_routing_form_and_error_500() {
    let Some(py) = flask_python() else { return };
    let w = Wsgi::start(&py, FLASK, 4, Bind::Tcp);
    let fx = &w.fx;

    let r = fx.get("/");
    fx.check(r.status == 200 && r.text() == "index page\n", || {
        format!("GET /: {} {}", r.status, show(&r.body))
    });
    let r = fx.get("/hello/world?x=1");
    fx.check(r.status == 200 && r.text() == "hello world\n", || {
        format!("GET /hello/world: {} {}", r.status, show(&r.body))
    });
    let r = fx.get("/no/such/route");
    fx.check(r.status == 404, || {
        format!("GET /no/such/route: {} {}", r.status, show(&r.body))
    });

    let r = fx.curl(&["--data", "b=two+words&a=1&c=%C3%A9t%C3%A9"], "/form");
    fx.check(
        r.status == 200 && r.text() == "a=1\nb=two words\nc=été\n",
        || format!("POST /form: {} {}", r.status, show(&r.body)),
    );
    // A GET on a POST-only route: Flask's 405.
    let r = fx.get("/form");
    fx.check(r.status == 405, || format!("GET /form: {}", r.status));

    // A view that raises: Flask answers 500 and logs the traceback on wsgi.errors, which is
    // FCGI_STDERR, which nginx writes to its error log.
    let r = fx.get("/boom");
    fx.check(r.status == 500, || {
        format!("GET /boom: {} {}", r.status, show(&r.body))
    });
    let seen = wait_for(|| fx.error_log_has("RuntimeError: boom from a Flask view"));
    fx.check(seen, || {
        "the view's traceback did not reach nginx's error log through wsgi.errors".to_string()
    });
    fx.check(fx.error_log_has("FastCGI sent in stderr"), || {
        "nginx did not log FastCGI stderr".to_string()
    });
    // Still serving after the error.
    let r = fx.get("/");
    fx.check(r.status == 200, || {
        format!("GET / after /boom: {}", r.status)
    });
    w.finish();
}

#[test]
fn flask_upload_of_20_mb() {
    let Some(py) = flask_python() else { return };
    let w = Wsgi::start(&py, FLASK, 4, Bind::Tcp);
    let fx = &w.fx;
    let file = fx.path("upload.bin");
    fs::write(&file, harness::body(UPLOAD, 0x20_0b0d)).expect("write the upload");
    let want = sha256_file(&file);
    let form = format!("file=@{};filename=big.bin", file.display());
    let r = fx.curl(&["-F", &form], "/upload");
    let text = r.text();
    fx.check(r.status == 200, || {
        format!("upload: {} {}", r.status, show(&r.body))
    });
    for line in [
        "name=big.bin".to_string(),
        format!("size={UPLOAD}"),
        format!("sha256={want}"),
    ] {
        fx.check(text.lines().any(|l| l == line), || {
            format!("upload: no line {line:?} in\n{text}")
        });
    }
    w.finish();
}

#[test]
fn flask_streamed_response_arrives_in_order_while_produced() {
    let Some(py) = flask_python() else { return };
    let w = Wsgi::start(&py, FLASK, 4, Bind::Tcp);
    // The generator's first block arrives while the generator waits for the gate: the server
    // flushed it as it was produced.
    check_streamed_while_produced(&w, "/stream");
    w.finish();
}

#[test]
fn four_threads_serve_four_requests_at_once_and_sigterm_waits_for_them() {
    let Some(py) = plain_python() else { return };
    let mut w = Wsgi::start(&py, PLAIN, 4, Bind::Tcp);
    let gates = w.fx.path("gates");
    fs::create_dir_all(&gates).expect("mkdir gates");
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let path = format!("/gate?dir={}&id={i}", gates.display());
            w.fx.curl_spawn(&[], &path)
        })
        .collect();
    let entered = || {
        fs::read_dir(&gates)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("entered-"))
                    .count()
            })
            .unwrap_or(0)
    };
    let all_in = wait_for(|| entered() == 4);
    w.fx.check(all_in, || {
        format!(
            "{} of 4 requests reached the application at once",
            entered()
        )
    });
    // Stop while all four are in the application: they must still be answered, then the
    // process exits by itself.
    let pid = w.fx.pid(server::SERVER);
    // SAFETY: kill(2) on the pid of a child this fixture started and has not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    w.wait_log("stopping after the requests in progress");
    w.check_alive();
    fs::write(gates.join("open"), b"").expect("open the gate");
    for (i, call) in calls.into_iter().enumerate() {
        let r = w.fx.curl_wait(call);
        let text = r.text();
        w.fx.check(r.status == 200, || {
            format!("gate request {i}: status {}: {text}", r.status)
        });
        for line in [format!("id={i}"), "opened=True".into(), "most=4".into()] {
            w.fx.check(text.lines().any(|l| l == line), || {
                format!("gate request {i}: no line {line:?} in\n{text}")
            });
        }
    }
    let st = w.fx.wait_exit(server::SERVER);
    w.fx.check(st.success(), || {
        format!("exit status {st} after SIGTERM, want 0")
    });
    w.check_validator_clean();
}

#[test]
fn client_abort_mid_stream_is_seen_and_the_thread_goes_on() {
    let Some(py) = plain_python() else { return };
    // One thread: the thread that saw the abort must be the one that serves next.
    let w = Wsgi::start(&py, PLAIN, 1, Bind::Tcp);
    let fx = &w.fx;
    // (path, what the application logs once it saw the client go, how many times by then)
    let rounds = [
        // A generator polling environ['fcgi.aborted']() between blocks.
        ("/abort", "app: abort stream ended after", 1),
        // The write() callable raising ClientDisconnected into the application.
        (
            "/abort-write",
            "app: abort-write: write() raised ClientDisconnected",
            1,
        ),
        ("/abort", "app: abort stream ended after", 2),
        (
            "/abort-write",
            "app: abort-write: write() raised ClientDisconnected",
            2,
        ),
    ];
    for (round, (path, needle, count)) in rounds.into_iter().enumerate() {
        let mut conn = http::connect(fx.port).expect("connect to nginx");
        http::send_head(&mut conn, "GET", path, &[]).expect("send");
        let (status, _) = http::read_head(&mut conn).expect("response head");
        fx.check(status == 200, || format!("{path}: status {status}"));
        let mut got = vec![0u8; 100_000];
        conn.read_exact(&mut got)
            .expect("the first 100 kB of the stream");
        drop(conn);
        let seen = wait_for(|| w.log().matches(needle).count() >= count);
        fx.check(seen, || {
            format!(
                "round {round} ({path}): the application did not log {needle:?}; log:\n{}",
                w.log()
            )
        });
        if path == "/abort" {
            let log = w.log();
            let line = log.lines().filter(|l| l.contains(needle)).nth(count - 1);
            fx.check(line.is_some_and(|l| l.ends_with("aborted=True")), || {
                format!("round {round}: the application did not see the abort: {line:?}")
            });
        } else {
            // The server caught the exception the application let through, and logged it.
            let logged = wait_for(|| {
                w.log()
                    .matches("GET /abort-write: client disconnected")
                    .count()
                    >= count
            });
            fx.check(logged, || {
                format!("round {round}: the server did not log the disconnect")
            });
        }
        let r = fx.get("/hello");
        fx.check(r.status == 200 && r.text() == "Hello, World!\n", || {
            format!(
                "round {round}: /hello after the abort: {} {}",
                r.status,
                show(&r.body)
            )
        });
    }
    fx.check_error_log(&["FastCGI sent in stderr", "while sending to client"]);
    w.finish();
}

#[test]
fn request_body_streams_into_wsgi_input() {
    let Some(py) = plain_python() else { return };
    let w = Wsgi::start(&py, PLAIN, 2, Bind::Tcp);
    let fx = &w.fx;
    const LEN: usize = 8 * 1024 * 1024;
    let body = harness::body(LEN, 0x9e3779b9);
    let mut conn = http::connect(fx.port).expect("connect to nginx");
    let head = [format!("Content-Length: {LEN}")];
    http::send_head(&mut conn, "POST", "/progress", &head).expect("send the head");
    // Half the body; the application must have read 1 MiB of it before the rest is sent.
    conn.get_mut()
        .write_all(&body[..LEN / 2])
        .expect("send the first half");
    w.wait_log("app: progress: read 1 MiB of the body");
    conn.get_mut()
        .write_all(&body[LEN / 2..])
        .expect("send the second half");
    let r = http::read_response(&mut conn, false).expect("the response");
    let sum = {
        let f = fx.path("progress.bin");
        fs::write(&f, &body).expect("write the body");
        sha256_file(&f)
    };
    let want = format!("size={LEN}\nsha256={sum}\n");
    fx.check(r.status == 200 && r.text() == want, || {
        format!("/progress: {} {:?}, want {want:?}", r.status, r.text())
    });
    w.finish();
}

#[test]
fn plain_apps_cover_pep_3333_over_a_unix_socket() {
    let Some(py) = plain_python() else { return };
    let w = Wsgi::start(&py, PLAIN, 2, Bind::Unix);
    let fx = &w.fx;

    let r = fx.curl(&["-H", "X-Test: yes", "--data", "abc"], "/env?q=1");
    let text = r.text();
    fx.check(r.status == 200, || format!("/env: {} {text}", r.status));
    for line in [
        "REQUEST_METHOD=POST",
        "SCRIPT_NAME=",
        "PATH_INFO=/env",
        "QUERY_STRING=q=1",
        "CONTENT_LENGTH=3",
        "CONTENT_TYPE=application/x-www-form-urlencoded",
        "SERVER_NAME=localhost",
        "HTTP_X_TEST=yes",
        "wsgi.url_scheme=http",
        "wsgi.multithread=True",
        "wsgi.multiprocess=False",
        "wsgi.run_once=False",
        "wsgi.version=(1, 0)",
        "fcgi.role=RESPONDER",
        "HTTP_CONTENT_LENGTH present=False",
        "aborted=False",
        "file_wrapper=True",
    ] {
        fx.check(text.lines().any(|l| l == line), || {
            format!("/env: no line {line:?} in\n{text}")
        });
    }
    let r = fx.get("/env-https");
    let text = r.text();
    for line in [
        "wsgi.url_scheme=https",
        "SCRIPT_NAME=/env-https",
        "PATH_INFO=/env",
    ] {
        fx.check(text.lines().any(|l| l == line), || {
            format!("/env-https: no line {line:?} in\n{text}")
        });
    }

    let r = fx.get("/write");
    fx.check(
        r.status == 200 && r.text() == "written by write()\nthen returned\n",
        || format!("/write: {} {}", r.status, show(&r.body)),
    );

    let big = fx.path("file.bin");
    fs::write(&big, harness::body(300_000, 7)).expect("write file");
    let r = fx.get(&format!("/file?path={}", big.display()));
    fx.check(
        r.status == 200 && r.body == fs::read(&big).expect("read file"),
        || format!("/file: {} {} bytes", r.status, r.body.len()),
    );

    let mut lines = b"first line\nsecond line\nthird\n".to_vec();
    for i in 0..1000 {
        lines.extend_from_slice(format!("line {i}\n").as_bytes());
    }
    lines.extend_from_slice(b"no newline at the end");
    let lines_file = fx.path("lines.txt");
    fs::write(&lines_file, &lines).expect("write lines");
    let data = format!("@{}", lines_file.display());
    let r = fx.curl(&["--data-binary", &data], "/lines");
    let want = "first=b'first line\\n'\nlimited=b'seco'\nrest=b'nd line\\n'\n\
                two=[b'third\\n']\nothers=1001\nlast=b'no newline at the end'\neof=b''\n";
    fx.check(r.status == 200 && r.text() == want, || {
        format!("/lines: {} {:?}, want {want:?}", r.status, r.text())
    });

    let body_file = fx.path("body.bin");
    fs::write(&body_file, harness::body(3_000_000, 11)).expect("write body");
    let data = format!("@{}", body_file.display());
    let r = fx.curl(&["--data-binary", &data], "/read");
    let want = format!("size=3000000\nsha256={}\n", sha256_file(&body_file));
    fx.check(r.status == 200 && r.text() == want, || {
        format!("/read: {} {}", r.status, show(&r.body))
    });

    let r = fx.get("/excinfo");
    fx.check(
        r.status == 503 && r.text() == "replaced by exc_info\n",
        || format!("/excinfo: {} {}", r.status, show(&r.body)),
    );

    // nginx itself trims a body to its Content-Length and drops Content-Length from a 204,
    // so what the server sends is read from its socket, as FastCGI.
    let sock = fx.path("wsgi.sock");
    let mut raw = fcgi_runtime_tools::client::Client::connect(sock.to_str().expect("utf-8 path"))
        .expect("connect to the WSGI server");
    let mut fastcgi = |id: u16, path: &str| {
        let req = fcgi_runtime_tools::client::Request::new(id)
            .keep_conn(true)
            .param("REQUEST_METHOD", "GET")
            .param("SCRIPT_NAME", path)
            .param("REQUEST_URI", path)
            .param("SERVER_PROTOCOL", "HTTP/1.1");
        let r = raw.request(&req).expect("FastCGI request");
        String::from_utf8_lossy(&r.stdout).into_owned()
    };
    let out = fastcgi(1, "/overlong");
    fx.check(out.ends_with("Content-Length: 6\r\n\r\nshort\n"), || {
        format!("/overlong sent more than its Content-Length: {out:?}")
    });
    let out = fastcgi(2, "/no_content");
    fx.check(
        out.starts_with("Status: 204 No Content\r\n") && out.ends_with("\r\n\r\n"),
        || format!("/no_content: {out:?}"),
    );
    fx.check(!out.to_ascii_lowercase().contains("content-length"), || {
        format!("/no_content got a Content-Length: {out:?}")
    });

    // An exception before start_response: the server's 500, the traceback on its log and on
    // wsgi.errors (nginx's error log).
    let r = fx.get("/error");
    fx.check(
        r.status == 500 && r.text() == "Internal Server Error\n",
        || format!("/error: {} {}", r.status, show(&r.body)),
    );
    w.wait_log("ValueError: deliberate error before start_response");
    let seen = wait_for(|| fx.error_log_has("ValueError: deliberate error before start_response"));
    fx.check(seen, || {
        "the traceback did not reach nginx's error log".to_string()
    });

    // An exception after the head was sent: the response is cut short (the connection is
    // closed before the end of the FastCGI stdout), so the client sees an incomplete body.
    let mut conn = http::connect(fx.port).expect("connect to nginx");
    http::send_head(
        &mut conn,
        "GET",
        "/late",
        &["Connection: close".to_string()],
    )
    .expect("send");
    let (status, _) = http::read_head(&mut conn).expect("response head");
    let mut raw = Vec::new();
    let _ = conn.read_to_end(&mut raw);
    fx.check(status == 200, || format!("/late: status {status}"));
    fx.check(http::dechunk(&raw).is_none(), || {
        format!("/late: the cut response looks complete: {:?}", show(&raw))
    });
    w.wait_log("KeyError: 'deliberate error after the head was sent'");

    let r = fx.get("/hello");
    fx.check(r.status == 200, || {
        format!("/hello at the end: {}", r.status)
    });
    w.finish();
}

#[test]
fn served_on_fd_0_from_spawn_fcgi() {
    let Some(py) = plain_python() else { return };
    let w = Wsgi::start(&py, PLAIN, 2, Bind::Fd0);
    let fx = &w.fx;
    let r = fx.get("/hello");
    fx.check(r.status == 200 && r.text() == "Hello, World!\n", || {
        format!("/hello: {} {}", r.status, show(&r.body))
    });
    w.wait_log("serving on fd 0");
    w.finish();
}

#[test]
fn validator_violations_are_caught() {
    let Some(py) = plain_python() else { return };
    let mut w = Wsgi::start(&py, PLAIN, 1, Bind::Tcp);
    let r = w.fx.get("/invalid");
    w.fx.check(r.status == 500, || {
        format!("/invalid: {} {}", r.status, show(&r.body))
    });
    w.wait_log("AssertionError");
    w.check_alive();
    let st = w.signal_and_wait(libc::SIGINT);
    w.fx.check(st.success(), || {
        format!("exit status {st} after SIGINT, want 0")
    });
}

/// Not a verdict: requests per second of the Python hello (1 and 4 threads) and of
/// c-examples/hello (the plain C API, 1 thread), with fcgi-bench, printed. Run with
/// `cargo test --release --test python_wsgi -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_vs_c_hello() {
    let Some(py) = plain_python() else { return };
    let bench = &harness::tool("fcgi-bench");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let run_bench = |addr: &str, conns: &str| -> String {
        let out = Command::new(bench)
            .args([
                "-c", conns, "-d", "5", "--warmup", "1", "--expect", "Hello", addr,
            ])
            .arg("/hello")
            .stdin(Stdio::null())
            .output()
            .expect("run fcgi-bench");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        s
    };
    for (label, threads) in [("python, 1 thread", "1"), ("python, 4 threads", "4")] {
        let port = harness::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(&py)
            .args(["-m", "fcgi_runtime", "plain_app:bare", "--bind", &addr])
            .args(["--threads", threads])
            .python_env(&[Path::new("tests/languages/python_wsgi/apps")])
            .stderr(Stdio::null())
            .spawn()
            .expect("start the python server");
        assert!(
            wait_for(|| harness::tcp_ready(port)),
            "python server not ready"
        );
        for conns in ["1", "4"] {
            println!(
                "== {label}, fcgi-bench -c {conns}:\n{}",
                run_bench(&addr, conns)
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    // The C side: bench/apps/lf_app.c, a plain libfcgi-API hello (FCGX_Accept_r loop), built
    // once against Debian's libfcgi-dev and run on Debian's libfcgi.so.0 and on the project's;
    // and its mirror on the native API, bench/apps/native_app.c.
    let tmp = std::env::temp_dir();
    let lf_app = tmp.join(format!("fcgi-py-lf_app-{}", std::process::id()));
    let native_app = tmp.join(format!("fcgi-py-native_app-{}", std::process::id()));
    let cc = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&lf_app)
        .arg(root.join("bench/apps/lf_app.c"))
        .arg("-L/usr/lib/x86_64-linux-gnu")
        .arg("-lfcgi")
        .status()
        .expect("run cc");
    assert!(cc.success(), "cc bench/apps/lf_app.c -lfcgi failed");
    let cc = Command::new("cc")
        .args(["-O2", "-pthread", "-I"])
        .arg(root.join("include"))
        .arg("-o")
        .arg(&native_app)
        .arg(root.join("bench/apps/native_app.c"))
        .arg("-L")
        .arg(harness::lib_dir())
        .arg("-lfcgi")
        .status()
        .expect("run cc");
    assert!(cc.success(), "cc bench/apps/native_app.c failed");
    let labels = [
        "lf_app (libfcgi API) on Debian's libfcgi.so.0",
        "lf_app (libfcgi API) on fcgi-runtime's libfcgi.so.0",
        "bench/apps/native_app.c (native API)",
    ];
    let command = |which: usize, addr: &str, threads: &str| -> Command {
        let mut c = Command::new(if which < 2 { &lf_app } else { &native_app });
        c.args([addr, threads, "hello"]);
        match which {
            0 => c.env_remove("LD_LIBRARY_PATH"),
            _ => c.env("LD_LIBRARY_PATH", harness::lib_dir()),
        };
        c
    };
    for (which, label) in labels.iter().enumerate() {
        for threads in ["1", "4"] {
            let port = harness::free_port();
            let addr = format!("127.0.0.1:{port}");
            let mut child = command(which, &addr, threads)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the C hello");
            assert!(wait_for(|| harness::tcp_ready(port)), "{label} not ready");
            for conns in ["1", "4"] {
                println!(
                    "== {label}, {threads} thread(s), fcgi-bench -c {conns}:\n{}",
                    run_bench(&addr, conns)
                );
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let _ = std::fs::remove_file(&lf_app);
    let _ = std::fs::remove_file(&native_app);
}
