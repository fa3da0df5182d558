//! HAProxy and nginx in front of the three hosts, each on docs/deploy.md's configuration for
//! several hosts as written (`deploy_docs::several_hosts_haproxy`, `several_hosts_nginx`), on a
//! free port of 127.0.0.1. What the tests read back: HAProxy's `show stat` (each server's
//! status and last check) on its stats socket and its request log (the document's `log-format`:
//! method, URI, status, backend/server, retries); nginx's error log and an access log this rig
//! adds (`$upstream_addr`: every host a request was sent to, in order).

use crate::deploy_docs::{several_hosts_haproxy, several_hosts_nginx};
use crate::harness::haproxy::{self, HAPROXY};
use crate::harness::{self, require, Fixture, START_TIMEOUT};
use std::collections::HashMap;
use std::fs;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const DEBIAN_FASTCGI_PARAMS: &str = "/etc/nginx/fastcgi_params";

/// One request of a balancer's log.
#[derive(Clone, Debug)]
pub struct Logged {
    pub seq: Option<u64>,
    pub status: String,
    /// The hosts (`IP:PORT` for nginx, server names for HAProxy) the request was sent to, in
    /// order (HAProxy logs only the last).
    pub sent_to: Vec<String>,
    /// Retries: HAProxy's `%rc`, nginx's hosts tried minus one.
    pub retries: u32,
}

fn seq_of(uri: &str) -> Option<u64> {
    uri.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("seq="))
        .and_then(|v| v.parse().ok())
}

pub struct Haproxy {
    pub port: u16,
}

impl Haproxy {
    pub fn start(fx: &mut Fixture, hosts: &[String; 3]) -> Haproxy {
        require(HAPROXY, "haproxy");
        let cfg = fx.path("haproxy.cfg");
        let stats = fx.path("stats.sock");
        let docroot = fx.path("srv-app");
        fs::create_dir_all(&docroot).expect("create docroot");
        let port = fx.start_on_free_port(
            "haproxy",
            "Address already in use",
            |port| {
                let _ = fs::remove_file(&stats);
                fs::write(&cfg, several_hosts_haproxy(port, hosts, &docroot, &stats))
                    .expect("write haproxy.cfg");
                let mut cmd = Command::new(HAPROXY);
                cmd.arg("-f").arg(&cfg).arg("-db").stdin(Stdio::null());
                cmd
            },
            |_, port| harness::tcp_ready(port) && harness::unix_ready(&stats),
        );
        Haproxy { port }
    }

    /// Sends `cmd` to HAProxy's runtime API and returns its answer.
    pub fn cli(&self, fx: &Fixture, cmd: &str) -> String {
        haproxy::cli(fx, cmd)
    }

    /// The `show stat` row of server `name` of backend `app`, by column name.
    pub fn server(&self, fx: &Fixture, name: &str) -> HashMap<String, String> {
        haproxy::server_stats(fx, "app", name)
    }

    /// `status check_status check_code` of server `name`, e.g. `UP L7OK 200`.
    pub fn state(&self, fx: &Fixture, name: &str) -> String {
        let row = self.server(fx, name);
        let col = |c: &str| row.get(c).cloned().unwrap_or_default();
        format!(
            "{} {} {}",
            col("status"),
            col("check_status"),
            col("check_code")
        )
    }

    /// Waits until server `name`'s status is `want` (`UP`, `DOWN`: exactly, not `UP 1/3`);
    /// returns its [`Haproxy::state`] then.
    pub fn wait_status(&self, fx: &Fixture, name: &str, want: &str) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let st = self.state(fx, name);
            if st.split(' ').next() == Some(want) {
                return st;
            }
            if Instant::now() > deadline {
                fx.fail(&format!(
                    "HAProxy: server {name} is {st:?}, not {want}, after {START_TIMEOUT:?}"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The request log (the document's `log-format "%HM %HU %ST %b/%s retries=%rc"`).
    pub fn log(&self, fx: &Fixture) -> Vec<Logged> {
        let text = fs::read_to_string(fx.path("haproxy.out")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let [_method, uri, status, server, retries] = f[..] else {
                    return None;
                };
                let retries = retries.strip_prefix("retries=")?;
                Some(Logged {
                    seq: seq_of(uri),
                    status: status.to_string(),
                    sent_to: vec![server.rsplit('/').next().unwrap_or(server).to_string()],
                    retries: retries.trim_start_matches('+').parse().ok()?,
                })
            })
            .collect()
    }
}

pub struct Nginx {
    pub port: u16,
}

impl Nginx {
    pub fn start(fx: &mut Fixture, hosts: &[String; 3]) -> Nginx {
        require(harness::NGINX, "nginx-light");
        require(DEBIAN_FASTCGI_PARAMS, "nginx-common");
        fs::copy(DEBIAN_FASTCGI_PARAMS, fx.path("fastcgi_params")).expect("copy fastcgi_params");
        let docroot = fx.path("srv-app");
        fs::create_dir_all(&docroot).expect("create docroot");
        let dir = fx.dir.clone();
        fx.nginx_worker_connections = 1024;
        let port = fx.start_nginx_http(|port| {
            // The rig's access log (beside the fixture's): which hosts each request went to.
            format!(
                "    log_format hosts '$request_uri $status $upstream_addr';\n    access_log \
                 {}/hosts.log hosts;\n\n# ---- docs/deploy.md ----\n{}# ---- end ----\n",
                dir.display(),
                several_hosts_nginx(port, hosts, &docroot)
            )
        });
        Nginx { port }
    }

    /// The rig's access log (`$request_uri $status $upstream_addr`).
    pub fn log(&self, fx: &Fixture) -> Vec<Logged> {
        let text = fs::read_to_string(fx.path("hosts.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (uri, rest) = l.split_once(' ')?;
                let (status, upstreams) = rest.split_once(' ')?;
                let sent_to: Vec<String> = upstreams
                    .split([',', ':'])
                    .map(str::trim)
                    .filter(|s| s.starts_with("127."))
                    .map(str::to_string)
                    .collect();
                Some(Logged {
                    seq: seq_of(uri),
                    status: status.to_string(),
                    retries: sent_to.len().saturating_sub(1) as u32,
                    sent_to,
                })
            })
            .collect()
    }

    /// nginx's error log.
    pub fn errors(&self, fx: &Fixture) -> String {
        fs::read_to_string(fx.path("error.log")).unwrap_or_default()
    }
}
