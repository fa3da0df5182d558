#![allow(dead_code)]
//! The process under test: fpm_worker.c, compiled once against the project's library, started
//! on a fresh 127.0.0.1 port with chosen arguments and environment, its stderr (the library's
//! log lines, as FPM's zlog writes them) kept in a file.

use crate::common;
use fcgi_runtime_tools::client::{Client, Request, Response};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// fpm_worker.c, built once per test binary.
pub fn program() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| common::build_c("tests/php_behaviour/fpm_worker.c"))
}

/// A running fpm_worker; killed on drop.
pub struct Worker {
    child: Child,
    pub addr: String,
    log: PathBuf,
}

impl Worker {
    /// Starts fpm_worker on `addr` without waiting for it.
    pub fn spawn_on(addr: &str, args: &[&str], env: &[(&str, &str)]) -> Worker {
        let log = std::env::temp_dir().join(format!(
            "fcgi-php-{}-{}.log",
            std::process::id(),
            common::free_port()
        ));
        let mut cmd = Command::new(program());
        cmd.arg(addr)
            .args(args)
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            .env_remove("FCGI_RUNTIME_MPXS_CONNS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start fpm_worker");
        Worker {
            child,
            addr: addr.to_string(),
            log,
        }
    }

    /// Starts fpm_worker on a fresh port and waits until it accepts connections.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Worker {
        let addr = format!("127.0.0.1:{}", common::free_port());
        let mut w = Worker::spawn_on(&addr, args, env);
        let deadline = Instant::now() + IO_TIMEOUT;
        while fcgi_runtime::addr::connect(&addr).is_err() {
            if let Some(st) = w.child.try_wait().unwrap() {
                panic!("fpm_worker exited ({st}): {}", w.log_text());
            }
            assert!(Instant::now() < deadline, "fpm_worker did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        w
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "fpm_worker did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn connect(&self) -> Client {
        let c = Client::connect(&self.addr).expect("connect");
        c.set_timeout(Some(IO_TIMEOUT)).expect("timeouts");
        c
    }

    /// One request with this QUERY_STRING and body on a new connection.
    pub fn ask(&self, query: &str, body: &str) -> std::io::Result<Response> {
        self.connect().request(&request(1, query).stdin(body))
    }

    /// What the library logged (one line per message, "LEVEL: text").
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A responder request with this QUERY_STRING.
pub fn request(id: u16, query: &str) -> Request {
    Request::new(id)
        .param("REQUEST_METHOD", "GET")
        .param("QUERY_STRING", query)
}

/// The body of a response, after fpm_worker's header.
pub fn body(r: &Response) -> String {
    let s = String::from_utf8_lossy(&r.stdout);
    s.strip_prefix("Content-Type: text/plain\r\n\r\n")
        .unwrap_or_else(|| panic!("unexpected output {s:?}"))
        .to_string()
}
