//! The configurations of `docs/deploy.md`, run as written: nginx, HAProxy, lighttpd and a
//! systemd socket + service pair, each in front of the C examples.
//!
//! # Which blocks
//!
//! A fenced block of the document is tested when the line before it is a marker
//! `<!-- deploy-test: KIND NAME -->`, KIND one of [`KINDS`]. A test gets a block only through
//! [`doc_block`]`("KIND", "NAME")`, which fails the test when the document has no such block (a
//! deleted section, a renamed marker). [`every_marked_block_is_run_by_a_test`] fails on a marker
//! of an unknown KIND, a malformed or duplicated marker, and a marked block that no
//! `doc_block("KIND", "NAME")` call of this file names (so a new block needs a test).
//!
//! Blocks that are not whole configurations replace a section of one that is: the nginx
//! `unix` block (an `upstream`) replaces the `upstream` of the same name in the `tcp` block, and
//! the HAProxy `keep-conn` block (an `fcgi-app`) replaces the `fcgi-app` section of the `mpx`
//! block ([`replace_section`]).
//!
//! # Placeholders
//!
//! The document uses these literal values, which every test replaces with its own (a temporary
//! directory per test, free ports of 127.0.0.1):
//!
//! | placeholder                       | replaced by                                          |
//! |-----------------------------------|------------------------------------------------------|
//! | `127.0.0.1:8080`                  | the web server's address (a free port)               |
//! | `127.0.0.1:9000`, `"port" => 9000`| the application's TCP address                        |
//! | `127.0.0.1:9001`, `"port" => 9001`| the authorizer's TCP address                         |
//! | `/run/app/app.sock`               | the application's Unix socket                        |
//! | `/run/lighttpd/app.sock`          | the socket lighttpd creates for the program it spawns|
//! | `/run/haproxy-fcgi/stats.sock`    | HAProxy's stats socket                               |
//! | `/usr/local/bin/echo`             | `c-examples/echo` (native API)                       |
//! | `/usr/local/bin/lf-echo`          | `c-examples/lf-echo` (libfcgi API)                   |
//! | `/usr/local/lib`                  | the directory of the project's `libfcgi.so.0`        |
//! | `/srv/app`                        | a document root in the temporary directory           |
//! | `10.0.0.11:9000` (`.12`, `.13`)   | the hosts of "Several hosts": 127.0.0.2 (3, 4):PORT  |
//! | `-a 10.0.0.11 -p 9000`            | in the `fcgi-spawn` block: each host's address       |
//! | `/usr/local/bin/fcgi-spawn`       | the built fcgi-spawn                                 |
//! | `/usr/local/bin/app`              | tests/web_servers/multi_host/host_app.c, built       |
//! | `/run/app/fcgi-spawn.pid`         | each host's pid file in the temporary directory      |
//!
//! Apart from the placeholders, a block may contain no `/run/`, `/usr/local/`, `/srv/`, `:8080`,
//! `:9000` or `:9001` ([`Subst::apply`]): a block naming another path would otherwise reach into
//! the machine, or a test would have left a placeholder unreplaced.
//!
//! # Two faces
//!
//! Every configuration runs twice: with `c-examples/echo` (native API; its `-t N` sets the
//! threads) and with `c-examples/lf-echo` (libfcgi's `fcgi_stdio.h`, on the project's
//! `libfcgi.so.0`, which is checked through `/proc/<pid>/maps`). For the libfcgi face the
//! document's command `/usr/local/bin/echo -t N` becomes `/usr/local/bin/lf-echo` (it takes no
//! arguments); the lighttpd authorizer block runs with `c-examples/authorizer` and
//! `c-examples/lf-authorizer` respectively. An application the web server connects to is started
//! by the test as the document's comments say: echo listens itself (`-a ADDR`), lf-echo gets a
//! listening socket as fd 0 (libfcgi programs cannot listen on an address by themselves).
//! Answers are checked with [`harness::check_echo`] for echo; lf-echo's answer differs (a
//! `REQUEST=<n>` line first, then its environment, then the body sent back), see
//! [`check_lf_echo`].
//!
//! # Web servers
//!
//! - nginx: the blocks are `http {}`-level text; [`nginx_conf`] wraps them in an nginx.conf with
//!   the fixture's paths, and `include fastcgi_params` reads a copy of Debian's
//!   `/etc/nginx/fastcgi_params` beside it. Besides the answers, the test checks that the
//!   `keepalive` upstream really keeps one connection to the application for several requests
//!   (the same socket, by inode, in the kernel's tables, before and after).
//! - HAProxy: the whole configuration, `haproxy -f CFG -db` (and with the `keep-conn`
//!   `fcgi-app` in place of the multiplexing one); the same kept-connection check as for nginx.
//! - lighttpd: the `fastcgi.server` blocks, in a generated lighttpd.conf ([`lighttpd_conf`]).
//!   The responder block's Unix entry is requested after its TCP application was stopped, so
//!   its answers cannot come from the TCP entry; for the `bin-path` block, the test counts the
//!   processes lighttpd started (`"max-procs"`) and checks the library each one runs on.
//!   For lf-authorizer (which checks `REMOTE_USER`/`REMOTE_PASSWD`, which lighttpd never sets by
//!   itself) the generated part also sets them with mod_setenv from an `X-Login` header, as
//!   `tests/web_servers/lighttpd.rs` does: a test rig, not part of the document.
//!
//! # Several hosts
//!
//! The section's three blocks (`fcgi-spawn hosts`: one host's command line; `haproxy hosts`:
//! a whole configuration; `nginx hosts`: `http {}`-level text) are handed out, placeholders
//! replaced, by [`several_hosts_spawn`], [`several_hosts_haproxy`] and
//! [`several_hosts_nginx`] to `tests/web_servers/multi_host.rs`, which runs them under load:
//! three hosts, both balancers at once, a rolling reload, a drained host, a killed host. No
//! `10.0.0.` or `9000` may be left in them once replaced.
//!
//! # systemd
//!
//! systemd is not PID 1 here (nor in CI), so the pair is checked in two steps:
//!
//! 1. `systemd-analyze verify --man=no --generators=no` on copies of both units (placeholders
//!    replaced, so `ExecStart` names an existing program). It needs no running systemd. Any
//!    line it prints about our units fails the test, as does a non-zero exit; lines about
//!    unit files of the host (`/lib/systemd/`, `/usr/lib/systemd/`, `/etc/systemd/`, pulled in
//!    as dependencies like `sockets.target`) are printed but tolerated: they are the machine's,
//!    not the document's. `SYSTEMD_LOG_LEVEL=info` is forced so that a caller's setting cannot
//!    hide warnings such as `Unknown key`. A self-check ([`systemd_analyze_reports_broken_units`])
//!    makes sure it does report a broken copy of the units, so a silent tool cannot pass.
//! 2. [`launch_socket_unit`] does what systemd does for these units: binds `ListenStream` (a Unix
//!    path, its directory created 0755, or a TCP address), applies `SocketMode` and, when the
//!    test runs as root, `SocketUser`/`SocketGroup`; starts `ExecStart` (through `sh -c 'exec'`
//!    so that `LISTEN_PID` is the program's pid) with the socket on fd 0
//!    (`StandardInput=socket`) and fd 3, `LISTEN_FDS=1`, `LISTEN_FDNAMES`, `PATH` and the
//!    `Environment=` lines as its whole environment, stdout and stderr to files (the journal).
//!    Requests then go straight to the socket with `fcgi-client` and through the document's
//!    nginx block. Also checked: the socket's mode (and owner), that `www-data` may connect and
//!    `nobody` may not (as root), that the `FCGI_RUNTIME_*` settings of `Environment=` reached
//!    the application (its FCGI_GET_VALUES answer), and the TCP alternative the socket unit has
//!    as a comment (`#ListenStream=...`, uncommented in place of the Unix one).
//!
//! `systemd-socket-activate` is not used: it passes the socket as fd 3 with `LISTEN_FDS` only,
//! which fcgi-runtime does not read yet; the document says so.
//!
//! Every tool is required (CI installs them): a missing one fails the test. Every wait is
//! bounded, curl runs with `--max-time`, fcgi-client under [`harness::run_with_stdin`]'s
//! timeout.

