//! systemd's notify protocol (sd_notify(3)) for the pool's supervisor: `READY=1` once the
//! sockets listen and the first workers are up, `RELOADING=1` then `READY=1` around a reload,
//! `STOPPING=1`, `STATUS=` with the counts (when they change, at most once a second) and
//! `WATCHDOG=1` every `WATCHDOG_USEC / 2` when systemd asks for it. One datagram per message
//! to the `NOTIFY_SOCKET` path or abstract name (`@name`); nothing when the variable is unset.
//! The variables are taken out of the environment, so workers and their programs never
//! notify in the supervisor's name. fcgi-spawn's `--config` master uses the same sender for
//! its own messages to systemd.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// STATUS= at most this often.
const STATUS_EVERY: Duration = Duration::from_secs(1);

pub struct Notify {
    sock: Option<(UnixDatagram, String)>,
    /// WATCHDOG_USEC, when systemd asked this process for pings.
    interval: Option<Duration>,
    /// When `watchdog()` pings: every half interval.
    watchdog: Option<Duration>,
    next_watchdog: Instant,
    last_status: String,
    next_status: Instant,
}

impl Notify {
    /// Reads and removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (the caller is
    /// single-threaded: the pool checked it before starting).
    pub fn from_env() -> Notify {
        let path = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|p| !p.is_empty());
        let usec = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&u| u > 0);
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .is_none_or(|p| p == crate::sys::pid());
        for v in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(v);
        }
        let sock = path.and_then(|p| match UnixDatagram::unbound() {
            Ok(s) => {
                let _ = s.set_nonblocking(true);
                Some((s, p))
            }
            Err(e) => {
                crate::fcgi_log!(Warning, "pool: NOTIFY_SOCKET: cannot open a socket: {e}");
                None
            }
        });
        let now = Instant::now();
        let interval = usec
            .filter(|_| for_us && sock.is_some())
            .map(Duration::from_micros);
        Notify {
            interval,
            watchdog: interval.map(|i| i / 2),
            sock,
            next_watchdog: now,
            last_status: String::new(),
            next_status: now,
        }
    }

    pub fn enabled(&self) -> bool {
        self.sock.is_some()
    }

    /// WATCHDOG_USEC as a duration, when systemd asked this process for watchdog pings.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Sends one message (`KEY=value` lines).
    pub fn send(&self, msg: &str) {
        let Some((s, path)) = &self.sock else {
            return;
        };
        let r = if let Some(name) = path.strip_prefix('@') {
            abstract_send(s, name.as_bytes(), msg.as_bytes())
        } else {
            s.send_to(msg.as_bytes(), path)
        };
        if let Err(e) = r {
            crate::fcgi_log!(Debug, "pool: NOTIFY_SOCKET {path}: {e}");
        }
    }

    /// `STATUS=text` when it differs from the last one sent and a second has passed.
    pub fn status(&mut self, text: String) {
        if self.sock.is_none() || text == self.last_status || Instant::now() < self.next_status {
            return;
        }
        self.send(&format!("STATUS={text}"));
        self.last_status = text;
        self.next_status = Instant::now() + STATUS_EVERY;
    }

    /// `WATCHDOG=1` when it is due.
    pub fn watchdog(&mut self) {
        let Some(every) = self.watchdog else {
            return;
        };
        let now = Instant::now();
        if now >= self.next_watchdog {
            self.send("WATCHDOG=1");
            self.next_watchdog = now + every;
        }
    }
}

#[cfg(target_os = "linux")]
fn abstract_send(s: &UnixDatagram, name: &[u8], msg: &[u8]) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    s.send_to_addr(msg, &addr)
}

#[cfg(not(target_os = "linux"))]
fn abstract_send(_: &UnixDatagram, _: &[u8], _: &[u8]) -> std::io::Result<usize> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}
