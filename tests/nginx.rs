//! End to end through a real web server: curl -> nginx -> fcgi-runtime, with the C examples
//! (`c-examples/echo`, `c-examples/hello`) as the applications.
//!
//! Every test starts its own fixture (see [`Fixture`]): `echo -t 4` on a TCP port chosen here,
//! a second `echo -t 4` on a Unix socket in a temporary directory, `hello` on a listening socket
//! inherited as fd 0 (the way a web server or spawner starts a FastCGI application), and an nginx
//! with its own configuration, prefix, logs and temporary files in that directory, listening on a
//! free port of 127.0.0.1. Locations:
//!
//! | location       | upstream                                               |
//! |----------------|--------------------------------------------------------|
//! | `/echo`        | echo over TCP, `keepalive 8` + `fastcgi_keep_conn on`  |
//! | `/echo-nokeep` | the same echo, a new connection per request            |
//! | `/echo-unix`   | echo over the Unix socket                              |
//! | `/hello`       | hello over TCP                                         |
//!
//! nginx is required (CI installs it): when `/usr/sbin/nginx` is missing the tests fail, they do
//! not skip. Every HTTP request goes through `curl --max-time 30`; every wait is bounded. The
//! processes are killed when the fixture is dropped; the temporary directory is removed unless
//! the test failed (or `FCGI_TEST_KEEP=1`), and its path is printed so the logs can be read.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";
const CURL_MAX_TIME: &str = "30";
const START_TIMEOUT: Duration = Duration::from_secs(15);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const TEN_MIB: usize = 10 * 1024 * 1024;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// Building the examples
// ---------------------------------------------------------------------------------------------

/// `target/<profile>/deps`, where the test binary lives (`deps/nginx-<hash>`) and where this
/// very `cargo test` wrote the cdylib. `cargo test` does not copy it up to `target/<profile>/`
/// as `cargo build` does, so `target/release/libfcgi.so` may be missing or older.
fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

