//! Debian's `/usr/bin/cgi-fcgi`, unmodified (FCGX_CreateWriter, FCGX_PutStr, FCGX_FClose and
//! the OS_* layer, its async select loop included), on the project's library (`LD_LIBRARY_PATH`;
//! `FCGI_TEST_LIBFCGI=debian` runs it on Debian's instead, the reference): as a client of the
//! project's examples (1 MB body, 20 KB param, 2 MB response), and spawning applications:
//! `-start` with a libfcgi C program (`tests/harness/scripts/fcgx_echo.c`, built against Debian's
//! headers and `-lfcgi`, run on the library under test too), and on-demand `-connect SOCK APP`
//! with a project example.
//!
//! Every test asserts through `/proc/<pid>/maps` that the programs mapped the library under
//! test. Processes are killed when the fixture is dropped; every wait is bounded.

use crate::harness;
use crate::harness::*;
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// cgi-fcgi
// ---------------------------------------------------------------------------------------------

/// The environment of one cgi-fcgi run: CGI variables, plus what [`on_lib`] needs. cgi-fcgi
/// sends its whole environment as the request's params, so this is also what the application
/// must see.
fn cgi_env(method: &str, query: &str, body_len: Option<usize>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("REQUEST_METHOD".into(), method.into()),
        ("QUERY_STRING".into(), query.into()),
        ("SCRIPT_NAME".into(), "/echo".into()),
        ("REQUEST_URI".into(), format!("/echo?{query}")),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("SERVER_NAME".into(), "localhost".into()),
        ("HTTP_USER_AGENT".into(), "libfcgi_binaries.rs".into()),
    ];
    if let Some(n) = body_len {
        env.push(("CONTENT_LENGTH".into(), n.to_string()));
        env.push(("CONTENT_TYPE".into(), "application/octet-stream".into()));
    }
    env.extend(lib_env());
    env
}

/// Runs `cgi-fcgi ARGS` on the library under test with exactly `env` as its environment and
/// `body` on stdin. When there is a body, cgi-fcgi waits for it after connecting (or, if the
/// application answers without reading it, for its stdout pipe to be read), which is when its
/// mappings are checked; otherwise it may be gone before anyone could look.
fn cgi_fcgi(fx: &Fixture, args: &[&str], env: &[(String, String)], body: &[u8]) -> Output {
    require(CGI_FCGI, "libfcgi-bin");
    let mut cmd = Command::new(CGI_FCGI);
    cmd.args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let check = !body.is_empty();
    let res = run_with_stdin(&mut cmd, body.to_vec(), |pid| {
        if check {
            if !wait_lib_mapped(pid) {
                fx.fail(&format!(
                    "cgi-fcgi {args:?} exited (or mapped no libfcgi) before its body was sent"
                ));
            }
            fx.check_lib(pid, "cgi-fcgi");
        }
    });
    res.unwrap_or_else(|e| fx.fail(&e))
}

/// Checks cgi-fcgi's stdout against what an echo application (`c-examples/echo.c` or
/// `tests/harness/scripts/fcgx_echo.c`, same format) answers for `env` and `body`: the header, the
/// FCGI_ROLE line in its place (first from a libfcgi program's envp, last from echo's
/// fcgi_loadenv, PHP's order: [`role_in_place`]), exactly the params of `env` (in any order:
/// the order of an environment is not something cgi-fcgi promises), then the body's length
/// and hash.
fn check_echo_output(
    fx: &Fixture,
    what: &str,
    out: &Output,
    env: &[(String, String)],
    body: &[u8],
) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let fail = |why: &str| -> ! {
        fx.fail(&format!(
            "{what}: {why}\nexit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            show(&out.stdout),
            show(&out.stderr)
        ))
    };
    let Some(rest) = text.strip_prefix("Content-Type: text/plain\r\n\r\n") else {
        fail("output does not start with the Content-Type header")
    };
    let mut lines: Vec<&str> = rest.lines().collect();
    if !rest.ends_with('\n') || lines.len() < 3 {
        fail("output truncated");
    }
    if !role_in_place(&lines) {
        fail("FCGI_ROLE=RESPONDER is neither the first param nor the last");
    }
    let fnv = lines.pop().unwrap_or_default();
    let stdin_len = lines.pop().unwrap_or_default();
    let want_len = format!("STDIN_LENGTH={}", body.len());
    let want_fnv = format!("STDIN_FNV1A64={:016x}", harness::fnv1a64(body));
    if stdin_len != want_len || fnv != want_fnv {
        fail(&format!("want {want_len} and {want_fnv}"));
    }
    let params: Vec<&str> = lines
        .into_iter()
        .filter(|l| *l != "FCGI_ROLE=RESPONDER")
        .collect();
    let got: BTreeSet<String> = params.iter().map(|l| l.to_string()).collect();
    let want: BTreeSet<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if params.len() != got.len() {
        fail("a param line appears twice");
    }
    if got != want {
        let missing: Vec<&String> = want.difference(&got).collect();
        let extra: Vec<&String> = got.difference(&want).collect();
        fail(&format!(
            "params differ: missing {missing:?}, unexpected {extra:?}"
        ));
    }
}

