//! The listening socket fcgi-spawn binds for -p or -s, as spawn-fcgi binds it: TCP with
//! SO_REUSEADDR (the library's `addr::listen_with`); a Unix socket after checking that no live
//! server answers on the path (refused) and removing a stale socket file, then chown (-U/-G)
//! and chmod (-M, else 0660 as far as the umask allows).

use fcgi::runtime::addr::{self, ListenAddr};
use std::ffi::CString;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
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

/// A TCP listening socket on `ip` (default 0.0.0.0) and `port`.
pub fn tcp(ip: Option<&str>, port: u16, backlog: i32, reuseport: bool) -> Result<OwnedFd, String> {
    let ip: IpAddr = match ip {
        None => IpAddr::from([0, 0, 0, 0]),
        Some(s) => s
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("'{s}' is not a valid IP address"))?,
    };
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
    // SAFETY: socket(2) returns a new descriptor or -1.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(format!(
            "cannot create a socket: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: `raw` is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_un is plain data; all-zero is valid.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in sun.sun_path.iter_mut().zip(p.as_os_str().as_bytes()) {
        *d = *s as libc::c_char;
    }
    let len =
        (std::mem::size_of::<libc::sa_family_t>() + p.as_os_str().len() + 1) as libc::socklen_t;
    // SAFETY: `sun` is a valid sockaddr_un of at least `len` bytes.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sun as *const libc::sockaddr_un).cast(),
            len,
        )
    } != 0
    {
        return Err(format!(
            "bind {path} failed: {}",
            io::Error::last_os_error()
        ));
    }
    let fail = |what: String| -> String {
        let _ = std::fs::remove_file(p);
        what
    };
    let c = CString::new(p.as_os_str().as_bytes()).map_err(|_| "NUL in the socket path")?;
    if owner.0.is_some() || owner.1.is_some() {
        let uid = owner.0.unwrap_or(u32::MAX);
        let gid = owner.1.unwrap_or(u32::MAX);
        // SAFETY: chown on a NUL-terminated path; -1 leaves an id unchanged.
        if unsafe { libc::chown(c.as_ptr(), uid, gid) } != 0 {
            return Err(fail(format!(
                "couldn't chown socket {path}: {}",
                io::Error::last_os_error()
            )));
        }
    }
    let mode = mode.unwrap_or_else(|| 0o660 & !umask());
    // SAFETY: chmod on a NUL-terminated path.
    if unsafe { libc::chmod(c.as_ptr(), mode as libc::mode_t) } != 0 {
        return Err(fail(format!(
            "couldn't chmod socket {path}: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: listen on the bound socket.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } != 0 {
        return Err(fail(format!(
            "listen on {path} failed: {}",
            io::Error::last_os_error()
        )));
    }
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
        // SAFETY: dup2 onto fd 0; the old fd 0 (stdin) is replaced, as spawn-fcgi does.
        if unsafe { libc::dup2(fd, 0) } < 0 {
            return Err(format!(
                "cannot move the socket to fd 0: {}",
                io::Error::last_os_error()
            ));
        }
        // SAFETY: `fd` is a descriptor this process owns and no longer uses.
        unsafe { libc::close(fd) };
    }
    // SAFETY: fcntl on fd 0: clear close-on-exec.
    unsafe { libc::fcntl(0, libc::F_SETFD, 0) };
    Ok(())
}
