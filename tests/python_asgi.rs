//! The ASGI 3 server of `bindings/python` (`python3 -m fcgi_runtime --asgi module:app`: one
//! asyncio loop in one thread, over the library's non-blocking face `fcgi_loop_*`), as a real
//! process behind nginx, with the applications of `tests/python_asgi/apps`: plain ASGI
//! callables (no framework) and a Starlette application (Debian's python3-starlette).
//!
//! Skipped, with the reason printed, when no python3 (with Starlette for the Starlette test) is
//! found, except under `CI=true`, where `.ci/run` installs them and a missing one fails.
//!
//! Nothing is decided by a sleep: streaming, concurrency, back-pressure and disconnects are
//! proved with gate files, the application's own counters (its `/stats` route) and its log,
//! read with bounded polls.
//!
//! `throughput_one_thread` (ignored: a measurement, not a verdict) runs fcgi-bench against the
//! ASGI hello and the WSGI hello on one thread; see `bindings/python/README.md`.

mod common;
mod support;

#[allow(dead_code)]
#[path = "nginx_matrix/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "python_wsgi/server.rs"]
mod server;

use server::{check_streamed_while_produced, python, wait_for, Bind, Wsgi};
use std::fs;
use std::io::{BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{sha256_file, show};

const PLAIN: &str = "plain_asgi:application";
const STARLETTE: &str = "starlette_app:app";
/// 20 MiB, the issue's upload.
const UPLOAD: usize = 20 * 1024 * 1024;
/// The concurrent slow requests of `thousand_slow_requests_at_once_on_one_thread`.
const SLOW: usize = 1000;
/// The streamed response read slowly, in MiB.
const BIG_MIB: usize = 64;

fn plain_python() -> Option<String> {
    python(&["asyncio", "hashlib", "json"])
}

fn starlette_python() -> Option<String> {
    python(&["starlette", "anyio"])
}

/// The application's counters (its `/stats` route, JSON).
fn stats(fx: &support::Fixture) -> serde_json::Value {
    let r = fx.get("/stats");
    fx.check(r.status == 200, || {
        format!("/stats: {} {}", r.status, show(&r.body))
    });
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| fx.fail(&format!("/stats is not JSON ({e}): {}", show(&r.body))))
}

fn stat(fx: &support::Fixture, name: &str) -> i64 {
    let s = stats(fx);
    match &s[name] {
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(-1),
        serde_json::Value::Bool(b) => *b as i64,
        other => fx.fail(&format!("/stats: {name} is {other:?}")),
    }
}

/// The `Threads:` line of /proc/PID/status.
fn threads_of(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// Raises this process's RLIMIT_NOFILE soft limit to the hard one (nginx and the server,
/// started afterwards, inherit it). Returns the new soft limit.
fn raise_nofile() -> libc::rlim_t {
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        }
        rl.rlim_cur
    }
}

fn check_lines(fx: &support::Fixture, what: &str, text: &str, lines: &[String]) {
    for line in lines {
        fx.check(text.lines().any(|l| l == line), || {
            format!("{what}: no line {line:?} in\n{text}")
        });
    }
}

/// The end of a test on `plain_asgi:application`: what `Wsgi::finish` checks (the server
/// alive, SIGTERM, exit status 0, "stopped" logged), then the lifespan shutdown's file.
fn finish_plain(mut w: Wsgi) {
    w.check_validator_clean();
    w.check_alive();
    let st = w.signal_and_wait(libc::SIGTERM);
    w.fx.check(st.success(), || {
        format!("the server exited with {st} after SIGTERM, want 0")
    });
    let log = w.log();
    w.fx.check(log.contains("fcgi_runtime: stopped"), || {
        format!("the server did not log its clean stop:\n{log}")
    });
    let shutdown = fs::read_to_string(w.fx.path("lifespan-shutdown")).unwrap_or_default();
    w.fx.check(shutdown.starts_with("shutdown after"), || {
        format!("lifespan shutdown did not run (its file: {shutdown:?})")
    });
}

