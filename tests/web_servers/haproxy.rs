//! End to end through HAProxy 2.6's FastCGI support: curl or a raw HTTP/1.1 client -> HAProxy
//! (`fcgi-app` + a backend with `proto fcgi`) -> fcgi-runtime, with the C examples as the
//! applications: `c-examples/echo` (native API, several threads) on TCP and on a Unix socket,
//! and `c-examples/lf-echo` (libfcgi API, on the project's `libfcgi.so.0` through
//! `LD_LIBRARY_PATH`, its listening socket inherited as fd 0).
//!
//! Every test starts its own [`Fixture`] (tests/harness/fixture.rs): the applications it needs and one
//! `haproxy -f haproxy.cfg -db` in the foreground, with a generated configuration in the
//! fixture's temporary directory (see [`haproxy_cfg`]; docs/deploy.md has the same configuration
//! ready to copy), listening on a free port of 127.0.0.1. Each application gets a backend and a
//! path prefix (`/<backend>/...`). What the tests read back:
//!
//! - the responses: echo answers with every param and the length and FNV-1a hash of the body it
//!   read; lf-echo also sends the body back;
//! - HAProxy's runtime API on a stats socket (`show stat`, the backend server's row): `scur`
//!   (requests currently assigned to the server), `used_conn_cur` (FastCGI connections in use),
//!   `connect` (connections HAProxy opened) and `reuse` (requests sent over an existing one);
//! - HAProxy's request log (`log stdout format raw`, one line per request with the backend
//!   connection's source port `%bp`);
//! - the kernel's socket tables (`/proc/net/tcp`, `/proc/net/unix`): the connections that
//!   reached the application's listening socket.
//!
//! How multiplexing is proven, without timing: K "held" requests are sent with only part of
//! their body (more than HAProxy's 16 KiB buffer, less than the runtime's 64 KiB STDIN buffer),
//! so none of them can complete. Once HAProxy reports all K assigned to the server (`scur == K`),
//! all K are in flight at the same moment; the number C of established connections to the
//! application then bounds how they were spread: C < K means at least one FastCGI connection
//! carries several requests at once (by pigeonhole, ceil(K / C)). The rest of every body is
//! sent afterwards and every response is checked. For TCP the request log says the same thing
//! from HAProxy's side: the K held requests name fewer than K backend source ports.
//!
//! HAProxy behaviours these tests rely on or work around (HAProxy 2.6.12, Debian bookworm),
//! found while writing them:
//! - **A bug in HAProxy 2.6's FastCGI multiplexing**: with several requests in flight on one
//!   FastCGI connection, HAProxy sporadically answers 500 itself (log termination state `IH`)
//!   without the request reaching the application. Its fcgi trace shows `error encoding
//!   default params` / `processing error sending PARAMS record`: when the connection's output
//!   buffer is partly filled by other streams' records, the request's headers are encoded into
//!   the room left and the default params (SCRIPT_NAME, ...) no longer fit, which mux_fcgi treats
//!   as an error instead of continuing in a new buffer. Seen at about 2 in 48 requests with 12
//!   concurrent clients and bodies of at most 2 KiB, also with larger bodies; never without
//!   multiplexing. Workarounds here: the load runs against a second backend on the same
//!   application with `maxconn 4` (at most 4 requests in flight, whose records fit one 16 KiB
//!   buffer), held requests are sent one at a time (each assigned before the next), and a load
//!   request answered 500 is retried (at most 3 times), each retry having to match an `IH` 500
//!   in HAProxy's log (without `maxconn 4` that happens to 1-3 of 48 requests). For
//!   deployments on HAProxy 2.6, docs/deploy.md recommends keep-conn without multiplexing.
//! - A new FastCGI connection starts with a limit of 1 stream (2.6 has no `max-reqs` keyword);
//!   the GET_VALUES answer replaces it, but the connection is only offered to other requests
//!   once it has been released by its first one. So a burst against a cold HAProxy opens one
//!   connection per request; each scenario first sends one request (the "warm-up") so that an
//!   idle connection with the learnt limits exists.
//! - With the default `http-reuse safe`, requests of new client connections did not share a
//!   busy FastCGI connection; `http-reuse always` is needed to multiplex requests of different
//!   clients (safe for FastCGI: there is no connection state to leak between clients).
//! - Available (multiplexable) connections are per HAProxy thread: `nbthread 1` keeps them in
//!   one pool, so the counts are deterministic on any number of CPUs.
//! - The GET_VALUES answer overrides the `fcgi-app`: FCGI_MPXS_CONNS=1 makes HAProxy multiplex
//!   even with `no option mpxs-conns`, FCGI_MPXS_CONNS=0 stops it even with `option mpxs-conns`.
//!   "Keep-conn without multiplexing" therefore also needs `no option get-values`.
//! - A request whose partial body fits HAProxy's buffer is not forwarded until the body is
//!   complete (observed with 0.5 and 4 KiB of an 8 KiB body, and 32 KiB with
//!   `tune.bufsize 65536`); hence the 32 KiB first part with the default 16 KiB buffers.
//! - HAProxy closes the idle FastCGI connections it does not keep with a TCP reset, which the
//!   runtime logs (`Connection reset by peer`); the tests accept only that line in the
//!   applications' stderr.
//! - Idle server connections are closed after `pool-purge-delay` (5 s by default); the tests
//!   set 60 s so the warm-up connection survives a slow machine.
//!
//! HAProxy is required (CI installs it): when `/usr/sbin/haproxy` is missing the tests fail,
//! they do not skip. Every wait is bounded, every socket has a timeout, curl runs with
//! `--max-time`.

