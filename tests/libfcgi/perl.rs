//! Debian's Perl FCGI module (libfcgi-perl: FCGI.so links libfcgi.so.0 dynamically and calls
//! FCGX_OpenSocket, InitRequest, Accept_r, Finish_r, GetStr, PutStr, FFlush, HasSeenEOF,
//! Detach, Attach, ShutdownPending, ...) running `tests/harness/scripts/fcgi_echo.pl` on the project's
//! library (`LD_LIBRARY_PATH`; `FCGI_TEST_LIBFCGI=debian` runs it on Debian's, the reference),
//! behind nginx:
//!
//! | location      | Perl process                 | connection from nginx                 |
//! |---------------|------------------------------|---------------------------------------|
//! | `/perl`       | `perl-keep`, Unix socket     | `keepalive 4` + `fastcgi_keep_conn on` |
//! | `/perl-close` | `perl-close`, TCP            | one per request                       |
//!
//! Every test asserts through `/proc/<pid>/maps` that perl mapped the library under test.

use crate::harness;
use crate::harness::*;
use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const STDERR_LINE: &str = "FastCGI sent in stderr: \"fcgi_echo.pl: warning for request";

struct Perl {
    fx: Fixture,
}

impl Perl {
    fn start() -> Perl {
        require(PERL, "perl");
        assert!(
            Command::new(PERL)
                .args(["-MFCGI", "-e", "1"])
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "perl cannot load FCGI: this test needs Debian's libfcgi-perl (apt-get install \
             libfcgi-perl); it fails instead of skipping because CI installs it"
        );
        let mut fx = Fixture::new("perl");
        let sock = fx.path("perl.sock");
        let mut cmd = perl_cmd(sock.to_str().expect("utf-8 path"));
        fx.spawn("perl-keep", &mut cmd);
        let probe = sock.clone();
        fx.wait_ready("perl-keep", move || unix_ready(&probe));
        let port = start_perl_tcp(&mut fx, "perl-close");
        let upstreams = format!(
            "    upstream perl_keep {{
        server unix:{};
        keepalive 4;
    }}",
            sock.display()
        );
        let locations = format!(
            "        location = /perl {{
            @PARAMS@
            fastcgi_pass perl_keep;
            fastcgi_keep_conn on;
        }}
        location = /perl-close {{
            @PARAMS@
            fastcgi_pass 127.0.0.1:{port};
        }}"
        );
        fx.start_nginx(&upstreams, &locations);
        Perl { fx }
    }

    fn check_libs(&self) {
        for name in ["perl-keep", "perl-close"] {
            self.fx.check_lib(self.fx.pid(name), name);
        }
    }

    /// Checks an answer of fcgi_echo.pl: 200, a Content-Length matching the body, and the
    /// given `NAME=value` lines. Returns the body.
    fn check_answer(&self, what: &str, r: &Response, want: &[(&str, String)]) -> String {
        let text = r.text();
        self.fx.check(r.status == 200, || {
            format!(
                "{what}: status {} (want 200), body:\n{}",
                r.status,
                show(&r.body)
            )
        });
        self.fx.check(
            r.header("Content-Length") == Some(r.body.len().to_string()),
            || {
                format!(
                    "{what}: Content-Length does not match the body:\n{}",
                    r.headers
                )
            },
        );
        for (name, value) in want {
            self.fx
                .check(line_value(&text, name) == Some(value.as_str()), || {
                    format!("{what}: want {name}={value}; body:\n{text}")
                });
        }
        text
    }
}

fn perl_cmd(socket: &str) -> Command {
    let mut cmd = Command::new(PERL);
    cmd.arg(script("fcgi_echo.pl"))
        .arg(socket)
        .stdin(Stdio::null());
    on_lib(&mut cmd);
    cmd
}

/// fcgi_echo.pl on `127.0.0.1:PORT` (FCGX_OpenSocket's TCP form) for a free port, another one if
/// the port was taken meanwhile (libfcgi then exits with "bind/listen"). Returns the port.
fn start_perl_tcp(fx: &mut Fixture, name: &str) -> u16 {
    fx.start_on_free_port(
        name,
        "in use",
        |port| perl_cmd(&format!("127.0.0.1:{port}")),
        |_, port| tcp_ready(port),
    )
}