#[test]
fn plain_app_scope_bodies_upload_errors_and_lifespan() {
    let Some(py) = plain_python() else { return };
    let w = Wsgi::start_asgi(&py, PLAIN, Bind::Tcp, 256);
    let fx = &w.fx;
    let pid = fx.pid(server::SERVER);

    // The scope, from the CGI environment nginx sent; the lifespan's state in it.
    let r = fx.curl(&["-H", "X-Test: yes", "--data", "abc"], "/scope?q=1&x=%20y");
    let text = r.text();
    fx.check(r.status == 200, || format!("/scope: {} {text}", r.status));
    let port = fx.port;
    check_lines(
        fx,
        "/scope",
        &text,
        &[
            "type=http".into(),
            "asgi.version=3.0".into(),
            "asgi.spec_version=2.3".into(),
            "http_version=1.1".into(),
            "method=POST".into(),
            "scheme=http".into(),
            "path=/scope".into(),
            "raw_path=b'/scope'".into(),
            "query_string=b'q=1&x=%20y'".into(),
            "root_path=".into(),
            "x-test=b'yes'".into(),
            "content-type=b'application/x-www-form-urlencoded'".into(),
            "content-length=b'3'".into(),
            format!("host=b'127.0.0.1:{port}'"),
            "first_header=b'host'".into(),
            "headers_are_bytes=True".into(),
            "client_host=127.0.0.1".into(),
            "client_port_is_int=True".into(),
            format!("server=('localhost', {port})"),
            format!("state.started={pid}"),
            "body=b'abc'".into(),
        ],
    );
    // A percent-encoded UTF-8 path: `path` decoded, `raw_path` as sent; no such route: 404.
    let r = fx.get("/sc%C3%B6pe");
    fx.check(
        r.status == 404 && r.text() == "no route /sc\u{f6}pe\n",
        || format!("/sc%C3%B6pe: {} {}", r.status, show(&r.body)),
    );
    // HEAD: the head only, with the Content-Length of the body it would have had.
    let r = fx.curl(&["-I"], "/hello");
    fx.check(
        r.status == 200 && r.header("Content-Length").as_deref() == Some("14"),
        || format!("HEAD /hello: {} {}", r.status, r.headers),
    );

    // A POST body echoed (binary, several blocks).
    let echo = fx.path("echo.bin");
    fs::write(&echo, common::body(300_000, 5)).expect("write the body");
    let r = fx.curl(&["--data-binary", &format!("@{}", echo.display())], "/echo");
    fx.check(
        r.status == 200 && r.body == fs::read(&echo).expect("read the body"),
        || format!("/echo: {} {} bytes", r.status, r.body.len()),
    );

    // 20 MiB upload, read block by block in receive(), checked by SHA-256.
    let file = fx.path("upload.bin");
    fs::write(&file, common::body(UPLOAD, 0x20_0b0d)).expect("write the upload");
    let want = sha256_file(&file);
    let r = fx.curl(
        &["--data-binary", &format!("@{}", file.display())],
        "/upload",
    );
    fx.check(r.status == 200, || {
        format!("upload: {} {}", r.status, show(&r.body))
    });
    check_lines(
        fx,
        "/upload",
        &r.text(),
        &[
            format!("size={UPLOAD}"),
            format!("sha256={want}"),
            "chunks_over_one=True".into(),
        ],
    );

    // An exception before http.response.start: the server's 500, the traceback logged.
    let r = fx.get("/error");
    fx.check(
        r.status == 500 && r.text() == "Internal Server Error\n",
        || format!("/error: {} {}", r.status, show(&r.body)),
    );
    w.wait_log("ValueError: deliberate error before http.response.start");
    // An application that returns without a response: 500.
    let r = fx.get("/noresponse");
    fx.check(r.status == 500, || {
        format!("/noresponse: {} {}", r.status, show(&r.body))
    });
    w.wait_log("GET /noresponse: the application returned without a response");
    // An exception after the first body block: logged, and the response ends where it was
    // (the loop face ends a request only with END_REQUEST: nginx sees a short, well-formed
    // response).
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
    let body = http::dechunk(&raw).unwrap_or_default();
    fx.check(body == vec![b'x'; 100_000], || {
        format!("/late: {} bytes of body: {:?}", body.len(), show(&raw))
    });
    w.wait_log("KeyError: 'deliberate error after the head was sent'");

    let r = fx.get("/hello");
    fx.check(r.status == 200 && r.text() == "Hello, World!\n", || {
        format!("/hello at the end: {} {}", r.status, show(&r.body))
    });
    // One thread in the process, whatever it served.
    fx.check(threads_of(pid) == Some(1), || {
        format!("the server has {:?} threads, want 1", threads_of(pid))
    });
    fx.check_error_log(&[]);
    finish_plain(w);
}