use crate::harness;
use crate::harness::fnv1a64;
use crate::harness::haproxy::{self, HAPROXY};
use crate::harness::{
    example_cmd, require, show, tcp_ready, tcp_sockets, unix_connected_to, unix_ready, Fixture,
    START_TIMEOUT, TCP_ESTABLISHED, WEB_IO_TIMEOUT,
};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const CURL_MAX_TIME: u32 = 60;
/// Body of a held request: at most the runtime's STDIN buffer (64 KiB), so that requests queued
/// behind busy threads never stop the reading of a multiplexed connection.
const HELD_BODY: usize = 48 * 1024;
/// What is sent of it before the hold: more than HAProxy's 16 KiB buffer, so HAProxy forwards
/// the request to the application instead of waiting for the whole body.
const HELD_FIRST: usize = 32 * 1024;
/// Size of the large upload and of the large response.
const BIG: usize = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Applications
// ---------------------------------------------------------------------------------------------

/// Where an application listens.
#[derive(Clone, Debug)]
enum Addr {
    Tcp(u16),
    Unix(PathBuf),
}

impl Addr {
    /// The address in HAProxy's `server` syntax.
    fn haproxy(&self) -> String {
        match self {
            Addr::Tcp(port) => format!("127.0.0.1:{port}"),
            Addr::Unix(p) => format!("unix@{}", p.display()),
        }
    }

    /// Established connections that reached this listening socket, accepted or not yet
    /// (from the kernel's tables, so it does not lag behind the application's accept()).
    fn connections(&self) -> usize {
        match self {
            Addr::Tcp(port) => tcp_sockets(*port, TCP_ESTABLISHED),
            Addr::Unix(path) => unix_connected_to(path),
        }
    }
}

struct App {
    addr: Addr,
    /// lf-echo sends the body back after its report; echo does not.
    echoes_body: bool,
}

/// The environment every echo here starts with: it opts in to multiplexing (a native-API
/// program advertises FCGI_MPXS_CONNS=0, as PHP's layer does, unless it does), which is what
/// these tests put behind HAProxy.
const ECHO_ENV: &[(&str, &str)] = &[("FCGI_RUNTIME_MPXS_CONNS", "1")];

/// `echo -t THREADS -a 127.0.0.1:PORT` with [`ECHO_ENV`] and extra environment
/// (`FCGI_RUNTIME_*` limits, which may override it).
fn start_echo_tcp(fx: &mut Fixture, name: &str, threads: u32, env: &[(&str, &str)]) -> App {
    let t = threads.to_string();
    let port = fx.start_on_free_port(
        name,
        "cannot listen on",
        |port| {
            let mut cmd = example_cmd("echo", &["-t", &t, "-a", &format!("127.0.0.1:{port}")]);
            cmd.envs(ECHO_ENV.iter().chain(env).copied())
                .stdin(Stdio::null());
            cmd
        },
        |_, port| tcp_ready(port),
    );
    App {
        addr: Addr::Tcp(port),
        echoes_body: false,
    }
}

/// `echo -t THREADS -a DIR/NAME.sock` (a Unix-domain socket), with [`ECHO_ENV`].
fn start_echo_unix(fx: &mut Fixture, name: &str, threads: u32) -> App {
    let sock = fx.path(&format!("{name}.sock"));
    let mut cmd = example_cmd("echo", &["-t", &threads.to_string(), "-a"]);
    cmd.arg(&sock)
        .envs(ECHO_ENV.iter().copied())
        .stdin(Stdio::null());
    fx.spawn(name, &mut cmd);
    let probe = sock.clone();
    fx.wait_ready(name, move || unix_ready(&probe));
    App {
        addr: Addr::Unix(sock),
        echoes_body: false,
    }
}

