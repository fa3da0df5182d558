//! The slow-request log: one line per request that ran past `slowlog_timeout_ms`, appended
//! to the `slowlog` file (O_APPEND, one write(2) per line, so the parent and every worker can
//! share it) or, without a file, to the runtime's log. The parent writes a line when a request
//! crosses the threshold while still running (FPM's moment), the worker another when it ends,
//! with its full duration. SIGUSR1 reopens the file (log rotation): the handlers only count
//! the signal, and the next line reopens.

use crate::sys;
use parking_lot::Mutex;
use std::os::fd::{IntoRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

struct File {
    path: String,
    fd: RawFd,
    /// The reopen count (`signals::reopen_requests`) the descriptor was opened under.
    generation: u64,
}

/// A log file appended to with one write(2) per line (O_APPEND: several processes share it),
/// reopened at the first line after a SIGUSR1. The slow log and the access log
/// (`access_log.rs`) are two.
pub struct AppendLog {
    what: &'static str,
    file: Mutex<Option<File>>,
}

static SLOW: AppendLog = AppendLog::new("slowlog");

impl AppendLog {
    pub const fn new(what: &'static str) -> AppendLog {
        AppendLog {
            what,
            file: Mutex::new(None),
        }
    }

    /// Opens (or reopens) `path` for appending; `Err` is a message for the log.
    fn open(&self, path: &str) -> Result<RawFd, String> {
        let what = self.what;
        if path.contains('\0') {
            return Err(format!("{what} '{path}': NUL in path"));
        }
        // O_WRONLY | O_APPEND | O_CREAT, mode 0640; the standard library adds O_CLOEXEC.
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)
            .map(IntoRawFd::into_raw_fd)
            .map_err(|e| format!("cannot open the {what} '{path}': {e}"))
    }

    /// Uses `path` in this process (empty: none). Opening it here reports a bad path at once.
    pub fn configure(&self, path: &str) -> Result<(), String> {
        let mut g = self.file.lock();
        if let Some(f) = g.take() {
            // The descriptor this log opened.
            let _ = sys::close(f.fd);
        }
        if path.is_empty() {
            return Ok(());
        }
        let fd = self.open(path)?;
        *g = Some(File {
            path: path.to_string(),
            fd,
            generation: super::signals::reopen_requests(),
        });
        Ok(())
    }

    /// Reopens the file now (the parent, after SIGUSR1; workers reopen at their next line).
    pub fn reopen_now(&self) {
        if let Some(f) = self.file.lock().as_mut() {
            self.reopen(f);
        }
    }

    fn reopen(&self, f: &mut File) {
        f.generation = super::signals::reopen_requests();
        match self.open(&f.path) {
            Ok(fd) => {
                // The old descriptor this log opened, replaced by the new one.
                let _ = sys::close(f.fd);
                f.fd = fd;
            }
            Err(e) => crate::fcgi_log!(Error, "{e} (keeping the old descriptor)"),
        }
    }

    /// Appends `line` (its newline included) with one write(2), reopening the file first
    /// after a SIGUSR1; false when no file is configured.
    pub fn write(&self, line: &[u8]) -> bool {
        let mut g = self.file.lock();
        let Some(f) = g.as_mut() else {
            return false;
        };
        if super::signals::reopen_requests() != f.generation {
            self.reopen(f);
        }
        // One write(2), so that lines of several processes do not interleave; a short or
        // failed write loses the line, which a log may do.
        let _ = sys::write(f.fd, line);
        true
    }
}

/// Uses `path` for the slow log of this process (empty: the runtime's log).
pub fn configure(path: &str) -> Result<(), String> {
    SLOW.configure(path)
}

/// Reopens the slow log now (the parent, after SIGUSR1).
pub fn reopen_now() {
    SLOW.reopen_now();
}

/// Appends one line to the slow log (the newline is added), else logs it.
pub fn write(line: &str) {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    if !SLOW.write(&buf) {
        crate::fcgi_log!(Warning, "{line}");
    }
}

/// `2026-11-22T10:04:05.123Z` for a Unix time in milliseconds.
pub fn timestamp(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86400) as i64);
    let rem = secs % 86400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The line for a slow request. `running`: logged while it still runs.
pub fn line(
    pool: &str,
    pid: i32,
    start_unix_ms: u64,
    method: &str,
    uri: &str,
    ms: u64,
    running: bool,
) -> String {
    let now = super::scoreboard::unix_ms();
    format!(
        "[{}] [pool {pool}] pid {pid}: slow request {} {} started {} {} {ms} ms",
        timestamp(now),
        printable(method),
        printable(uri),
        timestamp(start_unix_ms),
        if running {
            "still running after"
        } else {
            "took"
        },
    )
}

/// Control characters and spaces escaped, so a URI cannot forge or split log lines.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c == ' ' {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(951_782_400_000 + 1), "2000-02-29T00:00:00.001Z");
        assert_eq!(timestamp(1_795_392_245_678), "2026-11-23T00:04:05.678Z");
    }

    #[test]
    fn lines_cannot_be_split() {
        assert_eq!(printable("/a b\r\nX"), "/a\\x20b\\x0d\\x0aX");
        assert_eq!(printable(""), "-");
    }
}
