//! End to end through lighttpd: curl -> lighttpd (mod_fastcgi) -> fcgi-runtime, with the C
//! examples as the applications, including the FastCGI Authorizer role.
//!
//! Every test starts its own fixture (see [`start`], on the shared [`Fixture`] of
//! `tests/harness/fixture.rs`) in a temporary directory:
//!
//! | process         | how it listens                                                      |
//! |-----------------|---------------------------------------------------------------------|
//! | `echo-tcp`      | `echo -t 4 -a 127.0.0.1:PORT`                                       |
//! | `echo-unix`     | `echo -t 4 -a DIR/echo.sock`                                        |
//! | `authorizer`    | `authorizer -a 127.0.0.1:PORT` (native API)                         |
//! | `lf-authorizer` | `lf-authorizer alice secret`, a TCP listening socket as fd 0        |
//! |                 | (libfcgi API, on the project's libfcgi.so.0)                        |
//! | counting proxy  | a thread of this test between lighttpd and `echo-tcp`, recording    |
//! |                 | every backend connection and its FCGI_BEGIN_REQUEST                 |
//! | `lighttpd`      | `lighttpd -D -f DIR/lighttpd.conf`, a free port of 127.0.0.1        |
//!
//! and lighttpd's `fastcgi.server` (see [`lighttpd_conf`]):
//!
//! | URL prefix     | handler                                                              |
//! |----------------|----------------------------------------------------------------------|
//! | `/echo`        | echo over TCP                                                        |
//! | `/unix/echo`   | echo over the Unix socket                                            |
//! | `/counted/echo`| echo over TCP through the counting proxy                             |
//! | `/auth/`       | authorizer (`"mode" => "authorizer"`), then `/auth/echo`: echo (TCP) |
//! | `/static/`     | authorizer with `"docroot"`, then lighttpd serves the static file    |
//! | `/lf/`         | lf-authorizer, then `/lf/echo`: echo over the Unix socket            |
//! | `/spawned`     | `echo -t 2`, spawned by lighttpd itself (`"bin-path"`, `"max-procs"  |
//! |                | => 2`): each process gets a listening Unix socket as fd 0            |
//!
//! lighttpd 1.4 runs an authorizer and a responder for the same request when both match it
//! (it searches the authorizer entries of `fastcgi.server` first, then, once one answered 200,
//! restarts the request and searches the responder entries). On a 200 it drops the
//! authorizer's headers except `Variable-NAME: value`, which it adds as `NAME=value` to the
//! request's environment (after the CGI variables, like mod_setenv's), so the responder sees it
//! as a param; any other status goes to the client with the authorizer's headers and body.
//!
//! `lf-authorizer` checks the params `REMOTE_USER` and `REMOTE_PASSWD` (libfcgi's example does
//! the same), which lighttpd never sets from a request by itself: mod_setenv sets them from an
//! `X-Login` request header (one conditional block per test login), which is a test rig, not a
//! deployment recipe.
//!
//! lighttpd (Debian's package) is required: when `/usr/sbin/lighttpd` is missing the tests fail,
//! they do not skip. Every HTTP request goes through `curl --max-time 30`; every wait is
//! bounded. The processes are killed when the fixture is dropped; the temporary directory is
//! removed unless the test failed (or `FCGI_TEST_KEEP=1`).

use crate::harness;
use crate::harness::{
    check_echo, children_of, example_cmd, require, show, tail, tcp_ready, unix_ready,
    wait_lib_mapped, Fixture, Response, START_TIMEOUT, WEB_IO_TIMEOUT,
};
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const LIGHTTPD: &str = "/usr/sbin/lighttpd";
const CURL_MAX_TIME: u32 = 30;
const FOUR_MIB: usize = 4 * 1024 * 1024;
/// What `static/file.txt` under the authorizer's docroot holds.
const STATIC_CONTENT: &[u8] = b"protected static content\n";

// ---------------------------------------------------------------------------------------------
// The counting proxy
// ---------------------------------------------------------------------------------------------