#[test]
fn root_path_and_a_path_split_by_the_web_server() {
    let Some(py) = plain_python() else { return };
    // nginx's /env-https location passes HTTPS=on and PATH_INFO=/env itself.
    let w = Wsgi::start_asgi(&py, PLAIN, Bind::Tcp, 256);
    let r = w.fx.get("/env-https");
    let want: Vec<String> = ["scheme=https", "path=/env", "root_path=/env-https"]
        .map(String::from)
        .into();
    check_lines(&w.fx, "/env-https", &r.text(), &want);
    finish_plain(w);
    // --root-path: the mount point leaves `path` and goes to `root_path`.
    let w = Wsgi::start_with(
        &py,
        PLAIN,
        Bind::Tcp,
        server::Options {
            args: ["--asgi", "--root-path", "/mnt"].map(String::from).into(),
            apps: "tests/python_asgi/apps",
            tag: "pyasgi-root-path".into(),
            nginx_worker_connections: 256,
        },
    );
    let r = w.fx.get("/mnt/scope?x=1");
    let want: Vec<String> = [
        "path=/scope",
        "root_path=/mnt",
        "raw_path=b'/mnt/scope'",
        "query_string=b'x=1'",
    ]
    .map(String::from)
    .into();
    check_lines(&w.fx, "/mnt/scope", &r.text(), &want);
    finish_plain(w);
}

#[test]
fn plain_app_streamed_response_arrives_while_produced() {
    let Some(py) = plain_python() else { return };
    let w = Wsgi::start_asgi(&py, PLAIN, Bind::Tcp, 256);
    check_streamed_while_produced(&w, "/stream");
    // Twice: the request object the first one gave back serves again.
    check_streamed_while_produced(&w, "/stream");
    finish_plain(w);
}

#[test]
fn sigterm_waits_for_requests_in_flight_then_lifespan_shutdown() {
    let Some(py) = plain_python() else { return };
    let mut w = Wsgi::start_asgi(&py, PLAIN, Bind::Tcp, 256);
    let gate = w.fx.path("gate");
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let path = format!("/slow?i={i}&gate={}", gate.display());
            w.fx.curl_spawn(&[], &path)
        })
        .collect();
    let all_in = wait_for(|| stat(&w.fx, "in_flight") == 3);
    w.fx.check(all_in, || {
        "the three /slow requests were never in the application at once".to_string()
    });
    let pid = w.fx.pid(server::SERVER);
    // SAFETY: kill(2) on the pid of a child this fixture started and has not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    w.wait_log("shutdown requested: stopping after the requests in progress (3)");
    w.check_alive();
    fs::write(&gate, b"").expect("open the gate");
    for (i, call) in calls.into_iter().enumerate() {
        let r = w.fx.curl_wait(call);
        w.fx.check(
            r.status == 200 && r.text() == format!("slow {i} done\n"),
            || format!("/slow {i} after SIGTERM: {} {}", r.status, show(&r.body)),
        );
    }
    let st = w.fx.wait_exit(server::SERVER);
    w.fx.check(st.success(), || {
        format!("exit status {st} after SIGTERM, want 0")
    });
    // The lifespan shutdown ran after the last request.
    let shutdown = fs::read_to_string(w.fx.path("lifespan-shutdown")).unwrap_or_default();
    w.fx.check(shutdown == "shutdown after 3 slow requests\n", || {
        format!("lifespan shutdown's file: {shutdown:?}")
    });
    let log = w.log();
    let order = [
        "app: lifespan: startup",
        "shutdown requested",
        "app: lifespan: shutdown",
    ]
    .map(|n| log.find(n));
    w.fx.check(
        order.iter().all(Option::is_some) && order.windows(2).all(|p| p[0] < p[1]),
        || format!("startup, SIGTERM, shutdown out of order in the log:\n{log}"),
    );
}

