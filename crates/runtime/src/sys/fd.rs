//! File descriptors whatever they refer to: closing, duplicating, their flags.

use std::io;
use std::os::fd::RawFd;

/// `close(2)`. The descriptor is gone afterwards even when an error is reported (Linux).
pub fn close(fd: RawFd) -> io::Result<()> {
    // SAFETY: close takes no pointers; closing a descriptor that other code still uses is a
    // logic error, not a memory-safety one (callers close what they own).
    syscall!(close(fd)).map(drop)
}

/// `dup2(2)`: makes `to` a copy of `from` (without close-on-exec).
pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 takes no pointers.
    syscall!(dup2(from, to)).map(drop)
}

/// Sets (or clears) close-on-exec, the only descriptor flag (`F_SETFD`).
pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: fcntl(F_SETFD) takes an integer argument, no pointer.
    syscall!(fcntl(fd, libc::F_SETFD, flags)).map(drop)
}

/// Adds `flags` (`O_NONBLOCK`, `O_APPEND`, ...) to the file status flags: `F_GETFL`, then
/// `F_SETFL` with the union.
pub fn add_status_flags(fd: RawFd, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFL) takes no further argument.
    let v = syscall!(fcntl(fd, libc::F_GETFL))?;
    // SAFETY: fcntl(F_SETFL) takes an integer argument, no pointer.
    syscall!(fcntl(fd, libc::F_SETFL, v | flags)).map(drop)
}

/// pipe2(2) with `flags` (`O_NONBLOCK`, `O_CLOEXEC`): `[read end, write end]`, owned by the
/// caller.
pub fn pipe(flags: libc::c_int) -> io::Result<[RawFd; 2]> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a live array of two c_ints for pipe2 to fill in.
    syscall!(pipe2(fds.as_mut_ptr(), flags))?;
    Ok(fds)
}

/// The device and inode numbers of what `fd` refers to (fstat(2)), as systemd's
/// `JOURNAL_STREAM=<dev>:<ino>` names a stream.
pub fn dev_ino(fd: RawFd) -> io::Result<(u64, u64)> {
    // SAFETY: stat is plain old data (integers); all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live, writable stat for fstat to fill in.
    syscall!(fstat(fd, &mut st))?;
    Ok((st.st_dev, st.st_ino))
}

/// A close-on-exec duplicate of `fd` numbered `min` or above (fcntl F_DUPFD_CLOEXEC).
pub fn dup_at_least(fd: RawFd, min: RawFd) -> io::Result<RawFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes an integer argument, no pointer.
    syscall!(fcntl(fd, libc::F_DUPFD_CLOEXEC, min))
}
