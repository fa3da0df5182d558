//! Limits and timeouts, process-wide, changeable at any time (read with relaxed atomics where
//! they are applied). Defaults are chosen for a server behind nginx or HAProxy.

use std::sync::atomic::{AtomicU64, Ordering};

/// A configurable limit. The discriminants are the C API's `fcgi_limit` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Limit {
    /// Open connections per process (FCGI_MAX_CONNS). At it, accepting stops: new connections
    /// wait in the listen backlog until one closes.
    MaxConns = 0,
    /// Requests in flight per process (FCGI_MAX_REQS). Past it, FCGI_OVERLOADED.
    MaxReqs = 1,
    /// Requests in flight per connection when multiplexing. Past it, FCGI_OVERLOADED.
    MaxReqsPerConn = 2,
    /// 1 to accept several requests per connection (FCGI_MPXS_CONNS), 0 to refuse with
    /// FCGI_CANT_MPX_CONN.
    MpxsConns = 3,
    /// Sum of name and value bytes of one request's PARAMS.
    MaxParamsBytes = 4,
    /// Number of pairs in one request's PARAMS.
    MaxParamsCount = 5,
    /// Time from BEGIN_REQUEST to the end of PARAMS, in ms (slowloris).
    ParamsTimeoutMs = 6,
    /// Time an idle connection (no request in flight) is kept, in ms.
    KeepaliveTimeoutMs = 7,
    /// STDIN (and DATA) bytes buffered per request before the connection stops being read.
    StdinBufferBytes = 8,
    /// Output buffered per request before it is written to the socket.
    OutputBufferBytes = 9,
    /// Time a writer may wait for a full socket to drain, in ms, before the connection is
    /// treated as broken.
    WriteTimeoutMs = 10,
    /// Bytes a connection may hold for the socket beyond what it accepted (write-behind).
    WriteBehindBytes = 11,
}

/// Every limit, in order of discriminant.
pub const ALL_LIMITS: [Limit; 12] = [
    Limit::MaxConns,
    Limit::MaxReqs,
    Limit::MaxReqsPerConn,
    Limit::MpxsConns,
    Limit::MaxParamsBytes,
    Limit::MaxParamsCount,
    Limit::ParamsTimeoutMs,
    Limit::KeepaliveTimeoutMs,
    Limit::StdinBufferBytes,
    Limit::OutputBufferBytes,
    Limit::WriteTimeoutMs,
    Limit::WriteBehindBytes,
];

impl Limit {
    /// The limit for a C `fcgi_limit` value.
    pub fn from_u32(v: u32) -> Option<Limit> {
        ALL_LIMITS.get(v as usize).copied()
    }

    /// Default value.
    pub fn default_value(self) -> u64 {
        DEFAULTS[self as usize]
    }

    /// The environment variable that sets this limit: `FCGI_RUNTIME_` and the C name without
    /// `FCGI_LIMIT_`, e.g. `FCGI_RUNTIME_MAX_PARAMS_BYTES`.
    pub fn env_name(self) -> &'static str {
        ENV_NAMES[self as usize]
    }

    /// Accepted range of values.
    pub fn range(self) -> (u64, u64) {
        match self {
            Limit::MpxsConns => (0, 1),
            Limit::MaxReqsPerConn => (1, 65535),
            Limit::MaxParamsBytes => (64, 0x7fff_ffff),
            Limit::MaxParamsCount | Limit::MaxConns | Limit::MaxReqs => (1, 0x7fff_ffff),
            Limit::StdinBufferBytes | Limit::OutputBufferBytes => (512, 64 << 20),
            Limit::WriteBehindBytes => (0, 1 << 30),
            Limit::ParamsTimeoutMs | Limit::KeepaliveTimeoutMs | Limit::WriteTimeoutMs => {
                (1, 24 * 3600 * 1000)
            }
        }
    }
}

/// Defaults, in order of discriminant.
const DEFAULTS: [u64; 12] = [
    16384,      // MaxConns
    1024,       // MaxReqs
    128,        // MaxReqsPerConn
    1,          // MpxsConns
    1 << 20,    // MaxParamsBytes
    1000,       // MaxParamsCount
    30_000,     // ParamsTimeoutMs
    300_000,    // KeepaliveTimeoutMs
    64 * 1024,  // StdinBufferBytes
    64 * 1024,  // OutputBufferBytes
    60_000,     // WriteTimeoutMs
    256 * 1024, // WriteBehindBytes
];

