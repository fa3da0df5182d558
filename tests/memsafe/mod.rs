//! Shared by tests/memcheck.rs (valgrind), tests/asan.rs (AddressSanitizer), tests/fd_leak.rs
//! and tests/ffi_args.rs: building the C programs of the C boundary (the examples and the
//! libfcgi-API test programs) with chosen flags, running one as a FastCGI server on a listening
//! socket it inherits as fd 0 (or an address argument), driving it with real requests, and
//! stopping it through its SIGTERM path.
#![allow(dead_code)]

use crate::common::{body, IO_TIMEOUT};
use fcgi_runtime_tools::client::{Client, Request, Response};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The library the programs link and run against: `FCGI_MEMSAFE_LIB_DIR` when set (e.g. the
/// library built with `-Zsanitizer=address` by `make memsafe-asan-rust`), else the freshly
/// built one ([`crate::common::lib_dir`]).
pub fn lib_dir() -> PathBuf {
    match std::env::var_os("FCGI_MEMSAFE_LIB_DIR") {
        Some(d) => PathBuf::from(d),
        None => crate::common::lib_dir().to_path_buf(),
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A private directory under cargo's per-target temporary directory.
pub fn work_dir(tag: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("memsafe-{tag}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create work dir");
    d
}

/// True if `tool` runs. When it does not: under CI=true the test fails (CI installs it), else
/// the test is skipped with a message.
pub fn have_tool(tool: &str, package: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is missing (install the Debian package {package}); CI requires it"
        );
        eprintln!("SKIPPED: {tool} is missing (install {package})");
    }
    ok
}

/// One C or C++ program of the C boundary.
#[derive(Clone, Copy, Debug)]
pub struct Prog {
    pub name: &'static str,
    /// Source, relative to the repository root.
    pub src: &'static str,
    /// Arguments; `{addr}` is replaced by the listening address (else fd 0 is the listener).
    pub args: &'static [&'static str],
    /// FCGI role of the requests sent (1 responder, 2 authorizer, 3 filter).
    pub role: u16,
    /// Extra params of every request.
    pub params: &'static [(&'static str, &'static str)],
    /// Extra link flags.
    pub libs: &'static [&'static str],
}

const fn prog(name: &'static str, src: &'static str) -> Prog {
    Prog {
        name,
        src,
        args: &[],
        role: 1,
        params: &[],
        libs: &[],
    }
}

