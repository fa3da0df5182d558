//! The pool's listening sockets: opened by the pool (`fcgi_pool_listen`), passed by systemd
//! (`LISTEN_FDS`/`LISTEN_PID`, as sd_listen_fds reads them), or inherited on fd 0 (spawn-fcgi,
//! web servers, systemd's StandardInput=socket).

use crate::{addr, sys};
use std::os::fd::{OwnedFd, RawFd};

/// First descriptor systemd passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: RawFd = 3;

/// Opens a listening socket for `text` (fcgi_listen's address syntax). Errors are messages.
pub fn open(text: &str, backlog: i32, reuseport: bool) -> Result<OwnedFd, String> {
    let parsed = addr::parse_listen(text).map_err(|e| format!("Cannot listen on '{text}': {e}"))?;
    let backlog = if backlog > 0 { backlog } else { 128 };
    addr::listen_with(&parsed, backlog, reuseport)
        .map_err(|e| format!("Cannot listen on '{text}': {e}"))
}

/// The sockets passed by systemd socket activation: fds 3.. when `LISTEN_PID` is this process
/// and `LISTEN_FDS` counts them. The variables are removed (as sd_listen_fds(1) does) and the
/// descriptors made close-on-exec. Empty when the variables are absent or not for us.
pub fn from_systemd() -> Vec<RawFd> {
    let pid = std::env::var("LISTEN_PID").ok();
    let n = std::env::var("LISTEN_FDS").ok();
    let (Some(pid), Some(n)) = (pid, n) else {
        return Vec::new();
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Vec::new();
    }
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let Ok(n) = n.trim().parse::<i32>() else {
        crate::fcgi_log!(Error, "ignoring LISTEN_FDS='{n}': not a number");
        return Vec::new();
    };
    (LISTEN_FDS_START..LISTEN_FDS_START.saturating_add(n.clamp(0, 1024)))
        .filter(|&fd| {
            if !addr::fd_is_listening_socket(fd) {
                crate::fcgi_log!(
                    Error,
                    "LISTEN_FDS: descriptor {fd} is not a listening socket"
                );
                return false;
            }
            let _ = sys::set_cloexec(fd, true);
            true
        })
        .collect()
}

/// The sockets a pool serves when the application opened none: systemd's, else fd 0 when it
/// is a listening socket.
pub fn inherited() -> Result<Vec<RawFd>, String> {
    let fds = from_systemd();
    if !fds.is_empty() {
        return Ok(fds);
    }
    if addr::fd_is_listening_socket(0) {
        return Ok(vec![0]);
    }
    Err(
        "pool: no listening socket (call fcgi_pool_listen, or pass one with LISTEN_FDS or \
         on fd 0)"
            .to_string(),
    )
}

/// The accept queue of a TCP listening socket: (connections waiting, backlog), from
/// TCP_INFO (for a listener the kernel reports them as `tcpi_unacked` and `tcpi_sacked`).
/// `None` for other sockets.
pub fn queue(fd: RawFd) -> Option<(u32, u32)> {
    let info = sys::tcp_info(fd).ok()?;
    (info.tcpi_state == 10).then_some((info.tcpi_unacked, info.tcpi_sacked))
}
