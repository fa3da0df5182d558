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
