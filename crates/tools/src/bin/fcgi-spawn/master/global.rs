//! The [global] directives the master applies to itself (error_log on fd 2, log_level,
//! rlimits, priority) and its pid file.

use super::{Logger, Master};
use crate::conf::{self, Config};
use crate::limits;
use fcgi_runtime::log::Level;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The global directives fcgi-spawn applies to itself: error_log (fd 2 then points at it),
/// log_level, rlimits and priority (inherited by every pool supervisor).
pub(super) fn apply_global(
    conf: &Config,
    log: &mut Logger,
    error_log: &mut Option<PathBuf>,
    previous: Option<&conf::Global>,
) -> Result<(), String> {
    let g = &conf.global;
    log.threshold = g.log_level.unwrap_or(Level::Notice);
    if *error_log != g.error_log {
        match &g.error_log {
            Some(path) => open_error_log(path)?,
            None => {
                let saved = ORIGINAL_STDERR.load(std::sync::atomic::Ordering::Relaxed);
                if saved >= 0 {
                    let _ = fcgi_runtime::sys::dup2(saved, 2);
                }
            }
        }
        log.stderr_changed();
        *error_log = g.error_log.clone();
    }
    if previous.is_some_and(|p| {
        p.rlimit_files == g.rlimit_files
            && p.rlimit_core == g.rlimit_core
            && p.priority == g.priority
    }) {
        return Ok(());
    }
    if let Some(v) = g.rlimit_files {
        limits::set_rlimit(libc::RLIMIT_NOFILE, "rlimit_files", v)?;
    }
    if let Some(v) = g.rlimit_core {
        limits::set_rlimit(libc::RLIMIT_CORE, "rlimit_core", v)?;
    }
    if let Some(p) = g.priority {
        limits::set_priority(p)?;
    }
    Ok(())
}

/// fcgi-spawn's stderr before error_log replaced it (-1: not replaced yet).
static ORIGINAL_STDERR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Opens error_log (append, created 0600 as FPM does) and puts it on fd 2.
pub(super) fn open_error_log(path: &Path) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    if ORIGINAL_STDERR.load(Ordering::Relaxed) < 0 {
        use std::os::fd::{BorrowedFd, IntoRawFd};
        // SAFETY: fd 2 is open for the life of the process; it is only duplicated here
        // (close-on-exec).
        let saved = unsafe { BorrowedFd::borrow_raw(2) }
            .try_clone_to_owned()
            .map_or(-1, |fd| fd.into_raw_fd());
        ORIGINAL_STDERR.store(saved, Ordering::Relaxed);
    }
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("failed to open error_log ({}): {e}", path.display()))?;
    fcgi_runtime::sys::dup2(f.as_raw_fd(), 2)
        .map_err(|e| format!("cannot put error_log on fd 2: {e}"))?;
    Ok(())
}

/// The pid file as FPM writes it: the old one unlinked, a new one created, the master's pid.
pub(super) fn write_pid(path: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| writeln!(f, "{}", std::process::id()))
        .map_err(|e| format!("Unable to create the PID file ({}): {e}", path.display()))
}

impl Master {
    pub(super) fn remove_pid_file(&self) {
        if let Some(path) = &self.pid_file {
            let ours = std::fs::read_to_string(path)
                .is_ok_and(|s| s.trim() == std::process::id().to_string());
            if ours {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