/// One `#[test]` per program of [`PROGRAMS`], each calling `$check(name)`:
/// `program_tests!(memcheck);` in a test file.
#[macro_export]
macro_rules! program_tests {
    ($check:ident) => {
        $crate::program_tests!($check;
            hello => "hello",
            echo => "echo",
            filter => "filter",
            authorizer => "authorizer",
            cpp_example => "cpp-example",
            soak_echo => "soak-echo",
            sapi => "sapi",
            evloop => "evloop",
            lf_echo => "lf-echo",
            lf_threaded => "lf-threaded",
            lf_authorizer => "lf-authorizer",
            lf_filter => "lf-filter",
            lf_fcgio => "lf-fcgio",
            lf_app => "lf_app",
            lf_life => "lf_life",
            stdio_app => "stdio_app",
        );
    };
    ($check:ident; $($test:ident => $name:expr),* $(,)?) => {
        $(#[test] fn $test() { $check($name) })*
    };
}

/// The C examples and the libfcgi-API test programs.
pub const PROGRAMS: &[Prog] = &[
    prog("hello", "c-examples/hello.c"),
    Prog {
        args: &["-t", "2"],
        ..prog("echo", "c-examples/echo.c")
    },
    Prog {
        role: 3,
        ..prog("filter", "c-examples/filter.c")
    },
    Prog {
        role: 2,
        params: &[("HTTP_AUTHORIZATION", "Bearer letmein")],
        ..prog("authorizer", "c-examples/authorizer.c")
    },
    prog("cpp-example", "c-examples/cpp-example.cpp"),
    Prog {
        args: &["-t", "2"],
        ..prog("soak-echo", "c-examples/soak-echo.c")
    },
    // No SCRIPT_FILENAME: php-cgi's 404 path, with the request body left unread.
    prog("sapi", "c-examples/sapi.c"),
    // The non-blocking face: one epoll loop, no thread of the library.
    prog("evloop", "c-examples/evloop.c"),
    prog("lf-echo", "c-examples/lf-echo.c"),
    Prog {
        args: &["-t", "2"],
        ..prog("lf-threaded", "c-examples/lf-threaded.c")
    },
    Prog {
        role: 2,
        args: &["user", "pw"],
        params: &[("REMOTE_USER", "user"), ("REMOTE_PASSWD", "pw")],
        ..prog("lf-authorizer", "c-examples/lf-authorizer.c")
    },
    Prog {
        role: 3,
        ..prog("lf-filter", "c-examples/lf-filter.c")
    },
    Prog {
        libs: &["-lfcgi++"],
        ..prog("lf-fcgio", "c-examples/lf-fcgio.cpp")
    },
    prog("lf_app", "tests/compare/lf_app.c"),
    Prog {
        args: &["{addr}", "2"],
        ..prog("lf_life", "tests/lifecycle/lf_life.c")
    },
    Prog {
        params: &[("TEST", "echo")],
        ..prog("stdio_app", "tests/stdio/stdio_app.c")
    },
];

pub fn program(name: &str) -> Prog {
    *PROGRAMS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no program {name}"))
}

/// Compiles `p` into `dir` with `flags` (e.g. sanitizers) against the project's headers and
/// library (rpath set). The libfcgi programs use the project's compat headers, as the
/// examples' Makefile does.
pub fn compile(p: &Prog, dir: &Path, flags: &[&str]) -> PathBuf {
    let src = root().join(p.src);
    let cxx = p.src.ends_with(".cpp");
    let cc = if cxx { "c++" } else { "cc" };
    let out = dir.join(p.name);
    let lib = lib_dir();
    let res = Command::new(cc)
        .args([
            "-g",
            "-O1",
            "-Wall",
            "-Wno-unused-result",
            "-D_GNU_SOURCE",
            "-I",
        ])
        .arg(root().join("include"))
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(p.libs)
        .args(["-lfcgi", "-lpthread"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        res.status.success(),
        "{cc} {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

/// A running server program; killed on drop if still running.
pub struct Running {
    pub child: Child,
    pub addr: String,
    pub name: String,
}

/// Starts `argv` (the program, possibly behind valgrind) serving `p`'s protocol, with `env`.
/// stderr goes to `stderr_file`.
pub fn start(p: &Prog, argv: &[String], env: &[(&str, &str)], stderr_file: &Path) -> Running {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("local_addr").to_string();
    let by_arg = p.args.contains(&"{addr}");
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    for a in p.args {
        cmd.arg(if *a == "{addr}" { addr.as_str() } else { a });
    }
    cmd.env("LD_LIBRARY_PATH", lib_dir())
        .env_remove("FCGI_ADDR")
        .env_remove("FCGI_WEB_SERVER_ADDRS")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr_file).expect("stderr file"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    if by_arg {
        drop(l);
        cmd.stdin(Stdio::null());
    } else {
        cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(l)));
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
    let mut r = Running {
        child,
        addr,
        name: p.name.to_string(),
    };
    // Valgrind takes seconds to start: wait until a connection is answered by the program.
    let deadline = Instant::now() + Duration::from_secs(60);
    while fcgi_runtime::addr::connect(&r.addr).is_err() {
        if let Some(st) = r.child.try_wait().expect("try_wait") {
            panic!("{} exited before listening: {st}", p.name);
        }
        assert!(Instant::now() < deadline, "{} does not listen", p.name);
        std::thread::sleep(Duration::from_millis(20));
    }
    r
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> Client {
        let c = Client::connect(&self.addr).unwrap_or_else(|e| panic!("connect: {e}"));
        c.set_timeout(Some(Duration::from_secs(60)))
            .expect("set timeouts");
        c
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn terminate(mut self, within: Duration) -> ExitStatus {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within {within:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Request `i` for `p`: its role and params, a small body (and DATA for a filter).
pub fn request_for(p: &Prog, id: u16, i: usize, keep: bool) -> Request {
    let mut r = Request::new(id)
        .role(p.role)
        .keep_conn(keep)
        .param("REQUEST_METHOD", "POST")
        .param("QUERY_STRING", format!("n={i}"))
        .param("SCRIPT_NAME", "/t");
    for (k, v) in p.params {
        r = r.param(k, v);
    }
    if p.role != 2 {
        r = r.stdin(body(100 + i % 300, i as u64));
    }
    if p.role == 3 {
        let d = body(50 + i % 200, 7 + i as u64);
        r = r.param("FCGI_DATA_LENGTH", d.len().to_string()).data(d);
    }
    r
}

#[track_caller]
pub fn check_response(p: &Prog, resp: &Response) {
    assert_eq!(resp.protocol_status, 0, "{}: protocol status", p.name);
    assert!(!resp.stdout.is_empty(), "{}: empty response", p.name);
}

/// `n` requests: the first half one connection each, the rest on one kept connection.
pub fn drive(s: &Running, p: &Prog, n: usize) {
    let half = n / 2;
    for i in 0..half {
        let mut c = s.connect();
        let resp = c
            .request(&request_for(p, 1, i, false))
            .unwrap_or_else(|e| panic!("{}: request {i}: {e}", p.name));
        check_response(p, &resp);
    }
    let mut c = s.connect();
    for i in half..n {
        let resp = c
            .request(&request_for(p, 1, i, true))
            .unwrap_or_else(|e| panic!("{}: kept request {i}: {e}", p.name));
        check_response(p, &resp);
    }
}

/// The read/write timeout the helpers use (re-exported for the tests).
pub const TIMEOUT: Duration = IO_TIMEOUT;