/// `lf-echo` (fcgi_stdio.h, FCGI_Accept) with a listening TCP socket as fd 0, as a web server
/// or spawn-fcgi starts it, on the project's libfcgi.so.0.
fn start_lf_echo(fx: &mut Fixture, name: &str) -> App {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    let mut cmd = example_cmd("lf-echo", &[]);
    cmd.stdin(Stdio::from(OwnedFd::from(listener)));
    let pid = fx.spawn(name, &mut cmd);
    fx.wait_ready(name, || harness::wait_lib_mapped(pid));
    if std::env::var_os("FCGI_TEST_EXAMPLES_DIR").is_none() {
        fx.check(harness::runs_project_lib(pid), || {
            format!("{name} (pid {pid}) does not run on the project's libfcgi.so.0")
        });
    }
    App {
        addr: Addr::Tcp(port),
        echoes_body: true,
    }
}

// ---------------------------------------------------------------------------------------------
// HAProxy
// ---------------------------------------------------------------------------------------------

/// One application behind HAProxy: backend `name`, reached under `/<name>/`.
struct Backend<'a> {
    name: &'a str,
    addr: Addr,
    /// Lines of its `fcgi-app` section besides `docroot`.
    fcgi_app: &'a [&'a str],
    /// Extra options of its `server` line.
    server: &'a str,
}

/// The `fcgi-app` options of the multiplexing setup: keep the connection, multiplex, and ask
/// the application for its limits (FCGI_MAX_REQS, FCGI_MPXS_CONNS) with GET_VALUES.
const MPX: &[&str] = &["option keep-conn", "option mpxs-conns", "option get-values"];

/// The generated configuration: one frontend, and per backend an `fcgi-app` section and a
/// backend with `proto fcgi`, `http-reuse always` and a pool of at most 2 idle connections.
fn haproxy_cfg(dir: &Path, port: u16, backends: &[Backend]) -> String {
    let d = dir.display();
    let mut cfg = format!(
        r#"# generated by tests/web_servers/haproxy.rs
global
    nbthread 1
    stats socket {d}/stats.sock level admin
    log stdout format raw local0 info

defaults
    mode http
    log global
    timeout connect 10s
    timeout client 60s
    timeout server 60s

frontend web
    bind 127.0.0.1:{port}
    log-format "hap-req b=%b s=%s bp=%bp st=%ST ts=%tsc u=%HU"
"#
    );
    for b in backends {
        cfg.push_str(&format!(
            "    use_backend {n} if {{ path_beg /{n}/ }}\n",
            n = b.name
        ));
    }
    for b in backends {
        let mut opts = String::new();
        for o in b.fcgi_app {
            opts.push_str(&format!("    {o}\n"));
        }
        cfg.push_str(&format!(
            r#"
fcgi-app fcgi_{n}
    docroot {d}
{opts}
backend {n}
    use-fcgi-app fcgi_{n}
    http-reuse always
    server s1 {addr} proto fcgi pool-max-conn 2 pool-purge-delay 60s{extra}
"#,
            n = b.name,
            addr = b.addr.haproxy(),
            extra = if b.server.is_empty() {
                String::new()
            } else {
                format!(" {}", b.server)
            },
        ));
    }
    cfg
}

/// Starts `haproxy -f haproxy.cfg -db` on a free port (retried if the port was taken meanwhile);
/// sets `fx.port` so the fixture's curl helpers talk to it.
fn start_haproxy(fx: &mut Fixture, backends: &[Backend]) {
    require(HAPROXY, "haproxy");
    fx.curl_max_time = CURL_MAX_TIME;
    let cfg_path = fx.path("haproxy.cfg");
    let stats = fx.path("stats.sock");
    let dir = fx.dir.clone();
    let port = fx.start_on_free_port(
        "haproxy",
        "Address already in use",
        |port| {
            let _ = fs::remove_file(&stats);
            fs::write(&cfg_path, haproxy_cfg(&dir, port, backends)).expect("write haproxy.cfg");
            let mut cmd = Command::new(HAPROXY);
            cmd.arg("-f").arg(&cfg_path).arg("-db").stdin(Stdio::null());
            cmd
        },
        |_, port| tcp_ready(port) && unix_ready(&stats),
    );
    fx.port = port;
}

/// The `show stat` row of server `s1` of `backend`, by column name.
fn server_stats(fx: &Fixture, backend: &str) -> HashMap<String, String> {
    haproxy::server_stats(fx, backend, "s1")
}

/// One numeric column of [`server_stats`].
fn stat(fx: &Fixture, stats: &HashMap<String, String>, column: &str) -> u64 {
    stats
        .get(column)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fx.fail(&format!("show stat: no numeric {column:?} in {stats:?}")))
}

