//! Driving load: fcgi-bench runs (parsed from its --json output) and the idle-connection holder
//! of S5.

use crate::app::Env;
use fcgi_runtime_tools::client::{Client, Request};
use serde::Deserialize;
use std::process::Command;
use std::time::Duration;

/// One fcgi-bench invocation.
#[derive(Clone, Debug)]
pub struct Load {
    pub conns: u32,
    pub depth: u32,
    pub body: u64,
    pub keep: bool,
    /// Run for this long (seconds), or for `count` requests.
    pub secs: Option<f64>,
    pub count: Option<u64>,
    pub warmup: f64,
    pub expect: Option<&'static str>,
    pub expect_stdin_length: bool,
    pub timeout: f64,
    /// Parameters added or overridden (`-p NAME=VALUE`), such as PHP's SCRIPT_FILENAME.
    pub params: Vec<String>,
    /// fcgi-bench's SCRIPT_URI (SCRIPT_NAME and REQUEST_URI), after the address; None for its
    /// default, `/`.
    pub uri: Option<String>,
}

impl Load {
    pub fn timed(conns: u32, secs: f64, warmup: f64) -> Load {
        Load {
            conns,
            depth: 1,
            body: 0,
            keep: true,
            secs: Some(secs),
            count: None,
            warmup,
            expect: None,
            expect_stdin_length: false,
            timeout: 10.0,
            params: Vec::new(),
            uri: None,
        }
    }

    pub fn counted(conns: u32, count: u64) -> Load {
        Load {
            secs: None,
            count: Some(count),
            warmup: 0.0,
            ..Load::timed(conns, 0.0, 0.0)
        }
    }

    /// The arguments for the documentation, quoted where a shell needs it.
    pub fn shown_args(&self) -> String {
        quote(&self.args())
    }

    /// The fcgi-bench arguments (without the address).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["-c".to_string(), self.conns.to_string()];
        if self.depth > 1 {
            a.extend(["-m".to_string(), self.depth.to_string()]);
        }
        if self.body > 0 {
            a.extend(["-b".to_string(), self.body.to_string()]);
        }
        if !self.keep {
            a.push("--no-keep".into());
        }
        if let Some(s) = self.secs {
            a.extend(["-d".to_string(), s.to_string()]);
        }
        if let Some(n) = self.count {
            a.extend(["-n".to_string(), n.to_string()]);
        }
        if self.warmup > 0.0 {
            a.extend(["--warmup".to_string(), self.warmup.to_string()]);
        }
        if let Some(e) = self.expect {
            a.extend(["--expect".to_string(), e.to_string()]);
        }
        if self.expect_stdin_length {
            a.push("--expect-stdin-length".into());
        }
        if self.timeout != 10.0 {
            a.extend(["--timeout".to_string(), self.timeout.to_string()]);
        }
        for p in &self.params {
            a.extend(["-p".to_string(), p.clone()]);
        }
        a
    }
}

/// Arguments joined for the documentation, quoted where a shell needs it.
pub fn quote(args: &[String]) -> String {
    args.iter()
        .map(|a| match a.contains(' ') {
            true => format!("'{a}'"),
            false => a.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What fcgi-bench reported.
#[derive(Clone, Debug, Default)]
pub struct BenchResult {
    pub rps: f64,
    pub requests: f64,
    pub errors: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mb_in: f64,
    pub never_served: f64,
    /// The kinds of error fcgi-bench counted, "protocol 3, timeout 1"; empty without errors.
    pub error_kinds: String,
}

/// The part of fcgi-bench's `--json` output the suite reads.
#[derive(Deserialize)]
struct BenchJson {
    requests_per_s: f64,
    requests: f64,
    errors: f64,
    latency_us: LatencyJson,
    mb_per_s_in: f64,
    connections_never_served: f64,
    /// Counts by kind, in fcgi-bench's order.
    error_kinds: Ordered,
}

/// A JSON object of counts, its members in the order they came.
struct Ordered(Vec<(String, u64)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of counts")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry()? {
                    v.push(e);
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct LatencyJson {
    p50: f64,
    p99: f64,
}

/// Runs fcgi-bench against `addr`. Failed requests are counted, not fatal: libfcgi refusing a
/// multiplexed request is a result.
pub fn bench(env: &Env, addr: &str, load: &Load) -> Result<BenchResult, String> {
    let out = Command::new(&env.fcgi_bench)
        .arg("--json")
        .args(load.args())
        .arg(addr)
        .args(load.uri.as_deref())
        .output()
        .map_err(|e| format!("fcgi-bench: {e}"))?;
    let j: BenchJson = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "fcgi-bench gave no result ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    // The non-zero counts, as "kind n, ...".
    let error_kinds = j
        .error_kinds
        .0
        .iter()
        .filter(|&&(_, n)| n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(BenchResult {
        rps: j.requests_per_s,
        requests: j.requests,
        errors: j.errors,
        p50_us: j.latency_us.p50,
        p99_us: j.latency_us.p99,
        mb_in: j.mb_per_s_in,
        never_served: j.connections_never_served,
        error_kinds,
    })
}

/// Opens up to `n` connections, sends one keep-alive request on each and reads its response,
/// and keeps them all open. Stops at the first connection whose response does not come within
/// `wait` (an application that cannot hold more). Returns the held connections.
pub fn hold_idle(addr: &str, n: u32, wait: Duration) -> Vec<Client> {
    let req = Request::new(1)
        .keep_conn(true)
        .param("REQUEST_METHOD", "GET")
        .param("SCRIPT_NAME", "/")
        .param("REQUEST_URI", "/")
        .param("SERVER_PROTOCOL", "HTTP/1.1");
    let mut held = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let Ok(mut c) = Client::connect(addr) else {
            break;
        };
        if c.set_timeout(Some(wait)).is_err() {
            break;
        }
        match c.request(&req) {
            Ok(r) if r.protocol_status == 0 => held.push(c),
            _ => break,
        }
    }
    held
}
