//! Clocks (clock_gettime(2)) read as milliseconds, where `Instant` (opaque) and `SystemTime`
//! do not fit: a CLOCK_MONOTONIC reading shared between processes through the scoreboard.

/// The time of `clock` (`CLOCK_MONOTONIC`, `CLOCK_REALTIME`, ...) in milliseconds.
pub fn clock_ms(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec for clock_gettime to fill in (it leaves it untouched on
    // failure, an invalid clock: then this reads 0).
    let _ = syscall!(clock_gettime(clock, &mut ts));
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The time of `clock` in microseconds.
pub fn clock_us(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as in `clock_ms`.
    let _ = syscall!(clock_gettime(clock, &mut ts));
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// CPU time (user, system; microseconds) of `who` (`RUSAGE_SELF`, `RUSAGE_THREAD`) and the
/// process's peak resident set size in bytes (getrusage(2)); zeros if it fails.
pub fn cpu_and_peak_rss(who: libc::c_int) -> (u64, u64, u64) {
    // SAFETY: all-zero bytes are a valid `rusage` (integers and timevals).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live rusage for getrusage to fill in.
    if syscall!(getrusage(who, &mut ru)).is_err() {
        return (0, 0, 0);
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime), us(ru.ru_stime), ru.ru_maxrss as u64 * 1024)
}

/// `unix_secs` in local time, formatted by strftime(3) with `fmt`; empty if it does not fit in
/// 256 bytes.
pub fn strftime_local(fmt: &std::ffi::CStr, unix_secs: i64) -> Vec<u8> {
    let t: libc::time_t = unix_secs as libc::time_t;
    // SAFETY: all-zero bytes are a valid `tm` (integers and a null zone pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: `t` and `tm` are live for localtime_r, which is thread-safe.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return Vec::new();
    }
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; `fmt` is NUL-terminated; `tm` was filled in.
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
    buf[..n].to_vec()
}
