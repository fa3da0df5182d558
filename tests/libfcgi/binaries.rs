//! Debian's `/usr/sbin/fcgiwrap`, unmodified (FCGI_Accept and the FCGI_* stdio layer,
//! `_fcgi_sF` through a copy relocation), started by Debian's `spawn-fcgi -n` on the project's
//! library (`LD_LIBRARY_PATH`; `FCGI_TEST_LIBFCGI=debian` runs it on Debian's instead, the
//! reference), behind nginx, running the shell CGI script `tests/harness/scripts/echo.cgi`: GET, a 5 MB
//! POST, CGI error statuses, stderr forwarding (`-f`), requests in a row on fresh and kept
//! connections, a 3 MB response, a body the script leaves unread, SIGTERM, and pre-forked
//! workers (`-c 3`) sharing one listening socket. Debian's cgi-fcgi is in
//! `tests/libfcgi/cgi_fcgi.rs`, Perl's FCGI module in `tests/libfcgi/perl.rs`.
//!
//! Every test asserts through `/proc/<pid>/maps` that the programs mapped the library under
//! test. Processes are killed when the fixture is dropped; every wait is bounded.

use crate::harness;
use crate::harness::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// ---------------------------------------------------------------------------------------------
// fcgiwrap behind nginx
// ---------------------------------------------------------------------------------------------

/// Three fcgiwrap processes, each started by `spawn-fcgi -n` (which execs fcgiwrap in its own
/// pid, fd 0 being the listening socket) on the library under test, and nginx in front:
///
/// | location      | fcgiwrap                          | nginx's connection                 |
/// |---------------|-----------------------------------|------------------------------------|
/// | `/cgi`        | `plain`, Unix socket              | one per request                    |
/// | `/cgi-keep`   | `keep`, Unix socket               | `keepalive 4`, `fastcgi_keep_conn` |
/// | `/cgi-stderr` | `stderr`, TCP, `-f` (CGI stderr   | one per request                    |
/// |               | sent as FastCGI stderr)           |                                    |
///
/// One fcgiwrap per location: libfcgi serves one connection at a time, so a kept connection
/// would starve any other location sharing the process.
struct Wrap {
    fx: Fixture,
}

const WRAPS: [(&str, &str); 3] = [
    ("/cgi", "fcgiwrap-plain"),
    ("/cgi-keep", "fcgiwrap-keep"),
    ("/cgi-stderr", "fcgiwrap-stderr"),
];

impl Wrap {
    fn start() -> Wrap {
        require(FCGIWRAP, "fcgiwrap");
        require(SPAWN_FCGI, "spawn-fcgi");
        let mut fx = Fixture::new("fcgiwrap");
        let cgi = fx.install_executable(&script("echo.cgi"), "echo.cgi");
        let plain = fx.path("plain.sock");
        let keep = fx.path("keep.sock");
        start_fcgiwrap_unix(&mut fx, "fcgiwrap-plain", &plain, &[]);
        start_fcgiwrap_unix(&mut fx, "fcgiwrap-keep", &keep, &[]);
        let port = start_fcgiwrap_tcp(&mut fx, "fcgiwrap-stderr", &["-f"]);
        let cgi = cgi.display();
        let upstreams = format!(
            "    upstream fcgiwrap_keep {{
        server unix:{};
        keepalive 4;
    }}",
            keep.display()
        );
        let locations = format!(
            "        location = /cgi {{
            @PARAMS@
            fastcgi_param SCRIPT_FILENAME {cgi};
            fastcgi_pass unix:{};
        }}
        location = /cgi-keep {{
            @PARAMS@
            fastcgi_param SCRIPT_FILENAME {cgi};
            fastcgi_pass fcgiwrap_keep;
            fastcgi_keep_conn on;
        }}
        location = /cgi-stderr {{
            @PARAMS@
            fastcgi_param SCRIPT_FILENAME {cgi};
            fastcgi_pass 127.0.0.1:{port};
        }}",
            plain.display()
        );
        fx.start_nginx(&upstreams, &locations);
        Wrap { fx }
    }

    /// Fails unless every fcgiwrap runs on the library under test (call after a request, so
    /// the exec of fcgiwrap by spawn-fcgi is long done).
    fn check_libs(&self) {
        for (_, name) in WRAPS {
            self.fx.check_lib(self.fx.pid(name), name);
        }
    }

    /// Checks a `mode=echo` answer of echo.cgi.
    fn check_echo(&self, what: &str, r: &Response, want: &[(&str, String)]) {
        let text = r.text();
        self.fx.check(r.status == 200, || {
            format!(
                "{what}: status {} (want 200), body:\n{}",
                r.status,
                show(&r.body)
            )
        });
        self.fx
            .check(r.header("X-CGI").as_deref() == Some("echo.cgi"), || {
                format!("{what}: no X-CGI: echo.cgi header in\n{}", r.headers)
            });
        self.fx.check(
            r.header("Content-Type").as_deref() == Some("text/plain"),
            || format!("{what}: Content-Type is not text/plain in\n{}", r.headers),
        );
        for (name, value) in want {
            self.fx
                .check(line_value(&text, name) == Some(value.as_str()), || {
                    format!("{what}: want {name}={value}; body:\n{text}")
                });
        }
    }
}

