//! A throwaway nginx in front of one application: its own configuration, prefix, pid file,
//! error log and temporary directories in a scratch directory, a free loopback port, one
//! foreground process (`master_process off`, `worker_processes 1`), stopped on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's nginx (nginx-light, or any of its flavours).
pub const NGINX: &str = "/usr/sbin/nginx";

/// Why nginx cannot be used, or None when it is there.
pub fn missing() -> Option<String> {
    (!Path::new(NGINX).exists()).then(|| format!("{NGINX} not found (apt-get install nginx-light)"))
}

/// The CGI parameters nginx passes, Debian's /etc/nginx/fastcgi_params written out here so the
/// runner does not depend on the packaged configuration.
const FASTCGI_PARAMS: &str = "\
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
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_SOFTWARE   nginx/$nginx_version;
            fastcgi_param REMOTE_ADDR       $remote_addr;
            fastcgi_param REMOTE_PORT       $remote_port;
            fastcgi_param SERVER_ADDR       $server_addr;
            fastcgi_param SERVER_PORT       $server_port;
            fastcgi_param SERVER_NAME       $server_name;
            fastcgi_param REDIRECT_STATUS   200;
";

/// How nginx talks to the application: `keepalive 8` in an upstream block with
/// `fastcgi_keep_conn on`, or a plain `fastcgi_pass` (nginx's default: a connection per
/// request).
pub fn upstream_config(app_addr: &str, keep: bool) -> (String, String) {
    if keep {
        (
            format!(
                "    upstream app {{\n        server {app_addr};\n        keepalive 8;\n    }}\n"
            ),
            "fastcgi_pass app;\n            fastcgi_keep_conn on;".into(),
        )
    } else {
        (String::new(), format!("fastcgi_pass {app_addr};"))
    }
}

/// The whole nginx.conf: everything nginx writes goes to `dir`; `extra` is added to the
/// location's directives.
fn conf(dir: &Path, port: u16, app_addr: &str, keep: bool, extra: &str) -> String {
    let d = dir.display();
    let (upstream, pass) = upstream_config(app_addr, keep);
    format!(
        r#"# written by the benchmark suite (bench/suite/nginx.rs)
daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    client_body_temp_path {d}/client_body_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    proxy_temp_path {d}/proxy_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    # The load generator's connections are not the subject: never close them.
    keepalive_requests 1000000;
    keepalive_timeout 60s;

{upstream}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;

        location / {{
{FASTCGI_PARAMS}{extra}            {pass}
        }}
    }}
}}
"#
    )
}

/// A running nginx.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Nginx {
    /// Starts nginx in front of `app_addr` with its files in `dir` (emptied first) and waits
    /// until it accepts connections; a port taken in the meantime is retried with another.
    pub fn start(dir: &Path, app_addr: &str, keep: bool) -> Result<Nginx, String> {
        Nginx::start_with(dir, app_addr, keep, "")
    }

    /// `start` with `extra` added to the location's directives (each line indented by 12
    /// spaces and ended by a newline), such as the SCRIPT_FILENAME PHP needs.
    pub fn start_with(
        dir: &Path,
        app_addr: &str,
        keep: bool,
        extra: &str,
    ) -> Result<Nginx, String> {
        if let Some(why) = missing() {
            return Err(why);
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let conf_file = dir.join("nginx.conf");
        let error_log = dir.join("error.log");
        let mut last = String::new();
        for _ in 0..5 {
            let port = crate::app::free_port();
            std::fs::write(&conf_file, conf(dir, port, app_addr, keep, extra))
                .map_err(|e| format!("{}: {e}", conf_file.display()))?;
            let mut prefix = dir.as_os_str().to_owned();
            prefix.push("/");
            let child = Command::new(NGINX)
                .arg("-e")
                .arg(&error_log)
                .arg("-p")
                .arg(prefix)
                .arg("-c")
                .arg(&conf_file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{NGINX}: {e}"))?;
            let mut n = Nginx {
                child,
                port,
                dir: dir.to_path_buf(),
            };
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(n);
                }
                if let Ok(Some(_)) = n.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            n.stop();
            last = n.errors();
            if !last.contains("Address already in use") {
                break;
            }
        }
        Err(format!(
            "nginx did not start ({}):\n{last}",
            conf_file.display()
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The last lines of its error log (warnings and worse).
    pub fn errors(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// Why a load run failed, with nginx's last error lines on one line when there are any.
    pub fn failure(&self, why: String) -> String {
        let errors = self.errors();
        if errors.is_empty() {
            why
        } else {
            format!(
                "{why}; nginx's error log ends: {}",
                errors.replace('\n', " | ")
            )
        }
    }

    /// One HTTP/1.0 GET of `/`: Ok when the status is 200 and the body contains `expect`,
    /// otherwise what came back (and nginx's last error lines).
    pub fn check(&self, expect: &str) -> Result<(), String> {
        let answer = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf).into_owned())
        })()
        .map_err(|e| format!("GET / through nginx: {e}"))?;
        let status = answer.lines().next().unwrap_or("");
        let ok_status = status.split_whitespace().nth(1) == Some("200");
        if ok_status && answer.contains(expect) {
            return Ok(());
        }
        let errors = self.errors();
        Err(format!(
            "GET / through nginx answered {status:?}{}{}",
            if ok_status {
                format!(" without {expect:?} in the body")
            } else {
                String::new()
            },
            if errors.is_empty() {
                String::new()
            } else {
                format!("; nginx's error log ends:\n{errors}")
            }
        ))
    }

    /// SIGQUIT (graceful shutdown: idle upstream connections are closed, not reset), then
    /// SIGKILL after two seconds.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill(2) takes no pointers; the pid is our own child's, not yet waited for
        // (try_wait above found it running).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
