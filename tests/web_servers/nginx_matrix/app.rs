//! The matrix's fixture: the test application (tests/harness/web, one of its two faces) on a TCP port
//! and on a Unix socket, and nginx in front with one location per configuration under test.

use crate::harness::{
    self, require, tcp_ready, tcp_sockets, unix_ready, Fixture, Lib, NGINX, TCP_ESTABLISHED,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Which API the application is written against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Face {
    /// tests/harness/web/webapp.c: fcgi.h (fcgi_accept_request, fcgi_read, fcgi_write, fcgi_flush).
    Native,
    /// tests/harness/web/lf_webapp.c: fcgiapp.h (FCGX_Accept_r, FCGX_GetStr, FCGX_PutStr,
    /// FCGX_FFlush) on the project's libfcgi.so.0.
    Libfcgi,
}

impl Face {
    fn program(self) -> &'static Path {
        static NATIVE: OnceLock<PathBuf> = OnceLock::new();
        static LIBFCGI: OnceLock<PathBuf> = OnceLock::new();
        match self {
            Face::Native => NATIVE.get_or_init(|| harness::build_c("tests/harness/web/webapp.c")),
            Face::Libfcgi => {
                LIBFCGI.get_or_init(|| harness::build_c("tests/harness/web/lf_webapp.c"))
            }
        }
    }

    /// Whether process `pid` runs on the library this face is tested on: the project's, or
    /// for the libfcgi face with `FCGI_TEST_LIBFCGI=debian`, Debian's.
    fn runs_its_lib(self, pid: u32) -> bool {
        match self {
            Face::Native => harness::runs_project_lib(pid),
            Face::Libfcgi => harness::runs_lib_under_test(pid),
        }
    }
}

/// Where Debian's libfcgi.so.0 is (the reference run of the libfcgi face).
const DEBIAN_LIB_DIR: &str = "/usr/lib/x86_64-linux-gnu";

/// Upstream connections nginx keeps per pool (`keepalive`): the small pool.
pub const POOL: usize = 4;
/// The pool of the starvation test, twice the application's threads there.
pub const POOL8: usize = 8;

/// nginx's locations. `/keep`, `/nokeep`, `/stream`, `/unbuf`, `/bighdr` and `/pool8` reach
/// the application's TCP port; `/unix-*` its Unix socket.
const LOCATIONS: &str = r#"
        # fastcgi_keep_conn on over a pool of POOL idle connections
        location /keep {
            @PARAMS@
            fastcgi_pass app_tcp;
            fastcgi_keep_conn on;
        }
        # a connection per request (nginx's default)
        location /nokeep {
            @PARAMS@
            fastcgi_pass 127.0.0.1:APP_PORT;
        }
        # the request body forwarded while it arrives
        location /stream {
            @PARAMS@
            fastcgi_pass app_tcp;
            fastcgi_keep_conn on;
            fastcgi_request_buffering off;
        }
        # the response forwarded while it arrives
        location /unbuf {
            @PARAMS@
            fastcgi_pass app_tcp;
            fastcgi_keep_conn on;
            fastcgi_buffering off;
        }
        # response headers up to 32k (the default fastcgi_buffer_size is one page, 4k; the
        # busy buffers, twice the largest buffer, must fit in fastcgi_buffers)
        location /bighdr {
            @PARAMS@
            fastcgi_pass app_tcp;
            fastcgi_keep_conn on;
            fastcgi_buffer_size 32k;
            fastcgi_buffers 8 32k;
        }
        # a pool of POOL8 idle connections
        location /pool8 {
            @PARAMS@
            fastcgi_pass app_pool8;
            fastcgi_keep_conn on;
        }
        location /unix-keep {
            @PARAMS@
            fastcgi_pass app_unix;
            fastcgi_keep_conn on;
        }
        location /unix-stream {
            @PARAMS@
            fastcgi_pass app_unix;
            fastcgi_keep_conn on;
            fastcgi_request_buffering off;
        }
        location /unix-unbuf {
            @PARAMS@
            fastcgi_pass app_unix;
            fastcgi_keep_conn on;
            fastcgi_buffering off;
        }"#;

const UPSTREAMS: &str = r#"
    upstream app_tcp {
        server 127.0.0.1:APP_PORT;
        keepalive POOL;
    }
    upstream app_pool8 {
        server 127.0.0.1:APP_PORT;
        keepalive POOL8;
    }
    upstream app_unix {
        server unix:APP_SOCK;
        keepalive POOL;
    }"#;

