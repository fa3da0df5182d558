//! Shared memory: memory files (memfd_create(2)) and shared mappings (mmap(2)), for the
//! pool's scoreboard.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A close-on-exec memory file named `name` (for /proc), `len` bytes of zeros.
pub fn memfd(name: &CStr, len: usize) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated.
    let fd = syscall!(memfd_create(name.as_ptr(), libc::MFD_CLOEXEC))?;
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ftruncate takes no pointers. On failure `fd` is dropped (closed).
    syscall!(ftruncate(fd.as_raw_fd(), len as libc::off_t))?;
    Ok(fd)
}

/// A new shared mapping of `len` bytes, readable and writable: of file `fd` from its start,
/// or anonymous (zeros, shared with forked children) when `fd` is `None`. The kernel picks
/// the address, so no existing memory is touched.
pub fn map_shared(len: usize, fd: Option<RawFd>) -> io::Result<*mut u8> {
    let flags = match fd {
        Some(_) => libc::MAP_SHARED,
        None => libc::MAP_SHARED | libc::MAP_ANONYMOUS,
    };
    // SAFETY: no address hint and no MAP_FIXED: the kernel places the mapping where nothing
    // is mapped; the descriptor is only read by the kernel.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd.unwrap_or(-1),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

/// Removes a mapping [`map_shared`] made.
///
/// # Safety
/// `base` and `len` are exactly a mapping from `map_shared`, not unmapped yet, and nothing
/// uses its memory afterwards.
pub unsafe fn unmap(base: *mut u8, len: usize) {
    // SAFETY: per the function's contract.
    let _ = syscall!(munmap(base.cast(), len));
}

/// The size in bytes of the file `fd` refers to (fstat(2)).
pub fn file_size(fd: RawFd) -> io::Result<u64> {
    // SAFETY: stat is plain old data (integers); all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live, writable stat for fstat to fill in.
    syscall!(fstat(fd, &mut st))?;
    Ok(st.st_size as u64)
}

/// The size of a memory page (sysconf(_SC_PAGESIZE)), at least 4096.
pub fn page_size() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    n.max(4096) as u64
}
