//! Perl on the project's `libfcgi.so.0`, behind nginx (issue 8, item 3):
//!
//! - `tests/languages/perl_plack/fcgi_plain.pl`: the plain FCGI.pm loop (`FCGI::Request()` without
//!   arguments, so the listening socket is fd 0, which the test passes as a web server would);
//!   GET and a 5 MB POST echoed with its SHA-256;
//! - `tests/languages/perl_plack/app.psgi` through Plack::Handler::FCGI (Debian's libplack-perl), started
//!   twice: by `plackup -s FCGI --listen SOCKET --manager= -E test -e "enable 'Lint'"`
//!   (Plack::Runner, with Plack::Middleware::Lint checking every response) and by
//!   `tests/languages/perl_plack/plack_fcgi.pl` (the handler's API); routing, a POST body, the delayed-response interface with and without a
//!   writer (the writer's first chunk must reach the HTTP client before the app is allowed to
//!   write the second), psgi.errors into nginx's error log, a dying app's 500.
//!
//! Every Perl process must map the library under test (`/proc/<pid>/maps`, see
//! `tests/harness/fixture.rs`; `FCGI_TEST_LIBFCGI=debian` runs the same on Debian's libfcgi). Without
//! libplack-perl the Plack tests are skipped with a message; .ci/run installs it.

use crate::harness;
use crate::harness::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn perl_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/languages/perl_plack")
        .join(name)
}

/// Whether perl loads `module`.
fn perl_has(module: &str) -> bool {
    Command::new(PERL)
        .arg(format!("-M{module}"))
        .args(["-e", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True (after printing why) when the Plack tests cannot run here.
fn skip_without_plack() -> bool {
    require(PERL, "perl");
    if perl_has("Plack::Handler::FCGI") && Path::new("/usr/bin/plackup").exists() {
        return false;
    }
    eprintln!(
        "SKIPPED: Plack::Handler::FCGI or plackup not found: install Debian's libplack-perl \
         (apt-get install libplack-perl; .ci/run does)"
    );
    true
}

fn require_fcgi_pm() {
    require(PERL, "perl");
    assert!(
        perl_has("FCGI"),
        "perl cannot load FCGI: this test needs Debian's libfcgi-perl (apt-get install \
         libfcgi-perl); it fails instead of skipping because CI installs it"
    );
}

/// Waits until `pid` maps a libfcgi and checks that it is the library under test.
fn check_lib_of(fx: &Fixture, pid: u32, what: &str) {
    fx.check(wait_lib_mapped(pid), || {
        format!("{what} (pid {pid}) mapped no libfcgi")
    });
    fx.check_lib(pid, what);
}

/// Checks status, a header and returns the body as text.
fn expect(fx: &Fixture, what: &str, r: &Response, status: u16) -> String {
    fx.check(r.status == status, || {
        format!(
            "{what}: status {} (want {status}); headers:\n{}\nbody:\n{}",
            r.status,
            r.headers,
            show(&r.body)
        )
    });
    r.text()
}

/// A POST of `len` pseudo-random bytes to `path`, expecting them echoed with their hash.
fn post_echo(fx: &Fixture, what: &str, path: &str, len: usize, seed: u64) {
    let file = fx.path(&format!("upload-{seed}.bin"));
    fs::write(&file, harness::body(len, seed)).expect("write upload");
    let sha = sha256_file(&file);
    let data = format!("@{}", file.display());
    let r = fx.curl(
        &[
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/octet-stream",
        ],
        path,
    );
    expect(fx, what, &r, 200);
    fx.check(
        r.header("X-Body-Length") == Some(len.to_string())
            && r.header("X-Body-SHA256") == Some(sha.clone()),
        || {
            format!(
                "{what}: the app saw another body (want {len} bytes, {sha}):\n{}",
                r.headers
            )
        },
    );
    let want = fs::read(&file).expect("read upload");
    fx.check(r.body == want, || {
        format!(
            "{what}: the echoed body differs ({} bytes, want {len})",
            r.body.len()
        )
    });
}

// ---------------------------------------------------------------------------------------------
// The plain FCGI script
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_fcgi_script_get_and_post_behind_nginx() {
    require_fcgi_pm();
    let mut fx = Fixture::new("perl-plain");
    let sock = fx.path("plain.sock");
    let listener = UnixListener::bind(&sock).expect("bind the Unix socket");
    let mut cmd = Command::new(PERL);
    cmd.arg(perl_file("fcgi_plain.pl"))
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)));
    on_lib(&mut cmd);
    let pid = fx.spawn("plain", &mut cmd);
    let log = fx.path("plain.err");
    fx.wait_ready("plain", move || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains("ready, IsFastCGI="))
    });
    let err = fx.stderr_of("plain");
    fx.check(err.contains("ready, IsFastCGI=1"), || {
        format!("FCGI::Request() does not take fd 0 for a FastCGI socket:\n{err}")
    });
    check_lib_of(&fx, pid, "fcgi_plain.pl");
    let locations = format!(
        "        location = /plain {{
            @PARAMS@
            fastcgi_pass unix:{};
        }}",
        sock.display()
    );
    fx.start_nginx("", &locations);

    for i in 1..=5 {
        let r = fx.get(&format!("/plain?i={i}"));
        let text = expect(&fx, "GET /plain", &r, 200);
        for (name, value) in [
            ("COUNT", i.to_string()),
            ("PID", pid.to_string()),
            ("REQUEST_METHOD", "GET".into()),
            ("QUERY_STRING", format!("i={i}")),
            ("SCRIPT_NAME", "/plain".into()),
            ("FCGI_ROLE", "RESPONDER".into()),
        ] {
            fx.check(line_value(&text, name) == Some(value.as_str()), || {
                format!("GET /plain?i={i}: want {name}={value}; body:\n{text}")
            });
        }
    }
    post_echo(&fx, "POST 5 MB to /plain", "/plain", 5_000_000, 1);
    post_echo(&fx, "POST 1 byte to /plain", "/plain?warn=1", 1, 2);
    // An empty POST body.
    let r = fx.curl(&["-X", "POST", "--data-binary", ""], "/plain");
    expect(&fx, "empty POST", &r, 200);
    fx.check(
        r.header("X-Body-SHA256").as_deref() == Some(EMPTY_SHA256) && r.body.is_empty(),
        || format!("empty POST: {}", r.headers),
    );
    fx.check(
        fx.error_log_has("FastCGI sent in stderr: \"fcgi_plain.pl: warning for request"),
        || "STDERR of the script did not reach nginx's error log".into(),
    );
    check_lib_of(&fx, pid, "fcgi_plain.pl");
    fx.check_error_log(&["fcgi_plain.pl: warning for request"]);
}

