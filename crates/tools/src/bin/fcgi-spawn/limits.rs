//! Resource limits and the nice value, for the pool file's rlimit_files, rlimit_core and
//! process.priority: the master applies the `[global]` ones to itself, a pool supervisor its
//! pool's (their children inherit them).

/// setrlimit(2) with the soft and hard limits both `v` (`libc::RLIM_INFINITY`: unlimited).
pub fn set_rlimit(what: libc::__rlimit_resource_t, name: &str, v: u64) -> Result<(), String> {
    let lim = libc::rlimit {
        rlim_cur: v,
        rlim_max: v,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(what, &lim) } != 0 {
        return Err(format!(
            "failed to set {name} ({v}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// setpriority(2) on this process.
pub fn set_priority(p: i32) -> Result<(), String> {
    // SAFETY: setpriority(2) on this process (who = 0).
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, p) } != 0 {
        return Err(format!(
            "unable to set the priority {p}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
