//! The pool's settings: FPM's names, given as strings (the C API, fcgi-spawn's options and a
//! future configuration file share them), with php-cgi's PHP_FCGI_CHILDREN and
//! PHP_FCGI_MAX_REQUESTS as defaults.

use std::time::Duration;

/// FPM's process managers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `max_children` workers at all times.
    Static,
    /// Idle workers kept between `min_spare_servers` and `max_spare_servers`.
    Dynamic,
    /// No worker until a connection waits; idle workers drained after the idle timeout.
    OnDemand,
}

impl Mode {
    /// FPM's name for the mode (the value of `pm`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Static => "static",
            Mode::Dynamic => "dynamic",
            Mode::OnDemand => "ondemand",
        }
    }
}

/// Everything `fcgi_pool_set` can change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    pub max_children: usize,
    /// `None`: FPM's default, `min_spare + (max_spare - min_spare) / 2`.
    pub start_servers: Option<usize>,
    pub min_spare: usize,
    pub max_spare: usize,
    pub idle_timeout: Duration,
    /// Requests a worker serves before it drains and is replaced; 0: no limit.
    pub max_requests: u64,
    /// Resident set size (bytes) above which the parent drains a worker; 0: no limit.
    pub max_memory: u64,
    /// How long a draining worker (and a graceful stop) may take before SIGKILL.
    pub graceful_timeout: Duration,
    /// SO_REUSEPORT on the TCP sockets `fcgi_pool_listen` opens.
    pub reuseport: bool,
    /// The pool's name in the status page and the logs (FPM's `[www]`).
    pub name: String,
    /// A request whose SCRIPT_NAME (else REQUEST_URI's path) is this gets the status page
    /// from the worker's runtime; empty: no status page.
    pub status_path: String,
    /// File the slow-request log is appended to; empty: the runtime's log (stderr).
    pub slowlog: String,
    /// Requests running longer than this are logged as slow; zero: no slow log.
    pub slowlog_timeout: Duration,
    /// Requests running longer than this get their worker killed (SIGKILL) and replaced;
    /// zero: no limit.
    pub terminate_timeout: Duration,
    /// A request whose SCRIPT_NAME (else path) is this gets `ping_response` (503 while the
    /// pool or the worker drains); empty: no ping path. FPM's `ping.path`.
    pub ping_path: String,
    /// The ping path's body (FPM's `ping.response`, default `pong`).
    pub ping_response: String,
    /// An address the supervisor itself serves the status page and ping on (FPM's
    /// `pm.status_listen`); empty: none.
    pub status_listen: String,
    /// On a graceful stop, how long ping answers 503 while the workers keep serving, so a load
    /// balancer stops sending first (a second SIGQUIT ends it early); zero: drain at once.
    pub drain_delay: Duration,
    /// File the access log is appended to (FPM's `access.log`); empty: no access log.
    pub access_log: String,
    /// The access log line's format (FPM's `access.format`).
    pub access_format: String,
    /// Each worker's `max_requests` is `max_requests` plus a random 0..=this.
    pub max_requests_jitter: u64,
    /// A worker older than this (plus its own random 0..=`max_lifetime_jitter`) drains and is
    /// replaced; zero: no limit.
    pub max_lifetime: Duration,
    pub max_lifetime_jitter: Duration,
    /// The supervisor reads workers' stdout and stderr line by line into its log (FPM's
    /// `catch_workers_output`); otherwise they share the supervisor's.
    pub catch_workers_output: bool,
    /// Captured lines carry the pool's name and the worker's pid (FPM's
    /// `decorate_workers_output`, default on).
    pub decorate_workers_output: bool,
    /// The library's log threshold in the supervisor and attached workers (FPM's `log_level`);
    /// `None`: unchanged (notice).
    pub log_level: Option<crate::log::Level>,
    /// Workers exec programs (fcgi-spawn): the scoreboard is a memfd they inherit, and a
    /// program not on this library is drained with SIGTERM. Not a string setting.
    pub exec: bool,
}