#[test]
fn lifespan_failure_exits_1_and_an_app_without_lifespan_is_served() {
    let Some(py) = plain_python() else { return };
    // lifespan.startup.failed: exit status 1 with the application's message.
    let mut fx = support::Fixture::new("pyasgi-lifespan");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let pythonpath = format!(
        "{}:{}",
        root.join("bindings/python").display(),
        root.join("tests/python_asgi/apps").display()
    );
    let run = |fx: &mut support::Fixture, name: &str, args: &[&str]| {
        let port = common::free_port();
        let mut cmd = Command::new(&py);
        cmd.args(["-m", "fcgi_runtime"])
            .args(args)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .current_dir(&fx.dir)
            .env("PYTHONPATH", &pythonpath)
            .env("FCGI_RUNTIME_LIB", common::lib_dir().join("libfcgi.so"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null());
        fx.spawn(name, &mut cmd);
        fx.wait_exit(name)
    };
    let st = run(&mut fx, "failing", &["--asgi", "plain_asgi:failing"]);
    let err = fx.stderr_of("failing");
    fx.check(st.code() == Some(1), || {
        format!("exit status {st} after lifespan.startup.failed, want 1:\n{err}")
    });
    fx.check(
        err.contains("lifespan startup failed: deliberate startup failure"),
        || format!("the startup failure's message was not logged:\n{err}"),
    );
    // --threads is WSGI's: refused with --asgi (argparse's usage error).
    let st = run(
        &mut fx,
        "threads",
        &["--asgi", "plain_asgi:hello", "--threads", "4"],
    );
    let err = fx.stderr_of("threads");
    fx.check(
        st.code() == Some(2) && err.contains("--threads is for WSGI"),
        || format!("--asgi --threads 4: exit {st}:\n{err}"),
    );
    drop(fx);

    // An application that raises on the lifespan scope: served without lifespan, said once.
    let w = Wsgi::start_asgi(&py, "plain_asgi:strict", Bind::Tcp, 256);
    for _ in 0..3 {
        let r = w.fx.get("/hello");
        w.fx.check(r.status == 200 && r.text() == "Hello, World!\n", || {
            format!("strict /hello: {} {}", r.status, show(&r.body))
        });
    }
    let log = w.log();
    w.fx.check(
        log.matches("lifespan unsupported by the application (AssertionError")
            .count()
            == 1,
        || format!("the missing lifespan was not logged exactly once:\n{log}"),
    );
    // (check_validator_clean would see that AssertionError: the end is checked by hand.)
    let mut w = w;
    w.check_alive();
    let st = w.signal_and_wait(libc::SIGTERM);
    w.fx.check(st.success(), || {
        format!("exit status {st} after SIGTERM, want 0")
    });
}

#[test]
fn request_body_reaches_receive_while_the_client_sends_it() {
    let Some(py) = plain_python() else { return };
    let w = Wsgi::start_asgi(&py, PLAIN, Bind::Tcp, 256);
    let fx = &w.fx;
    const LEN: usize = 8 * 1024 * 1024;
    let body = common::body(LEN, 0x9e3779b9);
    let mut conn = http::connect(fx.port).expect("connect to nginx");
    let head = [format!("Content-Length: {LEN}")];
    // Under /progress nginx forwards the body as it arrives (fastcgi_request_buffering off).
    http::send_head(&mut conn, "POST", "/progress", &head).expect("send the head");
    // Half the body; the application must have read 1 MiB of it (receive() waking as input
    // arrives) before the rest is sent.
    std::io::Write::write_all(conn.get_mut(), &body[..LEN / 2]).expect("send the first half");
    w.wait_log("app: progress: read 1 MiB of the body");
    std::io::Write::write_all(conn.get_mut(), &body[LEN / 2..]).expect("send the second half");
    let r = http::read_response(&mut conn, false).expect("the response");
    let f = fx.path("progress.bin");
    fs::write(&f, &body).expect("write the body");
    let want = format!("size={LEN}\nsha256={}\n", sha256_file(&f));
    fx.check(r.status == 200 && r.text() == want, || {
        format!("/progress: {} {:?}, want {want:?}", r.status, r.text())
    });
    finish_plain(w);
}

#[test]
fn served_on_a_unix_socket_and_on_fd_0_from_spawn_fcgi() {
    let Some(py) = plain_python() else { return };
    for (bind, logged) in [
        (Bind::Unix, "wsgi.sock, one thread"),
        (Bind::Fd0, "fd 0, one thread"),
    ] {
        let w = Wsgi::start_asgi(&py, PLAIN, bind, 256);
        let r = w.fx.get("/hello");
        w.fx.check(r.status == 200 && r.text() == "Hello, World!\n", || {
            format!("{bind:?}: /hello: {} {}", r.status, show(&r.body))
        });
        w.wait_log(logged);
        finish_plain(w);
    }
}

#[test]
fn thousand_slow_requests_at_once_on_one_thread() {
    let Some(py) = plain_python() else { return };
    let limit = raise_nofile();
    if limit < 4 * SLOW as libc::rlim_t {
        let reason = format!("RLIMIT_NOFILE hard limit {limit} is below {}", 4 * SLOW);
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}");
        }
        eprintln!("SKIPPED: {reason}");
        return;
    }
    // nginx holds each client connection and its upstream connection: 2,000 and some.
    let w = Wsgi::start_asgi(&py, PLAIN, Bind::Tcp, 4 * SLOW as u32);
    let fx = &w.fx;
    let pid = fx.pid(server::SERVER);
    // Every request written first, on its own connection; then the responses are read.
    let mut conns: Vec<BufReader<TcpStream>> = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let mut c = http::connect(fx.port)
            .unwrap_or_else(|e| fx.fail(&format!("connection {i} to nginx: {e}")));
        http::send_head(&mut c, "GET", &format!("/slow?i={i}"), &[])
            .unwrap_or_else(|e| fx.fail(&format!("request {i}: {e}")));
        conns.push(c);
    }
    // All of them in the application at once (each awaits asyncio.sleep(1), then /release).
    let mut seen = 0;
    let all_in = wait_for(|| {
        seen = stat(fx, "in_flight");
        seen == SLOW as i64
    });
    fx.check(all_in, || {
        format!("{seen} of {SLOW} slow requests were in the application at once")
    });
    fx.check(threads_of(pid) == Some(1), || {
        format!(
            "the server has {:?} threads while serving {SLOW} requests, want 1",
            threads_of(pid)
        )
    });
    let r = fx.get("/release");
    fx.check(r.status == 200, || format!("/release: {}", r.status));
    for (i, c) in conns.iter_mut().enumerate() {
        let r = http::read_response(c, false)
            .unwrap_or_else(|e| fx.fail(&format!("response {i}: {e}")));
        fx.check(
            r.status == 200 && r.text() == format!("slow {i} done\n"),
            || format!("response {i}: {} {:?}", r.status, r.text()),
        );
    }
    drop(conns);
    fx.check(stat(fx, "max_in_flight") == SLOW as i64, || {
        format!("max_in_flight is not {SLOW}: {}", stats(fx))
    });
    fx.check(stat(fx, "slow_served") == SLOW as i64, || {
        format!("slow_served is not {SLOW}: {}", stats(fx))
    });
    fx.check(threads_of(pid) == Some(1), || {
        format!("the server has {:?} threads, want 1", threads_of(pid))
    });
    fx.check_error_log(&[]);
    finish_plain(w);
}

