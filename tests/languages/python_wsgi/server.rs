//! The fixture of `tests/languages/python_wsgi.rs`: the Python package of `bindings/python` serving a
//! test application of `tests/languages/python_wsgi/apps` as a real process
//! (`python3 -m fcgi_runtime module:app --bind ... --threads N`) on the project's library, with
//! nginx in front. `tests/languages/python_asgi.rs` uses it too, for the ASGI server
//! (`python3 -m fcgi_runtime --asgi module:app`, [`Wsgi::start_asgi`]).

use crate::harness;
use crate::harness::{require, tcp_ready, unix_ready, wait_lib_mapped, Fixture, SPAWN_FCGI};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// The environment of every Python process these tests start: the checkout's package
/// (bindings/python) and `dirs` (the applications; relative to the repository's root) on
/// PYTHONPATH, FCGI_RUNTIME_LIB naming the freshly built library, no bytecode written into the
/// checkout, unbuffered output (the tests read the logs while the process runs), stdin from
/// /dev/null.
pub trait PythonEnv {
    fn python_env(&mut self, dirs: &[&Path]) -> &mut Self;
}

impl PythonEnv for Command {
    fn python_env(&mut self, dirs: &[&Path]) -> &mut Command {
        let root = root();
        let mut paths = vec![root.join("bindings/python")];
        paths.extend(dirs.iter().map(|d| root.join(d)));
        self.env(
            "PYTHONPATH",
            std::env::join_paths(paths).expect("a PYTHONPATH"),
        )
        .env("FCGI_RUNTIME_LIB", harness::lib_dir().join("libfcgi.so"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
    }
}

/// The process name of the WSGI server in the fixture (its logs: `wsgi.out`, `wsgi.err`).
pub const SERVER: &str = "wsgi";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The interpreter's absolute path (`sys.executable`) if `python` runs and imports every
/// module of `modules` (spawn-fcgi execs it without searching PATH).
fn with_modules(python: &str, modules: &[&str]) -> Option<String> {
    let mut code: Vec<String> = modules.iter().map(|m| format!("import {m}")).collect();
    code.push("import sys".into());
    code.push("print(sys.executable)".into());
    let out = Command::new(python)
        .args(["-c", &code.join("; ")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !exe.is_empty()).then_some(exe)
}

/// The Python interpreter to run the tests with: `FCGI_TEST_PYTHON` if set, else the first of
/// `python3` (PATH) and `/usr/bin/python3` that imports `modules`. None (with the reason
/// printed) when there is none: the test is skipped. Under `CI=true` a missing interpreter or
/// module fails the test instead, because `.ci/run` installs python3 and python3-flask.
pub fn python(modules: &[&str]) -> Option<String> {
    let candidates: Vec<String> = match std::env::var("FCGI_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => vec![p],
        _ => vec!["python3".to_string(), "/usr/bin/python3".to_string()],
    };
    if let Some(exe) = candidates.iter().find_map(|p| with_modules(p, modules)) {
        return Some(exe);
    }
    let reason = format!(
        "no Python interpreter among {candidates:?} imports {modules:?} \
         (apt-get install python3 python3-flask)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}; CI installs them, so this fails instead of skipping");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

pub use crate::harness::wait_for;

/// Where the WSGI server listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// `--bind 127.0.0.1:PORT`.
    Tcp,
    /// `--bind DIR/wsgi.sock`.
    Unix,
    /// No `--bind`: spawn-fcgi opens 127.0.0.1:PORT and execs the server on it as fd 0.
    Fd0,
}

/// nginx's locations: everything through a kept-alive upstream pool; the streaming routes with
/// `fastcgi_buffering off`, so that nginx forwards each block as it arrives and notices a
/// client that goes away; `/progress` with `fastcgi_request_buffering off` (the request body
/// forwarded as it arrives); `/env-https` passes `HTTPS=on` and splits the path itself.
const LOCATIONS: &str = r#"
        location / {
            @PARAMS@
            fastcgi_pass wsgi;
            fastcgi_keep_conn on;
        }
        location /stream {
            @PARAMS@
            fastcgi_pass wsgi;
            fastcgi_keep_conn on;
            fastcgi_buffering off;
        }
        location /abort {
            @PARAMS@
            fastcgi_pass wsgi;
            fastcgi_keep_conn on;
            fastcgi_buffering off;
        }
        location /progress {
            @PARAMS@
            fastcgi_pass wsgi;
            fastcgi_keep_conn on;
            fastcgi_request_buffering off;
        }
        location = /env-https {
            @PARAMS@
            fastcgi_param HTTPS on;
            fastcgi_param PATH_INFO /env;
            fastcgi_pass wsgi;
            fastcgi_keep_conn on;
        }"#;

pub struct Wsgi {
    pub fx: Fixture,
}

/// What [`Wsgi::start_with`] starts beyond [`Wsgi::start`]'s choices.
pub struct Options<'a> {
    /// The server's arguments after SPEC (`--threads N`, or `--asgi`).
    pub args: Vec<String>,
    /// The directory of the applications, relative to the repository (on PYTHONPATH).
    pub apps: &'a str,
    /// The fixture's tag (its directory name).
    pub tag: String,
    /// nginx's `worker_connections`.
    pub nginx_worker_connections: u32,
}

impl Wsgi {
    /// Starts `python -m fcgi_runtime SPEC --bind ... --threads THREADS`, then nginx.
    pub fn start(python: &str, spec: &str, threads: u32, bind: Bind) -> Wsgi {
        Wsgi::start_with(
            python,
            spec,
            bind,
            Options {
                args: vec!["--threads".into(), threads.to_string()],
                apps: "tests/languages/python_wsgi/apps",
                tag: format!("pywsgi-{}", spec.replace(':', "-")),
                nginx_worker_connections: 256,
            },
        )
    }

    /// Starts the ASGI server, `python -m fcgi_runtime --asgi SPEC --bind ...` with the
    /// applications of `tests/languages/python_asgi/apps`, then nginx with `worker_connections`.
    #[allow(dead_code)] // used by tests/languages/python_asgi.rs only
    pub fn start_asgi(python: &str, spec: &str, bind: Bind, worker_connections: u32) -> Wsgi {
        Wsgi::start_with(
            python,
            spec,
            bind,
            Options {
                args: vec!["--asgi".into()],
                apps: "tests/languages/python_asgi/apps",
                tag: format!("pyasgi-{}", spec.replace(':', "-")),
                nginx_worker_connections: worker_connections,
            },
        )
    }

    /// Starts `python -m fcgi_runtime SPEC ARGS --bind ...`, then nginx.
    pub fn start_with(python: &str, spec: &str, bind: Bind, opts: Options<'_>) -> Wsgi {
        let mut fx = Fixture::new(&opts.tag);
        fx.nginx_worker_connections = opts.nginx_worker_connections;
        let server_args = opts.args;
        let dir = fx.dir.clone();
        let make_cmd = |addr: &str| {
            let mut cmd = Command::new(python);
            cmd.args(["-m", "fcgi_runtime", spec]).args(&server_args);
            if bind == Bind::Fd0 {
                // spawn-fcgi -n: bind, then exec the server with the socket as fd 0.
                let port = addr.rsplit_once(':').expect("host:port").1;
                cmd = Command::new(SPAWN_FCGI);
                cmd.args(["-n", "-a", "127.0.0.1", "-p", port, "--", python]);
                cmd.args(["-m", "fcgi_runtime", spec]).args(&server_args);
            } else {
                cmd.args(["--bind", addr]);
            }
            cmd.current_dir(&dir).python_env(&[Path::new(opts.apps)]);
            cmd
        };
        let upstream = match bind {
            Bind::Tcp | Bind::Fd0 => {
                if bind == Bind::Fd0 {
                    require(SPAWN_FCGI, "spawn-fcgi");
                }
                let port = fx.start_on_free_port(
                    SERVER,
                    "Address already in use",
                    |port| make_cmd(&format!("127.0.0.1:{port}")),
                    |_, port| tcp_ready(port),
                );
                format!("127.0.0.1:{port}")
            }
            Bind::Unix => {
                let sock = fx.path("wsgi.sock");
                let mut cmd = make_cmd(sock.to_str().expect("utf-8 path"));
                fx.spawn(SERVER, &mut cmd);
                let probe = sock.clone();
                fx.wait_ready(SERVER, move || unix_ready(&probe));
                format!("unix:{}", sock.display())
            }
        };
        let pid = fx.pid(SERVER);
        // With spawn-fcgi the port is open before Python has loaded the library.
        fx.check(wait_lib_mapped(pid), || {
            format!("the WSGI server (pid {pid}) never mapped a libfcgi")
        });
        fx.check(harness::runs_project_lib(pid), || {
            format!("the WSGI server (pid {pid}) does not run on the project's library")
        });
        let upstreams = format!(
            "    upstream wsgi {{\n        server {upstream};\n        keepalive 8;\n    }}\n"
        );
        fx.start_nginx(&upstreams, LOCATIONS);
        Wsgi { fx }
    }

    /// The server's stderr so far (its own log, and what the applications print).
    pub fn log(&self) -> String {
        self.fx.stderr_of(SERVER)
    }

    /// Waits (bounded) until the server's log contains `needle`.
    pub fn wait_log(&self, needle: &str) {
        let ok = wait_for(|| self.log().contains(needle));
        self.fx.check(ok, || {
            format!(
                "the server did not log {needle:?}; its log:\n{}",
                self.log()
            )
        });
    }

    pub fn check_alive(&mut self) {
        if let Some(st) = self.fx.exited(SERVER) {
            self.fx.fail(&format!("the WSGI server exited ({st})"));
        }
    }

    /// No PEP 3333 violation was caught: wsgiref.validate raises AssertionError (logged with
    /// its traceback by the server) and warns with WSGIWarning.
    pub fn check_validator_clean(&self) {
        let log = self.log();
        for bad in ["AssertionError", "WSGIWarning", "internal error"] {
            self.fx.check(!log.contains(bad), || {
                format!("the server logged {bad:?}:\n{log}")
            });
        }
        // A framework (Flask) catches the application's exceptions itself and logs them on
        // wsgi.errors, which nginx writes to its error log.
        for bad in ["AssertionError", "WSGIWarning"] {
            self.fx.check(!self.fx.error_log_has(bad), || {
                format!("nginx's error log (wsgi.errors) has {bad:?}")
            });
        }
    }

    /// Sends one signal to the server and waits (bounded) for it to exit.
    pub fn signal_and_wait(&mut self, sig: i32) -> ExitStatus {
        let pid = self.fx.pid(SERVER);
        // SAFETY: kill(2) on the pid of a child this fixture started and has not reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
        self.fx.wait_exit(SERVER)
    }

    /// The end of every test: validator clean, the server alive, then stopped by SIGTERM with
    /// exit status 0.
    pub fn finish(mut self) {
        self.check_validator_clean();
        self.check_alive();
        let st = self.signal_and_wait(libc::SIGTERM);
        self.fx.check(st.success(), || {
            format!("the server exited with {st} after SIGTERM, want 0")
        });
        self.fx
            .check(self.log().contains("fcgi_runtime: stopped"), || {
                "the server did not log its clean stop".to_string()
            });
    }
}

/// A streamed response whose first chunk must arrive while the application waits for the
/// gate file (so it was sent as produced), then the whole body in order.
pub fn check_streamed_while_produced(w: &Wsgi, path: &str) {
    let fx = &w.fx;
    let gate = fx.path(&format!("gate-{}", crate::harness::unique()));
    let mut conn = crate::harness::http::connect(fx.port).expect("connect to nginx");
    let path = format!("{path}?n=5&gate={}", gate.display());
    crate::harness::http::send_head(&mut conn, "GET", &path, &["Connection: close".to_string()])
        .expect("send");
    let (status, headers) = crate::harness::http::read_head(&mut conn).expect("response head");
    fx.check(status == 200, || format!("{path}: status {status}"));
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    fx.check(chunked, || format!("{path}: not chunked: {headers:?}"));
    let mut raw = Vec::new();
    crate::harness::http::read_until(&mut conn, &mut raw, b"chunk 0\n")
        .expect("chunk 0 before the gate opens");
    let early = String::from_utf8_lossy(&raw).into_owned();
    fx.check(!early.contains("chunk 1"), || {
        format!("{path}: chunk 1 arrived before the gate opened: {early:?}")
    });
    std::fs::write(&gate, b"").expect("open the gate");
    std::io::Read::read_to_end(&mut conn, &mut raw).expect("the rest of the stream");
    let body = crate::harness::http::dechunk(&raw).unwrap_or_else(|| {
        fx.fail(&format!(
            "{path}: not a complete chunked body: {:?}",
            crate::harness::show(&raw)
        ))
    });
    let want = "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\nend\n";
    fx.check(body == want.as_bytes(), || {
        format!(
            "{path}: body {:?}, want {want:?}",
            crate::harness::show(&body)
        )
    });
}