mod blocks;
mod haproxy;
mod lighttpd;
mod nginx;
mod systemd;

use crate::harness;
use blocks::*;
use nginx::*;

use crate::harness::{
    check_echo, echo_lines, example_cmd, require, show, tail, tcp_ready, unix_ready, Fixture,
    Response, START_TIMEOUT,
};
use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const DOC: &str = "docs/deploy.md";
/// The kinds of marked blocks.
const KINDS: &[&str] = &[
    "nginx",
    "haproxy",
    "lighttpd",
    "systemd-socket",
    "systemd-service",
    "fcgi-spawn",
];

const NGINX: &str = harness::NGINX;
const HAPROXY: &str = "/usr/sbin/haproxy";
const LIGHTTPD: &str = "/usr/sbin/lighttpd";
const SYSTEMD_ANALYZE: &str = "/usr/bin/systemd-analyze";
const DEBIAN_FASTCGI_PARAMS: &str = "/etc/nginx/fastcgi_params";
const CURL_MAX_TIME: u32 = 30;

// The placeholders (see the module documentation).
const WEB_ADDR: &str = "127.0.0.1:8080";
const APP_ADDR: &str = "127.0.0.1:9000";
const APP_PORT_LIGHTTPD: &str = r#""port" => 9000"#;
const AUTH_ADDR: &str = "127.0.0.1:9001";
const AUTH_PORT_LIGHTTPD: &str = r#""port" => 9001"#;
const APP_SOCK: &str = "/run/app/app.sock";
const SPAWN_SOCK: &str = "/run/lighttpd/app.sock";
const STATS_SOCK: &str = "/run/haproxy-fcgi/stats.sock";
const PROGRAM: &str = "/usr/local/bin/echo";
const LF_PROGRAM: &str = "/usr/local/bin/lf-echo";
const LIB_DIR: &str = "/usr/local/lib";
const DOCROOT: &str = "/srv/app";
/// What must not be left in a block once the placeholders are replaced.
const LEFTOVERS: &[&str] = &["/run/", "/usr/local/", "/srv/", ":8080", ":9000", ":9001"];