#[test]
fn client_disconnect_is_http_disconnect_and_send_raises() {
    let Some(py) = plain_python() else { return };
    let w = Wsgi::start_asgi(&py, PLAIN, Bind::Tcp, 256);
    let fx = &w.fx;
    for round in 1..=2 {
        let mut conn = http::connect(fx.port).expect("connect to nginx");
        http::send_head(
            &mut conn,
            "POST",
            "/abort/wait",
            &["Content-Length: 5".to_string()],
        )
        .expect("send the head");
        std::io::Write::write_all(conn.get_mut(), b"hello").expect("send the body");
        // The application has its body and waits in receive().
        let waiting = wait_for(|| {
            w.log()
                .matches("abort-wait: read 5 bytes, waiting in receive()")
                .count()
                >= round
        });
        fx.check(waiting, || {
            format!("round {round}: the application never waited in receive()")
        });
        fx.check(stat(fx, "disconnects") == round as i64 - 1, || {
            format!("round {round}: a disconnect before the client went")
        });
        drop(conn);
        let seen = wait_for(|| {
            w.log()
                .matches("abort-wait: receive() said http.disconnect")
                .count()
                >= round
        });
        fx.check(seen, || {
            format!(
                "round {round}: the application did not see http.disconnect; log:\n{}",
                w.log()
            )
        });
        let raised = wait_for(|| {
            w.log()
                .matches("abort-wait: send after disconnect: OSError:ClientDisconnected")
                .count()
                >= round
        });
        fx.check(raised, || {
            format!(
                "round {round}: send() after the disconnect did not raise OSError; log:\n{}",
                w.log()
            )
        });
        fx.check(stat(fx, "disconnects") == round as i64, || {
            format!("round {round}: disconnects: {}", stats(fx))
        });
        let r = fx.get("/hello");
        fx.check(r.status == 200 && r.text() == "Hello, World!\n", || {
            format!("round {round}: /hello after the disconnect: {}", r.status)
        });
    }
    finish_plain(w);
}

