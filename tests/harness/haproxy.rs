//! HAProxy's runtime API for the web-server tests that run HAProxy (`stats socket` at
//! `stats.sock` in the fixture's directory, `level admin`): commands and `show stat` rows.

use super::fixture::{Fixture, WEB_IO_TIMEOUT};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

/// HAProxy's program (Debian's haproxy).
pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// Sends `cmd` to HAProxy's runtime API on the fixture's `stats.sock` and returns its answer.
pub fn cli(fx: &Fixture, cmd: &str) -> String {
    let mut s = UnixStream::connect(fx.path("stats.sock"))
        .unwrap_or_else(|e| fx.fail(&format!("connect to the stats socket: {e}")));
    s.set_read_timeout(Some(WEB_IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(WEB_IO_TIMEOUT)).unwrap();
    s.write_all(format!("{cmd}\n").as_bytes())
        .unwrap_or_else(|e| fx.fail(&format!("send {cmd:?} to the stats socket: {e}")));
    let mut out = String::new();
    s.read_to_string(&mut out)
        .unwrap_or_else(|e| fx.fail(&format!("read the answer to {cmd:?}: {e}")));
    out
}

/// The `show stat` row of server `server` of proxy `backend`, by column name.
pub fn server_stats(fx: &Fixture, backend: &str, server: &str) -> HashMap<String, String> {
    let csv = cli(fx, "show stat");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .unwrap_or_else(|| fx.fail(&format!("show stat: no header in\n{csv}")))
        .split(',')
        .collect();
    let row = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&backend) && f.get(1) == Some(&server))
        .unwrap_or_else(|| fx.fail(&format!("show stat: no row {backend}/{server} in\n{csv}")));
    header
        .iter()
        .zip(row)
        .map(|(h, v)| (h.to_string(), v.to_string()))
        .collect()
}