// ---------------------------------------------------------------------------------------------
// Placeholders and faces
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Face {
    /// c-examples/echo, c-examples/authorizer.
    Native,
    /// c-examples/lf-echo, c-examples/lf-authorizer, on the project's libfcgi.so.0.
    Libfcgi,
}

impl Face {
    fn echo(self) -> &'static str {
        match self {
            Face::Native => "echo",
            Face::Libfcgi => "lf-echo",
        }
    }

    /// The block as this face runs it: for the libfcgi face, `/usr/local/bin/echo [-t N]`
    /// becomes `/usr/local/bin/lf-echo`.
    fn text(self, block: &str) -> String {
        if self == Face::Native {
            return block.to_string();
        }
        let mut out = String::new();
        let mut rest = block;
        while let Some(p) = rest.find(PROGRAM) {
            out.push_str(&rest[..p]);
            out.push_str(LF_PROGRAM);
            rest = &rest[p + PROGRAM.len()..];
            if let Some(after) = rest.strip_prefix(" -t ") {
                let digits =
                    after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                if digits > 0 {
                    rest = &after[digits..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Placeholder -> value pairs, applied in order.
#[derive(Clone, Default)]
struct Subst(Vec<(String, String)>);

impl Subst {
    fn set(mut self, from: &str, to: impl std::fmt::Display) -> Subst {
        self.0.push((from.to_string(), to.to_string()));
        self
    }

    /// `text` with every placeholder replaced. Panics if `text` has a placeholder-like string
    /// ([`LEFTOVERS`]) that is not one of the placeholders replaced.
    fn apply(&self, what: &str, text: &str) -> String {
        let mut out = text.to_string();
        let mut stripped = text.to_string();
        for (from, to) in &self.0 {
            out = out.replace(from, to);
            stripped = stripped.replace(from, "");
        }
        for left in LEFTOVERS {
            assert!(
                !stripped.contains(left),
                "{what}: {left:?} left after replacing the placeholders (the document uses a \
                 value this test does not know, or the test did not supply it):\n{out}"
            );
        }
        out
    }
}

/// The program of `name` (a C example) copied into the fixture directory, so that every process
/// running it is the test's own (killed with the fixture) and can be found by its executable.
fn install_example(fx: &mut Fixture, name: &str) -> PathBuf {
    let exe = fx.install_executable(&harness::example(name), name);
    fx.own_exe(&exe);
    exe
}

fn examples_are_ours() -> bool {
    std::env::var_os("FCGI_TEST_EXAMPLES_DIR").is_none()
}

/// Fails unless the program `pid` runs on the project's library, once the loader mapped a
/// libfcgi (bounded wait).
fn check_project_lib(fx: &Fixture, pid: u32, what: &str) {
    fx.check(harness::wait_lib_mapped(pid), || {
        format!("{what} (pid {pid}) exited or never mapped a libfcgi")
    });
    if examples_are_ours() {
        fx.check(harness::runs_project_lib(pid), || {
            format!("{what} (pid {pid}) does not run on the project's libfcgi.so.0")
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Applications
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Addr {
    Tcp(u16),
    Unix(PathBuf),
}

impl Addr {
    /// In fcgi-client's syntax.
    fn client(&self) -> String {
        match self {
            Addr::Tcp(p) => format!("127.0.0.1:{p}"),
            Addr::Unix(p) => p.display().to_string(),
        }
    }

    /// The placeholder this address replaces and its value.
    fn subst(&self, s: Subst) -> Subst {
        match self {
            Addr::Tcp(p) => s
                .set(APP_ADDR, format!("127.0.0.1:{p}"))
                .set(APP_PORT_LIGHTTPD, format!(r#""port" => {p}"#)),
            Addr::Unix(p) => s.set(APP_SOCK, p.display()),
        }
    }

    /// Inodes of the established connections that reached this listening socket (the
    /// application's ends), from the kernel's tables.
    fn connections(&self) -> Vec<String> {
        match self {
            Addr::Tcp(port) => {
                let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
                table
                    .lines()
                    .skip(1)
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        let local = f
                            .get(1)
                            .and_then(|a| a.rsplit_once(':'))
                            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
                        (local == Some(*port) && f.get(3) == Some(&"01"))
                            .then(|| f.get(9).map(|s| s.to_string()))
                            .flatten()
                    })
                    .collect()
            }
            Addr::Unix(path) => {
                let want = path.to_str().expect("utf-8 socket path");
                let table = fs::read_to_string("/proc/net/unix").unwrap_or_default();
                table
                    .lines()
                    .skip(1)
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        (f.len() >= 8 && f[5] == "03" && f[7] == want).then(|| f[6].to_string())
                    })
                    .collect()
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Tcp,
    Unix,
}

struct App {
    face: Face,
    addr: Addr,
}

/// Starts the face's echo as the document's comments say: `echo -t 4 -a ADDR` listens itself;
/// lf-echo gets a listening socket as fd 0.
fn start_app(fx: &mut Fixture, face: Face, name: &str, transport: Transport) -> App {
    start_app_with_env(fx, face, name, transport, &[])
}

/// [`start_app`] with extra environment for the native face's program (echo).
fn start_app_with_env(
    fx: &mut Fixture,
    face: Face,
    name: &str,
    transport: Transport,
    env: &[(&str, &str)],
) -> App {
    let addr = match (face, transport) {
        (Face::Native, Transport::Tcp) => Addr::Tcp(fx.start_on_free_port(
            name,
            "cannot listen on",
            |port| {
                let mut cmd = example_cmd("echo", &["-t", "4", "-a", &format!("127.0.0.1:{port}")]);
                cmd.envs(env.iter().copied()).stdin(Stdio::null());
                cmd
            },
            |_, port| tcp_ready(port),
        )),
        (Face::Native, Transport::Unix) => {
            let sock = fx.path(&format!("{name}.sock"));
            let mut cmd = example_cmd("echo", &["-t", "4", "-a"]);
            cmd.arg(&sock)
                .envs(env.iter().copied())
                .stdin(Stdio::null());
            fx.spawn(name, &mut cmd);
            let probe = sock.clone();
            fx.wait_ready(name, move || unix_ready(&probe));
            Addr::Unix(sock)
        }
        (Face::Libfcgi, _) => {
            let (fd, addr) = listen_fd0(fx, name, transport);
            let mut cmd = example_cmd("lf-echo", &[]);
            cmd.stdin(Stdio::from(fd));
            let pid = fx.spawn(name, &mut cmd);
            check_project_lib(fx, pid, name);
            addr
        }
    };
    App { face, addr }
}

/// A listening socket for a program that takes it as fd 0.
fn listen_fd0(fx: &Fixture, name: &str, transport: Transport) -> (OwnedFd, Addr) {
    match transport {
        Transport::Tcp => {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            let port = l.local_addr().expect("local_addr").port();
            (OwnedFd::from(l), Addr::Tcp(port))
        }
        Transport::Unix => {
            let sock = fx.path(&format!("{name}.sock"));
            let l = UnixListener::bind(&sock)
                .unwrap_or_else(|e| fx.fail(&format!("bind {}: {e}", sock.display())));
            (OwnedFd::from(l), Addr::Unix(sock))
        }
    }
}

/// Starts the face's authorizer on a TCP port: `authorizer -a ADDR` (native) or
/// `lf-authorizer alice secret` with a listening socket as fd 0 (libfcgi).
fn start_authorizer(fx: &mut Fixture, face: Face) -> u16 {
    match face {
        Face::Native => fx.start_on_free_port(
            "authorizer",
            "cannot listen on",
            |port| {
                let mut cmd = example_cmd("authorizer", &["-a", &format!("127.0.0.1:{port}")]);
                cmd.stdin(Stdio::null());
                cmd
            },
            |_, port| tcp_ready(port),
        ),
        Face::Libfcgi => {
            let (fd, addr) = listen_fd0(fx, "lf-authorizer", Transport::Tcp);
            let mut cmd = example_cmd("lf-authorizer", &["alice", "secret"]);
            cmd.stdin(Stdio::from(fd));
            let pid = fx.spawn("lf-authorizer", &mut cmd);
            check_project_lib(fx, pid, "lf-authorizer");
            match addr {
                Addr::Tcp(p) => p,
                Addr::Unix(_) => unreachable!(),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// Checks lf-echo's answer: 200, `REQUEST=<n>` then `FCGI_ROLE=RESPONDER`, the `want` lines
/// and one STDIN_LENGTH and STDIN_FNV1A64 line in the report, then exactly `body` sent back.
/// Returns the report's lines.
fn check_lf_echo(
    fx: &Fixture,
    what: &str,
    r: &Response,
    want: &[String],
    body: &[u8],
) -> Vec<String> {
    fx.check(r.status == 200, || {
        format!(
            "{what}: status {} (want 200), body:\n{}",
            r.status,
            show(&r.body)
        )
    });
    let hash_line = format!("STDIN_FNV1A64={:016x}\n", harness::fnv1a64(body));
    let end = r
        .body
        .windows(hash_line.len())
        .position(|w| w == hash_line.as_bytes())
        .map(|p| p + hash_line.len())
        .unwrap_or_else(|| {
            fx.fail(&format!(
                "{what}: no line {:?} in the answer:\n{}",
                hash_line.trim_end(),
                show(&r.body)
            ))
        });
    let report = String::from_utf8_lossy(&r.body[..end]).into_owned();
    let lines: Vec<&str> = report.lines().collect();
    fx.check(
        lines.first().is_some_and(|l| l.starts_with("REQUEST="))
            && lines.get(1) == Some(&"FCGI_ROLE=RESPONDER"),
        || format!("{what}: want REQUEST=<n> then FCGI_ROLE=RESPONDER first:\n{report}"),
    );
    for w in want {
        fx.check(lines.contains(&w.as_str()), || {
            format!("{what}: line {w:?} missing in:\n{report}")
        });
    }
    for key in ["STDIN_LENGTH=", "STDIN_FNV1A64="] {
        fx.check(
            lines.iter().filter(|l| l.starts_with(key)).count() == 1,
            || format!("{what}: want exactly one {key} line in:\n{report}"),
        );
    }
    fx.check(&r.body[end..] == body, || {
        format!(
            "{what}: {} bytes sent back after the report, want the {} of the body",
            r.body.len() - end,
            body.len()
        )
    });
    lines.iter().map(|l| l.to_string()).collect()
}

/// Checks the answer of the face's echo to a request with `body`.
fn check_app(
    fx: &Fixture,
    face: Face,
    what: &str,
    r: &Response,
    want: &[String],
    body: &[u8],
) -> Vec<String> {
    match face {
        Face::Native => check_echo(fx, what, r, want),
        Face::Libfcgi => check_lf_echo(fx, what, r, want, body),
    }
}

/// A file in the fixture directory holding `body`, as curl's `@FILE` argument.
fn upload_file(fx: &Fixture, name: &str, body: &[u8]) -> String {
    let file = fx.path(name);
    fs::write(&file, body).expect("write upload");
    format!("@{}", file.display())
}

/// A GET and a 256 KiB POST to `uri` through the web server; `extra` adds the lines expected
/// besides [`echo_lines`] (given the query).
fn get_and_post(fx: &Fixture, face: Face, uri: &str, extra: impl Fn(&str) -> Vec<String>) {
    let query = "a=1&b=two%20words";
    let r = fx.get(&format!("{uri}?{query}"));
    let mut want = echo_lines("GET", uri, query, b"");
    want.extend(extra(query));
    check_app(fx, face, &format!("GET {uri}"), &r, &want, b"");

    let body = harness::body(256 * 1024, 0x0de9_10e5);
    let data = upload_file(fx, "upload.bin", &body);
    let query = "upload=1";
    let r = fx.curl(
        &[
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/octet-stream",
        ],
        &format!("{uri}?{query}"),
    );
    let mut want = echo_lines("POST", uri, query, &body);
    want.push(format!("CONTENT_LENGTH={}", body.len()));
    want.push("CONTENT_TYPE=application/octet-stream".to_string());
    want.extend(extra(query));
    check_app(fx, face, &format!("POST {uri}"), &r, &want, &body);
}

/// Sends `n` sequential requests to `uri` over one client connection and checks that the web
/// server used one kept connection to the application for all of them and the requests before
/// (the same socket, by inode, before and after).
fn check_one_kept_connection(fx: &Fixture, face: Face, addr: &Addr, uri: &str, n: usize) {
    let before = addr.connections();
    fx.check(before.len() == 1, || {
        format!(
            "after the first requests, want 1 kept connection at the application, found {}",
            before.len()
        )
    });
    let paths: Vec<String> = (0..n).map(|i| format!("{uri}?seq={i}")).collect();
    for (i, r) in fx.curl_many(&paths).iter().enumerate() {
        let query = format!("seq={i}");
        check_app(
            fx,
            face,
            &format!("request {i} of {n}"),
            r,
            &echo_lines("GET", uri, &query, b""),
            b"",
        );
    }
    let after = addr.connections();
    fx.check(after == before, || {
        format!(
            "want the same single connection to the application after {n} more requests: \
             before {before:?}, after {after:?}"
        )
    });
}

// ---------------------------------------------------------------------------------------------
// Web servers
// ---------------------------------------------------------------------------------------------

/// Starts a server listening on a free port: `make(port)` writes its configuration and returns
/// the command. Another port is tried when `log` or its stderr says the port was taken.
fn start_web(fx: &mut Fixture, name: &str, log: &Path, mut make: impl FnMut(u16) -> Command) {
    let mut last = String::new();
    for attempt in 0..5 {
        let port = harness::free_port();
        let this = format!("{name}-try{attempt}");
        let mut cmd = make(port);
        cmd.stdin(Stdio::null());
        fx.spawn(&this, &mut cmd);
        let deadline = Instant::now() + START_TIMEOUT;
        let ok = loop {
            if tcp_ready(port) {
                break true;
            }
            if fx.exited(&this).is_some() || Instant::now() > deadline {
                break false;
            }
            thread::sleep(Duration::from_millis(10));
        };
        if ok {
            fx.rename(&this, name);
            fx.port = port;
            return;
        }
        last = format!("{}\n{}", tail(log, 20), fx.stderr_of(&this));
        if !last.contains("Address already in use") {
            break;
        }
    }
    fx.fail(&format!("cannot start {name}:\n{last}"))
}

/// An nginx.conf around the document's `http {}`-level text.
fn nginx_conf(dir: &Path, http: &str) -> String {
    let marked = format!("# ---- docs/deploy.md ----\n{http}# ---- end ----\n");
    harness::nginx_conf_around(dir, 256, &marked)
}

/// The application's stderr has nothing but resets of idle connections (HAProxy closes the
/// idle FastCGI connections it does not keep with a TCP reset, which the runtime reports).
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
// Several hosts: the blocks of the "Several hosts" section, which tests/web_servers/multi_host.rs
// runs (three hosts on 127.0.0.2-4 behind HAProxy and nginx, under load)
// ---------------------------------------------------------------------------------------------

/// The hosts' addresses in the section's blocks (host1, host2, host3).
const HOSTS: [&str; 3] = ["10.0.0.11:9000", "10.0.0.12:9000", "10.0.0.13:9000"];
/// The section's placeholders besides [`HOSTS`].
const SPAWN: &str = "/usr/local/bin/fcgi-spawn";
const HOST_PROGRAM: &str = "/usr/local/bin/app";
const HOST_PID_FILE: &str = "/run/app/fcgi-spawn.pid";

/// `text` with no host address of the document left (they all have a placeholder here).
fn no_doc_hosts(what: &str, text: &str) -> String {
    for left in ["10.0.0.", "9000"] {
        assert!(
            !text.contains(left),
            "{what}: {left:?} left after replacing the hosts' addresses:\n{text}"
        );
    }
    text.to_string()
}

/// The `haproxy hosts` block: HAProxy on 127.0.0.1:`port`, the hosts at `hosts`
/// (`IP:PORT`, in the order host1, host2, host3).
pub(crate) fn several_hosts_haproxy(
    port: u16,
    hosts: &[String; 3],
    docroot: &Path,
    stats: &Path,
) -> String {
    let mut s = Subst::default()
        .set(WEB_ADDR, format!("127.0.0.1:{port}"))
        .set(DOCROOT, docroot.display())
        .set(STATS_SOCK, stats.display());
    for (from, to) in HOSTS.iter().zip(hosts) {
        s = s.set(from, to);
    }
    let text = s.apply("haproxy hosts block", &doc_block("haproxy", "hosts"));
    no_doc_hosts("haproxy hosts block", &text)
}

/// The `nginx hosts` block (`http {}`-level text): nginx on 127.0.0.1:`port`, the hosts at
/// `hosts`.
pub(crate) fn several_hosts_nginx(port: u16, hosts: &[String; 3], docroot: &Path) -> String {
    let mut s = Subst::default()
        .set(WEB_ADDR, format!("127.0.0.1:{port}"))
        .set(DOCROOT, docroot.display());
    for (from, to) in HOSTS.iter().zip(hosts) {
        s = s.set(from, to);
    }
    let text = s.apply("nginx hosts block", &doc_block("nginx", "hosts"));
    no_doc_hosts("nginx hosts block", &text)
}

/// The `fcgi-spawn hosts` command line for the host at `ip`:`port` (the document shows host1's,
/// `-a 10.0.0.11 -p 9000`), split into words (`\` continuations joined): the program first.
pub(crate) fn several_hosts_spawn(
    ip: &str,
    port: u16,
    pid_file: &Path,
    program: &Path,
) -> Vec<String> {
    let block = doc_block("fcgi-spawn", "hosts");
    let (host1_ip, host1_port) = HOSTS[0].split_once(':').expect("IP:PORT");
    let text = Subst::default()
        .set(SPAWN, harness::tool("fcgi-spawn").display())
        .set(HOST_PROGRAM, program.display())
        .set(HOST_PID_FILE, pid_file.display())
        .set(&format!("-a {host1_ip} "), format!("-a {ip} "))
        .set(&format!("-p {host1_port} "), format!("-p {port} "))
        .apply("fcgi-spawn hosts block", &block.replace("\\\n", " "));
    let text = no_doc_hosts("fcgi-spawn hosts block", &text);
    let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    assert!(
        words.first().map(String::as_str) == Some(&*harness::tool("fcgi-spawn").to_string_lossy()),
        "the fcgi-spawn hosts block is not one command starting with {SPAWN}:\n{block}"
    );
    words
}