/// A minimal HTTP/1.1 client that keeps one connection to nginx open: every answer must carry
/// a Content-Length (fcgi_echo.pl sends one, nginx passes it on).
struct KeepAliveClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl KeepAliveClient {
    fn connect(port: u16) -> KeepAliveClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
        stream.set_read_timeout(Some(WEB_IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(WEB_IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        KeepAliveClient {
            stream,
            buf: Vec::new(),
        }
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err("nginx closed the keep-alive connection".to_string()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read from nginx: {e}")),
        }
    }

    fn get(&mut self, path: &str) -> Result<Response, String> {
        // One write: write! would send the pieces separately, and Nagle plus delayed ACKs would
        // then cost 40 ms per request.
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: libfcgi_perl.rs\r\n\r\n"
        );
        self.stream
            .write_all(req.as_bytes())
            .map_err(|e| format!("send to nginx: {e}"))?;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let (status_line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers = headers.replace("\r\n", "\n");
        let r = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = r
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no Content-Length in the answer:\n{head}"))?;
        let total = head_end + 4 + len;
        while self.buf.len() < total {
            self.fill()?;
        }
        let body = self.buf[head_end + 4..total].to_vec();
        self.buf.drain(..total);
        Ok(Response { body, ..r })
    }
}

#[test]
fn perl_fcgi_serves_1000_keepalive_requests() {
    let p = Perl::start();
    let fx = &p.fx;
    let pid = fx.pid("perl-keep").to_string();
    let mut client = KeepAliveClient::connect(fx.port);
    let mut connections = BTreeSet::new();
    for i in 0..1000 {
        let path = format!("/perl?n={i}");
        let r = client
            .get(&path)
            .unwrap_or_else(|e| fx.fail(&format!("request {i} of 1000 ({path}): {e}")));
        let text = p.check_answer(
            &format!("request {i} of 1000"),
            &r,
            &[
                ("COUNT", (i + 1).to_string()),
                ("PID", pid.clone()),
                ("REQUEST_METHOD", "GET".into()),
                ("QUERY_STRING", format!("n={i}")),
                ("SCRIPT_NAME", "/perl".into()),
                ("FCGI_ROLE", "RESPONDER".into()),
                ("BODY_LENGTH", "0".into()),
                ("BODY_SHA256", EMPTY_SHA256.into()),
                ("EOF", "1".into()),
            ],
        );
        let conns = line_value(&text, "CONNECTIONS").unwrap_or("");
        connections.extend(conns.split(',').filter(|c| !c.is_empty()).map(String::from));
        if i == 0 {
            p.check_libs();
        }
    }
    eprintln!(
        "fcgi_echo.pl saw {} distinct connection(s) for 1,000 requests ({:?} library)",
        connections.len(),
        lib()
    );
    // nginx keeps at most 4 idle connections to the application and this client sends one
    // request at a time: a library that honours FCGI_KEEP_CONN sees a handful of connections
    // for the 1,000 requests, one that closes them sees 1,000.
    fx.check(!connections.is_empty() && connections.len() <= 4, || {
        format!(
            "fcgi_echo.pl saw {} distinct connections for 1,000 requests on kept connections, \
             want 1 to 4: {connections:?}",
            connections.len()
        )
    });
    p.check_libs();
    fx.check_error_log(&[]);
}

#[test]
fn perl_fcgi_post_flush_and_stderr() {
    let p = Perl::start();
    let fx = &p.fx;
    let len = 1024 * 1024;
    let file = fx.path("upload.bin");
    fs::write(&file, harness::body(len, 0x9e71)).expect("write upload");
    let sha = sha256_file(&file);
    let data = format!("@{}", file.display());
    for loc in ["/perl", "/perl-close"] {
        for query in ["post=1", "post=2&flush=1&warn=1"] {
            let r = fx.curl(
                &[
                    "--data-binary",
                    &data,
                    "-H",
                    "Content-Type: application/octet-stream",
                ],
                &format!("{loc}?{query}"),
            );
            p.check_answer(
                &format!("POST 1 MB to {loc}?{query}"),
                &r,
                &[
                    ("REQUEST_METHOD", "POST".into()),
                    ("QUERY_STRING", query.into()),
                    ("CONTENT_LENGTH", len.to_string()),
                    ("BODY_LENGTH", len.to_string()),
                    ("BODY_SHA256", sha.clone()),
                    ("EOF", "1".into()),
                ],
            );
        }
    }
    // print STDERR inside a request is a FastCGI stderr record, which nginx logs.
    let logged = fs::read_to_string(fx.path("error.log"))
        .unwrap_or_default()
        .matches(STDERR_LINE)
        .count();
    fx.check(logged == 2, || {
        format!("want 2 lines with {STDERR_LINE:?} in nginx's error.log, found {logged}")
    });
    p.check_libs();
    fx.check_error_log(&[STDERR_LINE]);
}

#[test]
fn perl_fcgi_finish_accept_detach_attach() {
    let p = Perl::start();
    let fx = &p.fx;
    // Queries in order, per location; COUNT must follow. "nofinish" leaves the request to the
    // next Accept, which finishes it first; "detach" forks between Detach and Attach, and with
    // "detach=exit" the child runs FCGI's destructors (FCGX_Free of its copy of the request)
    // before the parent answers on the same connection.
    let steps = [
        "first=1",
        "nofinish=1",
        "after=nofinish",
        "detach=1",
        "after=detach",
        "detach=1&nofinish=1&flush=1",
        "detach=exit",
        "after=detach-exit",
        "last=0",
    ];
    for loc in ["/perl", "/perl-close"] {
        for (i, q) in steps.iter().enumerate() {
            let r = fx.get(&format!("{loc}?{q}"));
            p.check_answer(
                &format!("{loc}?{q}"),
                &r,
                &[
                    ("COUNT", (i + 1).to_string()),
                    ("QUERY_STRING", q.to_string()),
                    ("EOF", "1".into()),
                ],
            );
        }
    }
    p.check_libs();
    fx.check_error_log(&[]);
}

#[test]
fn perl_fcgi_lastcall_ends_the_accept_loop() {
    let mut p = Perl::start();
    let r = p.fx.get("/perl-close?before=lastcall");
    p.check_answer("before LastCall", &r, &[("COUNT", "1".into())]);
    p.check_libs();
    // $req->LastCall() is FCGX_ShutdownPending: the next Accept returns < 0 instead of waiting.
    let r = p.fx.get("/perl-close?last=1");
    p.check_answer("LastCall", &r, &[("COUNT", "2".into())]);
    let st = p.fx.wait_exit("perl-close");
    let err = p.fx.stderr_of("perl-close");
    p.fx.check(st.success(), || {
        format!("perl exited with {st} after LastCall; stderr:\n{err}")
    });
    p.fx.check(
        err.contains("fcgi_echo.pl: accept returned -") && err.contains("after 2 requests"),
        || format!("want a negative Accept result after 2 requests; stderr:\n{err}"),
    );
    // The other process is unaffected.
    let r = p.fx.get("/perl?after=lastcall");
    p.check_answer("the other process", &r, &[("COUNT", "1".into())]);
    p.fx.check_error_log(&[]);
}

#[test]
fn perl_fcgi_sigterm_ends_a_waiting_accept() {
    let mut p = Perl::start();
    let r = p.fx.get("/perl-close?before=sigterm");
    p.check_answer("before SIGTERM", &r, &[("COUNT", "1".into())]);
    p.check_libs();
    // Perl installs no SIGTERM handler; libfcgi's (installed by FCGX_Init, without SA_RESTART)
    // makes the waiting Accept return < 0 (FAIL_ACCEPT_ON_INTR is FCGI.pm's default), and the
    // script exits 0 (the signal is repeated while it runs, see `sigterm_until_exit`).
    let st = p.fx.sigterm_until_exit("perl-close");
    let err = p.fx.stderr_of("perl-close");
    p.fx.check(st.success(), || {
        format!("perl exited with {st} after SIGTERM, want 0; stderr:\n{err}")
    });
    p.fx.check(
        err.contains("fcgi_echo.pl: accept returned -") && err.contains("after 1 requests"),
        || format!("want a negative Accept result after 1 request; stderr:\n{err}"),
    );
    p.fx.check_error_log(&[]);
}

#[test]
fn perl_fcgi_on_fd_0_started_by_spawn_fcgi() {
    require(SPAWN_FCGI, "spawn-fcgi");
    let mut fx = Fixture::new("perl-spawn");
    let sock = fx.path("perl.sock");
    // No OpenSocket: FCGI::Request() on fd 0, the socket spawn-fcgi passes; FCGI.pm asks
    // FCGX_IsCGI whether that is a listening socket.
    let mut cmd = Command::new(SPAWN_FCGI);
    cmd.arg("-n")
        .arg("-s")
        .arg(&sock)
        .args(["--", PERL])
        .arg(script("fcgi_echo.pl"))
        .arg("-")
        .stdin(Stdio::null());
    on_lib(&mut cmd);
    let pid = fx.spawn("perl-fd0", &mut cmd);
    let probe = sock.clone();
    let is_perl =
        move || fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p.ends_with("perl"));
    let name = "perl-fd0";
    fx.wait_ready(name, move || is_perl() && unix_ready(&probe));
    let log = fx.path(&format!("{name}.err"));
    fx.wait_ready(name, move || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains("IsFastCGI="))
    });
    let locations = format!(
        "        location = /perl {{
            @PARAMS@
            fastcgi_pass unix:{};
        }}",
        sock.display()
    );
    fx.start_nginx("", &locations);
    let p = Perl { fx };
    let err = p.fx.stderr_of(name);
    p.fx.check(err.contains("fcgi_echo.pl: ready, IsFastCGI=1"), || {
        format!("FCGI.pm does not take fd 0 for a FastCGI socket; stderr:\n{err}")
    });
    let file = p.fx.path("upload.bin");
    fs::write(&file, harness::body(100_000, 3)).expect("write upload");
    let sha = sha256_file(&file);
    let data = format!("@{}", file.display());
    for i in 1..=3 {
        let r =
            p.fx.curl(&["--data-binary", &data], &format!("/perl?i={i}"));
        p.check_answer(
            &format!("request {i} to perl on fd 0"),
            &r,
            &[
                ("COUNT", i.to_string()),
                ("PID", pid.to_string()),
                ("FCGI_ROLE", "RESPONDER".into()),
                ("BODY_LENGTH", "100000".into()),
                ("BODY_SHA256", sha.clone()),
            ],
        );
    }
    p.fx.check_lib(pid, "perl started by spawn-fcgi");
    p.fx.check_error_log(&[]);
}