// ---------------------------------------------------------------------------------------------
// Plack
// ---------------------------------------------------------------------------------------------

/// The two Plack servers behind nginx: `/plackup/...` and `/plack/...` (PATH_INFO is the rest).
struct Plack {
    fx: Fixture,
    pids: Vec<(&'static str, u32)>,
}

const PREFIXES: [&str; 2] = ["/plackup", "/plack"];

impl Plack {
    fn start() -> Plack {
        let mut fx = Fixture::new("plack");
        let gates = fx.path("gates");
        fs::create_dir_all(&gates).expect("gate dir");
        let psgi = perl_file("app.psgi");

        let up_sock = fx.path("plackup.sock");
        let mut cmd = Command::new(PERL);
        cmd.arg("/usr/bin/plackup")
            .args(["-s", "FCGI", "--listen"])
            .arg(&up_sock)
            // Plack::Handler::FCGI defaults to FCGI::ProcManager (another package): no manager,
            // this process serves.
            .arg("--manager=")
            // No development middlewares (their access log and stack traces go to psgi.errors,
            // hence nginx's error log), but Plack::Middleware::Lint checks every response.
            .args(["-E", "test", "-e", "enable 'Lint'"])
            .arg(&psgi)
            .env("PLACK_GATE_DIR", &gates)
            .stdin(Stdio::null());
        on_lib(&mut cmd);
        let up_pid = fx.spawn("plackup", &mut cmd);
        let probe = up_sock.clone();
        fx.wait_ready("plackup", move || unix_ready(&probe));

        let script_sock = fx.path("plack.sock");
        let mut cmd = Command::new(PERL);
        cmd.arg(perl_file("plack_fcgi.pl"))
            .arg(&script_sock)
            .arg(&psgi)
            .env("PLACK_GATE_DIR", &gates)
            .stdin(Stdio::null());
        on_lib(&mut cmd);
        let script_pid = fx.spawn("plack_fcgi", &mut cmd);
        let probe = script_sock.clone();
        fx.wait_ready("plack_fcgi", move || unix_ready(&probe));

        let mut locations = String::new();
        for (prefix, sock) in [("/plackup", &up_sock), ("/plack", &script_sock)] {
            // SCRIPT_NAME is the prefix; Plack::Handler::FCGI takes PATH_INFO from REQUEST_URI.
            // No response buffering: the streamed chunks go to the client as they come.
            locations.push_str(&format!(
                "        location {prefix}/ {{
            fastcgi_split_path_info ^({prefix})(/.*)$;
            @PARAMS@
            fastcgi_buffering off;
            fastcgi_pass unix:{};
        }}
",
                sock.display()
            ));
        }
        fx.start_nginx("", &locations);
        let p = Plack {
            fx,
            pids: vec![("plackup", up_pid), ("plack_fcgi.pl", script_pid)],
        };
        p.check_libs();
        p
    }

    fn check_libs(&self) {
        for (name, pid) in &self.pids {
            check_lib_of(&self.fx, *pid, name);
        }
    }
}

