//! A pool supervisor of a pool file: a fork of the master that puts the pool's socket on fd 0,
//! applies the pool's per-process directives (rlimits, priority, user and group, chroot,
//! chdir), and runs the library's pool in exec mode, as flag mode does in main.rs. Each worker
//! execs the pool's `command` with the environment FPM would give it (clear_env, env[], USER
//! and HOME) plus what the library adds for its programs.

use crate::conf::PoolSpec;
use crate::{limits, privs};
use fcgi_runtime::pool::{Pool, Role};
use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// What the master hands a new pool supervisor.
pub struct Start<'a> {
    pub spec: &'a PoolSpec,
    /// The pool's listening socket (the master's descriptor).
    pub listen_fd: RawFd,
    /// Where its stderr goes: the write end of a pipe to the master (error_log), or `None`
    /// (the master's own stderr).
    pub log_fd: Option<RawFd>,
    /// NOTIFY_SOCKET for the pool supervisor: the master's relay.
    pub notify: &'a str,
    /// WATCHDOG_USEC to pass on (the pool supervisor pings the relay).
    pub watchdog_usec: Option<u64>,
    /// The master's pid: the pool supervisor ends when the master does.
    pub master: libc::pid_t,
}

/// Variables a pool supervisor's programs never get from its environment.
const NOT_FOR_PROGRAMS: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// In the forked child: never returns.
pub fn run(st: Start<'_>) -> ! {
    let name = st.spec.name.clone();
    let die = |msg: String| -> ! {
        eprintln!("fcgi-spawn: ERROR: [pool {name}] {msg}");
        // SAFETY: _exit in the forked pool supervisor: nothing of the master's to unwind.
        unsafe { libc::_exit(1) }
    };
    // SIGTERM (a fast stop) if the master dies; and if it died already, stop now.
    let _ = fcgi_runtime::sys::set_parent_death_signal(libc::SIGTERM);
    if fcgi_runtime::sys::parent_pid() != st.master {
        // SAFETY: as above.
        unsafe { libc::_exit(1) }
    }
    // The master blocks every signal (it reads them from a signalfd): a supervisor starts with
    // none blocked, as a fresh process would.
    fcgi_runtime::sys::signal::set_mask(&fcgi_runtime::sys::signal::empty_set());

    if let Err(e) = descriptors(&st) {
        die(e);
    }
    for v in NOT_FOR_PROGRAMS {
        std::env::remove_var(v);
    }
    std::env::set_var("NOTIFY_SOCKET", st.notify);
    if let Some(usec) = st.watchdog_usec {
        std::env::set_var("WATCHDOG_USEC", usec.to_string());
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    }
    let spec = st.spec;
    if let Err(e) = limits(spec) {
        die(e);
    }
    if let Err(e) = privileges(spec) {
        die(e);
    }
    let program = match crate::conf::directives::find_program(&spec.command[0], None) {
        Ok(p) => p,
        Err(e) => die(format!("command: {e}")),
    };
    // The environment before the pool runs: what the library adds to it afterwards (its log
    // level, ...) is for the programs too.
    let before: HashMap<OsString, OsString> = std::env::vars_os().collect();

    let mut pool = Pool::new();
    pool.settings = spec.settings.clone();
    pool.set_exec(true);
    match pool.run() {
        Err(e) => die(e),
        Ok(Role::Worker(_)) => {
            let extra = match pool.prepare_exec() {
                Ok(env) => env,
                Err(e) => {
                    eprintln!("fcgi-spawn: [pool {name}] {e}");
                    // SAFETY: _exit in the forked worker.
                    unsafe { libc::_exit(127) }
                }
            };
            let env = program_env(spec, &before, &extra);
            exec(&program, &spec.command, &env)
        }
        Ok(Role::Stopped) => std::process::exit(0),
    }
}

/// fd 0: the pool's socket; fd 2: the log pipe (if any); every other descriptor of the
/// master's (signalfd, relay, other pools' sockets, pipes) closed.
fn descriptors(st: &Start<'_>) -> Result<(), String> {
    use fcgi_runtime::sys;
    if st.listen_fd != 0 {
        sys::dup2(st.listen_fd, 0).map_err(|e| format!("cannot put the socket on fd 0: {e}"))?;
    }
    let _ = sys::set_cloexec(0, false);
    if let Some(fd) = st.log_fd {
        sys::dup2(fd, 2).map_err(|e| format!("cannot put the log pipe on fd 2: {e}"))?;
        let _ = sys::set_cloexec(2, false);
    }
    close_from(3);
    Ok(())
}