fn same_contents(a: &Path, b: &Path) -> bool {
    match (fs::read(a), fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Runs `make -C c-examples` once per test binary and returns the directory of the programs.
///
/// Normally (`make test`, or `cargo build --release` before `cargo test --release`) the
/// library in `target/release` is the one just built, and the programs are the usual
/// `c-examples/build/*`. Otherwise (another profile, or `target/release/libfcgi.so` missing or
/// stale) they are linked against `target/<profile>/deps/libfcgi.so` into
/// `target/<profile>/c-examples/`, so the test never runs against an outdated library.
fn examples() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(build_examples)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn build_examples() -> Result<PathBuf, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let deps = deps_dir();
    let fresh = deps.join("libfcgi.so");
    if !fresh.exists() {
        return Err(format!(
            "{} is missing: cargo did not build the cdylib for this test",
            fresh.display()
        ));
    }
    let release = root.join("target").join("release");
    let profile_dir = deps.parent().unwrap_or(&deps).to_path_buf();
    let is_release = match (fs::canonicalize(&profile_dir), fs::canonicalize(&release)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let mut make = Command::new("make");
    make.arg("-C").arg(root.join("c-examples"));
    let out_dir = if is_release && same_contents(&fresh, &release.join("libfcgi.so")) {
        root.join("c-examples").join("build")
    } else {
        let dir = profile_dir.join("c-examples");
        make.arg(format!("LIBDIR={}", deps.display()));
        make.arg(format!("BUILDDIR={}", dir.display()));
        dir
    };
    let out = make
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run make: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "make -C c-examples failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    for p in ["echo", "hello"] {
        if !out_dir.join(p).exists() {
            return Err(format!(
                "make succeeded but {} is missing",
                out_dir.join(p).display()
            ));
        }
    }
    Ok(out_dir)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Deterministic, incompressible-looking bytes (xorshift64*).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn tcp_ready(port: u16) -> bool {
    TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

fn show(body: &[u8]) -> String {
    const MAX: usize = 2000;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]).into_owned();
    if body.len() > MAX {
        format!("{text}... ({} bytes in all)", body.len())
    } else {
        text
    }
}

struct Response {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Response {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A curl invocation whose results land in files of the fixture's directory.
struct CurlCall {
    label: String,
    body: PathBuf,
    headers: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------------

struct Fixture {
    dir: PathBuf,
    port: u16,
    /// nginx first, so it stops talking to the applications before they go away.
    children: Vec<(String, Child)>,
}

impl Fixture {
    fn start() -> Fixture {
        if !Path::new(NGINX).exists() {
            panic!(
                "{NGINX} not found: this test needs nginx (apt-get install nginx-light); \
                 it fails instead of skipping because CI installs it"
            );
        }
        let bin = examples();
        let dir = std::env::temp_dir().join(format!(
            "fcgi-nginx-test-{}-{}",
            std::process::id(),
            unique()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        let mut fx = Fixture {
            dir,
            port: 0,
            children: Vec::new(),
        };

        let echo_port = fx.start_on_tcp_port("echo-tcp", &bin.join("echo"), &["-t", "4"]);
        let sock = fx.dir.join("echo.sock");
        fx.start_on_unix_socket("echo-unix", &bin.join("echo"), &["-t", "4"], &sock);
        let hello_port = fx.start_on_inherited_socket("hello", &bin.join("hello"));
        fx.start_nginx(echo_port, &sock, hello_port);
        fx
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command) -> Result<(), String> {
        let out = File::create(self.dir.join(format!("{name}.out"))).expect("log file");
        let err = File::create(self.dir.join(format!("{name}.err"))).expect("log file");
        cmd.env_remove("FCGI_ADDR")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({cmd:?}): {e}"))?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// Waits until `probe` succeeds while the last spawned child keeps running.
    fn wait_ready(&mut self, probe: impl Fn() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if probe() {
                return Ok(());
            }
            let (name, child) = self.children.last_mut().expect("a child was spawned");
            if let Ok(Some(status)) = child.try_wait() {
                let name = name.clone();
                self.children.pop();
                return Err(format!(
                    "{name} exited ({status}) before it was ready; stderr:\n{}",
                    tail(&self.dir.join(format!("{name}.err")), 30)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("{name} not ready after {START_TIMEOUT:?}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `prog ARGS -a 127.0.0.1:PORT` (the program listens itself, through fcgi_listen). The port
    /// was free a moment ago; if another process took it meanwhile, try another one.
    fn start_on_tcp_port(&mut self, name: &str, prog: &Path, args: &[&str]) -> u16 {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(prog);
            cmd.args(args)
                .arg("-a")
                .arg(format!("127.0.0.1:{port}"))
                .stdin(Stdio::null());
            if let Err(e) = self.spawn(name, &mut cmd) {
                self.fail(&e);
            }
            match self.wait_ready(|| tcp_ready(port)) {
                Ok(()) => return port,
                Err(e) => last = e,
            }
        }
        self.fail(&format!("cannot start {name}: {last}"))
    }

    /// `prog ARGS -a /path/to.sock` (a Unix-domain socket, through fcgi_listen).
    fn start_on_unix_socket(&mut self, name: &str, prog: &Path, args: &[&str], sock: &Path) {
        let mut cmd = Command::new(prog);
        cmd.args(args).arg("-a").arg(sock).stdin(Stdio::null());
        if let Err(e) = self.spawn(name, &mut cmd) {
            self.fail(&e);
        }
        let path = sock.to_path_buf();
        if let Err(e) = self.wait_ready(move || UnixStream::connect(&path).is_ok()) {
            self.fail(&e);
        }
    }

    /// `prog` with a listening TCP socket as fd 0 (found by fcgi_init / fcgi_is_fastcgi).
    fn start_on_inherited_socket(&mut self, name: &str, prog: &Path) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let mut cmd = Command::new(prog);
        cmd.stdin(Stdio::from(OwnedFd::from(listener)));
        if let Err(e) = self.spawn(name, &mut cmd) {
            self.fail(&e);
        }
        // The socket listens already; make sure the program did not die on start-up.
        thread::sleep(Duration::from_millis(50));
        if let Err(e) = self.wait_ready(|| tcp_ready(port)) {
            self.fail(&e);
        }
        port
    }

    fn nginx_conf(&self, port: u16, echo_port: u16, sock: &Path, hello_port: u16) -> String {
        let d = self.dir.display();
        let sock = sock.display();
        format!(
            r#"# generated by tests/nginx.rs
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
    keepalive_timeout 30s;
    keepalive_requests 1000;

    fastcgi_connect_timeout 10s;
    fastcgi_send_timeout 30s;
    fastcgi_read_timeout 30s;

    # The usual fastcgi_params, inline so the test does not depend on /etc/nginx.
    fastcgi_param QUERY_STRING      $query_string;
    fastcgi_param REQUEST_METHOD    $request_method;
    fastcgi_param CONTENT_TYPE      $content_type;
    fastcgi_param CONTENT_LENGTH    $content_length;
    fastcgi_param SCRIPT_NAME       $fastcgi_script_name;
    fastcgi_param REQUEST_URI       $request_uri;
    fastcgi_param DOCUMENT_URI      $document_uri;
    fastcgi_param DOCUMENT_ROOT     $document_root;
    fastcgi_param SERVER_PROTOCOL   $server_protocol;
    fastcgi_param REQUEST_SCHEME    $scheme;
    fastcgi_param HTTPS             $https if_not_empty;
    fastcgi_param GATEWAY_INTERFACE CGI/1.1;
    fastcgi_param SERVER_SOFTWARE   nginx/$nginx_version;
    fastcgi_param REMOTE_ADDR       $remote_addr;
    fastcgi_param REMOTE_PORT       $remote_port;
    fastcgi_param SERVER_ADDR       $server_addr;
    fastcgi_param SERVER_PORT       $server_port;
    fastcgi_param SERVER_NAME       $server_name;
    fastcgi_param REDIRECT_STATUS   200;

    upstream echo_keepalive {{
        server 127.0.0.1:{echo_port};
        keepalive 8;
    }}

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;

        location = /echo {{
            fastcgi_pass echo_keepalive;
            fastcgi_keep_conn on;
        }}
        location = /echo-nokeep {{
            fastcgi_pass 127.0.0.1:{echo_port};
        }}
        location = /echo-unix {{
            fastcgi_pass unix:{sock};
        }}
        location = /hello {{
            fastcgi_pass 127.0.0.1:{hello_port};
        }}
    }}
}}
"#
        )
    }

    fn start_nginx(&mut self, echo_port: u16, sock: &Path, hello_port: u16) {
        let conf = self.dir.join("nginx.conf");
        let error_log = self.dir.join("error.log");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            fs::write(&conf, self.nginx_conf(port, echo_port, sock, hello_port))
                .expect("write nginx.conf");
            let mut prefix = self.dir.as_os_str().to_owned();
            prefix.push("/");
            let mut cmd = Command::new(NGINX);
            cmd.arg("-e")
                .arg(&error_log)
                .arg("-p")
                .arg(prefix)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null());
            if let Err(e) = self.spawn("nginx", &mut cmd) {
                self.fail(&e);
            }
            match self.wait_ready(|| tcp_ready(port)) {
                Ok(()) => {
                    self.port = port;
                    // Keep nginx first: it is stopped first.
                    let nginx = self.children.pop().expect("nginx child");
                    self.children.insert(0, nginx);
                    return;
                }
                Err(e) => {
                    let log = tail(&error_log, 20);
                    last = format!("{e}\nerror.log:\n{log}");
                    if !log.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        self.fail(&format!("cannot start nginx: {last}"))
    }

    /// Panics with `msg` and what the logs say.
    fn fail(&self, msg: &str) -> ! {
        let mut report = format!("{msg}\n\n--- {}/error.log (tail) ---\n", self.dir.display());
        report.push_str(&tail(&self.dir.join("error.log"), 40));
        for name in ["echo-tcp", "echo-unix", "hello", "nginx"] {
            let err = self.dir.join(format!("{name}.err"));
            if fs::metadata(&err).map(|m| m.len() > 0).unwrap_or(false) {
                let _ = write!(report, "\n--- {name} stderr (tail) ---\n{}", tail(&err, 20));
            }
        }
        panic!("{report}")
    }

    fn check(&self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.fail(&msg());
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `curl -sS --max-time 30 -o BODY -D HEADERS -w %{http_code} EXTRA... URL`, not yet run.
    fn curl_cmd(&self, extra: &[&str], path: &str) -> (Command, CurlCall) {
        let n = unique();
        let call = CurlCall {
            label: format!("curl {} {}", extra.join(" "), path),
            body: self.dir.join(format!("resp-{n}.body")),
            headers: self.dir.join(format!("resp-{n}.headers")),
        };
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            CURL_MAX_TIME,
            "--connect-timeout",
            "10",
        ])
        .arg("-o")
        .arg(&call.body)
        .arg("-D")
        .arg(&call.headers)
        .args(["-w", "%{http_code}", "-H", "Expect:"])
        .args(extra)
        .arg(self.url(path))
        .stdin(Stdio::null());
        (cmd, call)
    }

    fn curl_result(&self, call: CurlCall, out: std::io::Result<Output>) -> Response {
        let out = match out {
            Ok(out) => out,
            Err(e) => self.fail(&format!("{}: cannot run curl: {e}", call.label)),
        };
        self.check(out.status.success(), || {
            format!(
                "{}: curl failed ({}): {}",
                call.label,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let status = code
            .parse()
            .unwrap_or_else(|_| self.fail(&format!("{}: bad status {code:?}", call.label)));
        let body = fs::read(&call.body).unwrap_or_default();
        let headers = fs::read_to_string(&call.headers).unwrap_or_default();
        let _ = fs::remove_file(&call.body);
        let _ = fs::remove_file(&call.headers);
        Response {
            status,
            headers,
            body,
        }
    }

    fn curl(&self, extra: &[&str], path: &str) -> Response {
        let (mut cmd, call) = self.curl_cmd(extra, path);
        let out = cmd.output();
        self.curl_result(call, out)
    }

    fn get(&self, path: &str) -> Response {
        self.curl(&[], path)
    }

    /// Checks an echo response: 200, FCGI_ROLE first, the given lines present.
    fn check_echo(&self, what: &str, r: &Response, lines: &[String]) {
        self.check(r.status == 200, || {
            format!(
                "{what}: status {} (want 200), body:\n{}",
                r.status,
                show(&r.body)
            )
        });
        let text = r.text();
        let got: Vec<&str> = text.lines().collect();
        self.check(got.first() == Some(&"FCGI_ROLE=RESPONDER"), || {
            format!("{what}: the first param is not FCGI_ROLE=RESPONDER; body:\n{text}")
        });
        for want in lines {
            self.check(got.contains(&want.as_str()), || {
                format!("{what}: line {want:?} missing; body:\n{}", show(&r.body))
            });
        }
        for key in ["STDIN_LENGTH=", "STDIN_FNV1A64="] {
            self.check(
                got.iter().filter(|l| l.starts_with(key)).count() == 1,
                || {
                    format!(
                        "{what}: want exactly one {key} line; body:\n{}",
                        show(&r.body)
                    )
                },
            );
        }
    }

    /// nginx must not have logged an error about the upstreams.
    fn check_error_log(&self) {
        let log = fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| {
                ["[error]", "[crit]", "[alert]", "[emerg]"]
                    .iter()
                    .any(|lvl| l.contains(lvl))
            })
            .collect();
        self.check(bad.is_empty(), || {
            format!("nginx logged errors:\n{}", bad.join("\n"))
        });
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut() {
            let _ = child.kill();
        }
        for (_, child) in self.children.iter_mut() {
            let _ = child.wait();
        }
        let keep = std::env::var_os("FCGI_TEST_KEEP").is_some_and(|v| v == "1");
        if thread::panicking() || keep {
            eprintln!("fixture files kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn echo_lines(method: &str, uri: &str, query: &str, body: &[u8]) -> Vec<String> {
    vec![
        format!("REQUEST_METHOD={method}"),
        format!("QUERY_STRING={query}"),
        format!("REQUEST_URI={uri}?{query}"),
        format!("STDIN_LENGTH={}", body.len()),
        format!("STDIN_FNV1A64={:016x}", fnv1a64(body)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn get_with_query_through_every_location() {
    let fx = Fixture::start();
    for loc in ["/echo", "/echo-nokeep", "/echo-unix"] {
        let query = "a=1&b=two%20words&empty=";
        let r = fx.get(&format!("{loc}?{query}"));
        fx.check_echo(
            &format!("GET {loc}"),
            &r,
            &echo_lines("GET", loc, query, b""),
        );
        fx.check(
            r.headers
                .to_ascii_lowercase()
                .contains("content-type: text/plain"),
            || format!("GET {loc}: no text/plain Content-Type in\n{}", r.headers),
        );
    }
    let r = fx.get("/hello?x=1");
    fx.check(r.status == 200 && r.body == b"Hello, World!\n", || {
        format!("GET /hello: status {}, body {:?}", r.status, show(&r.body))
    });
    fx.check_error_log();
}

#[test]
fn keepalive_location_serves_20_sequential_requests() {
    let fx = Fixture::start();
    // One curl, 20 URLs: curl reuses its connection to nginx, nginx its connection to echo.
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        CURL_MAX_TIME,
        "--connect-timeout",
        "10",
    ])
    .args(["-w", "%{http_code} %{num_connects}\\n"])
    .stdin(Stdio::null());
    let files: Vec<PathBuf> = (0..20)
        .map(|i| fx.dir.join(format!("seq-{i}.body")))
        .collect();
    for (i, f) in files.iter().enumerate() {
        cmd.arg("-o").arg(f).arg(fx.url(&format!("/echo?seq={i}")));
    }
    let out = cmd.output().expect("run curl");
    fx.check(out.status.success(), || {
        format!(
            "curl failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    fx.check(lines.len() == 20, || {
        format!("want 20 results, curl said:\n{stdout}")
    });
    for (i, f) in files.iter().enumerate() {
        let body = fs::read(f).unwrap_or_default();
        let status = lines[i]
            .split(' ')
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or(0);
        let r = Response {
            status,
            headers: String::new(),
            body,
        };
        let query = format!("seq={i}");
        fx.check_echo(
            &format!("request {i} of 20"),
            &r,
            &echo_lines("GET", "/echo", &query, b""),
        );
    }
    let connects: u32 = lines
        .iter()
        .filter_map(|l| l.split(' ').nth(1)?.parse::<u32>().ok())
        .sum();
    fx.check(connects == 1, || {
        format!("curl opened {connects} connections to nginx for 20 requests, want 1:\n{stdout}")
    });
    fx.check_error_log();
}

#[test]
fn post_10_mib_body_arrives_intact() {
    let fx = Fixture::start();
    let body = pseudo_random(TEN_MIB, 0x5eed_f00d);
    let file = fx.dir.join("upload.bin");
    fs::write(&file, &body).expect("write upload");
    let data = format!("@{}", file.display());
    for loc in ["/echo", "/echo-nokeep", "/echo-unix"] {
        let r = fx.curl(
            &[
                "--data-binary",
                &data,
                "-H",
                "Content-Type: application/octet-stream",
            ],
            &format!("{loc}?upload=1"),
        );
        let mut lines = echo_lines("POST", loc, "upload=1", &body);
        lines.push(format!("CONTENT_LENGTH={TEN_MIB}"));
        lines.push("CONTENT_TYPE=application/octet-stream".to_string());
        fx.check_echo(&format!("POST 10 MiB to {loc}"), &r, &lines);
    }
    fx.check_error_log();
}

#[test]
fn response_of_10_mib_arrives_intact() {
    let fx = Fixture::start();
    let r = fx.get(&format!("/hello?bytes={TEN_MIB}"));
    fx.check(r.status == 200, || {
        format!("status {}: {}", r.status, show(&r.body))
    });
    fx.check(r.body.len() == TEN_MIB, || {
        format!("got {} bytes, want {TEN_MIB}", r.body.len())
    });
    let alphabet = b"abcdefghijklmnopqrstuvwxyz";
    let bad = r
        .body
        .iter()
        .enumerate()
        .position(|(i, &b)| b != alphabet[i % alphabet.len()]);
    fx.check(bad.is_none(), || {
        let at = bad.unwrap_or(0);
        format!(
            "content differs at byte {at}: {:?}",
            show(&r.body[at..r.body.len().min(at + 64)])
        )
    });
    fx.check(
        r.headers
            .to_ascii_lowercase()
            .contains(&format!("content-length: {TEN_MIB}")),
        || format!("no Content-Length: {TEN_MIB} in\n{}", r.headers),
    );
    fx.check_error_log();
}

#[test]
fn head_request_gets_200_and_no_body() {
    let fx = Fixture::start();
    for path in ["/hello", "/echo", "/echo-unix"] {
        // Raw HTTP/1.1 with Connection: close, so that anything nginx sent after the headers
        // would be seen by read_to_end.
        let mut s = TcpStream::connect(("127.0.0.1", fx.port)).expect("connect to nginx");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        write!(
            s,
            "HEAD {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("send HEAD");
        // No half-close: nginx takes a client's EOF for an abort. It closes after the response.
        let mut raw = Vec::new();
        let res = s.read_to_end(&mut raw);
        fx.check(res.is_ok(), || format!("HEAD {path}: read failed: {res:?}"));
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        fx.check(head.starts_with("HTTP/1.1 200"), || {
            format!("HEAD {path}: want 200, got:\n{text}")
        });
        fx.check(rest.is_empty(), || {
            format!(
                "HEAD {path}: {} bytes after the headers:\n{text}",
                rest.len()
            )
        });
    }
    fx.check_error_log();
}

#[test]
fn sixteen_concurrent_clients_all_succeed() {
    let fx = Fixture::start();
    // sleep_ms makes the requests overlap: 16 at once against 4 threads and 8 kept connections.
    let calls: Vec<(usize, std::process::Child, CurlCall)> = (0..16)
        .map(|i| {
            let (mut cmd, call) = fx.curl_cmd(&[], &format!("/echo?client={i}&sleep_ms=50"));
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            let child = cmd.spawn().expect("spawn curl");
            (i, child, call)
        })
        .collect();
    for (i, child, call) in calls {
        let out = child.wait_with_output();
        let r = fx.curl_result(call, out);
        let query = format!("client={i}&sleep_ms=50");
        fx.check_echo(
            &format!("concurrent client {i}"),
            &r,
            &echo_lines("GET", "/echo", &query, b""),
        );
    }
    fx.check_error_log();
}

#[test]
fn fnv1a64_matches_the_c_examples() {
    // The reference values of the FNV-1a 64 specification.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}
