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
}

/// Names reserved for later parts of the pool (status page, slow log, terminate timeout):
/// refused, so that nobody believes they act.
const NOT_YET: [&str; 4] = [
    "status_path",
    "slowlog",
    "slowlog_timeout_ms",
    "request_terminate_timeout_ms",
];

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
            n if NOT_YET.contains(&n) => {
                return Err(format!(
                    "pool setting {n} is not implemented in this version"
                ))
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
        assert!(s.set("status_path", "/status").is_err());
        s.set("max_spare_servers", "9").unwrap();
        assert!(s.validate().is_err());
    }
}