/// `spawn-fcgi -n -s SOCK -- /usr/sbin/fcgiwrap ARGS`, waiting until fcgiwrap (not spawn-fcgi
/// any more) owns the pid and the socket accepts connections.
fn start_fcgiwrap_unix(fx: &mut Fixture, name: &str, sock: &Path, args: &[&str]) {
    let mut cmd = Command::new(SPAWN_FCGI);
    cmd.arg("-n")
        .arg("-s")
        .arg(sock)
        .args(["--", FCGIWRAP])
        .args(args)
        .stdin(Stdio::null());
    on_lib(&mut cmd);
    let pid = fx.spawn(name, &mut cmd);
    let sock = sock.to_path_buf();
    fx.wait_ready(name, move || is_fcgiwrap(pid) && unix_ready(&sock));
}

/// `spawn-fcgi -n -a 127.0.0.1 -p PORT -- /usr/sbin/fcgiwrap ARGS` on a free port (another one
/// if the port was taken meanwhile). Returns the port.
fn start_fcgiwrap_tcp(fx: &mut Fixture, name: &str, args: &[&str]) -> u16 {
    let make_cmd = |port: u16| {
        let mut cmd = Command::new(SPAWN_FCGI);
        cmd.args([
            "-n",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--",
            FCGIWRAP,
        ])
        .args(args)
        .stdin(Stdio::null());
        on_lib(&mut cmd);
        cmd
    };
    fx.start_on_free_port(name, "Address already in use", make_cmd, |pid, port| {
        is_fcgiwrap(pid) && tcp_ready(port)
    })
}

/// Whether `pid` already executes fcgiwrap (spawn-fcgi -n execs it in place).
fn is_fcgiwrap(pid: u32) -> bool {
    fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == Path::new(FCGIWRAP))
}

#[test]
fn fcgiwrap_get_with_query_string() {
    let w = Wrap::start();
    let query = "a=1&b=two%20words&empty=";
    for (loc, _) in WRAPS {
        let r = w.fx.get(&format!("{loc}?{query}"));
        w.check_echo(
            &format!("GET {loc}"),
            &r,
            &[
                ("REQUEST_METHOD", "GET".into()),
                ("QUERY_STRING", query.into()),
                ("CONTENT_LENGTH", "0".into()),
                ("GATEWAY_INTERFACE", "CGI/1.1".into()),
                ("SCRIPT_NAME", loc.into()),
                ("BODY_SHA256", EMPTY_SHA256.into()),
            ],
        );
    }
    w.check_libs();
    w.fx.check_error_log(&[]);
}

#[test]
fn fcgiwrap_post_of_5_mb_reaches_the_script_intact() {
    let w = Wrap::start();
    let len = 5 * 1024 * 1024;
    let file = w.fx.path("upload.bin");
    fs::write(&file, harness::body(len, 0x5eed_0005)).expect("write upload");
    let sha = sha256_file(&file);
    let data = format!("@{}", file.display());
    for (loc, _) in WRAPS {
        let r = w.fx.curl(
            &[
                "--data-binary",
                &data,
                "-H",
                "Content-Type: application/octet-stream",
            ],
            &format!("{loc}?upload=5mb"),
        );
        w.check_echo(
            &format!("POST 5 MB to {loc}"),
            &r,
            &[
                ("REQUEST_METHOD", "POST".into()),
                ("QUERY_STRING", "upload=5mb".into()),
                ("CONTENT_LENGTH", len.to_string()),
                ("BODY_SHA256", sha.clone()),
            ],
        );
    }
    w.check_libs();
    w.fx.check_error_log(&[]);
}

