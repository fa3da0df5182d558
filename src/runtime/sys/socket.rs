//! Sockets: reading and writing connections, accepting, socket options.

use std::io;
use std::io::IoSlice;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `read(2)`, retried on EINTR.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is a valid writable region of buf.len() bytes.
        match syscall!(read(fd, buf.as_mut_ptr().cast(), buf.len())) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(|n| n as usize),
        }
    }
}

/// `writev(2)` (at most 1024 slices), retried on EINTR. Uses `sendmsg` with MSG_NOSIGNAL on
/// sockets so a closed peer gives EPIPE, not SIGPIPE.
pub fn writev(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let n = bufs.len().min(1024);
    loop {
        // SAFETY: msghdr is plain data; zeroed is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with iovec (documented guarantee on Unix).
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = n as _;
        // SAFETY: msg points at n valid iovecs that outlive the call.
        match syscall!(sendmsg(fd, &msg, libc::MSG_NOSIGNAL)) {
            Ok(r) => return Ok(r as usize),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOTSOCK) => {
                    // SAFETY: the same iovecs, as for sendmsg.
                    return syscall!(writev(fd, bufs.as_ptr().cast(), n as i32))
                        .map(|r| r as usize);
                }
                _ => return Err(e),
            },
        }
    }
}

/// True when bytes the peer sent are waiting unread on `fd` (a peek that does not wait; the
/// peer's end of input, or an error, count as nothing unread).
pub fn has_unread_input(fd: RawFd) -> bool {
    matches!(peek(fd, &mut [0u8]), Ok(n) if n > 0)
}

/// Copies up to `buf.len()` bytes waiting on socket `fd` without taking them (MSG_PEEK) and
/// without waiting. Returns how many.
pub fn peek(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a valid writable region of buf.len() bytes.
    syscall!(recv(
        fd,
        buf.as_mut_ptr().cast(),
        buf.len(),
        libc::MSG_PEEK | libc::MSG_DONTWAIT
    ))
    .map(|n| n as usize)
}

/// Ok if `fd` is a listening socket. Otherwise the error accept(2) would give (EBADF,
/// ENOTSOCK, or EINVAL for a socket that does not listen): polling such a descriptor for
/// connections would wait forever (a pipe) or fail to register (a regular file).
pub fn check_listening(fd: RawFd) -> io::Result<()> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writing, and `len` is the size of `v`.
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ACCEPTCONN,
        (&mut v as *mut libc::c_int).cast(),
        &mut len,
    ))?;
    if v == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(())
}

/// `shutdown(fd, SHUT_WR)`; errors are ignored (the peer may be gone).
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: shutdown takes no pointers.
    let _ = syscall!(shutdown(fd, libc::SHUT_WR));
}

/// Accepts one connection, non-blocking and close-on-exec, with the peer's address (no
/// getpeername(2) needed afterwards).
pub fn accept(listen: RawFd) -> io::Result<(OwnedFd, libc::sockaddr_storage)> {
    loop {
        // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `ss`/`len` describe a writable buffer large enough for any socket address.
        match syscall!(accept4(
            listen,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            Ok(fd) => return Ok((unsafe { OwnedFd::from_raw_fd(fd) }, ss)),
        }
    }
}

/// Sets O_NONBLOCK on a descriptor.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an integer descriptor takes no pointers.
    let fl = syscall!(fcntl(fd, libc::F_GETFL))?;
    if fl & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        syscall!(fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
    }
    Ok(())
}

/// True for an IPv4 or IPv6 socket.
pub fn is_tcp(fd: RawFd) -> bool {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss`/`len` describe a writable buffer large enough for any socket address.
    syscall!(getsockname(
        fd,
        (&mut ss as *mut libc::sockaddr_storage).cast(),
        &mut len
    ))
    .is_ok()
        && matches!(ss.ss_family as libc::c_int, libc::AF_INET | libc::AF_INET6)
}

/// Sets TCP_DEFER_ACCEPT to `secs` (errors ignored: an optimisation).
pub fn set_defer_accept(fd: RawFd, secs: libc::c_int) {
    // SAFETY: a pointer to a c_int and its size.
    let _ = syscall!(setsockopt(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_DEFER_ACCEPT,
        (&secs as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    ));
}

/// Sets TCP_NODELAY (ignored for non-TCP sockets).
pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: a pointer to a c_int and its size.
    let _ = syscall!(setsockopt(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_NODELAY,
        (&one as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    ));
}

/// A socket address as the kernel gives and takes it.
#[derive(Clone, Copy)]
pub struct SockAddr {
    pub ss: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl SockAddr {
    /// The address family (`AF_INET`, `AF_INET6`, `AF_UNIX`, ...).
    pub fn family(&self) -> libc::c_int {
        self.ss.ss_family as libc::c_int
    }
}

/// The address socket `fd` is bound to (getsockname(2)).
pub fn local_addr(fd: RawFd) -> io::Result<SockAddr> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss`/`len` describe a writable buffer large enough for any socket address.
    syscall!(getsockname(
        fd,
        (&mut ss as *mut libc::sockaddr_storage).cast(),
        &mut len
    ))?;
    Ok(SockAddr { ss, len })
}

/// A non-blocking, close-on-exec stream socket connecting to `to`: `Ok` once connected or
/// while the connection is in progress (EINPROGRESS; a Unix socket whose backlog is full gives
/// EAGAIN, an error here).
pub fn connect_nonblocking(to: &SockAddr) -> io::Result<OwnedFd> {
    // SAFETY: socket takes no pointers.
    let fd = syscall!(socket(
        to.family(),
        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0
    ))?;
    // SAFETY: socket returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    loop {
        // SAFETY: `to.ss`/`to.len` are an address getsockname filled in.
        match syscall!(connect(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            (&to.ss as *const libc::sockaddr_storage).cast(),
            to.len
        )) {
            Ok(_) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => return Ok(fd),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The pending error of socket `fd` (SO_ERROR): how a non-blocking connect ended.
pub fn take_error(fd: RawFd) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a pointer to a c_int and its size.
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        (&mut err as *mut libc::c_int).cast(),
        &mut len
    ))?;
    if err == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(err))
    }
}