const ENV_NAMES: [&str; 12] = [
    "FCGI_RUNTIME_MAX_CONNS",
    "FCGI_RUNTIME_MAX_REQS",
    "FCGI_RUNTIME_MAX_REQS_PER_CONN",
    "FCGI_RUNTIME_MPXS_CONNS",
    "FCGI_RUNTIME_MAX_PARAMS_BYTES",
    "FCGI_RUNTIME_MAX_PARAMS_COUNT",
    "FCGI_RUNTIME_PARAMS_TIMEOUT_MS",
    "FCGI_RUNTIME_KEEPALIVE_TIMEOUT_MS",
    "FCGI_RUNTIME_STDIN_BUFFER_BYTES",
    "FCGI_RUNTIME_OUTPUT_BUFFER_BYTES",
    "FCGI_RUNTIME_WRITE_TIMEOUT_MS",
    "FCGI_RUNTIME_WRITE_BEHIND_BYTES",
];

/// Limits the application set through the API (bit per limit): the environment does not
/// override them.
static SET_BY_API: AtomicU64 = AtomicU64::new(0);

struct Table([AtomicU64; 12]);

static TABLE: Table = Table([
    AtomicU64::new(DEFAULTS[0]),
    AtomicU64::new(DEFAULTS[1]),
    AtomicU64::new(DEFAULTS[2]),
    AtomicU64::new(DEFAULTS[3]),
    AtomicU64::new(DEFAULTS[4]),
    AtomicU64::new(DEFAULTS[5]),
    AtomicU64::new(DEFAULTS[6]),
    AtomicU64::new(DEFAULTS[7]),
    AtomicU64::new(DEFAULTS[8]),
    AtomicU64::new(DEFAULTS[9]),
    AtomicU64::new(DEFAULTS[10]),
    AtomicU64::new(DEFAULTS[11]),
]);

/// Current value of a limit.
#[inline]
pub fn get(limit: Limit) -> u64 {
    TABLE.0[limit as usize].load(Ordering::Relaxed)
}

/// A value outside a limit's [`Limit::range`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange;

/// Sets a limit; `Err` when the value is outside [`Limit::range`].
pub fn set(limit: Limit, value: u64) -> Result<(), OutOfRange> {
    let (lo, hi) = limit.range();
    if value < lo || value > hi {
        return Err(OutOfRange);
    }
    TABLE.0[limit as usize].store(value, Ordering::Relaxed);
    SET_BY_API.fetch_or(1 << limit as u32, Ordering::Relaxed);
    Ok(())
}

/// Gives a limit the default of a face (the native face's `fcgi_init` advertises
/// FCGI_MPXS_CONNS=0, as PHP's does). Unlike [`set`], it yields to both other sources: a
/// value the application set through the API stays, and the limit's environment variable
/// still overrides it.
pub fn set_default(limit: Limit, value: u64) {
    debug_assert!((limit.range().0..=limit.range().1).contains(&value));
    if SET_BY_API.load(Ordering::Relaxed) & (1 << limit as u32) != 0 {
        return;
    }
    let v = match from_env(limit) {
        Some(Ok(n)) => n,
        // An invalid value is reported by load_env, when a server starts.
        _ => value,
    };
    TABLE.0[limit as usize].store(v, Ordering::Relaxed);
}

/// The value of a limit's environment variable, if set: the number, or the text that is not a
/// number in the limit's range.
fn from_env(l: Limit) -> Option<Result<u64, String>> {
    let v = std::env::var(l.env_name()).ok()?;
    let (lo, hi) = l.range();
    Some(match v.trim().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(v),
    })
}

/// Applies `FCGI_RUNTIME_*` environment variables to the limits the application did not set
/// itself (called when a server starts, so unmodified programs can be configured too).
/// Invalid values are logged and ignored.
pub fn load_env() {
    for l in ALL_LIMITS {
        if SET_BY_API.load(Ordering::Relaxed) & (1 << l as u32) != 0 {
            continue;
        }
        match from_env(l) {
            Some(Ok(n)) => TABLE.0[l as usize].store(n, Ordering::Relaxed),
            Some(Err(v)) => {
                let (lo, hi) = l.range();
                crate::fcgi_log!(
                    Error,
                    "ignoring {}='{v}': expected a number from {lo} to {hi}",
                    l.env_name()
                )
            }
            None => {}
        }
    }
}

/// The protocol engine's view of the limits.
pub fn engine_config() -> fcgi_runtime_protocol::EngineConfig {
    fcgi_runtime_protocol::EngineConfig {
        mpxs_conns: get(Limit::MpxsConns) != 0,
        max_reqs_per_conn: get(Limit::MaxReqsPerConn) as u32,
        max_params_bytes: get(Limit::MaxParamsBytes) as u32,
        max_params_count: get(Limit::MaxParamsCount) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_defaults_and_ranges_hold() {
        for l in ALL_LIMITS {
            let (lo, hi) = l.range();
            assert!(lo <= l.default_value() && l.default_value() <= hi, "{l:?}");
            assert_eq!(Limit::from_u32(l as u32), Some(l));
        }
        assert_eq!(Limit::from_u32(99), None);
        assert!(set(Limit::MpxsConns, 2).is_err());
    }
}
