//! `fcgi-spawn`: runs any FastCGI program under the library's pre-fork pool, with spawn-fcgi's
//! command line (docs/fcgi-spawn.md). The parent binds the socket (or inherits it), drops
//! privileges as spawn-fcgi does, and supervises; each worker is a fork that execs the program
//! with the listening socket on fd 0. A program on this project's library attaches to the
//! pool's scoreboard (status page, slow log, max_requests, SIGQUIT drain); any other libfcgi
//! program is drained with SIGTERM.
//!
//! With `-n` there is no pool: bind, drop privileges, exec the program in this process.
//!
//! With `--config FILE` (PHP-FPM's pool-file format, conf/) fcgi-spawn is a master of several
//! pools instead (master/): one pool supervisor per pool section (pool_proc.rs), reloads
//! that lose no request, systemd notify relayed (notify_relay.rs).
#![deny(clippy::undocumented_unsafe_blocks)]

mod args;
#[path = "../common/cli.rs"]
mod cli;
mod conf;
mod limits;
mod master;
mod notify_relay;
mod pool_proc;
mod privs;
mod socket;

use args::Options;
use clap::CommandFactory;
use fcgi_runtime::pool::{listen, Pool, Role};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::exit;

/// What `-p` listens on without `-a`.
const DEFAULT_ADDR: &str = "127.0.0.1";

/// Startup errors (socket, privileges, pool): exit status 1.
fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("fcgi-spawn: {msg}");
    exit(1)
}

fn main() {
    let mut o = match args::parse(std::env::args_os().collect()) {
        Ok(o) => o,
        Err(e) => {
            let mut cmd = args::Cli::command();
            match e {
                Ok(e) => cli::exit_on("fcgi-spawn", &mut cmd, e),
                Err(msg) => cli::usage_error("fcgi-spawn", &mut cmd, &msg),
            }
        }
    };
    if let Some(dir) = &o.generate_man {
        cli::generate_man("fcgi-spawn", args::Cli::command(), dir);
    }
    if let Some(file) = o.config.clone() {
        if o.test {
            master::test(&file, o.allow_root);
        }
        master::run(master::Args {
            file,
            allow_root: o.allow_root,
            pid_file: o.pid_file.clone(),
        });
    }
    let mut pool = if o.nofork {
        None
    } else {
        let mut p = Pool::new();
        for (name, value) in &o.settings {
            if let Err(e) = p.settings.set(name, value) {
                eprintln!("fcgi-spawn: {e}");
                exit(2);
            }
        }
        if let Err(e) = p.settings.validate() {
            eprintln!("fcgi-spawn: {e}");
            exit(2);
        }
        p.set_exec(true);
        Some(p)
    };
    drop_root_only_options(&mut o);
    if let Some(path) = &o.pid_file {
        write_pid_file(path);
    }
    let (user, sock_owner) = if privs::is_root() {
        let user =
            privs::resolve(o.user.as_deref(), o.group.as_deref()).unwrap_or_else(|e| fail(e));
        let mut sock = privs::resolve(o.sock_user.as_deref(), o.sock_group.as_deref())
            .unwrap_or_else(|e| fail(e));
        sock.uid = sock.uid.or(user.uid);
        sock.gid = sock.gid.or(user.gid);
        if user.uid.is_some() && user.gid.is_none() {
            eprintln!(
                "fcgi-spawn: WARNING: no group for uid {} and none given: only the user \
                 privileges will be dropped",
                user.uid.unwrap_or_default()
            );
        }
        (user, (sock.uid, sock.gid))
    } else {
        (privs::Ids::default(), (None, None))
    };
    let reuseport = pool.as_ref().is_some_and(|p| p.settings.reuseport);
    let mut unix_file = None;
    let mut bind = |o: &Options| {
        if let Some(f) = bind_socket(o, sock_owner, reuseport) {
            unix_file = Some(f);
        }
    };
    if o.sock_before_chroot || o.chroot.is_none() {
        bind(&o);
    }
    privs::set_group(&user).unwrap_or_else(|e| fail(e));
    if let Some(dir) = &o.chroot {
        privs::chroot(dir).unwrap_or_else(|e| fail(e));
        if !o.nofork && !Path::new("/proc/self/task").is_dir() {
            fail(format!(
                "no /proc in the chroot {}: the pool reads /proc (mount it there, or use -n)",
                dir.display()
            ));
        }
        if !o.sock_before_chroot {
            bind(&o);
        }
    }
    privs::set_user(&user).unwrap_or_else(|e| fail(e));
    if let Some(dir) = &o.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            fail(format!("chdir('{}') failed: {e}", dir.display()));
        }
    }
    let Some(mut pool) = pool.take() else {
        // -n: this process becomes the program.
        exec_program(&o, &[]);
    };
    match pool.run() {
        Err(e) => {
            cleanup(&o, unix_file.as_ref());
            fail(e)
        }
        Ok(Role::Worker(_)) => {
            let env = match pool.prepare_exec() {
                Ok(env) => env,
                Err(e) => {
                    eprintln!("fcgi-spawn: {e}");
                    // SAFETY: _exit in the forked worker: nothing of the parent's to unwind.
                    unsafe { libc::_exit(127) }
                }
            };
            exec_program(&o, &env);
        }
        Ok(Role::Stopped) => {
            pool.close_sockets();
            cleanup(&o, unix_file.as_ref());
            exit(0)
        }
    }
}

