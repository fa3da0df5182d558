//! The harness every test binary includes (`#[path = "../harness/mod.rs"] mod harness;` in
//! tests/<binary>/main.rs; tests/README.md): building the C examples, running one as a server on
//! a fresh address, predicting what `c-examples/echo.c` answers, the tools' programs ([`tool`]);
//! [`fixture`] (re-exported here) has the processes, nginx and curl of the web-server tests, and
//! [`http`] a small HTTP client.
//!
//! The examples are built once per test binary with `make -C c-examples`, linked against the
//! `libfcgi.so` that the current cargo invocation built (`target/<profile>/deps`), so the tests
//! never run against a stale library; they land in `target/<profile>/c-examples/`. When that
//! library is missing, `target/<profile>/libfcgi.so` and then `target/release/libfcgi.so` (what
//! the top-level `make build` produces) are used. Setting `FCGI_TEST_EXAMPLES_DIR` skips the
//! build and takes the programs from that directory instead (e.g. builds against another
//! FastCGI library).
#![allow(dead_code)]

pub mod fixture;
pub mod haproxy;
pub mod http;

#[allow(unused_imports)] // not every binary uses the web-server fixture
pub use fixture::*;

use fcgi_runtime_tools::client::{
    Client, RawRecord, Request, Response as FcgiResponse, ResponseBuilder,
};
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Read and write timeout of every test connection: long enough for a slow CI machine, short
/// enough that a hung server fails the test instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server or any process a test starts may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>`, found from the path of the running test binary (`.../deps/name-hash`).
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    Some(deps.parent()?.to_path_buf())
}

/// One of the tools' programs (`fcgi-client`, `fcgi-bench`, `fcgi-spawn`) built beside the test
/// binary: they belong to the `fcgi-runtime-tools` crate, which the top-level `cargo build` and
/// `cargo test` build with every other crate of the workspace.
pub fn tool(name: &str) -> PathBuf {
    let manifest = manifest_dir();
    let profile = profile_dir().unwrap_or_else(|| manifest.join("target/release"));
    let path = profile.join(name);
    assert!(
        path.exists(),
        "{} is missing; run `cargo build --release` (or `make build`) at the top level",
        path.display()
    );
    path
}

fn find_lib_dir() -> Result<PathBuf, String> {
    let manifest = manifest_dir();
    let profile = profile_dir().unwrap_or_else(|| manifest.join("target/release"));
    let candidates = [
        profile.join("deps"),
        profile.clone(),
        manifest.join("target/release"),
    ];
    let libdir = candidates
        .iter()
        .find(|d| d.join("libfcgi.so").exists())
        .ok_or_else(|| {
            format!(
                "libfcgi.so not found in {candidates:?}; run `cargo build --release` (or `make build`)"
            )
        })?;
    // Programs ask for the SONAME, libfcgi.so.0; cargo writes only libfcgi.so.
    let so0 = libdir.join("libfcgi.so.0");
    if std::fs::read_link(&so0).is_err() {
        let _ = std::fs::remove_file(&so0);
        let tmp = libdir.join(format!("libfcgi.so.0.tmp{}", std::process::id()));
        std::os::unix::fs::symlink("libfcgi.so", &tmp)
            .and_then(|_| std::fs::rename(&tmp, &so0))
            .map_err(|e| format!("cannot link {}: {e}", so0.display()))?;
    }
    Ok(libdir.clone())
}

/// The directory holding the project's `libfcgi.so` built by this cargo invocation, with the
/// `libfcgi.so.0` link beside it: what `LD_LIBRARY_PATH` names to run an unmodified libfcgi
/// program on the project's library. Panics if the library is missing.
pub fn lib_dir() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(find_lib_dir) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// True if process `pid` has the project's library mapped (and not Debian's libfcgi): proof
/// that an `LD_LIBRARY_PATH` swap took effect. Compares inodes: cargo hard-links the library
/// into several directories, and maps may show any of their names.
pub fn runs_project_lib(pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(lib_dir().join("libfcgi.so")) else {
        return false;
    };
    let ino = meta.ino().to_string();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let ours = maps
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(ino.as_str()) && l.contains("libfcgi"));
    let debian = maps
        .lines()
        .any(|l| l.contains("/usr/lib/x86_64-linux-gnu/libfcgi.so"));
    ours && !debian
}