/// Polls `cond` until it holds; fails with `what` and `detail()` after [`START_TIMEOUT`].
fn wait_until(
    fx: &Fixture,
    what: &str,
    mut cond: impl FnMut() -> bool,
    detail: impl Fn() -> String,
) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !cond() {
        if Instant::now() > deadline {
            fx.fail(&format!(
                "{what}: not reached after {START_TIMEOUT:?}\n{}",
                detail()
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// HAProxy's request log lines (`hap-req ...` on its stdout), as `key=value` maps.
fn request_log(fx: &Fixture) -> Vec<HashMap<String, String>> {
    let text = fs::read_to_string(fx.path("haproxy.out")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("hap-req "))
        .map(|l| {
            l.split(' ')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The log lines of the requests whose URI contains `tag`, once there are `n` of them.
fn wait_log(fx: &Fixture, tag: &str, n: usize) -> Vec<HashMap<String, String>> {
    let matching = || -> Vec<HashMap<String, String>> {
        request_log(fx)
            .into_iter()
            .filter(|l| l.get("u").is_some_and(|u| u.contains(tag)))
            .collect()
    };
    wait_until(
        fx,
        &format!("{n} log lines for {tag}"),
        || matching().len() >= n,
        || harness::tail(&fx.path("haproxy.out"), 40),
    );
    matching()
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

struct HttpResponse {
    status: u16,
    body: Vec<u8>,
}

/// Decodes a chunked body; `None` if malformed or incomplete.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        if raw.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// Parses a whole HTTP/1.1 response read until the server closed the connection.
fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", show(raw)))?;
    let headers = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = headers
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {headers:?}"))?;
    let rest = &raw[end + 4..];
    let lower = headers.to_ascii_lowercase();
    let body = if lower.contains("transfer-encoding: chunked") {
        dechunk(rest).ok_or_else(|| format!("bad chunked body after {headers:?}"))?
    } else if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        if rest.len() < len {
            return Err(format!("body of {} bytes, want {len}", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse { status, body })
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to haproxy");
    s.set_read_timeout(Some(WEB_IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(WEB_IO_TIMEOUT)).unwrap();
    s
}

fn request_head(path: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

/// A POST on its own connection (`Connection: close`), read until HAProxy closes.
fn post(port: u16, path: &str, body: &[u8]) -> Result<HttpResponse, String> {
    let mut s = connect(port);
    s.write_all(request_head(path, body.len()).as_bytes())
        .and_then(|_| s.write_all(body))
        .map_err(|e| format!("send {path}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("read {path}: {e}"))?;
    parse_response(&raw)
}

/// A request sent with only the first [`HELD_FIRST`] bytes of its body.
struct Held {
    stream: TcpStream,
    path: String,
    query: String,
    body: Vec<u8>,
}

fn hold(port: u16, prefix: &str, tag: &str, i: usize) -> Held {
    let query = format!("{tag}={i}");
    let path = format!("/{prefix}/held?{query}");
    let body = harness::body(HELD_BODY, 0x4e1d_0000 + i as u64);
    let mut stream = connect(port);
    stream
        .write_all(request_head(&path, body.len()).as_bytes())
        .and_then(|_| stream.write_all(&body[..HELD_FIRST]))
        .expect("send the first part of a held request");
    Held {
        stream,
        path,
        query,
        body,
    }
}

impl Held {
    /// Sends the rest of the body (the response is read by [`Held::response`]).
    fn release(&mut self) {
        self.stream
            .write_all(&self.body[HELD_FIRST..])
            .expect("send the rest of a held request");
    }

    fn response(mut self) -> (String, Vec<u8>, Result<HttpResponse, String>) {
        let mut raw = Vec::new();
        let r = self
            .stream
            .read_to_end(&mut raw)
            .map_err(|e| format!("read {}: {e}", self.path))
            .and_then(|_| parse_response(&raw));
        (self.query, self.body, r)
    }
}

/// Checks an echo or lf-echo answer to a POST of `body` with `query`: status 200, the CGI
/// params HAProxy passed, and the length and FNV-1a hash the application computed over what it
/// read from STDIN; for lf-echo, also the body sent back.
fn check_echoed(
    fx: &Fixture,
    app: &App,
    what: &str,
    status: u16,
    resp: &[u8],
    query: &str,
    body: &[u8],
) {
    fx.check(status == 200, || {
        format!("{what}: status {status} (want 200), body:\n{}", show(resp))
    });
    let hash_line = format!("STDIN_FNV1A64={:016x}\n", fnv1a64(body));
    let report_end = resp
        .windows(hash_line.len())
        .position(|w| w == hash_line.as_bytes())
        .map(|p| p + hash_line.len());
    let Some(report_end) = report_end else {
        fx.fail(&format!(
            "{what}: no line {:?} (body of {} bytes) in the answer:\n{}",
            hash_line.trim_end(),
            body.len(),
            show(resp)
        ));
    };
    let text = String::from_utf8_lossy(&resp[..report_end]).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let want = [
        "FCGI_ROLE=RESPONDER".to_string(),
        "REQUEST_METHOD=POST".to_string(),
        format!("QUERY_STRING={query}"),
        format!("CONTENT_LENGTH={}", body.len()),
        "CONTENT_TYPE=application/octet-stream".to_string(),
        format!("STDIN_LENGTH={}", body.len()),
    ];
    for w in &want {
        fx.check(lines.contains(&w.as_str()), || {
            format!("{what}: line {w:?} missing in:\n{text}")
        });
    }
    let rest = &resp[report_end..];
    if app.echoes_body {
        fx.check(rest == body, || {
            format!(
                "{what}: {} bytes sent back (FNV-1a {:016x}), want the {} bytes of the body",
                rest.len(),
                fnv1a64(rest),
                body.len()
            )
        });
    } else {
        fx.check(rest.is_empty(), || {
            format!("{what}: {} unexpected bytes after the report", rest.len())
        });
    }
}

/// The application logged nothing but resets of idle connections: HAProxy closes the idle
/// FastCGI connections it does not keep (beyond `pool-max-conn`) with a TCP reset, which the
/// runtime reports (`read from ... failed: Connection reset by peer`).
fn check_app_log(fx: &Fixture, name: &str) {
    let err = fx.stderr_of(name);
    let bad: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("Connection reset by peer"))
        .collect();
    fx.check(bad.is_empty(), || {
        format!("{name} logged:\n{}", bad.join("\n"))
    });
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// One request through the backend, completed: afterwards HAProxy holds an idle connection
/// that has learnt the application's limits (see the module documentation).
fn warm_up(fx: &Fixture, app: &App, prefix: &str) {
    let body = b"warm-up".to_vec();
    let r = post(fx.port, &format!("/{prefix}/warm?warm=1"), &body)
        .unwrap_or_else(|e| fx.fail(&format!("warm-up request: {e}")));
    check_echoed(fx, app, "warm-up", r.status, &r.body, "warm=1", &body);
}

/// What [`hold_k`] saw while all K requests were in flight.
struct HoldSnapshot {
    /// Established connections at the application's socket.
    app_conns: usize,
    /// HAProxy's `used_conn_cur` for the server.
    used: u64,
}

/// Sends `k` held requests to `/<prefix>/`, waits until HAProxy has all of them on the server,
/// takes a [`HoldSnapshot`], then completes them and checks every response.
fn hold_k(fx: &Fixture, app: &App, prefix: &str, tag: &str, k: usize) -> HoldSnapshot {
    // One at a time: the next request is sent once HAProxy has assigned the previous one to the
    // server (see the PARAMS bug in the module documentation).
    let mut held = Vec::new();
    for i in 0..k {
        held.push(hold(fx.port, prefix, tag, i));
        wait_until(
            fx,
            &format!("{} held requests assigned to {prefix}/s1", i + 1),
            || stat(fx, &server_stats(fx, prefix), "scur") == i as u64 + 1,
            || format!("{:?}", server_stats(fx, prefix)),
        );
    }
    // HAProxy counts a connection as used once a stream is attached; the kernel may still be
    // completing the last connect(): wait until both views agree.
    let mut snap = HoldSnapshot {
        app_conns: 0,
        used: 0,
    };
    wait_until(
        fx,
        "HAProxy's used connections == connections at the application",
        || {
            let s = server_stats(fx, prefix);
            snap.used = stat(fx, &s, "used_conn_cur");
            snap.app_conns = app.addr.connections();
            snap.used as usize == snap.app_conns && stat(fx, &s, "scur") == k as u64
        },
        || {
            format!(
                "app side {} connections; {:?}",
                app.addr.connections(),
                server_stats(fx, prefix)
            )
        },
    );
    for h in held.iter_mut() {
        h.release();
    }
    for (i, h) in held.into_iter().enumerate() {
        let (query, body, r) = h.response();
        let r = r.unwrap_or_else(|e| fx.fail(&format!("held request {i}: {e}")));
        check_echoed(
            fx,
            app,
            &format!("held request {i}"),
            r.status,
            &r.body,
            &query,
            &body,
        );
    }
    snap
}

/// `clients` threads, each sending `per_client` POSTs with distinct bodies (sizes from 0 to
/// 2 KiB: see the PARAMS bug in the module documentation) on connections of their own; every
/// answer is checked. Returns the number of requests.
fn load(
    fx: &Fixture,
    app: &App,
    prefix: &str,
    tag: &str,
    clients: usize,
    per_client: usize,
) -> usize {
    let port = fx.port;
    let retried = &AtomicUsize::new(0);
    let results: Vec<(String, Vec<u8>, Result<HttpResponse, String>)> = thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    (0..per_client)
                        .map(|j| {
                            let n = c * per_client + j;
                            let len = (n * 7919 + j * 104_729) % 2048;
                            let body = harness::body(len, 0x10ad_0000 + n as u64);
                            let query = format!("{tag}={c}.{j}&len={len}");
                            let path = format!("/{prefix}/load?{query}");
                            let mut r = post(port, &path, &body);
                            // HAProxy 2.6's own 500 (module documentation): retried, as a
                            // client would; every retry must match an `IH` 500 in its log.
                            let mut tries = 1;
                            while tries < 4 && matches!(&r, Ok(h) if h.status == 500) {
                                retried.fetch_add(1, Ordering::Relaxed);
                                r = post(port, &path, &body);
                                tries += 1;
                            }
                            (query, body, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    let n = results.len();
    for (query, body, r) in results {
        let what = format!("load request {query}");
        let r = r.unwrap_or_else(|e| fx.fail(&format!("{what}: {e}")));
        check_echoed(fx, app, &what, r.status, &r.body, &query, &body);
    }
    let retried = retried.load(Ordering::Relaxed);
    if retried > 0 {
        // Only HAProxy's own 500s (the request never reached the application) are retried.
        let own = wait_log(fx, tag, n + retried)
            .iter()
            .filter(|l| {
                l.get("st").map(String::as_str) == Some("500")
                    && l.get("ts").is_some_and(|t| t.starts_with("IH"))
            })
            .count();
        eprintln!("load {tag}: {retried} of {n} requests retried after HAProxy's own 500 (IH)");
        if own < retried {
            fx.fail(&format!(
                "load {tag}: {retried} requests answered 500, only {own} of them HAProxy's own (IH)"
            ));
        }
    }
    n
}

/// The multiplexing scenario on one application: warm-up, `k` held requests (asserting they
/// shared connections), then a concurrent load, all behind the [`MPX`] configuration.
fn multiplexed(
    app: &App,
    name: &str,
    fx: &mut Fixture,
    k: usize,
    clients: usize,
    per_client: usize,
) {
    start_haproxy(
        fx,
        &[
            Backend {
                name: "app",
                addr: app.addr.clone(),
                fcgi_app: MPX,
                server: "",
            },
            // The same application for the load, at most 4 requests at a time (see the
            // PARAMS bug in the module documentation).
            Backend {
                name: "load",
                addr: app.addr.clone(),
                fcgi_app: MPX,
                server: "maxconn 4",
            },
        ],
    );
    let fx = &*fx;
    warm_up(fx, app, "app");
    let snap = hold_k(fx, app, "app", "held", k);
    eprintln!(
        "{k} requests in flight on {} FastCGI connection(s) (HAProxy: {} used)",
        snap.app_conns, snap.used
    );
    fx.check(snap.app_conns >= 1 && snap.app_conns < k, || {
        format!(
            "{k} requests in flight used {} connections: no multiplexing",
            snap.app_conns
        )
    });
    if matches!(app.addr, Addr::Tcp(_)) {
        // HAProxy's own account: the held requests name fewer backend connections than
        // requests (its source port to the application, %bp).
        let lines = wait_log(fx, "held=", k);
        let ports: BTreeSet<&str> = lines
            .iter()
            .filter_map(|l| l.get("bp").map(|s| s.as_str()))
            .collect();
        fx.check(ports.len() == snap.app_conns, || {
            format!(
                "the {k} held requests were logged on backend ports {ports:?}, want {} port(s)",
                snap.app_conns
            )
        });
        for l in &lines {
            fx.check(l.get("st").map(String::as_str) == Some("200"), || {
                format!("held request logged as {l:?}")
            });
        }
    }
    warm_up(fx, app, "load");
    let before = server_stats(fx, "load");
    let n = load(fx, app, "load", "load", clients, per_client);
    let after = server_stats(fx, "load");
    let connects = stat(fx, &after, "connect") - stat(fx, &before, "connect");
    let reuses = stat(fx, &after, "reuse") - stat(fx, &before, "reuse");
    eprintln!("load: {n} requests, {connects} new FastCGI connections, {reuses} reuses");
    // Requests on existing connections: all but the few HAProxy had to open (at most one per
    // request that found none available, which multiplexing makes rare).
    fx.check(
        connects * 4 <= n as u64 && reuses + connects >= n as u64,
        || format!("load of {n} requests: {connects} connections opened, {reuses} reuses"),
    );
    let app_conns = app.addr.connections();
    fx.check(app_conns <= 2 + connects as usize, || {
        format!("{app_conns} connections at the application after the load")
    });
    check_app_log(fx, name);
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Item 1, native API over TCP: 12 requests in flight at once share the FastCGI connection(s),
/// then 48 concurrent requests with distinct bodies all come back right.
#[test]
fn multiplexed_concurrent_requests_echo_tcp() {
    let mut fx = Fixture::new("haproxy-mpx-tcp");
    let app = start_echo_tcp(&mut fx, "echo", 16, &[]);
    multiplexed(&app, "echo", &mut fx, 12, 12, 4);
}

/// Item 1 again over a Unix-domain socket.
#[test]
fn multiplexed_concurrent_requests_echo_unix() {
    let mut fx = Fixture::new("haproxy-mpx-unix");
    let app = start_echo_unix(&mut fx, "echo", 16);
    multiplexed(&app, "echo", &mut fx, 12, 12, 4);
}

/// Item 1 with the libfcgi API: lf-echo (one thread, FCGI_Accept) on the project's
/// libfcgi.so.0; its requests are multiplexed too and served one after the other.
#[test]
fn multiplexed_concurrent_requests_lf_echo() {
    let mut fx = Fixture::new("haproxy-mpx-lf");
    let app = start_lf_echo(&mut fx, "lf-echo");
    multiplexed(&app, "lf-echo", &mut fx, 8, 8, 4);
}

/// Item 2: HAProxy asks GET_VALUES and uses the answer. HAProxy 2.6 starts every FastCGI
/// connection with a limit of 1 stream (its `fcgi-app` has no `max-reqs` keyword yet); the
/// application runs with FCGI_RUNTIME_MAX_REQS=4 (so GET_VALUES answers FCGI_MAX_REQS=4): 4
/// requests in flight then share one connection, which only the answer allows. A second application
/// answers FCGI_MPXS_CONNS=0 (FCGI_RUNTIME_MPXS_CONNS=0): despite `option mpxs-conns`, HAProxy
/// then gives each of 4 requests in flight a connection of its own.
#[test]
fn get_values_answer_sets_haproxy_stream_limits() {
    let mut fx = Fixture::new("haproxy-get-values");
    let limited = start_echo_tcp(&mut fx, "echo-max4", 8, &[("FCGI_RUNTIME_MAX_REQS", "4")]);
    let no_mpx = start_echo_tcp(
        &mut fx,
        "echo-nompx",
        8,
        &[("FCGI_RUNTIME_MPXS_CONNS", "0")],
    );

    // What the applications answer, asked directly.
    for (app, want_reqs, want_mpxs) in [(&limited, "4", "1"), (&no_mpx, "1024", "0")] {
        let Addr::Tcp(port) = app.addr else {
            unreachable!()
        };
        let mut c = fcgi_runtime_tools::client::Client::connect(&format!("127.0.0.1:{port}"))
            .expect("connect");
        c.set_timeout(Some(WEB_IO_TIMEOUT)).expect("set timeouts");
        let got = c
            .get_values(&["FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
            .expect("GET_VALUES");
        let want = vec![
            ("FCGI_MAX_REQS".to_string(), want_reqs.to_string()),
            ("FCGI_MPXS_CONNS".to_string(), want_mpxs.to_string()),
        ];
        fx.check(got == want, || {
            format!("GET_VALUES answered {got:?}, want {want:?}")
        });
    }

    start_haproxy(
        &mut fx,
        &[
            Backend {
                name: "max4",
                addr: limited.addr.clone(),
                fcgi_app: MPX,
                server: "",
            },
            Backend {
                name: "nompx",
                addr: no_mpx.addr.clone(),
                fcgi_app: MPX,
                server: "",
            },
        ],
    );
    let fx = &fx;

    warm_up(fx, &limited, "max4");
    let snap = hold_k(fx, &limited, "max4", "max4", 4);
    fx.check(snap.app_conns == 1 && snap.used == 1, || {
        format!(
            "4 requests in flight with FCGI_MAX_REQS=4: {} connections at the application, \
             HAProxy uses {} (want 1 and 1)",
            snap.app_conns, snap.used
        )
    });

    warm_up(fx, &no_mpx, "nompx");
    let snap = hold_k(fx, &no_mpx, "nompx", "nompx", 4);
    fx.check(snap.app_conns == 4 && snap.used == 4, || {
        format!(
            "4 requests in flight with FCGI_MPXS_CONNS=0: {} connections at the application, \
             HAProxy uses {} (want 4 and 4)",
            snap.app_conns, snap.used
        )
    });
    for name in ["echo-max4", "echo-nompx"] {
        check_app_log(fx, name);
    }
}

/// Item 3: `option keep-conn` without multiplexing (`no option mpxs-conns`, and no GET_VALUES,
/// whose answer would switch multiplexing back on). 20 sequential requests of one client go over
/// one kept FastCGI connection; 4 requests in flight use 4 connections; a concurrent load is
/// served over reused connections.
#[test]
fn keep_conn_without_multiplexing_reuses_connections() {
    let mut fx = Fixture::new("haproxy-keep");
    let app = start_echo_tcp(&mut fx, "echo", 8, &[]);
    let keep: &[&str] = &[
        "option keep-conn",
        "no option mpxs-conns",
        "no option get-values",
    ];
    start_haproxy(
        &mut fx,
        &[Backend {
            name: "keep",
            addr: app.addr.clone(),
            fcgi_app: keep,
            server: "",
        }],
    );
    let fx = &fx;

    // One curl, 20 URLs, one connection to HAProxy (curl_many checks it).
    let paths: Vec<String> = (0..20).map(|i| format!("/keep/seq?seq={i}")).collect();
    let responses = fx.curl_many(&paths);
    for (i, r) in responses.iter().enumerate() {
        let text = r.text();
        fx.check(
            r.status == 200
                // echo prints fcgi_loadenv's order (PHP's): FCGI_ROLE last.
                && text.contains("\nFCGI_ROLE=RESPONDER\nSTDIN_LENGTH=0\n")
                && text.lines().any(|l| l == format!("QUERY_STRING=seq={i}"))
                && text.contains("STDIN_LENGTH=0\n"),
            || format!("sequential request {i}: status {}, body:\n{text}", r.status),
        );
    }
    let s = server_stats(fx, "keep");
    let (connects, reuses) = (stat(fx, &s, "connect"), stat(fx, &s, "reuse"));
    fx.check(connects == 1 && reuses == 19, || {
        format!(
            "20 sequential requests: {connects} connections opened, {reuses} reuses (want 1, 19)"
        )
    });
    fx.check(app.addr.connections() == 1, || {
        format!(
            "{} connections at the application after 20 sequential requests, want the kept one",
            app.addr.connections()
        )
    });

    let snap = hold_k(fx, &app, "keep", "held", 4);
    fx.check(snap.app_conns == 4 && snap.used == 4, || {
        format!(
            "4 requests in flight without multiplexing: {} connections at the application, \
             HAProxy uses {} (want 4 and 4)",
            snap.app_conns, snap.used
        )
    });

    let before = server_stats(fx, "keep");
    let n = load(fx, &app, "keep", "load", 8, 4);
    let after = server_stats(fx, "keep");
    let connects = stat(fx, &after, "connect") - stat(fx, &before, "connect");
    let reuses = stat(fx, &after, "reuse") - stat(fx, &before, "reuse");
    eprintln!(
        "load without multiplexing: {n} requests, {connects} new connections, {reuses} reuses"
    );
    fx.check(reuses > 0 && connects < n as u64, || {
        format!("load of {n} requests: {connects} connections opened, {reuses} reuses")
    });
    check_app_log(fx, "echo");
}

/// Item 4: a 4 MiB upload through HAProxy arrives intact (length and hash computed by echo over
/// TCP and over a Unix socket, and by lf-echo), and lf-echo's 4 MiB response (the body sent
/// back) arrives intact too.
#[test]
fn large_upload_and_large_response() {
    let mut fx = Fixture::new("haproxy-big");
    let tcp = start_echo_tcp(&mut fx, "echo", 4, &[]);
    let unix = start_echo_unix(&mut fx, "echo-unix", 4);
    let lf = start_lf_echo(&mut fx, "lf-echo");
    start_haproxy(
        &mut fx,
        &[
            Backend {
                name: "tcp",
                addr: tcp.addr.clone(),
                fcgi_app: MPX,
                server: "",
            },
            Backend {
                name: "unix",
                addr: unix.addr.clone(),
                fcgi_app: MPX,
                server: "",
            },
            Backend {
                name: "lf",
                addr: lf.addr.clone(),
                fcgi_app: MPX,
                server: "",
            },
        ],
    );
    let body = harness::body(BIG, 0xb16_b0d7);
    let file = fx.path("upload.bin");
    fs::write(&file, &body).expect("write upload");
    let data = format!("@{}", file.display());
    for (app, prefix) in [(&tcp, "tcp"), (&unix, "unix"), (&lf, "lf")] {
        let r = fx.curl(
            &[
                "--data-binary",
                &data,
                "-H",
                "Content-Type: application/octet-stream",
            ],
            &format!("/{prefix}/upload?upload={prefix}"),
        );
        check_echoed(
            &fx,
            app,
            &format!("4 MiB POST to {prefix}"),
            r.status,
            &r.body,
            &format!("upload={prefix}"),
            &body,
        );
        if app.echoes_body {
            fx.check(r.body.len() > BIG, || {
                format!(
                    "{prefix}: response of {} bytes, want more than {BIG}",
                    r.body.len()
                )
            });
        }
    }
    let lines = wait_log(&fx, "upload=", 3);
    for l in &lines {
        fx.check(l.get("st").map(String::as_str) == Some("200"), || {
            format!("upload logged as {l:?}")
        });
    }
    for name in ["echo", "echo-unix", "lf-echo"] {
        check_app_log(&fx, name);
    }
}
