//! c-examples/sapi.c, the SAPI porting guide's example (docs/sapi.md): built by `make -C
//! c-examples` against the project's library and driven as php-cgi would be.
//!
//! - raw FastCGI requests (the crate's client) check every command of the toy language, the
//!   header/status/body mapping onto STDOUT, `error` onto FCGI_STDERR, `exit` onto END_REQUEST's
//!   appStatus, and php-cgi's 404 "No input file specified.";
//! - an ABORT_REQUEST while the script waits for it stops the script (`fcgi_is_aborted`);
//! - plain CGI mode (no socket on fd 0, no -b), the `-b` TCP socket with
//!   FCGI_WEB_SERVER_ADDRS, PHP_FCGI_CHILDREN (the pool), GET_VALUES and SIGTERM;
//! - behind nginx: SCRIPT_FILENAME from the document root, status, headers and stderr;
//! - the C in docs/sapi.md is quoted verbatim from sapi.c, and every `fcgi_*` function the
//!   guide names for this library is declared in include/fcgi.h.

mod common;
mod support;

use fcgi_runtime_protocol::record::{push_record, rtype};
use fcgi_runtime_tools::client::{Client, Request, Response};
use std::fs::{self, File};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// Polls `f` every 10 ms for at most [`WAIT`].
fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A temporary directory for scripts and logs, removed on drop unless the test failed.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "fcgi-sapi-{tag}-{}-{}",
            std::process::id(),
            support::unique()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("create temp dir");
        Dir(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes a script and returns its path as a string (for SCRIPT_FILENAME).
    fn script(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        fs::write(&p, text).expect("write script");
        p.to_str().expect("utf-8 path").to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("files kept in {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// The sapi example as a FastCGI server; killed on drop.
struct Sapi {
    child: Child,
    addr: String,
    stderr: PathBuf,
}

impl Sapi {
    fn command(dir: &Dir) -> Command {
        let mut cmd = Command::new(common::example("sapi"));
        cmd.env_remove("PHP_FCGI_CHILDREN")
            .env_remove("PHP_FCGI_MAX_REQUESTS")
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            .env("SAPI_TEST_DIR", &dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                File::create(dir.path("sapi.err")).expect("stderr file"),
            ));
        if std::env::var_os("FCGI_TEST_EXAMPLES_DIR").is_none() {
            cmd.env("LD_LIBRARY_PATH", common::lib_dir());
        }
        cmd
    }

    /// On a Unix socket the test creates and passes as fd 0, as a web server or spawn-fcgi does.
    fn on_fd0(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> Sapi {
        let sock = dir.path("sapi.sock");
        let listener = UnixListener::bind(&sock).expect("bind the Unix socket");
        let mut cmd = Sapi::command(dir);
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)));
        let child = cmd.spawn().expect("start sapi");
        Sapi {
            child,
            addr: sock.to_str().unwrap().to_string(),
            stderr: dir.path("sapi.err"),
        }
    }

    /// With `-b ADDR` (fcgi_listen); waits until it accepts connections.
    fn bound(dir: &Dir, addr: &str, env: &[(&str, &str)]) -> Sapi {
        let mut cmd = Sapi::command(dir);
        cmd.args(["-b", addr])
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        let child = cmd.spawn().expect("start sapi");
        let mut s = Sapi {
            child,
            addr: addr.to_string(),
            stderr: dir.path("sapi.err"),
        };
        let ok = wait_for(|| {
            s.child.try_wait().ok().flatten().is_none()
                && fcgi_runtime::addr::connect(&s.addr).is_ok()
        });
        assert!(ok, "sapi -b {addr} not listening; stderr:\n{}", s.err());
        s
    }

    fn connect(&self) -> Client {
        let c = Client::connect(&self.addr).expect("connect to sapi");
        c.set_timeout(Some(common::IO_TIMEOUT)).unwrap();
        c
    }

    fn request(&self, req: &Request) -> Response {
        self.connect()
            .request(req)
            .unwrap_or_else(|e| panic!("request to sapi: {e}; stderr:\n{}", self.err()))
    }

    fn err(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sapi {
    fn drop(&mut self) {
        // The pool's workers, found before their supervisor goes (they are reparented then).
        let workers = support::children_of(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for w in workers {
            // SAFETY: kill(2) on a worker the supervisor this test started forked; the
            // supervisor is reaped, so these pids were its children until just now.
            unsafe {
                libc::kill(w as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

fn req(id: u16, script: &str) -> Request {
    Request::new(id)
        .param("GATEWAY_INTERFACE", "CGI/1.1")
        .param("REQUEST_METHOD", "GET")
        .param("SCRIPT_FILENAME", script)
        .param("SCRIPT_NAME", "/t.sapi")
        .param("QUERY_STRING", "a=1&b=2")
        .param("SERVER_PROTOCOL", "HTTP/1.1")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_command_maps_onto_fastcgi() {
    let dir = Dir::new("cmds");
    let sapi = Sapi::on_fd0(&dir, &[], &[]);
    let script = dir.script(
        "all.sapi",
        "# every command\n\
         header X-Sapi: yes\n\
         header Content-Type: text/x-toy\n\
         status 201\n\
         echo hello world\n\
         env QUERY_STRING\n\
         env SAPI_TEST_DIR\n\
         env NO_SUCH_VARIABLE\n\
         error something went wrong\n\
         body\n\
         echo\n\
         header X-Late: 1\n\
         nonsense here\n\
         flush\n\
         exit 7\n\
         echo not reached\n",
    );
    let body = common::body(200_000, 17);
    let r = sapi.request(
        &req(1, &script)
            .param("REQUEST_METHOD", "POST")
            .param("CONTENT_LENGTH", body.len().to_string())
            .stdin(body.clone()),
    );
    let mut want = b"Status: 201 Created\r\nX-Sapi: yes\r\nContent-Type: text/x-toy\r\n\r\n\
                     hello world\na=1&b=2\n"
        .to_vec();
    want.extend_from_slice(format!("{}\n\n", dir.0.display()).as_bytes());
    want.extend_from_slice(&body);
    want.extend_from_slice(b"\n");
    common::assert_output(&r.stdout, &want);
    assert_eq!(
        text(&r.stderr),
        "something went wrong\n\
         sapi: cannot add header, output already started on line 12: X-Late: 1\n\
         sapi: unknown command on line 13: nonsense\n"
    );
    assert_eq!(r.app_status, 7, "exit 7 is END_REQUEST's appStatus");
    assert_eq!(r.protocol_status, 0);
    assert!(r.stdout_closed);

    // A script without output still sends its headers; the default status and type.
    let empty = dir.script("empty.sapi", "# nothing\n");
    let r = sapi.request(&req(2, &empty));
    common::assert_output(&r.stdout, b"Content-Type: text/plain\r\n\r\n");
    assert_eq!(r.app_status, 0);

    // `body` reads at most CONTENT_LENGTH bytes: the rest is left to the library.
    let b = dir.script("body.sapi", "body\n");
    let r = sapi.request(
        &req(3, &b)
            .param("CONTENT_LENGTH", "5")
            .stdin(b"12345 and more".to_vec()),
    );
    common::assert_output(&r.stdout, b"Content-Type: text/plain\r\n\r\n12345");
}

#[test]
fn requests_on_one_kept_connection() {
    let dir = Dir::new("keep");
    let sapi = Sapi::on_fd0(&dir, &[], &[]);
    let script = dir.script("q.sapi", "env QUERY_STRING\n");
    let unread = dir.script("unread.sapi", "echo ignored the body\n");
    let mut c = sapi.connect();
    for i in 1..=20u16 {
        // Every other request leaves its body unread: the next one must not see it.
        let r = if i % 2 == 0 {
            c.request(
                &req(i, &unread)
                    .keep_conn(true)
                    .param("CONTENT_LENGTH", "100000")
                    .stdin(common::body(100_000, u64::from(i))),
            )
        } else {
            c.request(
                &req(i, &script)
                    .keep_conn(true)
                    .param("QUERY_STRING", format!("n={i}")),
            )
        }
        .unwrap_or_else(|e| panic!("request {i}: {e}; stderr:\n{}", sapi.err()));
        let want = if i % 2 == 0 {
            "Content-Type: text/plain\r\n\r\nignored the body\n".to_string()
        } else {
            format!("Content-Type: text/plain\r\n\r\nn={i}\n")
        };
        common::assert_output(&r.stdout, want.as_bytes());
    }
}

#[test]
fn missing_script_is_php_cgis_404() {
    let dir = Dir::new("404");
    let sapi = Sapi::on_fd0(&dir, &[], &[]);
    let want: &[u8] = b"Status: 404 Not Found\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n\
                        No input file specified.\n";
    let missing = dir.path("nope.sapi");
    for r in [
        sapi.request(&req(1, missing.to_str().unwrap())),
        sapi.request(&req(2, "")),
        sapi.request(&Request::new(3).param("REQUEST_METHOD", "GET")),
        // A directory cannot be read as a script either.
        sapi.request(&req(4, dir.0.to_str().unwrap())),
    ] {
        common::assert_output(&r.stdout, want);
        assert_eq!(text(&r.stderr), "Primary script unknown\n");
        assert_eq!(r.protocol_status, 0);
    }
}

#[test]
fn abort_request_stops_the_script() {
    let dir = Dir::new("abort");
    let sapi = Sapi::on_fd0(&dir, &[], &[]);
    let script = dir.script(
        "abort.sapi",
        "echo before\nflush\nwait_abort\necho after\necho more\n",
    );
    let mut c = sapi.connect();
    c.send_request(&req(5, &script).keep_conn(true))
        .expect("send the request");
    // Wait for the flushed "before": the script is then in wait_abort.
    let mut stdout = Vec::new();
    while !text(&stdout).contains("before\n") {
        let rec = c
            .read_record()
            .expect("read a record")
            .expect("the connection closed before the first output");
        assert_eq!(rec.rtype, rtype::STDOUT, "unexpected record {rec:?}");
        stdout.extend_from_slice(&rec.content);
    }
    let mut abort = Vec::new();
    push_record(&mut abort, rtype::ABORT_REQUEST, 5, &[]);
    c.send_raw(&abort).expect("send ABORT_REQUEST");
    // The library answers END_REQUEST for the aborted id; nothing of "after" arrives.
    let end = loop {
        let rec = c
            .read_record()
            .expect("read a record")
            .expect("the connection closed without END_REQUEST");
        if rec.rtype == rtype::END_REQUEST {
            break rec;
        }
        stdout.extend_from_slice(&rec.content);
    };
    assert_eq!(end.id, 5);
    assert!(!text(&stdout).contains("after"), "output after the abort");
    let line = format!("sapi: request aborted at line 4 of {script}");
    assert!(
        wait_for(|| sapi.err().contains(&line)),
        "want {line:?} on the process's stderr:\n{}",
        sapi.err()
    );
    // The process goes on serving.
    let ok = dir.script("ok.sapi", "echo fine\n");
    let r = sapi.request(&req(6, &ok));
    common::assert_output(&r.stdout, b"Content-Type: text/plain\r\n\r\nfine\n");
}

#[test]
fn plain_cgi_without_a_socket() {
    let dir = Dir::new("cgi");
    let script = dir.script(
        "cgi.sapi",
        "header X-Mode: cgi\nenv REQUEST_METHOD\nbody\nerror to stderr\nexit 4\n",
    );
    let mut cmd = Sapi::command(&dir);
    cmd.env("SCRIPT_FILENAME", &script)
        .env("REQUEST_METHOD", "POST")
        .env("CONTENT_LENGTH", "9");
    let out = support::run_with_stdin(&mut cmd, b"cgi body!extra".to_vec(), |_| {})
        .expect("run sapi as CGI");
    assert_eq!(out.status.code(), Some(4), "exit 4 is the exit status");
    common::assert_output(
        &out.stdout,
        b"X-Mode: cgi\r\nContent-Type: text/plain\r\n\r\nPOST\ncgi body!",
    );
    // Sapi::command sent stderr to the file; run_with_stdin replaced it with a pipe.
    assert_eq!(text(&out.stderr), "to stderr\n");

    let mut cmd = Sapi::command(&dir);
    cmd.env("SCRIPT_FILENAME", dir.path("missing.sapi"));
    let out = support::run_with_stdin(&mut cmd, Vec::new(), |_| {}).expect("run sapi as CGI");
    assert!(out.status.success());
    common::assert_output(
        &out.stdout,
        b"Status: 404 Not Found\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n\
          No input file specified.\n",
    );
}

#[test]
fn bind_tcp_with_web_server_addrs_then_sigterm() {
    let dir = Dir::new("tcp");
    let script = dir.script("ip.sapi", "env REMOTE_ADDR\n");
    // 127.0.0.1 is not in the list: the connection is closed without an answer.
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut sapi = Sapi::bound(&dir, &addr, &[("FCGI_WEB_SERVER_ADDRS", "192.0.2.1")]);
    let mut c = sapi.connect();
    let _ = c.send_request(&req(1, &script));
    common::assert_closed(&mut c);
    drop(sapi);

    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    sapi = Sapi::bound(
        &dir,
        &addr,
        &[("FCGI_WEB_SERVER_ADDRS", "192.0.2.1,127.0.0.0/8")],
    );
    let r = sapi.request(&req(1, &script).param("REMOTE_ADDR", "203.0.113.9"));
    common::assert_output(&r.stdout, b"Content-Type: text/plain\r\n\r\n203.0.113.9\n");
    // GET_VALUES answers with the limits the library enforces (the example sets none).
    let vals = sapi
        .connect()
        .get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
        .expect("GET_VALUES");
    for name in ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"] {
        assert!(
            vals.iter()
                .any(|(n, v)| n == name && v.parse::<u64>().is_ok()),
            "GET_VALUES has no number for {name}: {vals:?}"
        );
    }
    // fcgi_listen installed PHP's SIGTERM handler: the waiting accept returns -1, main returns 0.
    // SAFETY: kill(2) on the process this test started and has not reaped.
    unsafe {
        libc::kill(sapi.pid() as libc::pid_t, libc::SIGTERM);
    }
    let mut status = None;
    assert!(
        wait_for(|| {
            status = sapi.child.try_wait().ok().flatten();
            status.is_some()
        }),
        "sapi still runs after SIGTERM"
    );
    assert!(status.unwrap().success(), "exit status {status:?}");
}

#[test]
fn php_fcgi_children_runs_a_pool() {
    let dir = Dir::new("pool");
    let sock = dir.path("pool.sock");
    let script = dir.script("pid.sapi", "echo served\n");
    let sapi = Sapi::bound(&dir, sock.to_str().unwrap(), &[("PHP_FCGI_CHILDREN", "2")]);
    assert!(
        wait_for(|| support::children_of(sapi.pid()).len() == 2),
        "want 2 workers under the supervisor, have {:?}; stderr:\n{}",
        support::children_of(sapi.pid()),
        sapi.err()
    );
    for i in 1..=10 {
        let r = sapi.request(&req(i, &script));
        common::assert_output(&r.stdout, b"Content-Type: text/plain\r\n\r\nserved\n");
    }
}

#[test]
fn threads_serve_concurrently() {
    let dir = Dir::new("threads");
    let sapi = Sapi::on_fd0(&dir, &["-t", "2"], &[]);
    let wait = dir.script("wait.sapi", "echo waiting\nflush\nwait_abort\n");
    let quick = dir.script("quick.sapi", "echo quick\n");
    // One thread waits in wait_abort; the other must still answer.
    let mut c = sapi.connect();
    c.send_request(&req(1, &wait)).expect("send");
    let rec = c.read_record().expect("read").expect("a record");
    assert_eq!(rec.rtype, rtype::STDOUT);
    let r = sapi.request(&req(2, &quick));
    common::assert_output(&r.stdout, b"Content-Type: text/plain\r\n\r\nquick\n");
    let mut abort = Vec::new();
    push_record(&mut abort, rtype::ABORT_REQUEST, 1, &[]);
    c.send_raw(&abort).expect("abort");
}

#[test]
fn behind_nginx() {
    support::require(support::NGINX, "nginx-light");
    let mut fx = support::Fixture::new("sapi");
    let root = fx.path("www");
    fs::create_dir_all(&root).unwrap();
    fs::write(
        root.join("index.sapi"),
        "status 404\nheader X-Toy: 1\necho custom not found\nerror logged by the script\n",
    )
    .unwrap();
    fs::write(root.join("post.sapi"), "env REQUEST_METHOD\nbody\n").unwrap();
    let sock = fx.path("sapi.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    let mut cmd = Command::new(common::example("sapi"));
    cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)));
    if std::env::var_os("FCGI_TEST_EXAMPLES_DIR").is_none() {
        cmd.env("LD_LIBRARY_PATH", common::lib_dir());
    }
    fx.spawn("sapi", &mut cmd);
    let locations = format!(
        "        location ~ \\.sapi$ {{
            root {};
            @PARAMS@
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_pass unix:{};
        }}",
        root.display(),
        sock.display()
    );
    fx.start_nginx("", &locations);

    let r = fx.get("/index.sapi");
    fx.check(r.status == 404 && r.text() == "custom not found\n", || {
        format!("status {}, body {:?}", r.status, r.text())
    });
    fx.check(r.header("X-Toy").as_deref() == Some("1"), || {
        format!("no X-Toy header:\n{}", r.headers)
    });
    fx.check(fx.error_log_has("logged by the script"), || {
        "the script's error is not in nginx's error.log".into()
    });

    let r = fx.get("/missing.sapi");
    fx.check(
        r.status == 404 && r.text() == "No input file specified.\n",
        || format!("status {}, body {:?}", r.status, r.text()),
    );
    fx.check(fx.error_log_has("Primary script unknown"), || {
        "no \"Primary script unknown\" in nginx's error.log".into()
    });

    let file = fx.path("upload.bin");
    fs::write(&file, common::body(3_000_000, 5)).unwrap();
    let r = fx.curl(
        &["--data-binary", &format!("@{}", file.display())],
        "/post.sapi",
    );
    let mut want = b"POST\n".to_vec();
    want.extend_from_slice(&fs::read(&file).unwrap());
    fx.check(r.status == 200 && r.body == want, || {
        format!("POST 3 MB: status {}, {} bytes", r.status, r.body.len())
    });
    fx.check_error_log(&["logged by the script", "Primary script unknown"]);
}

/// The ```c blocks of docs/sapi.md, each quoted verbatim from c-examples/sapi.c.
#[test]
fn guide_quotes_the_example_verbatim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("docs/sapi.md")).expect("docs/sapi.md");
    let src = fs::read_to_string(root.join("c-examples/sapi.c")).expect("c-examples/sapi.c");
    let header = fs::read_to_string(root.join("include/fcgi.h")).expect("include/fcgi.h");
    // The glue object PHP-FPM links beside the library (docs/sapi.md, "PHP itself").
    let glue = fs::read_to_string(root.join("php/fcgi_log_glue.c")).expect("php/fcgi_log_glue.c");
    let mut blocks = 0;
    let mut rest = doc.as_str();
    while let Some(i) = rest.find("```c\n") {
        let after = &rest[i + 5..];
        let end = after.find("```").expect("unterminated code block");
        let block = &after[..end];
        assert!(
            src.contains(block),
            "this block of docs/sapi.md is not in c-examples/sapi.c:\n{block}"
        );
        blocks += 1;
        rest = &after[end + 3..];
    }
    assert!(blocks >= 5, "docs/sapi.md quotes {blocks} blocks of sapi.c");

    // Every fcgi_* function the guide names for this library exists in the header; the names
    // only PHP has are listed in the guide as PHP's.
    let php_only = ["fcgi_log", "fcgi_read_request"];
    let mut names: Vec<&str> = Vec::new();
    for (i, _) in doc.match_indices("fcgi_") {
        if i > 0 && (doc.as_bytes()[i - 1].is_ascii_alphanumeric() || doc.as_bytes()[i - 1] == b'_')
        {
            continue;
        }
        let n = doc[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(doc.len() - i);
        let name = &doc[i..i + n];
        if doc[i + n..].starts_with('(') && !names.contains(&name) {
            names.push(name);
        }
    }
    assert!(names.len() > 30, "the guide names only {names:?}");
    for name in names {
        if php_only.contains(&name) {
            continue;
        }
        assert!(
            header.contains(&format!(" {name}("))
                || header.contains(&format!("*{name}("))
                || glue.contains(&format!(" {name}(")),
            "docs/sapi.md names {name}() but neither include/fcgi.h nor php/fcgi_log_glue.c \
             declares it"
        );
    }
}