fn build_examples() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("FCGI_TEST_EXAMPLES_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let manifest = manifest_dir();
    let profile = profile_dir().unwrap_or_else(|| manifest.join("target/release"));
    let libdir = lib_dir();
    let builddir = profile.join("c-examples");
    let out = Command::new("make")
        .arg("-C")
        .arg(manifest.join("c-examples"))
        .arg(format!("LIBDIR={}", libdir.display()))
        .arg(format!("BUILDDIR={}", builddir.display()))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run make: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "make -C c-examples failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(builddir)
}
/// Compiles the C program at `src` (relative to the repository root) against the project's
/// headers and library (rpath set) into the temporary directory; returns the executable.
pub fn build_c(src: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lib = lib_dir();
    let stem = Path::new(src)
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("a C source file");
    let out = std::env::temp_dir().join(format!("{stem}-{}", std::process::id()));
    let st = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg(root.join(src))
        .arg("-o")
        .arg(&out)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lfcgi", "-lpthread"])
        .status()
        .expect("run cc");
    assert!(st.success(), "cannot build {src}");
    out
}

/// The directory with the built C examples (built on first use; panics if the build fails).
pub fn examples_dir() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(build_examples) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// Path of one built example program (`echo`, `hello`, ...).
pub fn example(name: &str) -> PathBuf {
    examples_dir().join(name)
}

/// How a test server receives its listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `FCGI_ADDR=127.0.0.1:<free port>`.
    Tcp,
    /// `FCGI_ADDR=<temp dir>/s.sock`.
    Unix,
    /// A TCP listening socket created by the test and inherited as fd 0 (FastCGI §2.2).
    Fd0,
}

/// A fresh private temporary directory.
fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("fcgi-it-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// A free TCP port on 127.0.0.1 (bound and released; a race with other processes is possible
/// but unlikely).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A running example program serving FastCGI; killed (and its temp dir removed) on drop. If the
/// program died on its own during the test, drop fails the test.
pub struct Server {
    child: Child,
    addr: String,
    dir: Option<PathBuf>,
}

impl Server {
    /// Starts `program` (a name in the examples dir) with `args`, listening per `transport`,
    /// and waits until it accepts connections.
    pub fn start(program: &str, transport: Transport, args: &[&str]) -> Server {
        Server::start_with_env(program, transport, args, &[])
    }

    /// [`Server::start`] with extra environment.
    pub fn start_with_env(
        program: &str,
        transport: Transport,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let path = example(program);
        let mut cmd = Command::new(&path);
        cmd.args(args).envs(env.iter().copied());
        // cargo's own LD_LIBRARY_PATH names several target directories, which may hold
        // different builds of libfcgi.so.0 (and it outranks the programs' RUNPATH): name the
        // one the examples were linked against.
        if std::env::var_os("FCGI_TEST_EXAMPLES_DIR").is_none() {
            cmd.env("LD_LIBRARY_PATH", lib_dir());
        }
        cmd.env_remove("FCGI_ADDR")
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            .stdout(Stdio::null());
        let mut dir = None;
        let addr = match transport {
            Transport::Tcp => {
                let a = format!("127.0.0.1:{}", free_port());
                cmd.env("FCGI_ADDR", &a).stdin(Stdio::null());
                a
            }
            Transport::Unix => {
                let d = temp_dir();
                let a = d
                    .join("s.sock")
                    .to_str()
                    .expect("utf-8 temp path")
                    .to_string();
                dir = Some(d);
                cmd.env("FCGI_ADDR", &a).stdin(Stdio::null());
                a
            }
            Transport::Fd0 => {
                let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
                let a = l.local_addr().expect("local_addr").to_string();
                cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(l)));
                a
            }
        };
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let mut s = Server { child, addr, dir };
        s.wait_ready();
        s
    }

    /// Starts `c-examples/echo` with `-t threads`.
    pub fn echo(transport: Transport, threads: u32) -> Server {
        let t = threads.to_string();
        Server::start("echo", transport, &["-t", &t])
    }

    /// [`Server::echo`] opted in to multiplexing (FCGI_RUNTIME_MPXS_CONNS=1): a native-API
    /// program advertises FCGI_MPXS_CONNS=0, as PHP's layer does, and refuses a second request
    /// on a connection unless it opts in.
    pub fn echo_mpx(transport: Transport, threads: u32) -> Server {
        let t = threads.to_string();
        Server::start_with_env(
            "echo",
            transport,
            &["-t", &t],
            &[("FCGI_RUNTIME_MPXS_CONNS", "1")],
        )
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                panic!("server exited before accepting connections: {st}");
            }
            if fcgi_runtime::addr::connect(&self.addr).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not listen on {} within {START_TIMEOUT:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address the server listens on, in `fcgi-client` syntax.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new connection with [`IO_TIMEOUT`] set.
    pub fn connect(&self) -> Client {
        let c =
            Client::connect(&self.addr).unwrap_or_else(|e| panic!("connect to {}: {e}", self.addr));
        c.set_timeout(Some(IO_TIMEOUT)).expect("set timeouts");
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let exited = self.child.try_wait().ok().flatten();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some(st) = exited {
            if !std::thread::panicking() {
                panic!("server exited during the test: {st}");
            }
        }
    }
}

