//! The master's signals: read from a signalfd, acted on (reap, reload, stop, reopen logs),
//! and relayed to the pool supervisors once they can take them.

use super::children::handlers_installed;
use super::global::open_error_log;
use super::{Master, Stop};
use fcgi_runtime::log::Level;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The master's signals: every one blocked and read from a signalfd (those it does not act
/// on, SIGPIPE included, are read and dropped). Pool supervisors unblock them.
pub(super) fn signals() -> std::io::Result<OwnedFd> {
    use fcgi_runtime::sys::signal;
    let set = signal::all_signals();
    // The process has one thread: blocking here blocks the signals for the whole process.
    signal::block_all();
    // SAFETY: a valid, initialised signal set; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor signalfd just returned, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "a signal",
    }
}

impl Master {
    pub(super) fn read_signals(&mut self) {
        // signalfd_siginfo: 128 bytes, the signal's number first (u32).
        let mut buf = [0u8; 128];
        while let Ok(128) = fcgi_runtime::sys::read(self.sigfd.as_raw_fd(), &mut buf) {
            let signo = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
            self.on_signal(signo as libc::c_int);
        }
    }

    fn on_signal(&mut self, sig: libc::c_int) {
        match sig {
            libc::SIGCHLD => self.reap(),
            libc::SIGHUP | libc::SIGUSR2 if self.stopping.is_none() => self.reload(sig),
            libc::SIGTERM | libc::SIGINT => self.stop(Stop::Fast, sig),
            libc::SIGQUIT => self.stop(Stop::Graceful, sig),
            libc::SIGUSR1 => {
                self.log
                    .line(Level::Notice, "reopening log files (SIGUSR1)");
                if let Some(p) = self.error_log.clone() {
                    match open_error_log(&p) {
                        Ok(()) => self.log.stderr_changed(),
                        Err(e) => self.log.line(Level::Error, &e),
                    }
                }
                let pids: Vec<libc::pid_t> = self.children.keys().copied().collect();
                for pid in pids {
                    self.deliver(pid, libc::SIGUSR1);
                }
            }
            _ => {}
        }
    }

    /// Sends `sig` to a pool supervisor once it can take it: before the library's handlers are
    /// installed, a stop becomes SIGTERM (the supervisor has no worker yet) and other signals
    /// are dropped (it starts with the current configuration and logs anyway).
    pub(super) fn deliver(&mut self, pid: libc::pid_t, sig: libc::c_int) {
        let Some(c) = self.children.get_mut(&pid) else {
            return;
        };
        if !c.handlers && handlers_installed(pid) {
            c.handlers = true;
        }
        let sig = match (c.handlers, sig) {
            (true, s) => s,
            (false, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT) => libc::SIGTERM,
            (false, _) => return,
        };
        let _ = fcgi_runtime::sys::kill(pid, sig);
    }

    fn stop(&mut self, kind: Stop, sig: libc::c_int) {
        match (self.stopping, kind) {
            (Some(Stop::Fast), _) | (Some(Stop::Graceful), Stop::Graceful) => return,
            _ => {}
        }
        self.stopping = Some(kind);
        self.log.line(
            Level::Notice,
            &format!(
                "{} ({}): stopping {} pool supervisor(s)",
                if kind == Stop::Fast {
                    "fast stop"
                } else {
                    "graceful stop"
                },
                signal_name(sig),
                self.children.len()
            ),
        );
        if let Some(sd) = &self.systemd {
            sd.send("STOPPING=1");
        }
        for p in self.pools.values_mut() {
            p.restart_at = None;
        }
        let sig = if kind == Stop::Fast {
            libc::SIGTERM
        } else {
            libc::SIGQUIT
        };
        let pids: Vec<libc::pid_t> = self.children.keys().copied().collect();
        for pid in pids {
            self.deliver(pid, sig);
        }
    }
}