#[test]
fn large_streamed_response_read_slowly_arrives_whole() {
    let Some(py) = plain_python() else { return };
    let w = Wsgi::start_asgi(&py, PLAIN, Bind::Tcp, 256);
    let fx = &w.fx;
    // 1 MiB blocks (fcgi_loop_write's room check), then 1 KiB blocks (each below the output
    // buffer, pushed out by fcgi_loop_flush, whose room check must hold the application too).
    for chunk in [1usize << 20, 1024] {
        let total = BIG_MIB << 20;
        let mut conn = http::connect(fx.port).expect("connect to nginx");
        // Under /stream: nginx's fastcgi_buffering is off there, so it reads the upstream only
        // as fast as the client reads it.
        http::send_head(
            &mut conn,
            "GET",
            &format!("/stream/big?mb={BIG_MIB}&chunk={chunk}"),
            &["Connection: close".to_string()],
        )
        .expect("send");
        let (status, headers) = http::read_head(&mut conn).expect("response head");
        fx.check(status == 200, || format!("/stream/big: status {status}"));
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.clone());
        fx.check(length == Some(total.to_string()), || {
            format!("/stream/big: headers {headers:?}")
        });
        let mut got = 0usize;
        let mut buf = vec![0u8; 256 * 1024];
        let check_block = |data: &[u8], at: usize| -> Option<usize> {
            data.iter()
                .enumerate()
                .find(|(k, &b)| b != b'a' + ((at + k) % 26) as u8)
                .map(|(k, _)| at + k)
        };
        // The first MiB, then the client stops reading: the application must end up waiting in
        // send() (back-pressure) far from the end, and stay there while the client reads nothing.
        while got < (1 << 20) {
            let n = conn.read(&mut buf).expect("read the response");
            fx.check(n > 0, || format!("/stream/big ended after {got} bytes"));
            if let Some(bad) = check_block(&buf[..n], got) {
                fx.fail(&format!("/stream/big: wrong byte at {bad}"));
            }
            got += n;
        }
        let mut last = -1;
        let mut still = 0;
        let held = wait_for(|| {
            let s = stats(fx);
            let sent = s["big_sent"].as_i64().unwrap_or(-1);
            let in_send = s["big_in_send"].as_bool().unwrap_or(false);
            still = if in_send && sent == last {
                still + 1
            } else {
                0
            };
            last = sent;
            still >= 10
        });
        fx.check(held && (last as usize) < total / 2, || {
            format!(
                "the application was not held in send() while the client did not read \
                 (sent {last} of {total} bytes)"
            )
        });
        // Then read the rest, slowly: a short pause after each MiB.
        let mut next_pause = got + (1 << 20);
        while got < total {
            let want = buf.len().min(total - got);
            let n = conn.read(&mut buf[..want]).expect("read the response");
            fx.check(n > 0, || {
                format!("/stream/big ended after {got} of {total} bytes")
            });
            if let Some(bad) = check_block(&buf[..n], got) {
                fx.fail(&format!("/stream/big: wrong byte at {bad}"));
            }
            got += n;
            if got >= next_pause {
                next_pause += 1 << 20;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
        fx.check(rest.is_empty(), || {
            format!("{} bytes after the promised {total}", rest.len())
        });
        let done = wait_for(|| stat(fx, "big_done") == 1);
        fx.check(done, || {
            "the application never finished sending".to_string()
        });
    }
    fx.check_error_log(&[]);
    finish_plain(w);
}

#[test]
fn starlette_routing_json_streaming_404_and_500() {
    let Some(py) = starlette_python() else { return };
    let w = Wsgi::start_asgi(&py, STARLETTE, Bind::Tcp, 256);
    let fx = &w.fx;

    let r = fx.get("/");
    fx.check(r.status == 200 && r.text() == "index page\n", || {
        format!("GET /: {} {}", r.status, show(&r.body))
    });
    let r = fx.get("/users/alice/42?q=x");
    let want = r#"{"name":"alice","id":42,"q":"x","path":"/users/alice/42"}"#;
    fx.check(
        r.status == 200
            && r.text() == want
            && r.header("Content-Type").as_deref() == Some("application/json"),
        || {
            format!(
                "GET /users/alice/42: {} {} {}",
                r.status,
                r.headers,
                show(&r.body)
            )
        },
    );
    // The path converter refuses a non-integer id: no route, 404.
    let r = fx.get("/users/alice/forty-two");
    fx.check(r.status == 404, || {
        format!("GET /users/alice/forty-two: {}", r.status)
    });
    let r = fx.get("/no/such/route");
    fx.check(r.status == 404, || {
        format!("GET /no/such/route: {}", r.status)
    });
    // A JSON POST.
    let r = fx.curl(
        &[
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"numbers": [1, 2, 3.5]}"#,
        ],
        "/items",
    );
    fx.check(
        r.status == 201 && r.text() == r#"{"count":3,"sum":6.5}"#,
        || format!("POST /items: {} {}", r.status, show(&r.body)),
    );
    // GET on a POST-only route: 405.
    let r = fx.get("/items");
    fx.check(r.status == 405, || format!("GET /items: {}", r.status));
    // What the lifespan context yielded, in request.state.
    let r = fx.get("/state");
    fx.check(
        r.status == 200 && r.text() == "hello from the lifespan\n",
        || format!("GET /state: {} {}", r.status, show(&r.body)),
    );
    // StreamingResponse, sent as produced.
    check_streamed_while_produced(&w, "/stream");
    // An endpoint that raises: Starlette's 500; the traceback in the server's log.
    let r = fx.get("/boom");
    fx.check(r.status == 500, || {
        format!("GET /boom: {} {}", r.status, show(&r.body))
    });
    w.wait_log("RuntimeError: boom from a Starlette endpoint");
    let r = fx.get("/");
    fx.check(r.status == 200, || {
        format!("GET / after /boom: {}", r.status)
    });
    w.finish();
}