#[test]
fn plack_routing_and_post() {
    if skip_without_plack() {
        return;
    }
    require_fcgi_pm();
    let p = Plack::start();
    let fx = &p.fx;
    for (prefix, (_, pid)) in PREFIXES.iter().zip(&p.pids) {
        let r = fx.get(&format!("{prefix}/hello?x=1&y=%20"));
        let text = expect(fx, "GET /hello", &r, 200);
        fx.check(r.header("X-Route").as_deref() == Some("hello"), || {
            format!("{prefix}/hello: no X-Route header:\n{}", r.headers)
        });
        for (name, value) in [
            ("PATH_INFO", "/hello".to_string()),
            ("SCRIPT_NAME", prefix.to_string()),
            ("QUERY_STRING", "x=1&y=%20".into()),
            ("REQUEST_METHOD", "GET".into()),
            ("PID", pid.to_string()),
            ("PSGI_VERSION", "1.1".into()),
            ("PSGI_STREAMING", "1".into()),
        ] {
            fx.check(line_value(&text, name) == Some(value.as_str()), || {
                format!("{prefix}/hello: want {name}={value}; body:\n{text}")
            });
        }
        let r = fx.get(&format!("{prefix}/no/such/route"));
        let text = expect(fx, "GET an unknown route", &r, 404);
        fx.check(text == "not found: /no/such/route\n", || {
            format!("{prefix}: unknown route answered {text:?}")
        });
        let r = fx.get(&format!("{prefix}/echo"));
        expect(fx, "GET /echo", &r, 405);

        post_echo(
            fx,
            &format!("POST 3 MB to {prefix}/echo"),
            &format!("{prefix}/echo"),
            3_000_000,
            7,
        );
        post_echo(
            fx,
            &format!("POST 10 bytes to {prefix}/echo"),
            &format!("{prefix}/echo"),
            10,
            8,
        );

        let r = fx.get(&format!("{prefix}/warn"));
        expect(fx, "GET /warn", &r, 200);
        let r = fx.get(&format!("{prefix}/die"));
        expect(fx, "GET /die", &r, 500);
    }
    // psgi.errors of Plack::Handler::FCGI is the request's FastCGI stderr stream.
    let warned = fs::read_to_string(fx.path("error.log"))
        .unwrap_or_default()
        .matches("FastCGI sent in stderr: \"app.psgi: warning through psgi.errors")
        .count();
    fx.check(warned == 2, || {
        format!("want 2 psgi.errors lines in nginx's error.log, found {warned}")
    });
    p.check_libs();
    fx.check_error_log(&[
        "app.psgi: warning through psgi.errors",
        "app.psgi: died on purpose",
    ]);
}

/// GET `path` over HTTP/1.0 (nginx then sends the body as it comes and closes): reads until
/// the body contains `first`, calls `between`, then reads to the end. Returns the whole body.
fn streamed_get(
    port: u16,
    path: &str,
    first: &str,
    between: impl FnOnce(),
) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(WEB_IO_TIMEOUT)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((_, body)) = text.split_once("\r\n\r\n") {
            if body.contains(first) {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no {first:?} within 30 s; so far:\n{text}"));
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("closed before {first:?}:\n{text}")),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}; so far:\n{text}")),
        }
    }
    between();
    s.read_to_end(&mut got)
        .map_err(|e| format!("read the rest: {e}"))?;
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("not a 200:\n{text}"));
    }
    Ok(body.to_string())
}

#[test]
fn plack_streaming_and_delayed_responses() {
    if skip_without_plack() {
        return;
    }
    require_fcgi_pm();
    let p = Plack::start();
    let fx = &p.fx;
    for (i, prefix) in PREFIXES.iter().enumerate() {
        // The writer's first chunk arrives while the app still waits for the gate: it was
        // flushed through FCGI.pm and the library, and nginx passed it on.
        let gate = fx.path("gates").join(format!("g{i}"));
        let body = streamed_get(
            fx.port,
            &format!("{prefix}/stream?gate=g{i}"),
            "chunk 1\n",
            || fs::write(&gate, b"go").expect("create the gate"),
        )
        .unwrap_or_else(|e| fx.fail(&format!("{prefix}/stream: {e}")));
        fx.check(body == "chunk 1\nchunk 2\n", || {
            format!("{prefix}/stream: body {body:?}")
        });

        let r = fx.get(&format!("{prefix}/delayed"));
        let text = expect(fx, "GET /delayed", &r, 202);
        fx.check(text == "delayed\n", || {
            format!("{prefix}/delayed: {text:?}")
        });
    }
    p.check_libs();
    fx.check_error_log(&[]);
}
