//! PHP itself on the runtime: the php-fpm and php-cgi 8.2 of `make php`, relinked on the
//! project's library (`target/php/`, docs/sapi.md section 5), behind nginx (kept upstream
//! connections and one connection per request) and HAProxy 2.6 (`keep-conn` and not).
//!
//! What each front serves, from the scripts of `tests/php/fixture.rs`: a hello naming the SAPI;
//! 20 requests on one client connection; a 3 MiB POST whose SHA-256 PHP computes; a multipart
//! upload of two files and a field; a 5 MiB response checked byte by byte; status codes,
//! repeated headers, a cookie, a redirect and a request header read back with getallheaders();
//! a fatal error (500, its message on FCGI_STDERR in nginx's log). Apart from that:
//! fastcgi_finish_request answering before the script ends, an FPM reload (SIGUSR2) under load
//! from four kept-alive clients with no failed request, php-cgi's PHP_FCGI_MAX_REQUESTS
//! recycling its children, the library's log lines reaching FPM's log through
//! `fcgi_log_glue.o`, and a worker surviving a kept connection reset between requests. Every
//! php-fpm test ends by checking FPM's log: no worker died on a signal or exited with an error
//! (a web server that retries would otherwise hide it).
//!
//! Every process runs with `LD_LIBRARY_PATH` naming the library of this cargo invocation, and
//! each test checks through `/proc/<pid>/maps` that php-fpm or php-cgi mapped it. Without
//! `target/php` the tests are skipped with a message, except under `CI=true`, where they fail
//! (`make test` runs `make php` first). nginx and HAProxy are required, as in the other tests.
//! Nothing is judged on time: every wait is bounded and only ends a test that already failed.

mod common;
mod support;

#[path = "php/fixture.rs"]
mod fixture;
// Only the client half of the matrix's HTTP helpers is used here.
#[allow(dead_code)]
#[path = "nginx_matrix/http.rs"]
mod http;