/// Not a verdict: requests per second of the ASGI hello (`plain_asgi:hello`, one thread) with
/// fcgi-bench on the socket directly, at 1, 64 and 1,000 connections, and of the WSGI hello
/// (`plain_app:bare`, one thread) in the same run; medians of 3 runs of 5 s. Run with
/// `cargo test --release --test python_asgi -- --ignored --nocapture throughput_one_thread`.
#[test]
#[ignore]
fn throughput_one_thread() {
    let Some(py) = plain_python() else { return };
    raise_nofile();
    let bench = &common::tool("fcgi-bench");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rate = |addr: &str, conns: &str| -> f64 {
        let out = Command::new(bench)
            .args([
                "-c", conns, "-d", "5", "--warmup", "1", "--expect", "Hello", "--json", addr,
            ])
            .arg("/hello")
            .stdin(Stdio::null())
            .output()
            .expect("run fcgi-bench");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "fcgi-bench -c {conns}: not JSON ({e}): {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(out.status.success(), "fcgi-bench -c {conns} failed: {v}");
        v["requests_per_s"]
            .as_f64()
            .unwrap_or_else(|| panic!("no requests_per_s in {v}"))
    };
    let servers: [(&str, &[&str], &str); 2] = [
        (
            "ASGI, plain_asgi:hello",
            &["--asgi", "plain_asgi:hello"],
            "tests/python_asgi/apps",
        ),
        (
            "WSGI, plain_app:bare, --threads 1",
            &["plain_app:bare", "--threads", "1"],
            "tests/python_wsgi/apps",
        ),
    ];
    for (label, args, apps) in servers {
        let port = common::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(&py)
            .args(["-m", "fcgi_runtime"])
            .args(args)
            .args(["--bind", &addr, "--backlog", "2048"])
            .env(
                "PYTHONPATH",
                format!(
                    "{}:{}",
                    root.join("bindings/python").display(),
                    root.join(apps).display()
                ),
            )
            .env("FCGI_RUNTIME_LIB", common::lib_dir().join("libfcgi.so"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the python server");
        assert!(
            wait_for(|| support::tcp_ready(port)),
            "python server not ready"
        );
        for conns in ["1", "64", "1000"] {
            let mut runs: Vec<f64> = (0..3).map(|_| rate(&addr, conns)).collect();
            runs.sort_by(|a, b| a.partial_cmp(b).expect("a number"));
            println!(
                "== {label}: fcgi-bench -c {conns} -d 5 --warmup 1: median {:.0} req/s \
                 (runs {:.0?})",
                runs[1], runs
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
