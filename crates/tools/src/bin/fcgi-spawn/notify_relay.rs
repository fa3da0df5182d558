//! systemd's notify protocol (sd_notify(3)) around the pools of a pool file
//! (docs/operations-design.md, "systemd"). Each pool supervisor is the library's, which
//! notifies `$NOTIFY_SOCKET`; the master gives them a private socket of its own ([`Relay`]: an
//! abstract-namespace datagram socket, whose messages are taken only from the pool
//! supervisors' pids, read with SCM_CREDENTIALS) and speaks to systemd itself ([`Systemd`]):
//! one READY=1 once every pool is ready, RELOADING=1 / READY=1 around a reload, STOPPING=1,
//! STATUS= summarising the pools, and WATCHDOG=1 while every pool supervisor that pings its
//! own watchdog keeps doing so.

use std::io;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The master's socket for its pool supervisors' notifications.
pub struct Relay {
    sock: UnixDatagram,
    /// The value for the pool supervisors' NOTIFY_SOCKET (`@` then the abstract name).
    pub address: String,
}

impl Relay {
    /// Binds a fresh abstract name (`fcgi-spawn/<pid>/<random>`), non-blocking, with
    /// SO_PASSCRED so that each message arrives with its sender's pid.
    pub fn open() -> io::Result<Relay> {
        let mut last = None;
        for _ in 0..8 {
            let name = format!("fcgi-spawn/{}/{:016x}", std::process::id(), random());
            match UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?) {
                Ok(sock) => {
                    sock.set_nonblocking(true)?;
                    fcgi_runtime::sys::set_int_option(
                        sock.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_PASSCRED,
                        1,
                    )?;
                    return Ok(Relay {
                        sock,
                        address: format!("@{name}"),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }

    /// The next message and its sender's pid; `None` when none is waiting.
    pub fn recv(&self) -> Option<(libc::pid_t, String)> {
        loop {
            let mut buf = [0u8; 4096];
            // Room for one ucred and a few descriptors, aligned for cmsghdr.
            let mut cbuf = [0u64; 16];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: msghdr is a plain C struct; zeroed is a valid empty header.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
            // SAFETY: the header points at `buf` and `cbuf`, which outlive the call.
            let n = unsafe {
                libc::recvmsg(
                    self.sock.as_raw_fd(),
                    &mut msg,
                    libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
                )
            };
            if n < 0 {
                return None;
            }
            let mut pid = None;
            // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within
            // msg_controllen; each header's data is read unaligned.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    let (level, kind) = ((*c).cmsg_level, (*c).cmsg_type);
                    if level == libc::SOL_SOCKET && kind == libc::SCM_CREDENTIALS {
                        let cred: libc::ucred =
                            std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::ucred>());
                        pid = Some(cred.pid);
                    } else if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
                        // Descriptors nobody asked for: closed.
                        let data = libc::CMSG_DATA(c);
                        let len = (*c).cmsg_len as usize - (data as usize - c as usize);
                        for i in 0..len / std::mem::size_of::<libc::c_int>() {
                            let fd = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                            let _ = fcgi_runtime::sys::close(fd);
                        }
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            let (Some(pid), true) = (pid, msg.msg_flags & libc::MSG_TRUNC == 0) else {
                continue;
            };
            return Some((
                pid,
                String::from_utf8_lossy(&buf[..n as usize]).into_owned(),
            ));
        }
    }
}

/// A few random bits for the abstract name (not a secret: messages are checked by pid):
/// std's randomly keyed hasher, over the time.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The messages of one datagram: `KEY=VALUE` lines.
pub fn fields(msg: &str) -> impl Iterator<Item = (&str, &str)> {
    msg.lines().filter_map(|l| l.split_once('='))
}

/// CLOCK_MONOTONIC in microseconds, to the millisecond (MONOTONIC_USEC= beside RELOADING=1).
pub fn monotonic_usec() -> u64 {
    fcgi_runtime::sys::clock_ms(libc::CLOCK_MONOTONIC) * 1000
}
