//! The ASGI 3 server of `bindings/python` (`python3 -m fcgi_runtime --asgi module:app`: one
//! asyncio loop in one thread, over the library's non-blocking face `fcgi_loop_*`), as a real
//! process behind nginx, with the applications of `tests/languages/python_asgi/apps`: plain ASGI
//! callables (no framework), a Starlette application and a FastAPI one.
//!
//! The framework tests run on current Starlette and FastAPI from PyPI, in the virtual
//! environment `make py-venv` creates (target/py-venv, from
//! bindings/python/requirements-dev.txt; `make test` creates it first): Debian's
//! python3-starlette (0.26) is no longer the reference, because it reads `path` and
//! `root_path` the older way (`path` without `root_path`), where the ASGI spec's 2023
//! clarification, Starlette >= 0.33 and uvicorn have `path` include `root_path`.
//!
//! Skipped, with the reason printed, when no python3 (or no target/py-venv with Starlette and
//! FastAPI, for the framework tests) is found, except under `CI=true`, where a missing one
//! fails.
//!
//! Nothing is decided by a sleep: streaming, concurrency, back-pressure and disconnects are
//! proved with gate files, the application's own counters (its `/stats` route) and its log,
//! read with bounded polls.
//!
//! `throughput_one_thread` (ignored: a measurement, not a verdict) runs fcgi-bench against the
//! ASGI hello and the WSGI hello on one thread; see `bindings/python/README.md`.

use crate::harness;
use crate::harness::http;
use crate::harness::{sha256_file, show, tcp_ready};
use crate::python_wsgi::server;
use crate::python_wsgi::server::{
    check_streamed_while_produced, python, wait_for, Bind, PythonEnv, Wsgi,
};
use std::fs;
use std::io::{BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const PLAIN: &str = "plain_asgi:application";
const STARLETTE: &str = "starlette_app:app";
const FASTAPI: &str = "fastapi_app:app";
/// 20 MiB, the issue's upload.
const UPLOAD: usize = 20 * 1024 * 1024;
/// The concurrent slow requests of `thousand_slow_requests_at_once_on_one_thread`.
const SLOW: usize = 1000;
/// The streamed response read slowly, in MiB.
const BIG_MIB: usize = 64;

fn plain_python() -> Option<String> {
    python(&["asyncio", "hashlib", "json"])
}

/// The interpreter of target/py-venv (`make py-venv`: current Starlette and FastAPI from PyPI)
/// if it imports `modules`; `FCGI_TEST_PYTHON` replaces it when set. None, with the reason
/// printed, when missing; under `CI=true` a panic (`make test` creates the venv before
/// `cargo test`).
pub fn venv_python(modules: &[&str]) -> Option<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exe = match std::env::var("FCGI_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => root.join("target/py-venv/bin/python").display().to_string(),
    };
    let mut code: Vec<String> = modules.iter().map(|m| format!("import {m}")).collect();
    code.push("print('ok')".into());
    let ok = Command::new(&exe)
        .args(["-c", &code.join("; ")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"ok"));
    if ok {
        return Some(exe);
    }
    let reason = format!("{exe} does not import {modules:?} (run `make py-venv`)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}; `make test` creates it, so this fails instead of skipping");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

fn starlette_python() -> Option<String> {
    venv_python(&["starlette", "anyio"])
}

fn fastapi_python() -> Option<String> {
    venv_python(&["fastapi", "starlette"])
}

/// Starts `PY -m fcgi_runtime SPEC ARGS --bind 127.0.0.1:PORT` (the applications of `apps`,
/// relative to the repository, on PYTHONPATH; the fixture's directory as the current one,
/// where `prepare` may write files first), then nginx with `locations` (`@PARAMS@` is the
/// fixture's fastcgi_params; the upstream is `wsgi`). Returns the server's port too.
pub fn start_behind_nginx(
    py: &str,
    spec: &str,
    args: &[&str],
    apps: &str,
    locations: &str,
    tag: &str,
    prepare: impl FnOnce(&harness::Fixture),
) -> (Wsgi, u16) {
    let mut fx = harness::Fixture::new(tag);
    prepare(&fx);
    let dir = fx.dir.clone();
    let port = fx.start_on_free_port(
        server::SERVER,
        "Address already in use",
        |port| {
            let mut cmd = Command::new(py);
            cmd.args(["-m", "fcgi_runtime", spec])
                .args(args)
                .args(["--bind", &format!("127.0.0.1:{port}")])
                .current_dir(&dir)
                .python_env(&[Path::new(apps)])
                .env_remove("FCGI_RUNTIME_LOG_LEVEL");
            cmd
        },
        |_, port| tcp_ready(port),
    );
    let pid = fx.pid(server::SERVER);
    fx.check(harness::runs_project_lib(pid), || {
        format!("the server (pid {pid}) does not run on the project's library")
    });
    let upstreams = format!(
        "    upstream wsgi {{\n        server 127.0.0.1:{port};\n        keepalive 8;\n    }}\n"
    );
    fx.start_nginx(&upstreams, locations);
    (Wsgi { fx }, port)
}

/// The application's counters (its `/stats` route, JSON).
fn stats(fx: &harness::Fixture) -> serde_json::Value {
    let r = fx.get("/stats");
    fx.check(r.status == 200, || {
        format!("/stats: {} {}", r.status, show(&r.body))
    });
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| fx.fail(&format!("/stats is not JSON ({e}): {}", show(&r.body))))
}

