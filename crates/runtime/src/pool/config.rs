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
            "reuseport" => {
                self.reuseport = match v {
                    "0" | "no" | "false" | "off" => false,
                    "1" | "yes" | "true" | "on" => true,
                    _ => return Err(format!("pool setting reuseport: '{value}' is not 0 or 1")),
                }
            }
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