#[track_caller]
fn check_exit(fx: &Fixture, what: &str, out: &Output, want: i32) {
    fx.check(out.status.code() == Some(want), || {
        format!(
            "{what}: cgi-fcgi exit status {:?} (signal {:?}), want {want}; stderr:\n{}",
            out.status.code(),
            out.status.signal(),
            show(&out.stderr)
        )
    });
}

/// GET, a POST of 1 MB and a request with a 20 KB param, through `cgi-fcgi -bind -connect
/// ADDR` to an echo application at `addr`.
fn cgi_fcgi_echo_round(fx: &Fixture, addr: &str, label: &str) {
    let args = ["-bind", "-connect", addr];

    let env = cgi_env("GET", "a=1&b=two%20words", None);
    let out = cgi_fcgi(fx, &args, &env, b"");
    check_exit(fx, &format!("{label}: GET"), &out, 0);
    check_echo_output(fx, &format!("{label}: GET"), &out, &env, b"");

    let body = harness::body(1024 * 1024, 0x1_0000_0001);
    let env = cgi_env("POST", "upload=1mb", Some(body.len()));
    let out = cgi_fcgi(fx, &args, &env, &body);
    check_exit(fx, &format!("{label}: POST 1 MB"), &out, 0);
    check_echo_output(fx, &format!("{label}: POST 1 MB"), &out, &env, &body);

    // A param longer than cgi-fcgi's 8 KB PARAMS buffer: several records, 4-byte lengths.
    let small = b"0123456789abcdef".repeat(8);
    let mut env = cgi_env("POST", "big=param", Some(small.len()));
    env.push(("HTTP_X_BIG".into(), "x".repeat(20_000)));
    let out = cgi_fcgi(fx, &args, &env, &small);
    check_exit(fx, &format!("{label}: 20 KB param"), &out, 0);
    check_echo_output(fx, &format!("{label}: 20 KB param"), &out, &env, &small);
    fx.check(out.stderr.is_empty(), || {
        format!("{label}: cgi-fcgi wrote to stderr: {}", show(&out.stderr))
    });
}

#[test]
fn cgi_fcgi_as_client_of_project_echo() {
    let fx = Fixture::new("cgi-fcgi-client");
    for t in [harness::Transport::Tcp, harness::Transport::Unix] {
        let server = harness::Server::echo(t, 2);
        cgi_fcgi_echo_round(&fx, server.addr(), &format!("echo over {t:?}"));
    }
}

#[test]
fn cgi_fcgi_as_client_receives_a_2_mb_response() {
    let fx = Fixture::new("cgi-fcgi-large");
    let server = harness::Server::start("hello", harness::Transport::Tcp, &[]);
    let n: usize = 2 * 1024 * 1024;
    // hello ignores the body and answers at once; cgi-fcgi is held by its stdout instead: 2 MB
    // do not fit in the pipe, which is read only after its mappings are checked. Then its
    // blocking writes to the pipe interleave with its async reads from the application.
    let body = harness::body(16, 1);
    let env = cgi_env("POST", &format!("bytes={n}"), Some(body.len()));
    let out = cgi_fcgi(&fx, &["-bind", "-connect", server.addr()], &env, &body);
    check_exit(&fx, "2 MB response", &out, 0);
    let head = format!("Content-Type: text/plain\r\nContent-Length: {n}\r\n\r\n");
    let text = &out.stdout;
    fx.check(text.starts_with(head.as_bytes()), || {
        format!(
            "2 MB response: bad head: {:?}",
            show(&text[..text.len().min(200)])
        )
    });
    let payload = &text[head.len().min(text.len())..];
    fx.check(payload.len() == n, || {
        format!(
            "2 MB response: {} bytes after the head, want {n}",
            payload.len()
        )
    });
    let bad = harness::alphabet_mismatch(payload);
    fx.check(bad.is_none(), || {
        format!(
            "2 MB response: content differs at byte {}",
            bad.unwrap_or(0)
        )
    });
}

/// Copies `program` into the fixture directory (so its path, hence its processes, belong to
/// this test alone) and starts it with `cgi-fcgi ARGS... -connect SOCK COPY`. Returns the copy.
fn cgi_fcgi_spawn(
    fx: &mut Fixture,
    program: &Path,
    name: &str,
    mode: &[&str],
    sock: &Path,
) -> PathBuf {
    let app = fx.install_executable(program, name);
    fx.own_exe(&app);
    let mut args: Vec<&str> = mode.to_vec();
    let sock_s = sock.to_str().expect("utf-8 socket path");
    let app_s = app.to_str().expect("utf-8 app path");
    args.extend(["-connect", sock_s, app_s]);
    let env = cgi_env("GET", "spawn=1", None);
    let out = cgi_fcgi(fx, &args, &env, b"");
    check_exit(fx, &format!("cgi-fcgi {args:?}"), &out, 0);
    app
}

