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
//! Answers are checked with [`support::check_echo`] for echo; lf-echo's answer differs (a
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
//!   `tests/lighttpd.rs` does: a test rig, not part of the document.
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
//! bounded, curl runs with `--max-time`, fcgi-client under [`support::run_with_stdin`]'s
//! timeout.

mod common;
mod support;

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
use support::{
    check_echo, echo_lines, example_cmd, require, show, tail, tcp_ready, unix_ready, Fixture,
    Response, START_TIMEOUT,
};

const DOC: &str = "docs/deploy.md";
/// The kinds of marked blocks.
const KINDS: &[&str] = &[
    "nginx",
    "haproxy",
    "lighttpd",
    "systemd-socket",
    "systemd-service",
];

const NGINX: &str = support::NGINX;
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
// The document's blocks
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Block {
    kind: String,
    name: String,
    /// 1-based line of the marker.
    line: usize,
    text: String,
}

/// The marked blocks of `doc`, or what is wrong with a marker.
fn parse_doc(doc: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if !(t.starts_with("<!--") && t.contains("deploy-test")) {
            i += 1;
            continue;
        }
        let line = i + 1;
        let words: Vec<&str> = t
            .strip_prefix("<!--")
            .and_then(|r| r.strip_suffix("-->"))
            .and_then(|r| r.trim().strip_prefix("deploy-test:"))
            .map(|r| r.split_whitespace().collect())
            .unwrap_or_default();
        let [kind, name] = words[..] else {
            return Err(format!(
                "{DOC}:{line}: want `<!-- deploy-test: KIND NAME -->`, got {t:?}"
            ));
        };
        if !lines.get(i + 1).is_some_and(|l| l.starts_with("```")) {
            return Err(format!(
                "{DOC}:{line}: the marker is not followed by a fenced block"
            ));
        }
        let mut text = String::new();
        let mut j = i + 2;
        loop {
            let Some(l) = lines.get(j) else {
                return Err(format!("{DOC}:{line}: the block never ends"));
            };
            if l.trim_end() == "```" {
                break;
            }
            text.push_str(l);
            text.push('\n');
            j += 1;
        }
        blocks.push(Block {
            kind: kind.to_string(),
            name: name.to_string(),
            line,
            text,
        });
        i = j + 1;
    }
    Ok(blocks)
}

/// The marked blocks of docs/deploy.md (read once per test binary).
fn doc_blocks() -> &'static [Block] {
    static BLOCKS: OnceLock<Result<Vec<Block>, String>> = OnceLock::new();
    let parsed = BLOCKS.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DOC);
        let doc = fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        parse_doc(&doc)
    });
    match parsed {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// The text of the block marked `<!-- deploy-test: KIND NAME -->`; fails the test when the
/// document has none (or several).
fn doc_block(kind: &str, name: &str) -> String {
    assert!(KINDS.contains(&kind), "unknown kind {kind:?}");
    let found: Vec<&Block> = doc_blocks()
        .iter()
        .filter(|b| b.kind == kind && b.name == name)
        .collect();
    match found[..] {
        [b] => b.text.clone(),
        [] => panic!(
            "{DOC} has no block marked `<!-- deploy-test: {kind} {name} -->`: the section this \
             test runs was removed or its marker changed"
        ),
        _ => panic!("{DOC} has several blocks marked `deploy-test: {kind} {name}`"),
    }
}

/// Replaces, in `base`, the section that starts with the first line of `fragment` (compared
/// trimmed) by `fragment`. With `braces` the section ends at the `}` closing its first line
/// (nginx); without, before the next line that starts in column 0 (HAProxy).
fn replace_section(base: &str, fragment: &str, braces: bool) -> String {
    let first = fragment
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .expect("an empty fragment");
    let lines: Vec<&str> = base.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == first)
        .unwrap_or_else(|| panic!("no section {first:?} to replace in\n{base}"));
    let mut end = start;
    if braces {
        let mut depth = 0i32;
        for (k, l) in lines.iter().enumerate().skip(start) {
            depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
            if depth == 0 {
                end = k;
                break;
            }
        }
        assert!(depth == 0, "section {first:?} is never closed in\n{base}");
    } else {
        end = lines[start + 1..]
            .iter()
            .position(|l| !l.is_empty() && !l.starts_with(char::is_whitespace))
            .map_or(lines.len(), |p| start + 1 + p)
            - 1;
        // Blank lines before the next section stay.
        while end > start && lines[end].trim().is_empty() {
            end -= 1;
        }
    }
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend(fragment.lines());
    out.extend(&lines[end + 1..]);
    out.join("\n") + "\n"
}

#[test]
fn every_marked_block_is_run_by_a_test() {
    let blocks = doc_blocks();
    let source = include_str!("deploy_docs.rs");
    let mut seen = Vec::new();
    for b in blocks {
        assert!(
            KINDS.contains(&b.kind.as_str()),
            "{DOC}:{}: unknown kind {:?} (known: {KINDS:?})",
            b.line,
            b.kind
        );
        let key = (b.kind.as_str(), b.name.as_str());
        assert!(
            !seen.contains(&key),
            "{DOC}:{}: a second block marked {} {}",
            b.line,
            b.kind,
            b.name
        );
        seen.push(key);
        let call = format!("doc_block(\"{}\", \"{}\")", b.kind, b.name);
        assert!(
            source.contains(&call),
            "{DOC}:{}: the block marked `deploy-test: {} {}` is run by no test (no {call} in \
             tests/deploy_docs.rs)",
            b.line,
            b.kind,
            b.name
        );
    }
    for kind in KINDS {
        assert!(
            blocks.iter().any(|b| b.kind == *kind),
            "{DOC} has no block of kind {kind}"
        );
    }
}