pub struct Matrix {
    pub fx: Fixture,
    /// The application's TCP port (`app-tcp`; `app-unix` listens on `app.sock`).
    pub app_port: u16,
}

impl Matrix {
    /// The application with `threads` threads on TCP and on a Unix socket, and nginx.
    pub fn start(face: Face, threads: u32) -> Matrix {
        Matrix::start_with(face, threads, 256)
    }

    /// [`Matrix::start`] with nginx's `worker_connections`.
    pub fn start_with(face: Face, threads: u32, worker_connections: u32) -> Matrix {
        require(NGINX, "nginx-light");
        let mut fx = Fixture::new(&format!("matrix-{face:?}"));
        fx.nginx_worker_connections = worker_connections;
        let t = threads.to_string();
        let app_port = fx.start_on_free_port(
            "app-tcp",
            "cannot listen on",
            |port| app_cmd(face, &t, &format!("127.0.0.1:{port}")),
            |_, port| tcp_ready(port),
        );
        let sock = fx.path("app.sock");
        let mut cmd = app_cmd(face, &t, sock.to_str().expect("utf-8 path"));
        fx.spawn("app-unix", &mut cmd);
        let probe = sock.clone();
        fx.wait_ready("app-unix", move || unix_ready(&probe));

        let fill = |s: &str| {
            s.replace("APP_PORT", &app_port.to_string())
                .replace("APP_SOCK", sock.to_str().expect("utf-8 path"))
                .replace("POOL8", &POOL8.to_string())
                .replace("POOL", &POOL.to_string())
        };
        fx.start_nginx(&fill(UPSTREAMS), &fill(LOCATIONS));
        for name in ["app-tcp", "app-unix"] {
            let pid = fx.pid(name);
            fx.check(face.runs_its_lib(pid), || {
                format!("{name} (pid {pid}) does not run on the library under test")
            });
        }
        Matrix { fx, app_port }
    }

    /// What the application `name` (`app-tcp` or `app-unix`) wrote on stderr so far.
    pub fn log(&self, name: &str) -> String {
        self.fx.stderr_of(name)
    }

    /// Waits (bounded) until the stderr of `name` has `count` lines containing `needle`.
    pub fn wait_log(&self, name: &str, needle: &str, count: usize) {
        let ok = wait_for(|| self.log(name).matches(needle).count() >= count);
        self.fx.check(ok, || {
            format!(
                "{name} did not log {needle:?} {count} times; its stderr:\n{}",
                self.log(name)
            )
        });
    }

    /// The application's established TCP connections (its ends, from the kernel's table).
    pub fn established(&self) -> usize {
        tcp_sockets(self.app_port, TCP_ESTABLISHED)
    }

    /// Waits (bounded) until `pred(established())` holds; fails with `what` otherwise.
    pub fn wait_established(&self, what: &str, pred: impl Fn(usize) -> bool) {
        let ok = wait_for(|| pred(self.established()));
        self.fx.check(ok, || {
            format!(
                "{what}: the application has {} established connections",
                self.established()
            )
        });
    }

    /// Both applications are still running.
    pub fn check_alive(&mut self) {
        for name in ["app-tcp", "app-unix"] {
            let gone = self.fx.exited(name);
            self.fx.check(gone.is_none(), || {
                format!("{name} exited ({gone:?}); stderr:\n{}", self.log(name))
            });
        }
    }

    /// A fresh file name in the fixture directory (for gates).
    pub fn gate(&self, name: &str) -> PathBuf {
        self.fx.path(name)
    }

    /// Opens the gate `path` (the application waits for the file to exist).
    pub fn open_gate(&self, path: &Path) {
        fs::write(path, b"").expect("create gate file");
    }
}

fn app_cmd(face: Face, threads: &str, addr: &str) -> Command {
    let lib_path = match (face, harness::lib()) {
        (Face::Libfcgi, Lib::Debian) => Path::new(DEBIAN_LIB_DIR),
        _ => harness::lib_dir(),
    };
    let mut cmd = Command::new(face.program());
    cmd.args(["-t", threads, "-a", addr])
        .env("LD_LIBRARY_PATH", lib_path)
        .stdin(Stdio::null());
    cmd
}

pub use crate::harness::wait_for;
