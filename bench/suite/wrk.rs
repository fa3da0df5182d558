//! HTTP load from wrk (Debian's wrk), with bench/suite/wrk_check.lua checking every response:
//! a 200 whose body contains the expected text. Used where nginx stands in front of the
//! application (behind_nginx.rs).

use std::path::PathBuf;
use std::process::Command;

pub const WRK: &str = "wrk";

/// The script that checks the responses and prints the counts.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/suite/wrk_check.lua")
}

/// Why wrk cannot be used, or None when it runs.
pub fn missing() -> Option<String> {
    match Command::new(WRK).arg("-v").output() {
        Ok(_) => None,
        Err(e) => Some(format!("{WRK}: {e} (apt-get install wrk)")),
    }
}

/// One wrk run over HTTP/1.1 keep-alive connections.
#[derive(Clone, Debug)]
pub struct Wrk {
    pub threads: u32,
    pub conns: u32,
    /// wrk takes whole seconds only.
    pub secs: u32,
}

impl Wrk {
    /// The arguments before the URL.
    pub fn args(&self) -> Vec<String> {
        vec![
            format!("-t{}", self.threads),
            format!("-c{}", self.conns),
            format!("-d{}s", self.secs),
        ]
    }

    /// The command for the report, the script named by its path in the repository.
    pub fn shown(&self, url: &str, expect: &str) -> String {
        format!(
            "wrk {} -s bench/suite/wrk_check.lua {url} -- '{expect}'",
            self.args().join(" ")
        )
    }
}

/// What wrk counted.
#[derive(Clone, Debug, Default)]
pub struct WrkResult {
    /// Responses completed within the run.
    pub requests: u64,
    pub secs: f64,
    /// Responses that were not a 200 with the expected body (non-2xx included).
    pub bad: u64,
    /// wrk's "Non-2xx or 3xx responses".
    pub non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
}

impl WrkResult {
    pub fn rps(&self) -> f64 {
        if self.secs > 0.0 {
            self.requests as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Why the run does not count, or None when every response was right.
    pub fn failure(&self) -> Option<String> {
        if self.requests == 0 {
            Some("no response".into())
        } else if self.bad > 0 || self.non_2xx > 0 || self.socket_errors > 0 {
            Some(format!(
                "{} of {} responses not a 200 with the expected body ({} non-2xx), {} socket \
                 errors",
                self.bad, self.requests, self.non_2xx, self.socket_errors
            ))
        } else {
            None
        }
    }
}

/// The number after `key=` in the script's line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// Runs `w` against `url`, checking every response for a 200 containing `expect`.
pub fn run(w: &Wrk, url: &str, expect: &str) -> Result<WrkResult, String> {
    let out = Command::new(WRK)
        .args(w.args())
        .arg("-s")
        .arg(script())
        .arg(url)
        .arg("--")
        .arg(expect)
        .output()
        .map_err(|e| format!("{WRK}: {e} (apt-get install wrk)"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("wrk-check "))
        .ok_or_else(|| {
            format!(
                "wrk printed no result ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let get = |k: &str| field(line, k).ok_or_else(|| format!("wrk's line has no {k}: {line}"));
    Ok(WrkResult {
        requests: get("requests")?,
        secs: get("duration_us")? as f64 / 1e6,
        bad: get("bad")?,
        non_2xx: get("status")?,
        socket_errors: get("connect")? + get("read")? + get("write")? + get("timeout")?,
    })
}
