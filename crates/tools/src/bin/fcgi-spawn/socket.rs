//! The listening socket fcgi-spawn binds for -p or -s, as spawn-fcgi binds it: TCP with
//! SO_REUSEADDR (the library's `addr::listen_with`); a Unix socket after checking that no live
//! server answers on the path (refused) and removing a stale socket file, then chown (-U/-G)
//! and chmod (-M, else 0660 as far as the umask allows).

use fcgi_runtime::addr::{self, ListenAddr};
use fcgi_runtime::sys::{self, SockAddr};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// A Unix socket file this process created: removed at a clean stop if it is still ours.
pub struct UnixFile {
    pub path: PathBuf,
    dev: u64,
    ino: u64,
}

impl UnixFile {
    /// Unlinks the socket file if it is still the one bound here (not replaced by another
    /// instance meanwhile).
    pub fn remove(&self) {
        if let Ok(md) = std::fs::symlink_metadata(&self.path) {
            if md.dev() == self.dev && md.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// The address of `-a` (`[v6]` brackets accepted).
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("'{s}' is not a valid IP address"))
}

/// A TCP listening socket on `ip` and `port`.
pub fn tcp(ip: IpAddr, port: u16, backlog: i32, reuseport: bool) -> Result<OwnedFd, String> {
    let sa = SocketAddr::new(ip, port);
    addr::listen_with(&ListenAddr::Tcp(sa), backlog, reuseport)
        .map_err(|e| format!("cannot listen on {sa}: {e}"))
}

/// A Unix listening socket at `path`, owned by `owner` (uid, gid; `None` leaves each) with
/// `mode` (else 0660 & ~umask).
pub fn unix(
    path: &str,
    backlog: i32,
    owner: (Option<u32>, Option<u32>),
    mode: Option<u32>,
) -> Result<(OwnedFd, UnixFile), String> {
    let p = Path::new(path);
    // sun_path holds 108 bytes with the NUL.
    if p.as_os_str().len() >= 108 {
        return Err(format!("the Unix socket path '{path}' is too long"));
    }
    if UnixStream::connect(p).is_ok() {
        return Err(format!(
            "socket {path} is already in use (a server answers on it), can't spawn"
        ));
    }
    match std::fs::symlink_metadata(p) {
        Ok(md) if md.file_type().is_socket() => std::fs::remove_file(p)
            .map_err(|e| format!("removing the old socket {path} failed: {e}"))?,
        Ok(_) => return Err(format!("{path} exists and is not a socket")),
        Err(_) => {}
    }
    // Shorter than sun_path (checked above); a NUL cannot come from a command line.
    let sa = SockAddr::unix(p.as_os_str().as_bytes()).ok_or("NUL in the socket path")?;
    let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM)
        .map_err(|e| format!("cannot create a socket: {e}"))?;
    sys::bind(fd.as_raw_fd(), &sa).map_err(|e| format!("bind {path} failed: {e}"))?;
    let fail = |what: String| -> String {
        let _ = std::fs::remove_file(p);
        what
    };
    if owner.0.is_some() || owner.1.is_some() {
        // chown(2); `None` (-1) leaves an id unchanged.
        std::os::unix::fs::chown(p, owner.0, owner.1)
            .map_err(|e| fail(format!("couldn't chown socket {path}: {e}")))?;
    }
    let mode = mode.unwrap_or_else(|| 0o660 & !umask());
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail(format!("couldn't chmod socket {path}: {e}")))?;
    sys::listen(fd.as_raw_fd(), backlog)
        .map_err(|e| fail(format!("listen on {path} failed: {e}")))?;
    let md = std::fs::symlink_metadata(p).map_err(|e| fail(format!("stat {path}: {e}")))?;
    Ok((
        fd,
        UnixFile {
            path: p.to_path_buf(),
            dev: md.dev(),
            ino: md.ino(),
        },
    ))
}

fn umask() -> u32 {
    // SAFETY: umask(2) cannot fail; it is set back at once (the process has one thread).
    unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m as u32
    }
}

/// Moves `fd` to descriptor 0 (inheritable), where the pool and libfcgi programs look for the
/// listening socket.
pub fn onto_fd0(fd: RawFd) -> Result<(), String> {
    if fd != 0 {
        // The old fd 0 (stdin) is replaced, as spawn-fcgi does.
        sys::dup2(fd, 0).map_err(|e| format!("cannot move the socket to fd 0: {e}"))?;
        // A descriptor this process owns and no longer uses.
        let _ = sys::close(fd);
    }
    // dup2 leaves fd 0 inheritable; clearing close-on-exec covers fd == 0 too.
    let _ = sys::set_cloexec(0, false);
    Ok(())
}