/// Closes every descriptor from `first` up.
fn close_from(first: RawFd) {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds.into_iter().filter(|&fd| fd >= first) {
        let _ = fcgi_runtime::sys::close(fd);
    }
}

/// rlimit_files, rlimit_core and process.priority (FPM applies them in each worker; here the
/// supervisor takes them and its workers inherit them).
fn limits(spec: &PoolSpec) -> Result<(), String> {
    if let Some(n) = spec.rlimit_files {
        limits::set_rlimit(libc::RLIMIT_NOFILE, "rlimit_files", n)?;
    }
    if let Some(n) = spec.rlimit_core {
        limits::set_rlimit(libc::RLIMIT_CORE, "rlimit_core", n)?;
    }
    if let Some(p) = spec.priority {
        limits::set_priority(p)?;
    }
    Ok(())
}

/// As root: group, chroot, user, in spawn-fcgi's order (privs.rs); then chdir (`/` after a
/// chroot without one, as FPM).
fn privileges(spec: &PoolSpec) -> Result<(), String> {
    let ids = spec.run_as.clone().unwrap_or_default();
    privs::set_group(&ids)?;
    if let Some(dir) = &spec.chroot {
        privs::chroot(dir)?;
        if !Path::new("/proc/self/task").is_dir() {
            return Err(format!(
                "no /proc in the chroot {}: the pool reads /proc (mount it there)",
                dir.display()
            ));
        }
    }
    privs::set_user(&ids)?;
    if let Some(dir) = &spec.chdir {
        std::env::set_current_dir(dir)
            .map_err(|e| format!("chdir('{}') failed: {e}", dir.display()))?;
    }
    Ok(())
}

/// The program's environment: FPM's (cleared unless clear_env = no; USER and HOME of the
/// pool's user; env[]), FCGI_WEB_SERVER_ADDRS for listen.allowed_clients, what the library
/// set since `before`, and the library's `extra` (the scoreboard).
fn program_env(
    spec: &PoolSpec,
    before: &HashMap<OsString, OsString>,
    extra: &[(String, String)],
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    let put = |env: &mut Vec<(OsString, OsString)>, k: OsString, v: OsString| {
        env.retain(|(e, _)| *e != k);
        env.push((k, v));
    };
    if !spec.clear_env {
        let mut base: Vec<_> = before
            .iter()
            .filter(|(k, _)| {
                !NOT_FOR_PROGRAMS
                    .iter()
                    .any(|n| k.as_bytes() == n.as_bytes())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        base.sort();
        env = base;
    }
    if let Some(ids) = &spec.run_as {
        if let Some(user) = &ids.user_name {
            put(
                &mut env,
                "USER".into(),
                OsString::from_vec(user.as_bytes().to_vec()),
            );
        }
        if let Some(home) = &ids.home {
            put(&mut env, "HOME".into(), home.into());
        }
    }
    for (k, v) in &spec.env {
        put(&mut env, k.into(), v.into());
    }
    if let Some(list) = &spec.allowed_clients {
        put(&mut env, "FCGI_WEB_SERVER_ADDRS".into(), list.into());
    }
    for (k, v) in std::env::vars_os() {
        if NOT_FOR_PROGRAMS
            .iter()
            .any(|n| k.as_bytes() == n.as_bytes())
        {
            continue;
        }
        if before.get(&k) != Some(&v) {
            put(&mut env, k, v);
        }
    }
    for (k, v) in extra {
        put(&mut env, k.into(), v.into());
    }
    env
}

/// execve(2) the program; on failure, the reason and exit 127 (the pool logs it and restarts
/// the slot with back-off).
fn exec(program: &Path, args: &[String], env: &[(OsString, OsString)]) -> ! {
    let c = |b: &[u8]| CString::new(b).unwrap_or_default();
    let path = c(program.as_os_str().as_bytes());
    let argv: Vec<CString> = args.iter().map(|a| c(a.as_bytes())).collect();
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            c(&kv)
        })
        .collect();
    let mut argp: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envpp: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envpp.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of NUL-terminated strings that outlive the call.
    unsafe { libc::execve(path.as_ptr(), argp.as_ptr(), envpp.as_ptr()) };
    eprintln!(
        "fcgi-spawn: exec {} failed: {}",
        program.display(),
        std::io::Error::last_os_error()
    );
    // SAFETY: _exit after a failed exec in a forked worker.
    unsafe { libc::_exit(127) }
}