impl Settings {
    /// The defaults: a static pool of one worker per CPU, or of PHP_FCGI_CHILDREN (> 0)
    /// workers; `max_requests` from PHP_FCGI_MAX_REQUESTS (else 0, no recycling).
    pub fn from_env() -> Settings {
        let env_num = |name: &str| -> Option<u64> {
            let v = std::env::var(name).ok()?;
            match v.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    crate::fcgi_log!(Warning, "ignoring {name}='{v}': not a number");
                    None
                }
            }
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let max_children = match env_num("PHP_FCGI_CHILDREN") {
            Some(n) if n > 0 => n.min(MAX_CHILDREN as u64) as usize,
            _ => cpus,
        };
        Settings {
            mode: Mode::Static,
            max_children,
            start_servers: None,
            min_spare: 1,
            max_spare: 3,
            idle_timeout: Duration::from_secs(10),
            max_requests: env_num("PHP_FCGI_MAX_REQUESTS").unwrap_or(0),
            max_memory: 0,
            graceful_timeout: Duration::from_secs(30),
            reuseport: false,
            name: "www".to_string(),
            status_path: String::new(),
            slowlog: String::new(),
            slowlog_timeout: Duration::ZERO,
            terminate_timeout: Duration::ZERO,
            ping_path: String::new(),
            ping_response: "pong".to_string(),
            status_listen: String::new(),
            drain_delay: Duration::ZERO,
            access_log: String::new(),
            access_format: DEFAULT_ACCESS_FORMAT.to_string(),
            max_requests_jitter: 0,
            max_lifetime: Duration::ZERO,
            max_lifetime_jitter: Duration::ZERO,
            catch_workers_output: false,
            decorate_workers_output: true,
            log_level: None,
            exec: false,
        }
    }

    /// Sets one setting from its text. Errors are messages for the log.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        let num = || -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("pool setting {name}: '{value}' is not a number"))
        };
        let count = |lo: u64| -> Result<usize, String> {
            let n = num()?;
            if n < lo || n > MAX_CHILDREN as u64 {
                return Err(format!(
                    "pool setting {name}: {n} is out of range ({lo}..={MAX_CHILDREN})"
                ));
            }
            Ok(n as usize)
        };
        let flag = || -> Result<bool, String> {
            match v {
                "0" | "no" | "false" | "off" => Ok(false),
                "1" | "yes" | "true" | "on" => Ok(true),
                _ => Err(format!("pool setting {name}: '{value}' is not yes or no")),
            }
        };
        let path = |max: usize| -> Result<String, String> {
            if v.len() > max {
                return Err(format!("pool setting {name}: longer than {max} bytes"));
            }
            Ok(v.to_string())
        };
        match name {
            "pm" => {
                self.mode = match v {
                    "static" => Mode::Static,
                    "dynamic" => Mode::Dynamic,
                    "ondemand" => Mode::OnDemand,
                    _ => {
                        return Err(format!(
                            "pool setting pm: '{value}' is not static, dynamic or ondemand"
                        ))
                    }
                }
            }
            "max_children" => self.max_children = count(1)?,
            "start_servers" => self.start_servers = Some(count(0)?),
            "min_spare_servers" => self.min_spare = count(0)?,
            "max_spare_servers" => self.max_spare = count(1)?,
            "process_idle_timeout_ms" => self.idle_timeout = Duration::from_millis(num()?.max(1)),
            "max_requests" => self.max_requests = num()?,
            "max_memory" => self.max_memory = num()?,
            "graceful_timeout_ms" => self.graceful_timeout = Duration::from_millis(num()?),
            "reuseport" => self.reuseport = flag()?,
            "name" => {
                if v.is_empty() || v.len() > 63 || v.bytes().any(|b| !b.is_ascii_graphic()) {
                    return Err(format!(
                        "pool setting name: '{value}' must be 1 to 63 printable characters"
                    ));
                }
                self.name = v.to_string();
            }
            "status_path" => {
                if !v.is_empty() && (!v.starts_with('/') || v.len() > 127) {
                    return Err(format!(
                        "pool setting status_path: '{value}' must start with / (at most 127 bytes)"
                    ));
                }
                self.status_path = v.to_string();
            }
            "slowlog" => {
                if v.len() > 255 {
                    return Err("pool setting slowlog: the path is longer than 255 bytes".into());
                }
                self.slowlog = v.to_string();
            }
            "slowlog_timeout_ms" => self.slowlog_timeout = Duration::from_millis(num()?),
            "request_terminate_timeout_ms" => {
                self.terminate_timeout = Duration::from_millis(num()?)
            }
            "ping_path" => {
                if !v.is_empty() && (!v.starts_with('/') || v.len() > 127) {
                    return Err(format!(
                        "pool setting ping_path: '{value}' must start with / (at most 127 bytes)"
                    ));
                }
                self.ping_path = v.to_string();
            }
            "ping_response" => self.ping_response = path(127)?,
            "status_listen" => self.status_listen = path(255)?,
            "drain_delay_ms" => self.drain_delay = Duration::from_millis(num()?),
            "access_log" => self.access_log = path(255)?,
            "access_format" => self.access_format = path(1023)?,
            "max_requests_jitter" => self.max_requests_jitter = num()?,
            "max_lifetime_ms" => self.max_lifetime = Duration::from_millis(num()?),
            "max_lifetime_jitter_ms" => self.max_lifetime_jitter = Duration::from_millis(num()?),
            "catch_workers_output" => self.catch_workers_output = flag()?,
            "decorate_workers_output" => self.decorate_workers_output = flag()?,
            "log_level" => {
                self.log_level = Some(crate::log::Level::parse(v).ok_or_else(|| {
                    format!(
                        "pool setting log_level: '{value}' is not debug, notice, warning, \
                         error or alert"
                    )
                })?)
            }
            _ => return Err(format!("unknown pool setting '{name}'")),
        }
        Ok(())
    }

    /// `start_servers` with FPM's default.
    pub fn start_servers(&self) -> usize {
        self.start_servers
            .unwrap_or(self.min_spare + self.max_spare.saturating_sub(self.min_spare) / 2)
    }

    /// Checks the settings together (as FPM does at start).
    pub fn validate(&self) -> Result<(), String> {
        if self.mode == Mode::Dynamic {
            if self.min_spare > self.max_spare {
                return Err(format!(
                    "pool: min_spare_servers ({}) is above max_spare_servers ({})",
                    self.min_spare, self.max_spare
                ));
            }
            if self.max_spare > self.max_children {
                return Err(format!(
                    "pool: max_spare_servers ({}) is above max_children ({})",
                    self.max_spare, self.max_children
                ));
            }
            let s = self.start_servers();
            if s < self.min_spare || s > self.max_spare {
                return Err(format!(
                    "pool: start_servers ({s}) must be between min_spare_servers ({}) and \
                     max_spare_servers ({})",
                    self.min_spare, self.max_spare
                ));
            }
        }
        Ok(())
    }
}