/// -u -g -U -G -c -S need root, as in spawn-fcgi; otherwise they are ignored (with a warning,
/// where spawn-fcgi is silent).
fn drop_root_only_options(o: &mut Options) {
    if privs::is_root() {
        return;
    }
    let mut ignored = Vec::new();
    for (flag, set) in [
        ("-u", o.user.take().is_some()),
        ("-g", o.group.take().is_some()),
        ("-U", o.sock_user.take().is_some()),
        ("-G", o.sock_group.take().is_some()),
        ("-c", o.chroot.take().is_some()),
        ("-S", std::mem::take(&mut o.sock_before_chroot)),
    ] {
        if set {
            ignored.push(flag);
        }
    }
    if !ignored.is_empty() {
        eprintln!(
            "fcgi-spawn: ignoring {} (root only; not running as root)",
            ignored.join(" ")
        );
    }
}

/// Binds -s or -p and puts the socket on fd 0; without either, takes the inherited socket
/// (LISTEN_FDS, else fd 0) and puts it on fd 0. Returns the Unix socket file it created.
fn bind_socket(
    o: &Options,
    owner: (Option<u32>, Option<u32>),
    reuseport: bool,
) -> Option<socket::UnixFile> {
    let backlog = o.backlog.unwrap_or(1024);
    let (fd, file) = if let Some(path) = &o.unix {
        let (fd, file) = socket::unix(path, backlog, owner, o.mode).unwrap_or_else(|e| fail(e));
        (fd, Some(file))
    } else if let Some(port) = o.port {
        // Without -a: loopback only (spawn-fcgi listens on every address).
        let ip =
            socket::parse_ip(o.addr.as_deref().unwrap_or(DEFAULT_ADDR)).unwrap_or_else(|e| fail(e));
        let fd = socket::tcp(ip, port, backlog, reuseport).unwrap_or_else(|e| fail(e));
        if o.addr.is_none() {
            eprintln!(
                "fcgi-spawn: listening on {DEFAULT_ADDR}:{port} only (the default without -a; \
                 -a 0.0.0.0 listens on every address)"
            );
        } else if !conf::directives::is_loopback(ip)
            && std::env::var_os("FCGI_WEB_SERVER_ADDRS").is_none()
        {
            eprintln!(
                "fcgi-spawn: WARNING: listening on {} with no FCGI_WEB_SERVER_ADDRS: any host \
                 that reaches the port can send requests",
                std::net::SocketAddr::new(ip, port)
            );
        }
        (fd, None)
    } else {
        let fds = listen::from_systemd();
        if let Some((&first, rest)) = fds.split_first() {
            for &fd in rest {
                eprintln!(
                    "fcgi-spawn: LISTEN_FDS: only the first socket is served; closing fd {fd}"
                );
                // A descriptor systemd passed to this process, unused.
                let _ = fcgi_runtime::sys::close(fd);
            }
            socket::onto_fd0(first).unwrap_or_else(|e| fail(e));
        } else if !fcgi_runtime::addr::fd_is_listening_socket(0) {
            cli::usage_error(
                "fcgi-spawn",
                &mut args::Cli::command(),
                "no socket given: use -p or -s, or pass a listening socket on fd 0 or with \
                 LISTEN_FDS/LISTEN_PID",
            );
        }
        return None;
    };
    // The pool must not take systemd's sockets instead of ours (the variables would name this
    // process with -n, too).
    for v in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    socket::onto_fd0(fd.into_raw_fd()).unwrap_or_else(|e| fail(e));
    file
}

/// Opens the pid file as spawn-fcgi does (created exclusively; an existing regular file is
/// truncated) and writes this process's pid: the supervisor's, or with -n the program's.
fn write_pid_file(path: &Path) {
    let open = |excl: bool| {
        let mut oo = OpenOptions::new();
        oo.write(true).mode(0o644);
        if excl {
            oo.create_new(true);
        } else {
            oo.create(true).truncate(true);
        }
        oo.open(path)
    };
    let f: File = match open(true) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            match std::fs::metadata(path) {
                Ok(md) if md.is_file() => {}
                Ok(_) => fail(format!(
                    "PID-file exists and isn't a regular file: '{}'",
                    path.display()
                )),
                Err(e) => fail(format!("stating PID-file '{}' failed: {e}", path.display())),
            }
            open(false).unwrap_or_else(|e| {
                fail(format!("opening PID-file '{}' failed: {e}", path.display()))
            })
        }
        Err(e) => fail(format!("opening PID-file '{}' failed: {e}", path.display())),
    };
    let mut f = f;
    if let Err(e) = writeln!(f, "{}", std::process::id()) {
        fail(format!("writing PID-file '{}' failed: {e}", path.display()));
    }
}

/// At a clean stop: the pid file and the Unix socket file go (when still reachable: not after
/// a chroot).
fn cleanup(o: &Options, unix: Option<&socket::UnixFile>) {
    if o.chroot.is_some() {
        return;
    }
    if let Some(path) = &o.pid_file {
        let ours =
            std::fs::read_to_string(path).is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }
    if let Some(f) = unix {
        f.remove();
    }
}

/// Execs the program with `env` added (and PHP_FCGI_CHILDREN for -C). Never returns: on
/// failure it prints the error and exits 127.
fn exec_program(o: &Options, env: &[(String, String)]) -> ! {
    for (k, v) in env {
        std::env::set_var(k, v);
    }
    if let Some(n) = o.php_children {
        std::env::set_var("PHP_FCGI_CHILDREN", n.to_string());
    }
    let argv: Vec<CString> = o
        .program
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_else(|_| fail("NUL in an argument")))
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: argv is a NULL-terminated array of NUL-terminated strings that outlive the call.
    unsafe { libc::execvp(ptrs[0], ptrs.as_ptr()) };
    eprintln!(
        "fcgi-spawn: exec {} failed: {}",
        o.program[0].to_string_lossy(),
        std::io::Error::last_os_error()
    );
    // SAFETY: _exit after a failed exec: in a forked worker nothing of the parent's may run.
    unsafe { libc::_exit(127) }
}