/// A TCP relay between lighttpd and one upstream, recording the first 16 bytes lighttpd sent
/// on every connection (an FCGI_BEGIN_REQUEST record: header and body). Stops accepting when
/// dropped; relays in progress end with their peers (or after [`WEB_IO_TIMEOUT`] of silence).
struct CountingProxy {
    port: u16,
    begins: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl CountingProxy {
    fn start(upstream: u16) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let begins: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (begins.clone(), stop.clone());
        let acceptor = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let index = {
                            let mut v = b.lock().unwrap();
                            v.push(Vec::new());
                            v.len() - 1
                        };
                        let b = b.clone();
                        thread::spawn(move || relay(client, upstream, b, index));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CountingProxy {
            port,
            begins,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// The first 16 bytes of every connection accepted so far, in accept order.
    fn begins(&self) -> Vec<Vec<u8>> {
        self.begins.lock().unwrap().clone()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Relays one connection both ways; records its first 16 bytes from the client before they
/// are forwarded.
fn relay(client: TcpStream, upstream: u16, begins: Arc<Mutex<Vec<Vec<u8>>>>, index: usize) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    for s in [&client, &server] {
        let _ = s.set_read_timeout(Some(WEB_IO_TIMEOUT));
        let _ = s.set_write_timeout(Some(WEB_IO_TIMEOUT));
    }
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        let mut seen = 0usize;
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if seen < 16 {
                let take = n.min(16 - seen);
                begins.lock().unwrap()[index].extend_from_slice(&buf[..take]);
                seen += take;
            }
            if s_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let _ = io::copy(&mut s_read, &mut c_write);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = up.join();
}

// ---------------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------------

struct Lighttpd {
    /// Declared first: dropped (lighttpd and the applications killed) before the proxy.
    fx: Fixture,
    proxy: CountingProxy,
}

/// Starts `name`: `ADDR` replaced by `127.0.0.1:<free port>` in `args`. Returns the port.
fn start_tcp_example(fx: &mut Fixture, name: &str, program: &str, args: &[&str]) -> u16 {
    fx.start_on_free_port(
        name,
        "cannot listen on",
        |port| {
            let addr = format!("127.0.0.1:{port}");
            let args: Vec<&str> = args
                .iter()
                .map(|a| if *a == "ADDR" { addr.as_str() } else { a })
                .collect();
            let mut cmd = example_cmd(program, &args);
            cmd.stdin(Stdio::null());
            cmd
        },
        |_, port| tcp_ready(port),
    )
}

/// The fixture of every test: the applications, the proxy and lighttpd in front of them.
fn start() -> Lighttpd {
    require(LIGHTTPD, "lighttpd");
    let mut fx = Fixture::new("lighttpd");
    fx.curl_max_time = CURL_MAX_TIME;

    let echo_port = start_tcp_example(&mut fx, "echo-tcp", "echo", &["-t", "4", "-a", "ADDR"]);
    let auth_port = start_tcp_example(&mut fx, "authorizer", "authorizer", &["-a", "ADDR"]);

    let sock = fx.path("echo.sock");
    let mut cmd = example_cmd("echo", &["-t", "4", "-a"]);
    cmd.arg(&sock).stdin(Stdio::null());
    fx.spawn("echo-unix", &mut cmd);
    let probe = sock.clone();
    fx.wait_ready("echo-unix", move || unix_ready(&probe));

    // lf-authorizer: libfcgi's FCGI_Accept finds its listening socket on fd 0.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let lf_port = listener.local_addr().expect("local_addr").port();
    let mut cmd = example_cmd("lf-authorizer", &["alice", "secret"]);
    cmd.stdin(Stdio::from(OwnedFd::from(listener)));
    let lf_pid = fx.spawn("lf-authorizer", &mut cmd);
    // The socket listens already: wait until the loader has chosen a libfcgi, then check it is
    // the project's (unless the examples come from elsewhere).
    fx.check(wait_lib_mapped(lf_pid), || {
        "lf-authorizer exited or never mapped a libfcgi".to_string()
    });
    if std::env::var_os("FCGI_TEST_EXAMPLES_DIR").is_none() {
        fx.check(harness::runs_project_lib(lf_pid), || {
            format!("lf-authorizer (pid {lf_pid}) does not run on the project's libfcgi.so.0")
        });
    }

    let proxy = CountingProxy::start(echo_port);

    let www = fx.path("www");
    fs::create_dir_all(www.join("static")).expect("create docroot");
    fs::write(www.join("static/file.txt"), STATIC_CONTENT).expect("write static file");
    fs::create_dir_all(fx.path("upload")).expect("create upload dir");

    let ports = Ports {
        echo: echo_port,
        authorizer: auth_port,
        lf_authorizer: lf_port,
        proxy: proxy.port,
    };
    start_lighttpd(&mut fx, &ports, &sock);
    Lighttpd { fx, proxy }
}

struct Ports {
    echo: u16,
    authorizer: u16,
    lf_authorizer: u16,
    proxy: u16,
}

/// lighttpd's configuration (the table in the module documentation).
fn lighttpd_conf(dir: &Path, port: u16, p: &Ports, sock: &Path) -> String {
    let d = dir.display();
    let sock = sock.display();
    let spawned = harness::example("echo");
    let spawned = spawned.display();
    // lighttpd starts "bin-path" with an empty environment plus "bin-environment".
    let bin_env = if std::env::var_os("FCGI_TEST_EXAMPLES_DIR").is_none() {
        format!(r#""LD_LIBRARY_PATH" => "{}""#, harness::lib_dir().display())
    } else {
        String::new()
    };
    let Ports {
        echo,
        authorizer,
        lf_authorizer,
        proxy,
    } = p;
    format!(
        r#"# generated by tests/web_servers/lighttpd.rs
server.modules = ("mod_setenv", "mod_fastcgi", "mod_staticfile")
server.document-root = "{d}/www"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{d}/error.log"
server.pid-file = "{d}/lighttpd.pid"
server.upload-dirs = ("{d}/upload")
server.max-keep-alive-requests = 1000

fastcgi.server = (
    "/echo" => ((
        "host" => "127.0.0.1", "port" => {echo},
        "check-local" => "disable",
    )),
    "/unix/echo" => ((
        "socket" => "{sock}",
        "check-local" => "disable",
    )),
    "/counted/echo" => ((
        "host" => "127.0.0.1", "port" => {proxy},
        "check-local" => "disable",
    )),
    "/auth/" => ((
        "host" => "127.0.0.1", "port" => {authorizer},
        "mode" => "authorizer",
        "check-local" => "disable",
    )),
    "/auth/echo" => ((
        "host" => "127.0.0.1", "port" => {echo},
        "check-local" => "disable",
    )),
    "/static/" => ((
        "host" => "127.0.0.1", "port" => {authorizer},
        "mode" => "authorizer",
        "docroot" => "{d}/www",
    )),
    "/lf/" => ((
        "host" => "127.0.0.1", "port" => {lf_authorizer},
        "mode" => "authorizer",
        "check-local" => "disable",
    )),
    "/lf/echo" => ((
        "socket" => "{sock}",
        "check-local" => "disable",
    )),
    "/spawned" => ((
        "bin-path" => "{spawned} -t 2",
        "socket" => "{d}/spawned.sock",
        "max-procs" => 2,
        "bin-environment" => ({bin_env}),
        "check-local" => "disable",
    )),
)

# lf-authorizer's REMOTE_USER and REMOTE_PASSWD (a test rig: see tests/web_servers/lighttpd.rs).
$REQUEST_HEADER["X-Login"] == "alice:secret" {{
    setenv.set-environment = ("REMOTE_USER" => "alice", "REMOTE_PASSWD" => "secret")
}}
$REQUEST_HEADER["X-Login"] == "alice:wrong" {{
    setenv.set-environment = ("REMOTE_USER" => "alice", "REMOTE_PASSWD" => "wrong")
}}
$REQUEST_HEADER["X-Login"] == "bob:secret" {{
    setenv.set-environment = ("REMOTE_USER" => "bob", "REMOTE_PASSWD" => "secret")
}}
"#
    )
}

/// Starts `lighttpd -D -f DIR/lighttpd.conf` on a free port (another one if it was taken
/// meanwhile) and sets `fx.port`.
fn start_lighttpd(fx: &mut Fixture, ports: &Ports, sock: &Path) {
    let conf = fx.path("lighttpd.conf");
    let error_log = fx.path("error.log");
    let mut last = String::new();
    for attempt in 0..5 {
        let port = harness::free_port();
        fs::write(&conf, lighttpd_conf(&fx.dir, port, ports, sock)).expect("write config");
        let name = format!("lighttpd{attempt}");
        let mut cmd = Command::new(LIGHTTPD);
        cmd.arg("-D").arg("-f").arg(&conf).stdin(Stdio::null());
        fx.spawn(&name, &mut cmd);
        let deadline = Instant::now() + START_TIMEOUT;
        let ok = loop {
            if tcp_ready(port) {
                break true;
            }
            if fx.exited(&name).is_some() || Instant::now() > deadline {
                break false;
            }
            thread::sleep(Duration::from_millis(10));
        };
        if ok {
            fx.port = port;
            fx.rename(&name, "lighttpd");
            return;
        }
        last = format!("{}\n{}", tail(&error_log, 20), fx.stderr_of(&name));
        if !last.contains("Address already in use") {
            break;
        }
    }
    fx.fail(&format!("cannot start lighttpd:\n{last}"))
}

/// lighttpd's error log has no levels: every line but the start-up notice is a complaint.
fn check_error_log(fx: &Fixture) {
    let log = fs::read_to_string(fx.path("error.log")).unwrap_or_default();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("server started"))
        .collect();
    fx.check(bad.is_empty(), || {
        format!("lighttpd logged errors:\n{}", bad.join("\n"))
    });
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// [`harness::echo_lines`] and the SCRIPT_NAME lighttpd sets to the location.
fn echo_lines(method: &str, uri: &str, query: &str, body: &[u8]) -> Vec<String> {
    let mut lines = harness::echo_lines(method, uri, query, body);
    lines.push(format!("SCRIPT_NAME={uri}"));
    lines
}

/// Checks a denial: `status`, the authorizer's body exactly, its Content-Type.
fn check_denied(fx: &Fixture, what: &str, r: &Response, status: u16, body: &[u8]) {
    fx.check(r.status == status && r.body == body, || {
        format!(
            "{what}: want {status} {:?}, got {} {:?}",
            show(body),
            r.status,
            show(&r.body)
        )
    });
    fx.check(
        r.header("Content-Type").as_deref() == Some("text/plain"),
        || {
            format!(
                "{what}: want the authorizer's Content-Type: text/plain in\n{}",
                r.headers
            )
        },
    );
}

/// A file in the fixture directory holding `body`, as curl's `@FILE` argument.
fn upload_file(fx: &Fixture, name: &str, body: &[u8]) -> String {
    let file = fx.path(name);
    fs::write(&file, body).expect("write upload");
    format!("@{}", file.display())
}

// ---------------------------------------------------------------------------------------------
// Tests: the Authorizer role
// ---------------------------------------------------------------------------------------------

#[test]
fn native_authorizer_guards_a_responder_and_passes_variables() {
    let t = start();
    let fx = &t.fx;

    let r = fx.curl(
        &["-H", "Authorization: Bearer letmein"],
        "/auth/echo?who=me",
    );
    let mut want = echo_lines("GET", "/auth/echo", "who=me", b"");
    want.push("HTTP_AUTHORIZATION=Bearer letmein".to_string());
    // Variable-AUTH_USER: demo from the authorizer's 200, as a param of the responder.
    want.push("AUTH_USER=demo".to_string());
    let lines = check_echo(fx, "allowed GET /auth/echo", &r, &want);
    fx.check(
        lines.iter().filter(|l| l.starts_with("AUTH_USER=")).count() == 1,
        || format!("want exactly one AUTH_USER param:\n{}", lines.join("\n")),
    );

    // Denied: no credentials, wrong credentials. The authorizer's 403 and body reach the
    // client, and the responder is not run.
    let r = fx.get("/auth/echo?who=nobody");
    check_denied(
        fx,
        "GET /auth/echo without Authorization",
        &r,
        403,
        b"forbidden\n",
    );
    let r = fx.curl(
        &["-H", "Authorization: Bearer guess"],
        "/auth/echo?who=guess",
    );
    check_denied(
        fx,
        "GET /auth/echo with a wrong token",
        &r,
        403,
        b"forbidden\n",
    );

    // A POST body survives the authorizer round (lighttpd keeps it for the responder).
    let body = harness::body(FOUR_MIB, 0xa11c_e5ed);
    let data = upload_file(fx, "upload.bin", &body);
    let r = fx.curl(
        &[
            "-H",
            "Authorization: Bearer letmein",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &data,
        ],
        "/auth/echo?post=1",
    );
    let mut want = echo_lines("POST", "/auth/echo", "post=1", &body);
    want.push(format!("CONTENT_LENGTH={FOUR_MIB}"));
    want.push("AUTH_USER=demo".to_string());
    check_echo(fx, "allowed POST /auth/echo", &r, &want);

    // A denied POST gets the 403, not a responder's answer.
    let r = fx.curl(&["--data-binary", &data], "/auth/echo?post=2");
    check_denied(fx, "denied POST /auth/echo", &r, 403, b"forbidden\n");

    check_error_log(fx);
}

#[test]
fn native_authorizer_guards_static_files_under_its_docroot() {
    let t = start();
    let fx = &t.fx;
    let r = fx.curl(&["-H", "Authorization: Bearer letmein"], "/static/file.txt");
    fx.check(r.status == 200 && r.body == STATIC_CONTENT, || {
        format!(
            "allowed GET /static/file.txt: status {}, body {:?}",
            r.status,
            show(&r.body)
        )
    });
    let r = fx.get("/static/file.txt");
    check_denied(
        fx,
        "GET /static/file.txt without Authorization",
        &r,
        403,
        b"forbidden\n",
    );
    check_error_log(fx);
}

#[test]
fn libfcgi_authorizer_guards_a_responder_on_a_unix_socket() {
    let t = start();
    let fx = &t.fx;

    // Allowed twice: the Variable-* headers arrive as params; AUTH_GRANTS counts the grants
    // of the one lf-authorizer process.
    for grant in 1..=2 {
        let r = fx.curl(
            &["-H", "X-Login: alice:secret"],
            &format!("/lf/echo?n={grant}"),
        );
        let mut want = echo_lines("GET", "/lf/echo", &format!("n={grant}"), b"");
        want.extend(
            [
                "REMOTE_USER=alice",
                "AUTH_TYPE=Basic",
                "AUTH_USER=alice",
                &format!("AUTH_GRANTS={grant}"),
            ]
            .map(str::to_string),
        );
        check_echo(fx, &format!("allowed GET /lf/echo #{grant}"), &r, &want);
    }

    // Denied: wrong password, unknown user, no login at all. Each gets the authorizer's 403
    // and body (which names REMOTE_USER as lf-authorizer received it).
    let r = fx.curl(&["-H", "X-Login: alice:wrong"], "/lf/echo?n=3");
    check_denied(fx, "wrong password", &r, 403, b"access denied for alice\n");
    let r = fx.curl(&["-H", "X-Login: bob:secret"], "/lf/echo?n=4");
    check_denied(fx, "unknown user", &r, 403, b"access denied for bob\n");
    let r = fx.get("/lf/echo?n=5");
    check_denied(fx, "no login", &r, 403, b"access denied for (anonymous)\n");

    // Denials did not count as grants.
    let r = fx.curl(&["-H", "X-Login: alice:secret"], "/lf/echo?n=6");
    let mut want = echo_lines("GET", "/lf/echo", "n=6", b"");
    want.push("AUTH_GRANTS=3".to_string());
    check_echo(fx, "allowed GET /lf/echo after the denials", &r, &want);

    check_error_log(fx);
}

// ---------------------------------------------------------------------------------------------
// Tests: a plain responder
// ---------------------------------------------------------------------------------------------

#[test]
fn responder_get_and_post_over_tcp_and_unix_socket() {
    let t = start();
    let fx = &t.fx;
    let body = harness::body(FOUR_MIB, 0x5eed_f00d);
    let data = upload_file(fx, "upload.bin", &body);
    for loc in ["/echo", "/unix/echo"] {
        let query = "a=1&b=two%20words&empty=";
        let r = fx.get(&format!("{loc}?{query}"));
        let mut want = echo_lines("GET", loc, query, b"");
        want.push(format!("SERVER_SOFTWARE=lighttpd/{}", lighttpd_version(fx)));
        check_echo(fx, &format!("GET {loc}"), &r, &want);
        fx.check(
            r.header("Content-Type").as_deref() == Some("text/plain"),
            || format!("GET {loc}: no text/plain Content-Type in\n{}", r.headers),
        );

        let r = fx.curl(
            &[
                "--data-binary",
                &data,
                "-H",
                "Content-Type: application/octet-stream",
            ],
            &format!("{loc}?upload=1"),
        );
        let mut want = echo_lines("POST", loc, "upload=1", &body);
        want.push(format!("CONTENT_LENGTH={FOUR_MIB}"));
        want.push("CONTENT_TYPE=application/octet-stream".to_string());
        check_echo(fx, &format!("POST 4 MiB to {loc}"), &r, &want);
    }
    check_error_log(fx);
}

/// `1.4.69` from `lighttpd -v` ("lighttpd/1.4.69 (ssl) - a light and fast webserver").
fn lighttpd_version(fx: &Fixture) -> String {
    let out = Command::new(LIGHTTPD)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .expect("run lighttpd -v");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = text
        .split_whitespace()
        .next()
        .and_then(|w| w.strip_prefix("lighttpd/"))
        .map(str::to_string);
    v.unwrap_or_else(|| fx.fail(&format!("cannot read the version from lighttpd -v: {text}")))
}

#[test]
fn backend_connections_are_one_per_request() {
    let t = start();
    let fx = &t.fx;
    // One curl, 20 URLs on one client connection (curl_many checks it opened only one).
    let paths: Vec<String> = (0..20).map(|i| format!("/counted/echo?seq={i}")).collect();
    let responses = fx.curl_many(&paths);
    for (i, r) in responses.iter().enumerate() {
        check_echo(
            fx,
            &format!("request {i} of 20"),
            r,
            &echo_lines("GET", "/counted/echo", &format!("seq={i}"), b""),
        );
    }
    // lighttpd 1.4 does not keep FastCGI connections: every request opened its own, with
    // FCGI_KEEP_CONN clear in its FCGI_BEGIN_REQUEST.
    let begins = t.proxy.begins();
    fx.check(begins.len() == 20, || {
        format!(
            "want 20 backend connections, the proxy accepted {}",
            begins.len()
        )
    });
    for (i, b) in begins.iter().enumerate() {
        // version 1, type 1 (BEGIN_REQUEST), content length 8, role 1 (RESPONDER), flags 0.
        let ok = b.len() == 16
            && b[0] == 1
            && b[1] == 1
            && b[4..6] == [0, 8]
            && b[8..10] == [0, 1]
            && b[10] == 0;
        fx.check(ok, || {
            format!(
                "backend connection {i}: not a responder BEGIN_REQUEST without KEEP_CONN: {b:02x?}"
            )
        });
    }
    check_error_log(fx);
}

#[test]
fn sixteen_concurrent_clients_all_succeed() {
    let t = start();
    let fx = &t.fx;
    // sleep_ms makes the requests overlap: 16 at once against echo's 4 threads.
    let calls: Vec<_> = (0..16)
        .map(|i| fx.curl_spawn(&[], &format!("/echo?client={i}&sleep_ms=50")))
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let r = fx.curl_wait(call);
        let query = format!("client={i}&sleep_ms=50");
        check_echo(
            fx,
            &format!("concurrent client {i}"),
            &r,
            &echo_lines("GET", "/echo", &query, b""),
        );
    }
    check_error_log(fx);
}

#[test]
fn lighttpd_spawns_the_application_with_a_socket_on_fd_0() {
    let t = start();
    let fx = &t.fx;
    for i in 0..8 {
        let query = format!("n={i}");
        let r = fx.get(&format!("/spawned?{query}"));
        check_echo(
            fx,
            &format!("GET /spawned #{i}"),
            &r,
            &echo_lines("GET", "/spawned", &query, b""),
        );
    }
    // lighttpd spawns its "max-procs" while reading its configuration, before it serves the
    // first request (its port may accept connections earlier).
    let lighttpd = fx.pid("lighttpd");
    let echo = harness::example("echo");
    let echo = echo.canonicalize().unwrap_or(echo);
    let spawned: Vec<u32> = children_of(lighttpd)
        .into_iter()
        .filter(|&pid| fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == echo))
        .collect();
    fx.check(spawned.len() == 2, || {
        format!("want 2 echo processes spawned by lighttpd, found {spawned:?}")
    });
    check_error_log(fx);
}