/// FPM's default `access.format`.
pub const DEFAULT_ACCESS_FORMAT: &str = "%R - %u %t \"%m %r\" %s";

/// The most workers a pool may have (the scoreboard holds twice as many slots, for reloads).
pub const MAX_CHILDREN: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Settings {
        let mut s = Settings::from_env();
        s.max_children = 4;
        s
    }

    #[test]
    fn names_and_values() {
        let mut s = base();
        s.set("pm", "dynamic").unwrap();
        s.set("max_children", "8").unwrap();
        s.set("min_spare_servers", "2").unwrap();
        s.set("max_spare_servers", "4").unwrap();
        assert_eq!(s.start_servers(), 3);
        s.validate().unwrap();
        s.set("reuseport", "1").unwrap();
        assert!(s.reuseport);
        s.set("graceful_timeout_ms", "250").unwrap();
        assert_eq!(s.graceful_timeout, Duration::from_millis(250));
        assert!(s.set("pm", "lazy").is_err());
        assert!(s.set("max_children", "0").is_err());
        assert!(s.set("max_children", "-1").is_err());
        assert!(s.set("max_requests", "x").is_err());
        assert!(s.set("nope", "1").is_err());
        assert!(s.set("status_path", "status").is_err());
        s.set("status_path", "/status").unwrap();
        s.set("slowlog_timeout_ms", "1500").unwrap();
        assert_eq!(s.slowlog_timeout, Duration::from_millis(1500));
        assert!(s.set("name", "two words").is_err());
        s.set("max_spare_servers", "9").unwrap();
        assert!(s.validate().is_err());
    }
}
