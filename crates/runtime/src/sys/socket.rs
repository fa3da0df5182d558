//! Sockets: reading and writing connections, accepting, socket options.

use std::io;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::sockaddr::{zeroed_storage, SockAddr};

/// `read(2)`, retried on EINTR.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live, writable slice of buf.len() bytes.
    unsafe { read_raw(fd, buf.as_mut_ptr(), buf.len()) }
}

/// `read(2)` of at most `len` bytes into `buf`, retried on EINTR; a failure leaves errno as
/// the failing call set it (the C faces report it).
///
/// # Safety
/// `buf` is valid for writes of `len` bytes.
pub unsafe fn read_raw(fd: RawFd, buf: *mut u8, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: per the function's contract, the kernel may write `len` bytes at `buf`.
        match syscall!(read(fd, buf.cast(), len)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(|n| n as usize),
        }
    }
}

/// `write(2)` once, not retried: for a signal handler's byte on a self-pipe.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice of buf.len() readable bytes; write is async-signal-safe.
    syscall!(write(fd, buf.as_ptr().cast(), buf.len())).map(|n| n as usize)
}

/// `send(2)` with MSG_NOSIGNAL (a vanished peer gives EPIPE, not SIGPIPE), or `write(2)` when
/// `fd` is not a socket, of at most `len` bytes from `buf`; retried on EINTR. A failure leaves
/// errno as the failing call set it.
///
/// # Safety
/// `buf` is valid for reads of `len` bytes.
pub unsafe fn send_raw(fd: RawFd, buf: *const u8, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: per the function's contract, the kernel may read `len` bytes at `buf`.
        let mut r = syscall!(send(fd, buf.cast(), len, libc::MSG_NOSIGNAL));
        if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK)) {
            // SAFETY: the same buffer, for a descriptor that is not a socket.
            r = syscall!(write(fd, buf.cast(), len));
        }
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(|n| n as usize),
        }
    }
}

/// [`send_raw`] of a slice.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice of buf.len() readable bytes.
    unsafe { send_raw(fd, buf.as_ptr(), buf.len()) }
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
    let _ = shutdown(fd, libc::SHUT_WR);
}

/// `shutdown(2)` of direction `how` (`SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`).
pub fn shutdown(fd: RawFd, how: libc::c_int) -> io::Result<()> {
    // SAFETY: shutdown takes no pointers.
    syscall!(shutdown(fd, how)).map(drop)
}

/// Accepts one connection, non-blocking and close-on-exec, with the peer's address (no
/// getpeername(2) needed afterwards).
pub fn accept(listen: RawFd) -> io::Result<(OwnedFd, libc::sockaddr_storage)> {
    loop {
        let mut ss = zeroed_storage();
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

/// Accepts one connection with one accept4(2) call: the new descriptor blocking and
/// close-on-exec, the peer's address not asked for. EINTR and EAGAIN are returned, not
/// retried: libfcgi's `OS_Accept` decides what they mean.
pub fn accept_blocking(listen: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: NULL address and length pointers are allowed (no address is written).
    let fd = syscall!(accept4(
        listen,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        libc::SOCK_CLOEXEC
    ))?;
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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
    local_addr(fd).is_ok_and(|a| matches!(a.family(), libc::AF_INET | libc::AF_INET6))
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

/// The address socket `fd` is bound to (getsockname(2)).
pub fn local_addr(fd: RawFd) -> io::Result<SockAddr> {
    let mut ss = zeroed_storage();
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
    let fd = socket(to.family(), libc::SOCK_STREAM | libc::SOCK_NONBLOCK)?;
    loop {
        // SAFETY: `to.as_ptr()` points at a live sockaddr_storage; the kernel reads at most
        // `to.len` bytes of it and refuses (EINVAL) a length beyond sockaddr_storage's size.
        match syscall!(connect(fd.as_raw_fd(), to.as_ptr(), to.len)) {
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

/// A new close-on-exec socket of `domain` and `ty` (`SOCK_STREAM`, optionally with
/// `SOCK_NONBLOCK`).
pub fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket takes no pointers.
    let fd = syscall!(socket(domain, ty | libc::SOCK_CLOEXEC, 0))?;
    // SAFETY: socket returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets an integer socket option (`setsockopt(2)` with a `c_int` value).
pub fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the value points at a live c_int and the length given is its size.
    syscall!(setsockopt(
        fd,
        level,
        name,
        (&value as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    ))
    .map(drop)
}

/// `bind(2)` to `addr`.
pub fn bind(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: `addr.as_ptr()` points at a live sockaddr_storage; the kernel reads at most
    // `addr.len` bytes of it and refuses (EINVAL) a length beyond sockaddr_storage's size.
    syscall!(bind(fd, addr.as_ptr(), addr.len)).map(drop)
}

/// `listen(2)` with `backlog`.
pub fn listen(fd: RawFd, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: listen takes no pointers.
    syscall!(listen(fd, backlog)).map(drop)
}

/// The peer of a connected socket (getpeername(2)); ENOTCONN for a socket without one (a
/// listening socket), ENOTSOCK or EBADF for other descriptors.
pub fn peer_addr(fd: RawFd) -> io::Result<SockAddr> {
    let mut ss = zeroed_storage();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss`/`len` describe a writable buffer large enough for any socket address; an
    // invalid `fd` only makes the call fail.
    syscall!(getpeername(
        fd,
        (&mut ss as *mut libc::sockaddr_storage).cast(),
        &mut len
    ))?;
    Ok(SockAddr { ss, len })
}

/// TCP_INFO of a TCP socket.
pub fn tcp_info(fd: RawFd) -> io::Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain old data (integers); all-zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info`/`len` describe a writable tcp_info of the size given.
    syscall!(getsockopt(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_INFO,
        (&mut info as *mut libc::tcp_info).cast(),
        &mut len,
    ))?;
    Ok(info)
}