#[test]
fn parser_rejects_bad_markers() {
    let ok = "x\n<!-- deploy-test: nginx a -->\n```nginx\nline 1\n```\n";
    let b = parse_doc(ok).expect("a good marker");
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].kind.as_str(), b[0].name.as_str()), ("nginx", "a"));
    assert_eq!(b[0].text, "line 1\n");
    assert!(parse_doc("<!-- deploy-test: nginx -->\n```\n```\n").is_err());
    assert!(parse_doc("<!-- deploy-test: nginx a -->\n\ntext\n").is_err());
    assert!(parse_doc("<!-- deploy-test: nginx a -->\n```\nunclosed\n").is_err());
    let fragment = "upstream app {\n    server b;\n}\n";
    let base = "upstream app {\n    server a;\n    keepalive 8;\n}\n\nserver {\n}\n";
    assert_eq!(
        replace_section(base, fragment, true),
        "upstream app {\n    server b;\n}\n\nserver {\n}\n"
    );
    let base = "global\n    x\n\nfcgi-app f\n    a\n    b\n\nbackend b\n    y\n";
    assert_eq!(
        replace_section(base, "fcgi-app f\n    c\n", false),
        "global\n    x\n\nfcgi-app f\n    c\n\nbackend b\n    y\n"
    );
}

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
    let exe = fx.install_executable(&common::example(name), name);
    fx.own_exe(&exe);
    exe
}

fn examples_are_ours() -> bool {
    std::env::var_os("FCGI_TEST_EXAMPLES_DIR").is_none()
}

/// Whether process `pid` has a `libfcgi.so*` file mapped. (Not [`support::wait_lib_mapped`],
/// which looks for "libfcgi" anywhere in the path: the fixture directory's name contains it, so
/// a program copied there matches before the loader has mapped any library.)
fn lib_mapped(pid: u32) -> bool {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines().any(|l| {
        l.split_whitespace()
            .nth(5)
            .and_then(|p| Path::new(p).file_name())
            .is_some_and(|n| n.to_string_lossy().starts_with("libfcgi.so"))
    })
}