fn stat(fx: &harness::Fixture, name: &str) -> i64 {
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

fn check_lines(fx: &harness::Fixture, what: &str, text: &str, lines: &[String]) {
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
    fs::write(&echo, harness::body(300_000, 5)).expect("write the body");
    let r = fx.curl(&["--data-binary", &format!("@{}", echo.display())], "/echo");
    fx.check(
        r.status == 200 && r.body == fs::read(&echo).expect("read the body"),
        || format!("/echo: {} {} bytes", r.status, r.body.len()),
    );

    // 20 MiB upload, read block by block in receive(), checked by SHA-256.
    let file = fx.path("upload.bin");
    fs::write(&file, harness::body(UPLOAD, 0x20_0b0d)).expect("write the upload");
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

/// nginx's locations of the path tests: `/mnt/` passes the path as it is (nginx's default:
/// no PATH_INFO, SCRIPT_NAME the whole path); `/strip/` strips its prefix (a rewrite: SCRIPT_NAME
/// and DOCUMENT_URI without it, REQUEST_URI with it); `/split/` splits the path itself
/// (fastcgi_split_path_info: SCRIPT_NAME `/split`, PATH_INFO the rest); `/` as it is.
const PATH_LOCATIONS: &str = r#"
        location /mnt/ {
            @PARAMS@
            fastcgi_pass wsgi;
            fastcgi_keep_conn on;
        }
        location /strip/ {
            rewrite ^/strip(/.*)$ $1 break;
            @PARAMS@
            fastcgi_pass wsgi;
            fastcgi_keep_conn on;
        }
        location /split/ {
            fastcgi_split_path_info ^(/split)(/.*)$;
            @PARAMS@
            fastcgi_param PATH_INFO $fastcgi_path_info;
            fastcgi_pass wsgi;
            fastcgi_keep_conn on;
        }
        location / {
            @PARAMS@
            fastcgi_pass wsgi;
            fastcgi_keep_conn on;
        }"#;

/// `path` includes `root_path` (the ASGI spec since 2023, uvicorn, Starlette >= 0.33), and
/// `raw_path` is the whole path as received: at the root, with a path nginx split, with
/// `--root-path` and nginx passing the path as it is, and with `--root-path` and nginx
/// stripping the prefix (put back, as uvicorn's `--root-path` does behind a stripping proxy).
#[test]
fn root_path_and_a_path_split_by_the_web_server() {
    let Some(py) = plain_python() else { return };
    let w = Wsgi::start_asgi(&py, PLAIN, Bind::Tcp, 256);
    // nginx's own PATH_INFO (`/env-https` sends PATH_INFO=/env, SCRIPT_NAME=/env-https).
    let r = w.fx.get("/env-https");
    let want: Vec<String> = [
        "scheme=https",
        "path=/env-https/env",
        "root_path=/env-https",
    ]
    .map(String::from)
    .into();
    check_lines(&w.fx, "/env-https", &r.text(), &want);
    finish_plain(w);

    let (w, _) = start_behind_nginx(
        &py,
        PLAIN,
        &["--asgi"],
        "tests/languages/python_asgi/apps",
        PATH_LOCATIONS,
        "pyasgi-paths",
        |_| {},
    );
    let cases: [(&str, &[&str]); 2] = [
        (
            "/scope?x=1",
            &[
                "path=/scope",
                "root_path=",
                "raw_path=b'/scope'",
                "query_string=b'x=1'",
            ],
        ),
        (
            "/split/scope?x=1",
            &[
                "path=/split/scope",
                "root_path=/split",
                "raw_path=b'/split/scope'",
                "query_string=b'x=1'",
            ],
        ),
    ];
    check_path_cases(&w, &cases);
    // A route the application does not have: its 404 names the path below the mount point,
    // decoded.
    let r = w.fx.get("/split/sc%C3%B6pe");
    w.fx.check(
        r.status == 404 && r.text() == "no route /sc\u{f6}pe\n",
        || format!("/split/sc%C3%B6pe: {} {}", r.status, show(&r.body)),
    );
    finish_plain(w);

    let (w, _) = start_behind_nginx(
        &py,
        PLAIN,
        &["--asgi", "--root-path", "/mnt"],
        "tests/languages/python_asgi/apps",
        PATH_LOCATIONS,
        "pyasgi-root-path",
        |_| {},
    );
    let cases: [(&str, &[&str]); 2] = [
        (
            "/mnt/scope?x=1",
            &[
                "path=/mnt/scope",
                "root_path=/mnt",
                "raw_path=b'/mnt/scope'",
                "query_string=b'x=1'",
            ],
        ),
        // Not under the mount point: the prefix is put in front, in `raw_path` too.
        (
            "/scope",
            &[
                "path=/mnt/scope",
                "root_path=/mnt",
                "raw_path=b'/mnt/scope'",
            ],
        ),
    ];
    check_path_cases(&w, &cases);
    finish_plain(w);

    // nginx strips the prefix (`/strip/` rewrites): SCRIPT_NAME and DOCUMENT_URI lack it,
    // REQUEST_URI has it.
    let (w, _) = start_behind_nginx(
        &py,
        PLAIN,
        &["--asgi", "--root-path", "/strip"],
        "tests/languages/python_asgi/apps",
        PATH_LOCATIONS,
        "pyasgi-root-path-stripped",
        |_| {},
    );
    let cases: [(&str, &[&str]); 1] = [(
        "/strip/scope?x=1",
        &[
            "path=/strip/scope",
            "root_path=/strip",
            "raw_path=b'/strip/scope'",
            "query_string=b'x=1'",
        ],
    )];
    check_path_cases(&w, &cases);
    finish_plain(w);
}

/// GET each path; its `/scope` lines must include the wanted ones.
fn check_path_cases(w: &Wsgi, cases: &[(&str, &[&str])]) {
    for (path, want) in cases {
        let r = w.fx.get(path);
        w.fx.check(r.status == 200, || {
            format!("{path}: {} {}", r.status, show(&r.body))
        });
        let want: Vec<String> = want.iter().map(|l| l.to_string()).collect();
        check_lines(&w.fx, path, &r.text(), &want);
    }
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
    let mut fx = harness::Fixture::new("pyasgi-lifespan");
    let run = |fx: &mut harness::Fixture, name: &str, args: &[&str]| {
        let port = harness::free_port();
        let mut cmd = Command::new(&py);
        cmd.args(["-m", "fcgi_runtime"])
            .args(args)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .current_dir(&fx.dir)
            .python_env(&[Path::new("tests/languages/python_asgi/apps")]);
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
    let body = harness::body(LEN, 0x9e3779b9);
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
    let limit = harness::raise_nofile();
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

/// GET `path` from the FastAPI application; its JSON must equal `want`.
fn check_json(w: &Wsgi, path: &str, want: serde_json::Value) {
    let r = w.fx.get(path);
    w.fx.check(r.status == 200, || {
        format!("{path}: {} {}", r.status, show(&r.body))
    });
    let got: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        w.fx.fail(&format!("{path}: not JSON ({e}): {}", show(&r.body)))
    });
    w.fx.check(got == want, || {
        format!("{path}: got\n{got:#}\nwant\n{want:#}")
    });
}

/// The FastAPI app's item route under `mount` (the application's root path: "" at the root):
/// its scope's `path` and `root_path`, and `url_for` of its routes and of the mounted
/// sub-application's.
fn fastapi_item_under(w: &Wsgi, mount: &str, id: u32) {
    use serde_json::json;
    let base = format!("http://127.0.0.1:{}{mount}", w.fx.port);
    check_json(
        w,
        &format!("{mount}/api/items/{id}"),
        json!({
            "route": format!("item {id}"),
            "path": format!("{mount}/api/items/{id}"),
            "root_path": mount,
            "url": format!("{base}/api/items/{id}"),
            "url_for": {
                "item": format!("{base}/api/items/{}", id + 1),
                "home": format!("{base}/"),
                "sub_hello": format!("{base}/sub/hello"),
            },
        }),
    );
}

/// The FastAPI app's routes under `mount`: the item route, the mounted sub-application (whose
/// root_path gets Starlette's Mount prefix added) and the home route.
fn fastapi_routes_under(w: &Wsgi, mount: &str, id: u32) {
    use serde_json::json;
    fastapi_item_under(w, mount, id);
    let base = format!("http://127.0.0.1:{}{mount}", w.fx.port);
    check_json(
        w,
        &format!("{mount}/sub/hello"),
        json!({
            "route": "sub hello",
            "path": format!("{mount}/sub/hello"),
            // Starlette's Mount adds its own prefix to the sub-application's root_path.
            "root_path": format!("{mount}/sub"),
            "url": format!("{base}/sub/hello"),
            "url_for": {"sub_hello": format!("{base}/sub/hello")},
        }),
    );
    check_json(
        w,
        &format!("{mount}/"),
        json!({
            "route": "home",
            "path": format!("{mount}/"),
            "root_path": mount,
            "url": format!("{base}/"),
            "url_for": {"home": format!("{base}/")},
        }),
    );
}

/// FastAPI from PyPI: an APIRouter included with `prefix="/api"`, a FastAPI sub-application
/// mounted at `/sub`, `request.url_for` of routes of both, the scope's `path` and `root_path`:
/// behind nginx with `--root-path /mnt` (nginx's `location /mnt/` of [`PATH_LOCATIONS`] passes
/// the whole path), then at the root, and under a prefix nginx splits off itself (`/split`).
#[test]
fn fastapi_router_prefix_mount_and_url_for_under_a_root_path() {
    let Some(py) = fastapi_python() else { return };
    let apps = "tests/languages/python_asgi/apps";
    let (w, _) = start_behind_nginx(
        &py,
        FASTAPI,
        &["--asgi", "--root-path", "/mnt"],
        apps,
        PATH_LOCATIONS,
        "pyasgi-fastapi-prefix",
        |_| {},
    );
    fastapi_routes_under(&w, "/mnt", 5);
    // Path validation is FastAPI's: a non-integer id is a 422.
    let r = w.fx.get("/mnt/api/items/five");
    w.fx.check(r.status == 422, || {
        format!("/mnt/api/items/five: {} {}", r.status, show(&r.body))
    });
    let r = w.fx.get("/mnt/no/such/route");
    w.fx.check(r.status == 404, || {
        format!("/mnt/no/such/route: {}", r.status)
    });
    w.fx.check_error_log(&[]);
    w.finish();

    let (w, _) = start_behind_nginx(
        &py,
        FASTAPI,
        &["--asgi"],
        apps,
        PATH_LOCATIONS,
        "pyasgi-fastapi-root",
        |_| {},
    );
    fastapi_routes_under(&w, "", 5);
    // nginx split the path: SCRIPT_NAME `/split` is the mount point.
    fastapi_item_under(&w, "/split", 7);
    w.fx.check_error_log(&[]);
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
    harness::raise_nofile();
    let bench = &harness::tool("fcgi-bench");
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
            "tests/languages/python_asgi/apps",
        ),
        (
            "WSGI, plain_app:bare, --threads 1",
            &["plain_app:bare", "--threads", "1"],
            "tests/languages/python_wsgi/apps",
        ),
    ];
    for (label, args, apps) in servers {
        let port = harness::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(&py)
            .args(["-m", "fcgi_runtime"])
            .args(args)
            .args(["--bind", &addr, "--backlog", "2048"])
            .python_env(&[Path::new(apps)])
            .stderr(Stdio::null())
            .spawn()
            .expect("start the python server");
        assert!(
            wait_for(|| harness::tcp_ready(port)),
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