#[test]
fn fcgiwrap_cgi_error_statuses_reach_the_client() {
    let w = Wrap::start();
    let fx = &w.fx;

    // The script's own "Status: 500" header, through a fresh and through a kept connection.
    for loc in ["/cgi", "/cgi-keep"] {
        let r = fx.get(&format!("{loc}?mode=status"));
        fx.check(
            r.status == 500 && r.body == b"script failed on purpose\n",
            || {
                format!(
                    "{loc}?mode=status: want 500 \"script failed on purpose\", got {}: {:?}",
                    r.status,
                    show(&r.body)
                )
            },
        );
    }

    // A script that exits 3 with no output: fcgiwrap answers 502 itself (FCGI_puts and
    // FCGI_printf on FCGI_stdout); the script's stderr goes to fcgiwrap's own stderr.
    let r = fx.get("/cgi?mode=fail");
    let want = "An error occurred while reading CGI reply (no response received)\n";
    fx.check(r.status == 502 && r.text() == want, || {
        format!(
            "/cgi?mode=fail: want 502 {want:?} (fcgiwrap's own answer), got {}: {:?}\n{}",
            r.status,
            show(&r.body),
            r.headers
        )
    });
    fx.check(
        fx.stderr_of("fcgiwrap-plain")
            .contains("echo.cgi: failing on purpose"),
        || "the failing script's stderr line is not in fcgiwrap's stderr".to_string(),
    );

    // fcgiwrap -f forwards the script's stderr as FastCGI stderr (FCGI_stderr): nginx logs it.
    let r = fx.get("/cgi-stderr?mode=warn");
    fx.check(r.status == 200 && r.body == b"warned\n", || {
        format!(
            "/cgi-stderr?mode=warn: want 200 \"warned\", got {}: {:?}",
            r.status,
            show(&r.body)
        )
    });
    let warn = "FastCGI sent in stderr: \"echo.cgi: a warning on stderr\"";
    fx.check(fx.error_log_has(warn), || {
        format!("nginx did not log {warn:?}")
    });

    // Every fcgiwrap still serves normal requests afterwards.
    for (loc, _) in WRAPS {
        let r = fx.get(&format!("{loc}?after=errors"));
        w.check_echo(
            &format!("GET {loc} after the errors"),
            &r,
            &[("QUERY_STRING", "after=errors".into())],
        );
    }
    w.check_libs();
    fx.check_error_log(&[warn]);
}

#[test]
fn fcgiwrap_survives_a_script_that_ignores_a_5_mb_body() {
    let w = Wrap::start();
    let fx = &w.fx;
    let len = 5 * 1024 * 1024;
    let file = fx.path("upload.bin");
    fs::write(&file, harness::body(len, 0x5eed_0006)).expect("write upload");
    let data = format!("@{}", file.display());
    // The script exits without reading its stdin; fcgiwrap's write to it fails, fcgiwrap answers
    // 502 and goes back to FCGI_Accept with most of the FastCGI stdin unread. The library must
    // finish that request (on a kept connection too) and serve the next ones.
    let want = "An error occurred while reading the request\n";
    for (loc, _) in WRAPS {
        for round in 0..2 {
            let r = fx.curl(&["--data-binary", &data], &format!("{loc}?mode=noread"));
            fx.check(r.status == 502 && r.text() == want, || {
                format!(
                    "{loc}?mode=noread (round {round}): want 502 {want:?} (fcgiwrap's own \
                     answer), got {}: {:?}",
                    r.status,
                    show(&r.body)
                )
            });
            let r = fx.get(&format!("{loc}?after=noread&round={round}"));
            w.check_echo(
                &format!("GET {loc} after a body left unread (round {round})"),
                &r,
                &[("QUERY_STRING", format!("after=noread&round={round}"))],
            );
        }
    }
    w.check_libs();
    fx.check_error_log(&[]);
}

#[test]
fn fcgiwrap_serves_requests_in_a_row_and_a_large_response() {
    let w = Wrap::start();
    let fx = &w.fx;
    // One curl, 12 URLs per location: curl keeps its connection to nginx; for /cgi-keep nginx
    // keeps its connection to fcgiwrap too (FCGI_Accept then reads the next request from it).
    for (loc, _) in WRAPS {
        let paths: Vec<String> = (0..12).map(|i| format!("{loc}?seq={i}")).collect();
        let rs = fx.curl_many(&paths);
        for (i, r) in rs.iter().enumerate() {
            w.check_echo(
                &format!("request {i} of 12 to {loc}"),
                r,
                &[
                    ("REQUEST_METHOD", "GET".into()),
                    ("QUERY_STRING", format!("seq={i}")),
                ],
            );
        }
    }
    // 3 MB of output: thousands of FCGI_fwrite calls through FCGI_stdout's buffer.
    let n = 3_000_000;
    for loc in ["/cgi", "/cgi-keep"] {
        let r = fx.get(&format!("{loc}?mode=big&bytes={n}"));
        fx.check(r.status == 200, || {
            format!("{loc} big: status {}: {}", r.status, show(&r.body))
        });
        fx.check(r.body.len() == n, || {
            format!("{loc} big: got {} bytes, want {n}", r.body.len())
        });
        let bad = r.body.iter().position(|&b| b != b'7');
        fx.check(bad.is_none(), || {
            format!("{loc} big: byte {} is not '7'", bad.unwrap_or(0))
        });
    }
    w.check_libs();
    fx.check_error_log(&[]);
}