/// Finds the process(es) running `app` (which cgi-fcgi forked and left behind), adopts them and
/// waits until the socket accepts connections. Returns the first pid.
fn adopt_spawned(fx: &mut Fixture, app: &Path, sock: &Path) -> u32 {
    let deadline = Instant::now() + START_TIMEOUT;
    let pid = loop {
        let pids = pids_of_exe(app);
        if let Some(&p) = pids.first() {
            for &p in &pids {
                fx.adopt(p);
            }
            break p;
        }
        if Instant::now() > deadline {
            fx.fail(&format!(
                "no process runs {} after cgi-fcgi spawned it",
                app.display()
            ));
        }
        thread::sleep(Duration::from_millis(10));
    };
    let deadline = Instant::now() + START_TIMEOUT;
    while !unix_ready(sock) {
        if !Path::new(&format!("/proc/{pid}")).exists() || Instant::now() > deadline {
            fx.fail(&format!(
                "{} (pid {pid}) is not serving {}",
                app.display(),
                sock.display()
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
    if !wait_lib_mapped(pid) {
        fx.fail(&format!("{} (pid {pid}) mapped no libfcgi", app.display()));
    }
    pid
}

#[test]
fn cgi_fcgi_start_spawns_a_libfcgi_program() {
    let mut fx = Fixture::new("cgi-fcgi-start");
    let program = compile_against_debian("fcgx_echo.c");
    let sock = fx.path("app.sock");
    // cgi-fcgi -start: OS_CreateLocalIpcFd, then OS_SpawnChild (the child gets the listening
    // socket as fd 0, fds 1 and 2 closed, cgi-fcgi's environment); cgi-fcgi exits 0.
    let app = cgi_fcgi_spawn(&mut fx, &program, "fcgx_echo", &["-start"], &sock);
    let pid = adopt_spawned(&mut fx, &app, &sock);
    fx.check_lib(pid, "fcgx_echo spawned by cgi-fcgi -start");

    cgi_fcgi_echo_round(&fx, sock.to_str().unwrap(), "fcgx_echo");

    // FCGX_SetExitStatus travels in END_REQUEST; cgi-fcgi exits with it. FCGX_FPrintF on the
    // error stream arrives as FastCGI stderr, which cgi-fcgi copies to its stderr.
    let args = ["-bind", "-connect", sock.to_str().unwrap()];
    let body = b"exit status".to_vec();
    let env = cgi_env("POST", "exit=7&stderr=1", Some(body.len()));
    let out = cgi_fcgi(&fx, &args, &env, &body);
    check_exit(&fx, "exit=7", &out, 7);
    check_echo_output(&fx, "exit=7", &out, &env, &body);
    fx.check(out.stderr == b"fcgx_echo: stderr line\n", || {
        format!(
            "exit=7: want the app's stderr line, got {:?}",
            show(&out.stderr)
        )
    });

    // The next request on the same FCGX_Request sets no status. Debian's libfcgi never resets
    // appStatus between requests and still sends 7; the project's library sends 0.
    let env = cgi_env("GET", "after=exit", None);
    let out = cgi_fcgi(&fx, &args, &env, b"");
    let want = match lib() {
        Lib::Project => 0,
        Lib::Debian => 7,
    };
    check_exit(&fx, "the request after exit=7", &out, want);
    check_echo_output(&fx, "the request after exit=7", &out, &env, b"");

    fx.check(Path::new(&format!("/proc/{pid}")).exists(), || {
        "fcgx_echo died during the test".to_string()
    });
    fx.check_lib(pid, "fcgx_echo spawned by cgi-fcgi -start");
}

#[test]
fn cgi_fcgi_connect_spawns_a_project_example_on_demand() {
    let mut fx = Fixture::new("cgi-fcgi-ondemand");
    let sock = fx.path("app.sock");
    // Without -start or -bind, cgi-fcgi first tries to connect; nothing listens, so it spawns
    // the application (listening socket as fd 0, fds 1 and 2 closed), connects again and runs
    // the request. The project's echo takes fd 0 as its listening socket.
    let app = fx.install_executable(&harness::example("echo"), "echo");
    fx.own_exe(&app);
    let sock_s = sock.to_str().unwrap().to_string();
    let app_s = app.to_str().unwrap().to_string();
    let body = harness::body(100_000, 77);
    let env = cgi_env("POST", "first=1", Some(body.len()));
    let out = cgi_fcgi(&fx, &["-connect", &sock_s, &app_s], &env, &body);
    check_exit(&fx, "first request (spawning)", &out, 0);
    check_echo_output(&fx, "first request (spawning)", &out, &env, &body);

    let pid = adopt_spawned(&mut fx, &app, &sock);
    fx.check(harness::runs_project_lib(pid), || {
        format!("the project's echo (pid {pid}) does not run on the project's library")
    });
    // Now it is running: the same command connects to it instead of spawning another.
    cgi_fcgi_echo_round(&fx, &sock_s, "echo spawned by cgi-fcgi");
    let out = cgi_fcgi(
        &fx,
        &["-connect", &sock_s, &app_s],
        &cgi_env("GET", "again=1", None),
        b"",
    );
    check_exit(&fx, "request with -connect and the app running", &out, 0);
    let running = pids_of_exe(&app);
    fx.check(running == vec![pid], || {
        format!("want only pid {pid} to run the echo, found {running:?}")
    });
}