/// Raises this process's RLIMIT_NOFILE soft limit to the hard limit (the servers and web servers
/// a test starts inherit it); returns the new soft limit (0 if it cannot be read). Process-wide:
/// every test of the binary sees the raised limit, which no test relies on not having.
pub fn raise_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        }
    }
    rl.rlim_cur
}

/// Makes close() of `c` send RST instead of FIN (SO_LINGER with a zero timeout).
pub fn set_linger_zero(c: &Client) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt(2) on the client's open socket with a valid struct linger of the
    // given size.
    let r = unsafe {
        libc::setsockopt(
            c.stream().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt SO_LINGER");
}

/// 64-bit FNV-1a, as echo.c computes over the body.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Deterministic pseudo-random bytes (xorshift64*), for bodies whose hash matters.
pub fn body(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// What echo.c answers for these params (given in arrival order) and body. Its lines come in
/// fcgi_loadenv's order, PHP's: the last name to arrive first, a repeated name once (where it
/// first arrived, with its last value), and `FCGI_ROLE`, which the runtime sets before any
/// received pair, last.
pub fn echo_expected(role: &str, params: &[(Vec<u8>, Vec<u8>)], stdin: &[u8]) -> Vec<u8> {
    let mut vars: Vec<(&[u8], &[u8])> = vec![(b"FCGI_ROLE", role.as_bytes())];
    for (n, v) in params {
        match vars.iter_mut().find(|(name, _)| *name == n.as_slice()) {
            Some(var) => var.1 = v,
            None => vars.push((n, v)),
        }
    }
    let mut out = b"Content-Type: text/plain\r\n\r\n".to_vec();
    for (n, v) in vars.iter().rev() {
        out.extend_from_slice(n);
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out.extend_from_slice(
        format!(
            "STDIN_LENGTH={}\nSTDIN_FNV1A64={:016x}\n",
            stdin.len(),
            fnv1a64(stdin)
        )
        .as_bytes(),
    );
    out
}

/// [`echo_expected`] for a responder request.
pub fn echo_expected_for(req: &Request) -> Vec<u8> {
    echo_expected("RESPONDER", &req.params, &req.stdin)
}

/// A responder request with typical CGI params and `QUERY_STRING=query`.
pub fn cgi_request(id: u16, query: &str) -> Request {
    Request::new(id)
        .param("GATEWAY_INTERFACE", "CGI/1.1")
        .param("REQUEST_METHOD", "POST")
        .param("SCRIPT_NAME", "/echo")
        .param("REQUEST_URI", format!("/echo?{query}"))
        .param("QUERY_STRING", query)
        .param("SERVER_PROTOCOL", "HTTP/1.1")
}

/// Asserts two outputs are equal, showing them as text when they differ.
#[track_caller]
pub fn assert_output(got: &[u8], want: &[u8]) {
    if got != want {
        let show = |b: &[u8]| {
            let s = String::from_utf8_lossy(b);
            if s.len() > 4000 {
                format!("{}... ({} bytes)", &s[..4000], b.len())
            } else {
                s.into_owned()
            }
        };
        panic!(
            "output differs\n--- got ---\n{}\n--- want ---\n{}",
            show(got),
            show(want)
        );
    }
}

/// Asserts the peer closed the connection: EOF, or a reset. A timeout fails.
#[track_caller]
pub fn assert_closed(c: &mut Client) {
    match c.read_record() {
        Ok(None) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Ok(Some(r)) => panic!("expected the connection to close, got record {r:?}"),
        Err(e) => panic!(
            "expected the connection to close, got error {e} ({:?})",
            e.kind()
        ),
    }
}

/// Reads records until the END_REQUEST of `id`: returns the response of `id` and every
/// record that belonged to something else (management records, other ids), in order.
pub fn read_mixed(c: &mut Client, id: u16) -> (FcgiResponse, Vec<RawRecord>) {
    let mut b = ResponseBuilder::new();
    let mut others = Vec::new();
    loop {
        let rec = c
            .read_record()
            .expect("read record")
            .expect("connection closed before END_REQUEST");
        if rec.id != id {
            others.push(rec);
            continue;
        }
        if b.feed(rec).expect("valid response framing") {
            return (b.into_response(), others);
        }
    }
}