#[test]
fn fcgiwrap_exits_on_sigterm() {
    let mut w = Wrap::start();
    for (loc, _) in WRAPS {
        let r = w.fx.get(&format!("{loc}?before=sigterm"));
        w.check_echo(
            &format!("GET {loc}"),
            &r,
            &[("QUERY_STRING", "before=sigterm".into())],
        );
    }
    w.check_libs();
    // fcgiwrap's own SIGTERM handler (sigaction without SA_RESTART) calls
    // FCGX_ShutdownPending(); FCGI_Accept must then return < 0, waiting in accept (`plain`,
    // `stderr`) or on nginx's idle kept connection (`keep`), and fcgiwrap returns from main
    // with 0 (the signal is repeated while it runs, see `sigterm_until_exit`).
    for (_, name) in WRAPS {
        let st = w.fx.sigterm_until_exit(name);
        w.fx.check(st.success(), || {
            format!("{name} exited with {st} after SIGTERM, want 0")
        });
    }
    w.fx.check_error_log(&[]);
}

#[test]
fn fcgiwrap_preforked_workers_share_queued_connections() {
    require(FCGIWRAP, "fcgiwrap");
    require(SPAWN_FCGI, "spawn-fcgi");
    let mut fx = Fixture::new("fcgiwrap-prefork");
    let cgi = fx.install_executable(&script("echo.cgi"), "echo.cgi");
    let sock = fx.path("prefork.sock");
    // fcgiwrap -c 3 forks three workers before any libfcgi call; each runs its own FCGI_Accept
    // loop on the inherited listening socket: the classic pre-forked FastCGI server (also
    // spawn-fcgi -F N, cgi-fcgi -start ... N).
    start_fcgiwrap_unix(&mut fx, "fcgiwrap-prefork", &sock, &["-c", "3"]);
    let locations = format!(
        "        location = /cgi {{
            @PARAMS@
            fastcgi_param SCRIPT_FILENAME {};
            fastcgi_pass unix:{};
        }}",
        cgi.display(),
        sock.display()
    );
    fx.start_nginx("", &locations);
    let master = fx.pid("fcgiwrap-prefork");
    let deadline = Instant::now() + START_TIMEOUT;
    let workers = loop {
        let w = children_of(master);
        if w.len() == 3 && w.iter().all(|&p| wait_lib_mapped(p)) {
            break w;
        }
        if Instant::now() > deadline {
            fx.fail(&format!("want 3 fcgiwrap workers, found {w:?}"));
        }
        thread::sleep(Duration::from_millis(10));
    };
    for &w in &workers {
        fx.check_lib(w, "a preforked fcgiwrap worker");
    }

    // Queue three connections while every worker is stopped, then let them run. Each request
    // is held by the script until all three have arrived, so they must go to three different
    // workers: a worker that takes a connection while its only thread is busy (instead of
    // leaving it to an idle sibling, as libfcgi's one accept() per FCGI_Accept does) makes
    // the requests wait for each other and answer ARRIVED=1 after the script's 10 s limit.
    let signal_all = |sig: libc::c_int| {
        for &w in &workers {
            // SAFETY: kill(2) on fcgiwrap workers of this fixture (children of its master).
            unsafe {
                libc::kill(w as libc::pid_t, sig);
            }
        }
    };
    let nginx = fx.nginx_pid();
    let before = unix_sockets_of(nginx);
    signal_all(libc::SIGSTOP);
    let calls: Vec<_> = (0..3)
        .map(|i| (i, fx.curl_spawn(&[], "/cgi?mode=barrier&n=3")))
        .collect();
    // nginx's three upstream connections are in the listening socket's queue once connected.
    let deadline = Instant::now() + START_TIMEOUT;
    while unix_sockets_of(nginx) < before + 3 {
        if Instant::now() > deadline {
            signal_all(libc::SIGCONT);
            fx.fail("nginx did not open its three upstream connections");
        }
        thread::sleep(Duration::from_millis(5));
    }
    signal_all(libc::SIGCONT);

    let mut served_by = BTreeSet::new();
    for (i, call) in calls {
        let r = fx.curl_wait(call);
        let text = r.text();
        fx.check(
            r.status == 200 && line_value(&text, "ARRIVED") == Some("3"),
            || {
                format!(
                    "concurrent request {i}: want 200 with ARRIVED=3 (three workers busy at \
                     once), got {}:\n{text}",
                    r.status
                )
            },
        );
        served_by.insert(line_value(&text, "WORKER").unwrap_or("").to_string());
    }
    let want: BTreeSet<String> = workers.iter().map(|w| w.to_string()).collect();
    fx.check(served_by == want, || {
        format!("want the three workers {want:?} to serve one request each, got {served_by:?}")
    });
    fx.check_error_log(&[]);
}
