//! The master's log (its lines on fd 2, syslog priorities for the journal) and the error_log
//! pipes that carry the pool supervisors' stderr to it.

use super::Master;
use crate::conf::Note;
use fcgi_runtime::log::Level;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The master's log: `fcgi-spawn: LEVEL: text` on fd 2 (`<N>fcgi-spawn: text` when fd 2 is
/// systemd's journal), one write per line; below `threshold` dropped.
pub(super) struct Logger {
    pub(super) threshold: Level,
    pub(super) journal: bool,
}

impl Logger {
    pub(super) fn stderr() -> Logger {
        let mut l = Logger {
            threshold: Level::Notice,
            journal: false,
        };
        l.stderr_changed();
        l
    }

    /// Reads again whether fd 2 is the journal's stream (JOURNAL_STREAM=dev:ino).
    pub(super) fn stderr_changed(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let want = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
            let (d, i) = v.trim().split_once(':')?;
            Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
        });
        // fd 2 stays open: the File is forgotten, not closed.
        // SAFETY: fd 2 is open for the life of the process.
        let f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(2) });
        let got = f.metadata().ok().map(|m| (m.dev(), m.ino()));
        self.journal = want.is_some() && got == want;
    }

    pub(super) fn line(&self, level: Level, text: &str) {
        if level < self.threshold {
            return;
        }
        let line = if self.journal {
            format!("<{}>fcgi-spawn: {text}\n", syslog_priority(level))
        } else {
            let name = match level {
                Level::Debug => "DEBUG",
                Level::Notice => "NOTICE",
                Level::Warning => "WARNING",
                Level::Error => "ERROR",
                Level::Alert => "ALERT",
            };
            format!("fcgi-spawn: {name}: {text}\n")
        };
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    pub(super) fn notes(&self, notes: &[Note]) {
        for n in notes {
            match n {
                Note::Notice(t) => self.line(Level::Notice, t),
                Note::Warning(t) => self.line(Level::Warning, t),
            }
        }
    }
}

fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Debug => 7,
        Level::Notice => 5,
        Level::Warning => 4,
        Level::Error => 3,
        Level::Alert => 1,
    }
}

/// An error_log pipe: a pool supervisor's stderr (and its programs').
pub(super) struct LogPipe {
    pub(super) fd: OwnedFd,
    pub(super) buf: Vec<u8>,
}

impl Master {
    /// Reads an error_log pipe; complete lines go to fd 2 (error_log), one write each.
    pub(super) fn read_pipe(&mut self, fd: RawFd) {
        let Some(i) = self.pipes.iter().position(|p| p.fd.as_raw_fd() == fd) else {
            return;
        };
        let mut buf = [0u8; 8192];
        loop {
            match fcgi_runtime::sys::read(fd, &mut buf) {
                Ok(0) => {
                    let p = self.pipes.remove(i);
                    if !p.buf.is_empty() {
                        let mut line = p.buf;
                        line.push(b'\n');
                        let _ = std::io::stderr().write_all(&line);
                    }
                    return;
                }
                Ok(n) => {
                    let p = &mut self.pipes[i];
                    p.buf.extend_from_slice(&buf[..n]);
                    if let Some(end) = p.buf.iter().rposition(|&b| b == b'\n') {
                        let rest = p.buf.split_off(end + 1);
                        let _ = std::io::stderr().write_all(&p.buf);
                        p.buf = rest;
                    } else if p.buf.len() > 16 * 1024 {
                        p.buf.push(b'\n');
                        let _ = std::io::stderr().write_all(&p.buf);
                        p.buf.clear();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}