#[test]
fn perl_fcgi_falls_back_to_plain_cgi() {
    require(PERL, "perl");
    let fx = Fixture::new("perl-cgi");
    // Started like a CGI program: fd 0 is a pipe, so FCGX_IsCGI says CGI and FCGI.pm's Accept
    // succeeds once with the real STDIN, STDOUT and %ENV, then returns -1.
    let body = b"plain CGI body".to_vec();
    let mut cmd = Command::new(PERL);
    cmd.arg(script("fcgi_echo.pl"))
        .arg("-")
        .env_clear()
        .env("REQUEST_METHOD", "POST")
        .env("QUERY_STRING", "as=cgi")
        .env("CONTENT_LENGTH", body.len().to_string());
    on_lib(&mut cmd);
    let out = run_with_stdin(&mut cmd, body.clone(), |pid| {
        // perl is blocked reading its stdin: FCGI.so, hence libfcgi, is loaded by now.
        if !wait_lib_mapped(pid) {
            fx.fail("perl exited (or mapped no libfcgi) before its stdin was written");
        }
        fx.check_lib(pid, "perl as a CGI program");
    })
    .unwrap_or_else(|e| fx.fail(&e));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    fx.check(out.status.success(), || {
        format!("perl exited with {}; stderr:\n{stderr}", out.status)
    });
    let (head, text) = stdout.split_once("\r\n\r\n").unwrap_or(("", ""));
    fx.check(head.starts_with("Content-Type: text/plain"), || {
        format!("no CGI header in the output:\n{stdout}")
    });
    for (name, value) in [
        ("COUNT", "1".to_string()),
        ("REQUEST_METHOD", "POST".into()),
        ("QUERY_STRING", "as=cgi".into()),
        ("FCGI_ROLE", String::new()),
        ("BODY_LENGTH", body.len().to_string()),
        ("EOF", "1".into()),
    ] {
        fx.check(line_value(text, name) == Some(value.as_str()), || {
            format!("want {name}={value} in the CGI output:\n{stdout}")
        });
    }
    fx.check(
        stderr.contains("IsFastCGI=0") && stderr.contains("accept returned -1 after 1 requests"),
        || format!("want IsFastCGI=0 and one CGI request; stderr:\n{stderr}"),
    );
}