/// Fails unless the program `pid` runs on the project's library, once the loader mapped a
/// libfcgi (bounded wait).
fn check_project_lib(fx: &Fixture, pid: u32, what: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !lib_mapped(pid) {
        fx.check(support::is_alive(pid) && Instant::now() < deadline, || {
            format!("{what} (pid {pid}) exited or never mapped a libfcgi")
        });
        thread::sleep(Duration::from_millis(5));
    }
    if examples_are_ours() {
        fx.check(common::runs_project_lib(pid), || {
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
    let addr = match (face, transport) {
        (Face::Native, Transport::Tcp) => Addr::Tcp(fx.start_on_free_port(
            name,
            "cannot listen on",
            |port| {
                let mut cmd = example_cmd("echo", &["-t", "4", "-a", &format!("127.0.0.1:{port}")]);
                cmd.stdin(Stdio::null());
                cmd
            },
            |_, port| tcp_ready(port),
        )),
        (Face::Native, Transport::Unix) => {
            let sock = fx.path(&format!("{name}.sock"));
            let mut cmd = example_cmd("echo", &["-t", "4", "-a"]);
            cmd.arg(&sock).stdin(Stdio::null());
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
    let hash_line = format!("STDIN_FNV1A64={:016x}\n", common::fnv1a64(body));
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

    let body = common::body(256 * 1024, 0x0de9_10e5);
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
        let port = common::free_port();
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
    let d = dir.display();
    format!(
        r#"# generated by tests/deploy_docs.rs around a block of docs/deploy.md
daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log info;
pid {d}/nginx.pid;

events {{
    worker_connections 256;
}}

http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    proxy_temp_path {d}/proxy_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    client_max_body_size 64m;

# ---- docs/deploy.md ----
{http}# ---- end ----
}}
"#
    )
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
// nginx
// ---------------------------------------------------------------------------------------------

/// Starts nginx on the document's `http {}`-level `block`, with `subst` (all placeholders but
/// the web server's address, which is a free port) and a copy of Debian's fastcgi_params.
fn start_nginx(fx: &mut Fixture, subst: &Subst, block: &str) {
    require(NGINX, "nginx-light");
    require(DEBIAN_FASTCGI_PARAMS, "nginx-common");
    fs::copy(DEBIAN_FASTCGI_PARAMS, fx.path("fastcgi_params")).expect("copy fastcgi_params");
    let conf = fx.path("nginx.conf");
    let error_log = fx.path("error.log");
    let dir = fx.dir.clone();
    start_web(fx, "nginx", &error_log, |port| {
        let text = subst
            .clone()
            .set(WEB_ADDR, format!("127.0.0.1:{port}"))
            .apply("nginx block", block);
        fs::write(&conf, nginx_conf(&dir, &text)).expect("write nginx.conf");
        let mut prefix = dir.as_os_str().to_owned();
        prefix.push("/");
        let mut cmd = Command::new(NGINX);
        cmd.arg("-e")
            .arg(&error_log)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf);
        cmd
    });
}

/// The nginx configuration for `transport`: the `tcp` block, or with the `unix` block's
/// upstream in place of its own.
fn nginx_block(transport: Transport) -> String {
    let tcp = doc_block("nginx", "tcp");
    match transport {
        Transport::Tcp => tcp,
        Transport::Unix => replace_section(&tcp, &doc_block("nginx", "unix"), true),
    }
}

/// The requests every nginx configuration gets, to an application at `addr`.
fn exercise_nginx(fx: &Fixture, face: Face, addr: &Addr, docroot: &Path) {
    let script = format!("SCRIPT_FILENAME={}/app/echo", docroot.display());
    get_and_post(fx, face, "/app/echo", |_| vec![script.clone()]);
    check_one_kept_connection(fx, face, addr, "/app/echo", 5);
    fx.check_error_log(&[]);
}

fn nginx_scenario(face: Face, transport: Transport) {
    let mut fx = Fixture::new("deploy-nginx");
    fx.curl_max_time = CURL_MAX_TIME;
    let block = nginx_block(transport);
    let app = start_app(&mut fx, face, "app", transport);
    let docroot = fx.path("srv-app");
    fs::create_dir_all(&docroot).expect("create docroot");
    let subst = app
        .addr
        .subst(Subst::default())
        .set(DOCROOT, docroot.display());
    start_nginx(&mut fx, &subst, &block);
    exercise_nginx(&fx, app.face, &app.addr, &docroot);
    check_app_log(&fx, "app");
}

#[test]
fn nginx_tcp_native() {
    nginx_scenario(Face::Native, Transport::Tcp);
}

#[test]
fn nginx_tcp_libfcgi() {
    nginx_scenario(Face::Libfcgi, Transport::Tcp);
}

#[test]
fn nginx_unix_native() {
    nginx_scenario(Face::Native, Transport::Unix);
}

#[test]
fn nginx_unix_libfcgi() {
    nginx_scenario(Face::Libfcgi, Transport::Unix);
}

// ---------------------------------------------------------------------------------------------
// HAProxy
// ---------------------------------------------------------------------------------------------

fn haproxy_scenario(face: Face, keep_conn: bool) {
    require(HAPROXY, "haproxy");
    let mut fx = Fixture::new("deploy-haproxy");
    fx.curl_max_time = CURL_MAX_TIME;
    let mut cfg = doc_block("haproxy", "mpx");
    if keep_conn {
        cfg = replace_section(&cfg, &doc_block("haproxy", "keep-conn"), false);
    }
    let app = start_app(&mut fx, face, "app", Transport::Tcp);
    let docroot = fx.path("srv-app");
    let stats = fx.path("stats.sock");
    let subst = app
        .addr
        .subst(Subst::default())
        .set(DOCROOT, docroot.display())
        .set(STATS_SOCK, stats.display());
    let path = fx.path("haproxy.cfg");
    let log = fx.path("haproxy.out");
    start_web(&mut fx, "haproxy", &log, |port| {
        let text = subst
            .clone()
            .set(WEB_ADDR, format!("127.0.0.1:{port}"))
            .apply("haproxy block", &cfg);
        let _ = fs::remove_file(&stats);
        fs::write(&path, text).expect("write haproxy.cfg");
        let mut cmd = Command::new(HAPROXY);
        cmd.arg("-f").arg(&path).arg("-db");
        cmd
    });
    let root = format!("DOCUMENT_ROOT={}", docroot.display());
    get_and_post(&fx, face, "/app/echo", |_| vec![root.clone()]);
    check_one_kept_connection(&fx, face, &app.addr, "/app/echo", 5);
    check_app_log(&fx, "app");
}

#[test]
fn haproxy_multiplexing_native() {
    haproxy_scenario(Face::Native, false);
}

#[test]
fn haproxy_multiplexing_libfcgi() {
    haproxy_scenario(Face::Libfcgi, false);
}

#[test]
fn haproxy_keep_conn_without_multiplexing_native() {
    haproxy_scenario(Face::Native, true);
}

#[test]
fn haproxy_keep_conn_without_multiplexing_libfcgi() {
    haproxy_scenario(Face::Libfcgi, true);
}

// ---------------------------------------------------------------------------------------------
// lighttpd
// ---------------------------------------------------------------------------------------------

/// lf-authorizer's REMOTE_USER and REMOTE_PASSWD from an `X-Login` header (a test rig, as in
/// tests/lighttpd.rs: lighttpd sets them only after its own mod_auth).
const SETENV_RIG: &str = r#"
# test rig (not from docs/deploy.md): lf-authorizer's REMOTE_USER and REMOTE_PASSWD
$REQUEST_HEADER["X-Login"] == "alice:secret" {
    setenv.set-environment = ("REMOTE_USER" => "alice", "REMOTE_PASSWD" => "secret")
}
$REQUEST_HEADER["X-Login"] == "alice:wrong" {
    setenv.set-environment = ("REMOTE_USER" => "alice", "REMOTE_PASSWD" => "wrong")
}
"#;

/// A lighttpd.conf around the document's `fastcgi.server` block.
fn lighttpd_conf(dir: &Path, port: u16, block: &str, rig: &str) -> String {
    let d = dir.display();
    format!(
        r#"# generated by tests/deploy_docs.rs around a block of docs/deploy.md
server.modules = ("mod_setenv", "mod_fastcgi", "mod_staticfile")
server.document-root = "{d}/htdocs"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{d}/error.log"
server.pid-file = "{d}/lighttpd.pid"
server.upload-dirs = ("{d}/upload")

# ---- docs/deploy.md ----
{block}# ---- end ----
{rig}"#
    )
}

fn start_lighttpd(fx: &mut Fixture, subst: &Subst, block: &str, rig: &str) {
    require(LIGHTTPD, "lighttpd");
    for d in ["htdocs", "upload"] {
        fs::create_dir_all(fx.path(d)).expect("create lighttpd dir");
    }
    let text = subst.apply("lighttpd block", block);
    let conf = fx.path("lighttpd.conf");
    let error_log = fx.path("error.log");
    let dir = fx.dir.clone();
    start_web(fx, "lighttpd", &error_log, |port| {
        fs::write(&conf, lighttpd_conf(&dir, port, &text, rig)).expect("write lighttpd.conf");
        let mut cmd = Command::new(LIGHTTPD);
        cmd.arg("-D").arg("-f").arg(&conf);
        cmd
    });
}

/// lighttpd's error log has no levels: every line but the start-up notice is a complaint.
fn check_lighttpd_log(fx: &Fixture) {
    let log = fs::read_to_string(fx.path("error.log")).unwrap_or_default();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("server started"))
        .collect();
    fx.check(bad.is_empty(), || {
        format!("lighttpd logged errors:\n{}", bad.join("\n"))
    });
}

fn new_lighttpd_fixture() -> Fixture {
    let mut fx = Fixture::new("deploy-lighttpd");
    fx.curl_max_time = CURL_MAX_TIME;
    fx
}

fn lighttpd_responder(face: Face) {
    let mut fx = new_lighttpd_fixture();
    let block = doc_block("lighttpd", "responder");
    let tcp = start_app(&mut fx, face, "app-tcp", Transport::Tcp);
    let unix = start_app(&mut fx, face, "app-unix", Transport::Unix);
    let subst = unix.addr.subst(tcp.addr.subst(Subst::default()));
    start_lighttpd(&mut fx, &subst, &block, "");
    get_and_post(&fx, face, "/app/echo", |_| Vec::new());
    // With the TCP application gone, the Unix entry must still answer: its requests reach the
    // Unix socket, not the TCP entry (the first matching key wins).
    fx.sigterm_until_exit("app-tcp");
    get_and_post(&fx, face, "/app-unix/echo", |_| Vec::new());
    check_lighttpd_log(&fx);
    check_app_log(&fx, "app-unix");
}

#[test]
fn lighttpd_responder_native() {
    lighttpd_responder(Face::Native);
}

#[test]
fn lighttpd_responder_libfcgi() {
    lighttpd_responder(Face::Libfcgi);
}

fn lighttpd_spawn(face: Face) {
    let mut fx = new_lighttpd_fixture();
    let block = face.text(&doc_block("lighttpd", "spawn"));
    let procs: usize = block
        .lines()
        .find_map(|l| l.trim().strip_prefix(r#""max-procs" => "#))
        .and_then(|v| v.trim_end_matches(',').trim().parse().ok())
        .expect(r#"a "max-procs" => N line in the lighttpd spawn block"#);
    let exe = install_example(&mut fx, face.echo());
    let subst = Subst::default()
        .set(PROGRAM, exe.display())
        .set(LF_PROGRAM, exe.display())
        .set(SPAWN_SOCK, fx.path("spawn.sock").display())
        .set(LIB_DIR, common::lib_dir().display());
    start_lighttpd(&mut fx, &subst, &block, "");
    get_and_post(&fx, face, "/app/echo", |_| Vec::new());
    for i in 0..4 {
        let query = format!("n={i}");
        let r = fx.get(&format!("/app/echo?{query}"));
        check_app(
            &fx,
            face,
            &format!("GET #{i}"),
            &r,
            &echo_lines("GET", "/app/echo", &query, b""),
            b"",
        );
    }
    // lighttpd spawns its "max-procs" while reading its configuration, before it serves.
    let pids = support::pids_of_exe(&exe);
    fx.check(pids.len() == procs, || {
        format!(
            "want {procs} processes of {} spawned by lighttpd, found {pids:?}",
            exe.display()
        )
    });
    for pid in pids {
        check_project_lib(&fx, pid, "a process lighttpd spawned");
    }
    check_lighttpd_log(&fx);
}

#[test]
fn lighttpd_spawn_native() {
    lighttpd_spawn(Face::Native);
}

#[test]
fn lighttpd_spawn_libfcgi() {
    lighttpd_spawn(Face::Libfcgi);
}

const STATIC_CONTENT: &[u8] = b"static content, served once the authorizer allowed it\n";

/// Checks a denial: `status` and the authorizer's body.
fn check_denied(fx: &Fixture, what: &str, r: &Response, body: &[u8]) {
    fx.check(r.status == 403 && r.body == body, || {
        format!(
            "{what}: want 403 {:?}, got {} {:?}",
            show(body),
            r.status,
            show(&r.body)
        )
    });
}

fn lighttpd_authorizer(face: Face) {
    let mut fx = new_lighttpd_fixture();
    let block = doc_block("lighttpd", "authorizer");
    let app = start_app(&mut fx, face, "app", Transport::Tcp);
    let auth = start_authorizer(&mut fx, face);
    let docroot = fx.path("srv-app");
    fs::create_dir_all(docroot.join("files")).expect("create docroot");
    fs::write(docroot.join("files/a.txt"), STATIC_CONTENT).expect("write static file");
    let subst = app
        .addr
        .subst(Subst::default())
        .set(AUTH_ADDR, format!("127.0.0.1:{auth}"))
        .set(AUTH_PORT_LIGHTTPD, format!(r#""port" => {auth}"#))
        .set(DOCROOT, docroot.display());
    let rig = if face == Face::Libfcgi {
        SETENV_RIG
    } else {
        ""
    };
    start_lighttpd(&mut fx, &subst, &block, rig);

    // (request header that allows, what the responder gets from the authorizer, request header
    // that is denied, the denial's body, the denial's body without any header)
    let (allow, granted, deny, denied, anonymous): (&str, Vec<String>, &str, &[u8], &[u8]) =
        match face {
            Face::Native => (
                "Authorization: Bearer letmein",
                vec![
                    "HTTP_AUTHORIZATION=Bearer letmein".into(),
                    "AUTH_USER=demo".into(),
                ],
                "Authorization: Bearer guess",
                b"forbidden\n",
                b"forbidden\n",
            ),
            Face::Libfcgi => (
                "X-Login: alice:secret",
                vec![
                    "REMOTE_USER=alice".into(),
                    "AUTH_TYPE=Basic".into(),
                    "AUTH_USER=alice".into(),
                    "AUTH_GRANTS=1".into(),
                ],
                "X-Login: alice:wrong",
                b"access denied for alice\n",
                b"access denied for (anonymous)\n",
            ),
        };

    let r = fx.curl(&["-H", allow], "/private/app?who=me");
    let mut want = echo_lines("GET", "/private/app", "who=me", b"");
    want.extend(granted);
    check_app(&fx, face, "allowed GET /private/app", &r, &want, b"");
    let r = fx.curl(&["-H", deny], "/private/app?who=guess");
    check_denied(&fx, "GET /private/app, wrong credentials", &r, denied);
    let r = fx.get("/private/app?who=nobody");
    check_denied(&fx, "GET /private/app, no credentials", &r, anonymous);

    let r = fx.curl(&["-H", allow], "/files/a.txt");
    fx.check(r.status == 200 && r.body == STATIC_CONTENT, || {
        format!(
            "allowed GET /files/a.txt: status {}, body {:?}",
            r.status,
            show(&r.body)
        )
    });
    let r = fx.get("/files/a.txt");
    check_denied(&fx, "GET /files/a.txt, no credentials", &r, anonymous);
    check_lighttpd_log(&fx);
}

#[test]
fn lighttpd_authorizer_native() {
    lighttpd_authorizer(Face::Native);
}

#[test]
fn lighttpd_authorizer_libfcgi() {
    lighttpd_authorizer(Face::Libfcgi);
}

// ---------------------------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------------------------

/// A unit file: its sections, each with its `Key=value` lines in order.
struct Unit {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Unit {
    fn parse(what: &str, text: &str) -> Unit {
        let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
                continue;
            }
            assert!(
                !l.ends_with('\\'),
                "{what}:{}: continued lines are not supported by this test's launcher",
                n + 1
            );
            if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                sections.push((name.to_string(), Vec::new()));
                continue;
            }
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{what}:{}: not Key=value: {raw:?}", n + 1));
            let section = sections
                .last_mut()
                .unwrap_or_else(|| panic!("{what}:{}: a setting before any [Section]", n + 1));
            section.1.push((k.trim().to_string(), v.trim().to_string()));
        }
        Unit { sections }
    }

    /// Every value of `key` in `section`, in order.
    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.sections
            .iter()
            .filter(|(s, _)| s == section)
            .flat_map(|(_, kv)| kv.iter())
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `key` in `section` (the last one wins, as in systemd).
    fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.all(section, key).last().copied()
    }
}

/// systemd's word splitting of `Environment=` values: whitespace separates, double or single
/// quotes group, a backslash escapes the next character.
fn split_quoted(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                cur.extend(chars.next());
                in_word = true;
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// uid (from /etc/passwd) or gid (from /etc/group) of `name`.
fn id_of(file: &str, name: &str) -> u32 {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name))
                .then(|| f.get(2)?.parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("{name} not found in {file}"))
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The socket unit with its commented-out `#ListenStream=` alternative in place of the active
/// `ListenStream=` line.
fn use_commented_listen(socket: &str) -> String {
    let alt = socket
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix('#')
                .map(str::trim)
                .filter(|r| r.starts_with("ListenStream="))
        })
        .expect("a commented-out #ListenStream= alternative in the socket unit")
        .to_string();
    socket
        .lines()
        // Drop the active line and the commented alternative; the latter goes back uncommented.
        .filter(|l| {
            !l.trim()
                .trim_start_matches('#')
                .trim_start()
                .starts_with("ListenStream=")
        })
        .flat_map(|l| {
            if l.trim() == "[Socket]" {
                vec![l.to_string(), alt.clone()]
            } else {
                vec![l.to_string()]
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Runs `systemd-analyze verify` on `units` (paths); returns its exit status and output lines.
fn systemd_analyze_verify(units: &[PathBuf]) -> (bool, Vec<String>) {
    require(SYSTEMD_ANALYZE, "systemd");
    let mut cmd = Command::new(SYSTEMD_ANALYZE);
    cmd.args(["verify", "--man=no", "--generators=no"])
        .args(units)
        .env("SYSTEMD_LOG_LEVEL", "info")
        .env("SYSTEMD_LOG_COLOR", "0");
    let out = support::run_with_stdin(&mut cmd, Vec::new(), |_| {})
        .unwrap_or_else(|e| panic!("systemd-analyze verify: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success(),
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Writes the units into `DIR/units/` and checks them with `systemd-analyze verify` (see the
/// module documentation for what is tolerated).
fn verify_units(fx: &Fixture, socket: &str, service: &str) {
    let dir = fx.path("units");
    fs::create_dir_all(&dir).expect("create units dir");
    let paths = [dir.join("app.socket"), dir.join("app.service")];
    fs::write(&paths[0], socket).expect("write app.socket");
    fs::write(&paths[1], service).expect("write app.service");
    let (ok, lines) = systemd_analyze_verify(&paths);
    let dir_text = dir.display().to_string();
    let (ours, other): (Vec<&String>, Vec<&String>) = lines.iter().partition(|l| {
        l.contains(&dir_text) || l.contains("app.socket") || l.contains("app.service")
    });
    let (host, unknown): (Vec<&String>, Vec<&String>) = other.iter().partition(|l| {
        ["/lib/systemd/", "/usr/lib/systemd/", "/etc/systemd/"]
            .iter()
            .any(|d| l.contains(d))
    });
    for l in &host {
        eprintln!("systemd-analyze, about the host (tolerated): {l}");
    }
    fx.check(ok && ours.is_empty() && unknown.is_empty(), || {
        format!(
            "systemd-analyze verify (success: {ok}) reported:\n{}\n--- app.socket ---\n{socket}\
             --- app.service ---\n{service}",
            lines.join("\n")
        )
    });
}

/// The application systemd would start for the units, and where it listens.
struct Activated {
    pid: u32,
    addr: Addr,
}

/// Does what systemd does when `app.socket` activates `app.service` (see the module
/// documentation): binds the socket and starts the service's program on it as `name`.
fn launch_socket_unit(fx: &mut Fixture, socket: &Unit, service: &Unit, name: &str) -> Activated {
    let listen = socket.all("Socket", "ListenStream");
    let [listen] = listen[..] else {
        fx.fail(&format!(
            "want one ListenStream= in app.socket, got {listen:?}"
        ));
    };
    fx.check(
        socket.get("Socket", "Accept").is_none_or(|a| a == "no"),
        || "StandardInput=socket needs Accept=no".to_string(),
    );
    let (fd, addr) = if listen.starts_with('/') {
        let path = PathBuf::from(listen);
        let parent = path.parent().expect("socket directory");
        // systemd creates missing directories with DirectoryMode= (0755).
        let mode = socket.get("Socket", "DirectoryMode").unwrap_or("0755");
        let mode = u32::from_str_radix(mode, 8).expect("octal DirectoryMode");
        let mut missing = Vec::new();
        let mut p = parent;
        while !p.exists() {
            missing.push(p.to_path_buf());
            p = p.parent().expect("an existing ancestor");
        }
        for d in missing.iter().rev() {
            fs::create_dir(d).expect("create socket directory");
            fs::set_permissions(d, fs::Permissions::from_mode(mode)).expect("chmod directory");
        }
        let l = UnixListener::bind(&path)
            .unwrap_or_else(|e| fx.fail(&format!("bind {}: {e}", path.display())));
        let mode = socket.get("Socket", "SocketMode").unwrap_or("0666");
        let mode = u32::from_str_radix(mode, 8).expect("octal SocketMode");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod socket");
        if is_root() {
            let uid = socket
                .get("Socket", "SocketUser")
                .map(|u| id_of("/etc/passwd", u));
            let gid = socket
                .get("Socket", "SocketGroup")
                .map(|g| id_of("/etc/group", g));
            std::os::unix::fs::chown(&path, uid, gid).expect("chown socket");
        }
        (OwnedFd::from(l), Addr::Unix(path))
    } else {
        let l =
            TcpListener::bind(listen).unwrap_or_else(|e| fx.fail(&format!("bind {listen}: {e}")));
        let port = l.local_addr().expect("local_addr").port();
        (OwnedFd::from(l), Addr::Tcp(port))
    };

    fx.check(
        service.get("Service", "StandardInput") == Some("socket"),
        || "app.service: want StandardInput=socket (the listening socket on fd 0)".to_string(),
    );
    for key in ["StandardOutput", "StandardError"] {
        let v = service.get("Service", key);
        fx.check(v.is_some_and(|v| v != "inherit" && v != "socket"), || {
            format!("app.service: {key}={v:?} would write to the socket (set e.g. journal)")
        });
    }
    let exec = service.all("Service", "ExecStart");
    let [exec] = exec[..] else {
        fx.fail(&format!("want one ExecStart= in app.service, got {exec:?}"));
    };
    fx.check(
        !exec.starts_with(['-', '@', ':', '+', '!']) && !exec.contains(['%', '"', '\'', '$', ';']),
        || format!("ExecStart={exec}: prefixes, specifiers, quotes and variables are not emulated"),
    );
    let argv: Vec<&str> = exec.split_whitespace().collect();

    let mut cmd = Command::new("/bin/sh");
    // exec keeps the pid: LISTEN_PID names the program, as systemd sets it.
    cmd.args(["-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$@\"", "sh"])
        .args(&argv)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "app.socket");
    for line in service.all("Service", "Environment") {
        for word in split_quoted(line) {
            let (k, v) = word
                .split_once('=')
                .unwrap_or_else(|| panic!("Environment=: {word:?} is not NAME=value"));
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::from(fd));
    // SAFETY: dup2 and fcntl are async-signal-safe; fd 0 is the socket (std sets up stdin
    // before the pre_exec hooks run). systemd passes the socket as fd 3 too (LISTEN_FDS=1).
    unsafe {
        cmd.pre_exec(|| {
            if libc::dup2(0, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let pid = fx.spawn(name, &mut cmd);
    check_project_lib(fx, pid, name);
    // The emulation itself: fds 0 and 3 are the listening socket, LISTEN_PID is the program's.
    let fd0 = fs::read_link(format!("/proc/{pid}/fd/0")).ok();
    let fd3 = fs::read_link(format!("/proc/{pid}/fd/3")).ok();
    fx.check(
        fd0.as_ref()
            .is_some_and(|t| t.to_string_lossy().starts_with("socket:"))
            && fd0 == fd3,
        || format!("{name}: fd 0 {fd0:?} and fd 3 {fd3:?} should be the listening socket"),
    );
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let listen_pid = format!("LISTEN_PID={pid}");
    fx.check(
        environ
            .split(|&b| b == 0)
            .any(|e| e == listen_pid.as_bytes()),
        || format!("{name}: no {listen_pid} in its environment"),
    );
    Activated { pid, addr }
}

/// `fcgi-client ARGS`, optionally as user `uid`:`gid`, bounded by RUN_TIMEOUT.
fn fcgi_client(
    fx: &Fixture,
    client: &Path,
    args: &[&str],
    user: Option<(u32, u32)>,
) -> std::process::Output {
    let mut cmd = Command::new(client);
    cmd.args(args);
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    support::run_with_stdin(&mut cmd, Vec::new(), |_| {})
        .unwrap_or_else(|e| fx.fail(&format!("fcgi-client {args:?}: {e}")))
}

/// fcgi-client's output (the application's FastCGI stdout) as a response.
fn client_response(fx: &Fixture, what: &str, out: &std::process::Output) -> Response {
    fx.check(out.status.success(), || {
        format!(
            "{what}: fcgi-client failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let raw = &out.stdout;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| fx.fail(&format!("{what}: no end of headers in {}", show(raw))));
    let headers = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = headers
        .lines()
        .find_map(|l| l.strip_prefix("Status:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(200);
    Response {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

fn systemd_scenario(face: Face, transport: Transport) {
    let mut fx = Fixture::new("deploy-systemd");
    fx.curl_max_time = CURL_MAX_TIME;
    let mut socket_text = doc_block("systemd-socket", "app");
    if transport == Transport::Tcp {
        socket_text = use_commented_listen(&socket_text);
    }
    let service_text = face.text(&doc_block("systemd-service", "app"));
    let exe = install_example(&mut fx, face.echo());
    let client = fx.install_executable(Path::new(env!("CARGO_BIN_EXE_fcgi-client")), "fcgi-client");
    let sock = fx.path("run/app/app.sock");
    let docroot = fx.path("srv-app");
    fs::create_dir_all(&docroot).expect("create docroot");

    // TCP: the port is chosen free, then bound by the launcher (retried if taken meanwhile).
    let mut activated = None;
    for _ in 0..5 {
        let port = common::free_port();
        let subst = Subst::default()
            .set(APP_SOCK, sock.display())
            .set(APP_ADDR, format!("127.0.0.1:{port}"))
            .set(PROGRAM, exe.display())
            .set(LF_PROGRAM, exe.display())
            .set(LIB_DIR, common::lib_dir().display());
        let socket = subst.apply("app.socket", &socket_text);
        let service = subst.apply("app.service", &service_text);
        if transport == Transport::Tcp && std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
        {
            continue;
        }
        verify_units(&fx, &socket, &service);
        let (socket, service) = (
            Unit::parse("app.socket", &socket),
            Unit::parse("app.service", &service),
        );
        let a = launch_socket_unit(&mut fx, &socket, &service, "app");
        activated = Some((a, socket, service));
        break;
    }
    let Some((app, socket, service)) = activated else {
        fx.fail("no free port for the TCP socket unit");
    };
    let addr = app.addr.client();

    if let Addr::Unix(path) = &app.addr {
        let meta = fs::metadata(path).expect("stat the socket");
        let want = socket.get("Socket", "SocketMode").unwrap_or("0666");
        let want = u32::from_str_radix(want, 8).expect("octal SocketMode");
        fx.check(meta.permissions().mode() & 0o7777 == want, || {
            format!(
                "socket mode {:o}, want {want:o} (SocketMode)",
                meta.permissions().mode() & 0o7777
            )
        });
        if is_root() {
            if let (Some(u), Some(g)) = (
                socket.get("Socket", "SocketUser"),
                socket.get("Socket", "SocketGroup"),
            ) {
                let (uid, gid) = (id_of("/etc/passwd", u), id_of("/etc/group", g));
                fx.check(meta.uid() == uid && meta.gid() == gid, || {
                    format!(
                        "socket owned by {}:{}, want {u}:{g}",
                        meta.uid(),
                        meta.gid()
                    )
                });
            }
        }
    }

    // Straight to the socket: a GET and a POST with fcgi-client.
    let query = "a=1&b=two%20words";
    let out = fcgi_client(&fx, &client, &[&addr, &format!("/app/echo?{query}")], None);
    let r = client_response(&fx, "fcgi-client GET", &out);
    check_app(
        &fx,
        face,
        "fcgi-client GET",
        &r,
        &echo_lines("GET", "/app/echo", query, b""),
        b"",
    );
    let body = common::body(100 * 1024, 0x5_0c4e7);
    let file = fx.path("body.bin");
    fs::write(&file, &body).expect("write body");
    let out = fcgi_client(
        &fx,
        &client,
        &[
            "-f",
            file.to_str().expect("utf-8 path"),
            &addr,
            "/app/echo?upload=1",
        ],
        None,
    );
    let r = client_response(&fx, "fcgi-client POST", &out);
    let mut want = echo_lines("POST", "/app/echo", "upload=1", &body);
    want.push(format!("CONTENT_LENGTH={}", body.len()));
    check_app(&fx, face, "fcgi-client POST", &r, &want, &body);

    // The FCGI_RUNTIME_* settings of Environment= reached the application: FCGI_GET_VALUES
    // answers with them (read when the first request was accepted).
    let env: BTreeMap<String, String> = service
        .all("Service", "Environment")
        .iter()
        .flat_map(|l| split_quoted(l))
        .filter_map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let out = fcgi_client(&fx, &client, &["--get-values", &addr], None);
    let values = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut checked = 0;
    for name in ["MAX_CONNS", "MAX_REQS", "MPXS_CONNS"] {
        if let Some(v) = env.get(&format!("FCGI_RUNTIME_{name}")) {
            let line = format!("FCGI_{name}={v}");
            fx.check(values.lines().any(|l| l == line), || {
                format!("FCGI_GET_VALUES: want {line} (from Environment=), got:\n{values}")
            });
            checked += 1;
        }
    }
    fx.check(checked > 0, || {
        "app.service sets no FCGI_RUNTIME_* that FCGI_GET_VALUES reports".to_string()
    });

    // Who may connect: the socket's user (the web server), and not someone else.
    if let (Addr::Unix(_), true, Some(user)) =
        (&app.addr, is_root(), socket.get("Socket", "SocketUser"))
    {
        let web = (id_of("/etc/passwd", user), id_of("/etc/group", user));
        let out = fcgi_client(&fx, &client, &[&addr, "/app/echo?as=web"], Some(web));
        let r = client_response(&fx, &format!("fcgi-client as {user}"), &out);
        check_app(
            &fx,
            face,
            &format!("as {user}"),
            &r,
            &echo_lines("GET", "/app/echo", "as=web", b""),
            b"",
        );
        // The document promises that other users may not.
        let mode = socket.get("Socket", "SocketMode").unwrap_or("0666");
        let nobody = (
            id_of("/etc/passwd", "nobody"),
            id_of("/etc/group", "nogroup"),
        );
        let out = fcgi_client(&fx, &client, &[&addr, "/app/echo?as=nobody"], Some(nobody));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        fx.check(
            !out.status.success() && err.contains("Permission denied"),
            || {
                format!(
                    "user nobody could talk to the socket (SocketMode={mode}): {} {err}",
                    out.status
                )
            },
        );
    }

    // Through the document's nginx block for this socket.
    let subst = app
        .addr
        .subst(Subst::default())
        .set(DOCROOT, docroot.display());
    start_nginx(&mut fx, &subst, &nginx_block(transport));
    exercise_nginx(&fx, face, &app.addr, &docroot);

    fx.check(support::is_alive(app.pid), || {
        "the application exited".to_string()
    });
    let journal = fx.stderr_of("app") + &fs::read_to_string(fx.path("app.out")).unwrap_or_default();
    fx.check(journal.trim().is_empty(), || {
        format!("the application wrote to its journal:\n{journal}")
    });
}

#[test]
fn systemd_unix_socket_native() {
    systemd_scenario(Face::Native, Transport::Unix);
}

#[test]
fn systemd_unix_socket_libfcgi() {
    systemd_scenario(Face::Libfcgi, Transport::Unix);
}

#[test]
fn systemd_tcp_socket_native() {
    systemd_scenario(Face::Native, Transport::Tcp);
}

#[test]
fn systemd_tcp_socket_libfcgi() {
    systemd_scenario(Face::Libfcgi, Transport::Tcp);
}

/// `systemd-analyze verify` as this test runs it does report problems in these units (so a
/// silent run means something): an unknown key and a missing program.
#[test]
fn systemd_analyze_reports_broken_units() {
    let fx = Fixture::new("deploy-systemd-broken");
    let subst = Subst::default()
        .set(APP_SOCK, fx.path("app.sock").display())
        .set(APP_ADDR, "127.0.0.1:1")
        .set(PROGRAM, fx.path("no-such-program").display())
        .set(LIB_DIR, common::lib_dir().display());
    let socket = subst
        .apply("app.socket", &doc_block("systemd-socket", "app"))
        .replace("[Socket]\n", "[Socket]\nListenStreams=nowhere\n");
    let service = subst.apply("app.service", &doc_block("systemd-service", "app"));
    let dir = fx.path("units");
    fs::create_dir_all(&dir).expect("create units dir");
    let paths = [dir.join("app.socket"), dir.join("app.service")];
    fs::write(&paths[0], socket).expect("write app.socket");
    fs::write(&paths[1], service).expect("write app.service");
    let (_, lines) = systemd_analyze_verify(&paths);
    let text = lines.join("\n");
    fx.check(
        text.contains("Unknown key") && text.contains("ListenStreams"),
        || format!("systemd-analyze did not report the unknown key:\n{text}"),
    );
    fx.check(text.contains("no-such-program"), || {
        format!("systemd-analyze did not report the missing program:\n{text}")
    });
}
