//! errno(3): the calling thread's error number, for the C faces that report failures the C way
//! (-1 and `errno`) and for signal handlers that must leave it as they found it.

/// The calling thread's errno.
pub fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns the address of the calling thread's errno, valid for
    // the whole life of the thread.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's errno. Async-signal-safe.
pub fn set_errno(e: libc::c_int) {
    // SAFETY: as in `errno`: the calling thread's errno slot, always valid for writing.
    unsafe { *libc::__errno_location() = e };
}