use fcgi_runtime_tools::client::{Client, Request};
use fixture::{
    check_fpm_workers, start_cgi, start_fpm, start_haproxy, start_nginx, write_scripts, Php,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::{sha256_file, show, Fixture, Response, START_TIMEOUT};

const BODY: usize = 3 * 1024 * 1024;
const BIG: usize = 5 * 1024 * 1024;
/// The message fatal.php causes, found in nginx's error log (FCGI_STDERR).
const FATAL: &str = "Call to undefined function undefined_function_of_the_php_test()";

/// The fixture with php-fpm (2 workers) behind nginx at `/fpm-keep/` and `/fpm-nokeep/`.
fn fpm_behind_nginx(php: &Php, tag: &str) -> Fixture {
    let mut fx = Fixture::new(tag);
    let www = write_scripts(&fx);
    let port = start_fpm(&mut fx, php, "php-fpm", 2, "");
    start_nginx(&mut fx, &www, &[("fpm", port)]);
    fx
}

/// The fixture with php-cgi (`children` workers, each recycled after `max_requests` requests;
/// 0: never) behind nginx at `/cgi-keep/` and `/cgi-nokeep/`.
fn cgi_behind_nginx(php: &Php, tag: &str, children: u32, max_requests: u32) -> Fixture {
    let mut fx = Fixture::new(tag);
    let www = write_scripts(&fx);
    let port = start_cgi(&mut fx, php, "php-cgi", children, max_requests);
    start_nginx(&mut fx, &www, &[("cgi", port)]);
    fx
}

/// Checks every script of the fixture under `base` (`/fpm-keep`, ...), served by `sapi`.
fn serve_everything(fx: &Fixture, base: &str, sapi: &str, nginx: bool) {
    // hello, then 20 on one client connection (and on one upstream connection with keep-alive).
    let r = fx.get(&format!("{base}/hello.php"));
    let want = format!("Hello from {sapi} pid ");
    fx.check(r.status == 200 && r.text().starts_with(&want), || {
        format!("{base}/hello.php: {} {:?}", r.status, show(&r.body))
    });
    let paths: Vec<String> = (0..20).map(|i| format!("{base}/hello.php?n={i}")).collect();
    for (i, r) in fx.curl_many(&paths).iter().enumerate() {
        fx.check(r.status == 200 && r.text().starts_with(&want), || {
            format!(
                "request {i} of 20 to {base}: {} {:?}",
                r.status,
                show(&r.body)
            )
        });
    }

    // A POST read by PHP from php://input, by its SHA-256.
    let file = fx.path("post.bin");
    fs::write(&file, common::body(BODY, 0x9e37_79b9)).expect("write the POST body");
    let sum = sha256_file(&file);
    let r = fx.curl(
        &[
            "--data-binary",
            &format!("@{}", file.display()),
            "-H",
            "Content-Type: application/octet-stream",
        ],
        &format!("{base}/post.php"),
    );
    let want = format!("len={BODY}\nsha256={sum}\nmethod=POST\n");
    fx.check(r.status == 200 && r.text() == want, || {
        format!(
            "POST {BODY} bytes to {base}: {} {:?}, want {want:?}",
            r.status,
            show(&r.body)
        )
    });

    // A multipart upload: two files and a field, as PHP's $_FILES and $_POST see them.
    let small = fx.path("small.txt");
    fs::write(&small, b"a small file\n").expect("write the small upload");
    let r = fx.curl(
        &[
            "-F",
            &format!("big=@{};filename=big.bin", file.display()),
            "-F",
            &format!("small=@{}", small.display()),
            "-F",
            "field=value 1",
        ],
        &format!("{base}/upload.php"),
    );
    let want = format!(
        "post field=value 1\n\
         file big name=big.bin size={BODY} error=0 sha256={sum}\n\
         file small name=small.txt size=13 error=0 sha256={}\n",
        sha256_file(&small)
    );
    fx.check(r.status == 200 && r.text() == want, || {
        format!(
            "upload to {base}: {} {:?}, want {want:?}",
            r.status,
            show(&r.body)
        )
    });

    // A large response, byte by byte.
    let r = fx.get(&format!("{base}/big.php?bytes={BIG}"));
    let bad = support::alphabet_mismatch(&r.body);
    fx.check(
        r.status == 200 && r.body.len() == BIG && bad.is_none(),
        || {
            format!(
                "{base}/big.php: status {}, {} bytes (want {BIG}), first difference at {bad:?}",
                r.status,
                r.body.len()
            )
        },
    );

    // Status codes, headers, a cookie, a request header, a redirect.
    for code in [200u16, 201, 404, 503] {
        let r = fx.curl(
            &["-H", "X-Req: from curl"],
            &format!("{base}/headers.php?code={code}&v=t{code}"),
        );
        check_headers(
            fx,
            &r,
            code,
            "from curl",
            &format!("{base}/headers.php?code={code}"),
        );
        fx.check(r.header("X-Php-Test") == Some(format!("t{code}")), || {
            format!("code {code}: X-Php-Test missing in\n{}", r.headers)
        });
    }
    let r = fx.get(&format!("{base}/headers.php?location=/elsewhere"));
    check_headers(
        fx,
        &r,
        302,
        "none",
        &format!("{base}/headers.php?location=..."),
    );
    fx.check(
        r.header("Location").as_deref() == Some("/elsewhere"),
        || format!("redirect: no Location: /elsewhere in\n{}", r.headers),
    );

    // A fatal error: 500, and the message on FCGI_STDERR (nginx logs it).
    let r = fx.get(&format!("{base}/fatal.php"));
    fx.check(r.status == 500, || {
        format!(
            "{base}/fatal.php: status {}, want 500: {:?}",
            r.status,
            show(&r.body)
        )
    });
    if nginx {
        fx.check(fx.error_log_has(FATAL), || {
            format!("nginx's error log lacks the fatal error's message {FATAL:?}")
        });
    }
}

/// headers.php's answer: the status, both X-Multi lines, the cookie, X-Req read back (`x_req`,
/// or "none" when the request had none).
fn check_headers(fx: &Fixture, r: &Response, code: u16, x_req: &str, what: &str) {
    let lower = r.headers.to_ascii_lowercase();
    fx.check(r.status == code, || {
        format!("{what}: status {}, want {code}:\n{}", r.status, r.headers)
    });
    fx.check(
        lower.contains("x-multi: one") && lower.contains("x-multi: two"),
        || format!("{what}: want both X-Multi lines in\n{}", r.headers),
    );
    fx.check(
        lower.contains("set-cookie: php_test=cookie%20value"),
        || format!("{what}: no cookie in\n{}", r.headers),
    );
    fx.check(r.text() == format!("x-req={x_req}\n"), || {
        format!("{what}: body {:?}, want x-req={x_req}", r.text())
    });
}

#[test]
fn fpm_behind_nginx_serves_everything_with_and_without_keepalive() {
    let Some(php) = Php::find() else { return };
    let fx = fpm_behind_nginx(&php, "php-fpm-nginx");
    for base in ["/fpm-keep", "/fpm-nokeep"] {
        serve_everything(&fx, base, "fpm-fcgi", true);
    }
    fx.check_error_log(&[FATAL]);
    check_fpm_workers(&fx, "php-fpm");
}

#[test]
fn cgi_behind_nginx_serves_everything_with_and_without_keepalive() {
    let Some(php) = Php::find() else { return };
    let fx = cgi_behind_nginx(&php, "php-cgi-nginx", 2, 0);
    for base in ["/cgi-keep", "/cgi-nokeep"] {
        serve_everything(&fx, base, "cgi-fcgi", true);
    }
    fx.check_error_log(&[FATAL]);
}

#[test]
fn fpm_behind_haproxy_serves_everything_with_and_without_keep_conn() {
    let Some(php) = Php::find() else { return };
    let mut fx = Fixture::new("php-fpm-haproxy");
    let www = write_scripts(&fx);
    let port = start_fpm(&mut fx, &php, "php-fpm", 2, "");
    start_haproxy(&mut fx, &www, port);
    for base in ["/fpm-keep", "/fpm-nokeep"] {
        serve_everything(&fx, base, "fpm-fcgi", false);
    }
    check_fpm_workers(&fx, "php-fpm");
}

/// fastcgi_finish_request: the answer arrives while the script still runs (it waits for a file
/// the test creates only after reading the answer), and the script then goes on to its end.
#[test]
fn fpm_finish_request_answers_before_the_script_ends() {
    let Some(php) = Php::find() else { return };
    let fx = fpm_behind_nginx(&php, "php-fpm-finish");
    for (i, base) in ["/fpm-keep", "/fpm-nokeep", "/fpm-keep"].iter().enumerate() {
        let r = fx.get(&format!("{base}/finish.php?id={i}"));
        fx.check(
            r.status == 200 && r.text() == format!("answered before the end, id {i}\n"),
            || format!("{base}/finish.php: {} {:?}", r.status, show(&r.body)),
        );
        let done = fx.path(&format!("done-{i}"));
        fx.check(!done.exists(), || {
            format!("{base}: the script ended before the test released it")
        });
        fs::write(fx.path(&format!("release-{i}")), b"").expect("write the release file");
        fx.check(wait_file(&done), || {
            format!("{base}: the script never ended")
        });
        let how = fs::read_to_string(&done).unwrap_or_default();
        fx.check(how == "released", || {
            format!("{base}: the script ended with {how:?}, want \"released\"")
        });
    }
    fx.check_error_log(&[]);
    check_fpm_workers(&fx, "php-fpm");
}

/// Waits (bounded) until `path` exists and is not empty.
fn wait_file(path: &Path) -> bool {
    fixture::wait_for(|| fs::metadata(path).is_ok_and(|m| m.len() > 0))
}

/// What the load of the reload test saw.
#[derive(Default)]
struct Load {
    /// Answers by worker pid.
    by_pid: BTreeMap<u32, usize>,
    /// Failed requests: an I/O error, a status other than 200, an unexpected body.
    errors: Vec<String>,
}

/// SIGUSR2 makes FPM's master re-execute itself with the same listening socket and replace
/// every worker. Under load from four kept-alive clients (nginx keeping 8 connections to FPM),
/// no request fails: the requests before the reload were answered by the old workers, those
/// after it by new ones.
#[test]
fn fpm_reload_under_load_fails_no_request() {
    let Some(php) = Php::find() else { return };
    let fx = fpm_behind_nginx(&php, "php-fpm-reload");
    let master = fx.pid("php-fpm");
    let old: BTreeSet<u32> = support::live_children_of(master);
    fx.check(old.len() == 2, || format!("want 2 workers, have {old:?}"));

    let load = Arc::new(Mutex::new(Load::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (load, stop, served, port) = (load.clone(), stop.clone(), served.clone(), fx.port);
            thread::spawn(move || client_loop(c, port, &load, &stop, &served))
        })
        .collect();
    let finish = |fx: &Fixture, why: Option<String>| {
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            let _ = c.join();
        }
        if let Some(why) = why {
            fx.fail(&why);
        }
    };

    // Some load first, then the reload, then load until the new workers have answered.
    if !fixture::wait_for(|| served.load(Ordering::SeqCst) >= 200) {
        finish(&fx, Some("fewer than 200 answers before the reload".into()));
        return;
    }
    // SAFETY: kill(2) to the php-fpm master this fixture started.
    unsafe { libc::kill(master as libc::pid_t, libc::SIGUSR2) };
    let log = fx.path("php-fpm.err");
    let reloaded = fixture::wait_for(|| {
        fs::read_to_string(&log)
            .is_ok_and(|t| t.matches("ready to handle connections").count() >= 2)
    });
    if !reloaded {
        finish(&fx, Some("php-fpm did not reload".into()));
        return;
    }
    let mark = served.load(Ordering::SeqCst);
    let new_ones = || {
        let l = load.lock().unwrap();
        l.by_pid
            .iter()
            .filter(|(p, _)| !old.contains(p))
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    let enough =
        fixture::wait_for(|| served.load(Ordering::SeqCst) >= mark + 200 && new_ones() >= 100);
    finish(&fx, None);

    let l = load.lock().unwrap();
    fx.check(l.errors.is_empty(), || {
        format!(
            "{} of {} requests failed around the reload:\n{}",
            l.errors.len(),
            l.errors.len() + l.by_pid.values().sum::<usize>(),
            l.errors
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    fx.check(enough, || {
        format!(
            "the new workers answered too few requests: by pid {:?}, old {old:?}",
            l.by_pid
        )
    });
    let by_old: usize = old.iter().filter_map(|p| l.by_pid.get(p)).sum();
    fx.check(by_old >= 200, || {
        format!(
            "the old workers answered {by_old}, want at least 200: {:?}",
            l.by_pid
        )
    });
    let now = support::live_children_of(master);
    fx.check(now.len() == 2 && now.is_disjoint(&old), || {
        format!("after the reload, workers {now:?}; before, {old:?}")
    });
    check_fpm_workers(&fx, "php-fpm");
}

/// One client of the reload test: GET /fpm-keep/hello.php on one kept-alive connection to
/// nginx (a new one after an error), until `stop`.
fn client_loop(c: usize, port: u16, load: &Mutex<Load>, stop: &AtomicBool, served: &AtomicUsize) {
    let mut conn = None;
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let path = format!("/fpm-keep/hello.php?client={c}&n={n}");
        let result = match conn.as_mut() {
            Some(conn) => http::get(conn, &path),
            None => http::connect(port).and_then(|mut fresh| {
                let r = http::get(&mut fresh, &path);
                conn = Some(fresh);
                r
            }),
        };
        let mut l = load.lock().unwrap();
        match result {
            Ok(r) if r.status == 200 => {
                let pid = r
                    .text()
                    .strip_prefix("Hello from fpm-fcgi pid ")
                    .and_then(|p| p.trim().parse::<u32>().ok());
                match pid {
                    Some(pid) => {
                        *l.by_pid.entry(pid).or_default() += 1;
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    None => l.errors.push(format!("{path}: body {:?}", r.text())),
                }
            }
            Ok(r) => l
                .errors
                .push(format!("{path}: status {}: {:?}", r.status, r.text())),
            Err(e) => {
                l.errors.push(format!("{path}: {e}"));
                conn = None;
            }
        }
    }
}

/// PHP_FCGI_MAX_REQUESTS=3 with one child: php-cgi's parent replaces the child after every
/// third request (the child ends its last one with fcgi_finish_request(req, 1)), and nginx's
/// requests all succeed, on kept connections and on fresh ones.
///
/// A kept connection nginx picks from its cache while the child that held it exits is closed
/// or reset under the request (stock php-cgi does the same, and worse: its child can reset
/// while nginx still reads the answer). nginx logs "upstream prematurely closed connection" or
/// "recv() failed (104: Connection reset by peer)" "while reading response header from
/// upstream" and, the connection being a cached one, sends the request again on a new
/// connection. Those two lines are allowed for the kept connections (`/cgi-keep/`); a failed
/// request, or any other error line, is not.
#[test]
fn cgi_max_requests_recycles_the_child_without_a_failed_request() {
    let Some(php) = Php::find() else { return };
    let fx = cgi_behind_nginx(&php, "php-cgi-max", 1, 3);
    for base in ["/cgi-keep", "/cgi-nokeep"] {
        let paths: Vec<String> = (0..12).map(|i| format!("{base}/hello.php?n={i}")).collect();
        let mut by_pid: BTreeMap<String, usize> = BTreeMap::new();
        for (i, r) in fx.curl_many(&paths).iter().enumerate() {
            let pid = r
                .text()
                .strip_prefix("Hello from cgi-fcgi pid ")
                .map(|p| p.trim().to_string());
            fx.check(r.status == 200 && pid.is_some(), || {
                format!(
                    "{base}: request {i} of 12: {} {:?}",
                    r.status,
                    show(&r.body)
                )
            });
            *by_pid.entry(pid.unwrap_or_default()).or_default() += 1;
        }
        fx.check(
            by_pid.len() == 4 && by_pid.values().all(|&n| n == 3),
            || format!("{base}: want 4 children with 3 requests each, got {by_pid:?}"),
        );
    }
    const RETRIED: [&str; 2] = [
        "recv() failed (104: Connection reset by peer) while reading response header from upstream",
        "upstream prematurely closed connection while reading response header from upstream",
    ];
    let bad: Vec<String> = fx
        .nginx_errors(&[])
        .into_iter()
        .filter(|l| !(l.contains("GET /cgi-keep/") && RETRIED.iter().any(|r| l.contains(r))))
        .collect();
    fx.check(bad.is_empty(), || {
        format!("nginx logged errors:\n{}", bad.join("\n"))
    });
}

/// The library's log lines reach FPM's log at a level, through fcgi_log_glue.o, which hands
/// FPM's own fcgi_log to fcgi_set_logger: a client refused by listen.allowed_clients shows as
/// `child N said into stderr: "<LEVEL>: Connection disallowed..."`. Without the glue the line
/// would carry the library's default prefix, `fcgi-runtime: `.
#[test]
fn fpm_gets_the_library_log_lines_through_the_glue() {
    let Some(php) = Php::find() else { return };
    let mut fx = Fixture::new("php-fpm-glue");
    let port = start_fpm(
        &mut fx,
        &php,
        "php-fpm",
        1,
        "listen.allowed_clients = 127.0.0.2",
    );
    // A refused client: the worker closes the connection without an answer.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to php-fpm");
    s.set_read_timeout(Some(support::IO_TIMEOUT)).unwrap();
    let _ = std::io::Write::write_all(&mut s, b"not FastCGI");
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut rest);
    fx.check(rest.is_empty(), || {
        format!("a refused client got {} bytes", rest.len())
    });

    let log = fx.path("php-fpm.err");
    let deadline = Instant::now() + START_TIMEOUT;
    let line = loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("Connection disallowed")) {
            break l.to_string();
        }
        if Instant::now() > deadline {
            fx.fail("FPM's log has no \"Connection disallowed\" line");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let said = line
        .split_once("said into stderr: \"")
        .map(|(_, s)| s.to_string())
        .unwrap_or_default();
    let level = said.split_once(": ").map(|(l, _)| l).unwrap_or("");
    fx.check(
        ["DEBUG", "NOTICE", "WARNING", "ERROR", "ALERT"].contains(&level),
        || format!("the line did not come through FPM's logger (no level): {line:?}"),
    );
    let text = fs::read_to_string(&log).unwrap_or_default();
    fx.check(!text.contains("fcgi-runtime:"), || {
        format!("a line went to the library's default logger:\n{text}")
    });
    check_fpm_workers(&fx, "php-fpm");
}

/// One FastCGI request for `script` straight to php-fpm on a connection kept open; returns the
/// client (the connection still open) and the pid hello.php printed.
fn hello_keeping_the_connection(fx: &Fixture, port: u16, script: &Path) -> (Client, String) {
    let mut c = Client::connect(&format!("127.0.0.1:{port}")).expect("connect to php-fpm");
    c.set_timeout(Some(support::IO_TIMEOUT)).unwrap();
    let req = Request::new(1)
        .keep_conn(true)
        .param("SCRIPT_FILENAME", script.to_string_lossy().as_bytes())
        .param("SCRIPT_NAME", "/hello.php")
        .param("REQUEST_URI", "/hello.php")
        .param("REQUEST_METHOD", "GET")
        .param("SERVER_PROTOCOL", "HTTP/1.1");
    let r = match c.request(&req) {
        Ok(r) => r,
        Err(e) => fx.fail(&format!("a request straight to php-fpm: {e}")),
    };
    let text = String::from_utf8_lossy(&r.stdout).to_string();
    let pid = text
        .split("Hello from fpm-fcgi pid ")
        .nth(1)
        .map(|p| p.trim().to_string());
    match pid {
        Some(pid) => (c, pid),
        None => fx.fail(&format!("hello.php straight to php-fpm answered {text:?}")),
    }
}

/// A web server may reset a kept connection between requests (HAProxy does, with `keep-conn`,
/// when it lets an idle one go): with PHP's layer the worker forgets the connection and
/// accepts the next. Here, with one worker, a request, a reset (SO_LINGER 0) of its kept
/// connection, then a request on a new connection: the same worker answers it, and no worker
/// ended.
#[test]
fn fpm_worker_survives_a_kept_connection_reset_between_requests() {
    let Some(php) = Php::find() else { return };
    let mut fx = Fixture::new("php-fpm-reset");
    let www = write_scripts(&fx);
    let port = start_fpm(&mut fx, &php, "php-fpm", 1, "");
    let hello = www.join("hello.php");
    let workers = support::live_children_of(fx.pid("php-fpm"));
    let Some(&worker) = workers.iter().next() else {
        fx.fail("php-fpm has no worker")
    };
    let idle = sockets_of(worker);
    let (c, first) = hello_keeping_the_connection(&fx, port, &hello);
    fx.check(first == worker.to_string(), || {
        format!("hello.php answered by {first}, the worker is {worker}")
    });
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt(2) on the client's open socket with a valid struct linger.
    let rc = unsafe {
        libc::setsockopt(
            c.stream().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER");
    drop(c); // RST
             // The worker has handled the reset once it holds no more sockets than before the request
             // (or it is gone); only then does the next connection come.
    let handled = fixture::wait_for(|| !support::is_alive(worker) || sockets_of(worker) <= idle);
    fx.check(handled, || {
        format!("worker {worker} still holds the reset connection")
    });
    for i in 0..3 {
        let (_, pid) = hello_keeping_the_connection(&fx, port, &hello);
        fx.check(pid == first, || {
            format!(
                "request {i} after the reset: answered by worker {pid}, the only worker was \
                 {first} (it ended: see php-fpm's log)"
            )
        });
    }
    check_fpm_workers(&fx, "php-fpm");
}

/// The sockets among a process's descriptors.
fn sockets_of(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                .filter(|l| l.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}
