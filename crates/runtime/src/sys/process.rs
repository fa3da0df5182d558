//! The process: its id (cached across calls and forgotten in a forked child), exit handlers,
//! starting a program.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn forget_pid_after_fork() {
    PID.store(0, Ordering::Relaxed);
}

/// The process id without a system call per use (glibc no longer caches getpid, and the
/// request path asks several times per request whether state belongs to this process).
/// A fork handler clears the cache in the child.
pub fn pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid_after_fork)) };
    });
    let p = std::process::id();
    PID.store(p, Ordering::Relaxed);
    p
}

/// Registers `f` to run at exit(3) (atexit(3)); false when the table of handlers is full.
pub fn at_exit(f: extern "C" fn()) -> bool {
    // SAFETY: registers a plain extern "C" function taking no arguments; it lives as long as
    // the program (a function item).
    unsafe { libc::atexit(f) == 0 }
}

/// Starts `path` as a FastCGI application, as libfcgi's `OS_SpawnChild` does: fork; the child
/// gets `listen_fd` as descriptor 0 (inheritable), has descriptors 1 and 2 closed, and runs
/// `execv(path, [path])` with the current environment, or `_exit`s with errno when that fails.
/// Returns the child's pid; the child is not waited for.
pub fn spawn_on_fd0(path: &CStr, listen_fd: RawFd) -> io::Result<libc::pid_t> {
    let argv: [*const libc::c_char; 2] = [path.as_ptr(), std::ptr::null()];
    // SAFETY: fork takes no pointers. In a threaded process the child may only make
    // async-signal-safe calls until it execs: it makes only close, dup2, fcntl, execv and
    // _exit, on values prepared before the fork (`argv` and `path` stay alive: the child
    // never returns from this block).
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            if listen_fd != 0 {
                libc::close(0);
                libc::dup2(listen_fd, 0);
                libc::close(listen_fd);
            } else {
                // Already fd 0: only drop close-on-exec.
                libc::fcntl(0, libc::F_SETFD, 0);
            }
            libc::close(1);
            libc::close(2);
            libc::execv(path.as_ptr(), argv.as_ptr());
            libc::_exit(*libc::__errno_location());
        }
        Ok(pid)
    }
}

/// fork(2). Returns the child's pid in the parent and 0 in the child.
///
/// # Safety
/// In a process with more than one thread, the child may only make async-signal-safe calls
/// until it execs or exits (another thread may have held a lock, of malloc for instance, at
/// the fork). A single-threaded caller's child may run any code.
pub unsafe fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: fork takes no pointers; what the child may do is the caller's contract.
    syscall!(fork())
}

/// kill(2): sends `sig` to process `pid`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes no pointers.
    syscall!(kill(pid, sig)).map(drop)
}

/// tgkill(2): sends `sig` to thread `tid` of process `pid`.
pub fn tgkill(pid: libc::pid_t, tid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: the tgkill system call takes three integers, no pointers.
    syscall!(syscall(libc::SYS_tgkill, pid, tid, sig)).map(drop)
}

/// waitpid(2) with WNOHANG: `(pid, status)` when child `pid` has ended (and is now reaped),
/// `(0, 0)` while it runs.
pub fn waitpid_nohang(pid: libc::pid_t) -> io::Result<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    // SAFETY: `status` is a live c_int for waitpid to fill in.
    let r = syscall!(waitpid(pid, &mut status, libc::WNOHANG))?;
    Ok((r, status))
}

/// How a child ended, from waitpid's `status`, for log lines: "exit status N", "killed by
/// signal N", or the raw status.
pub fn describe_wait_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status:#x}")
    }
}

/// prctl(PR_SET_PDEATHSIG): the calling thread's process gets `sig` when the thread that
/// forked it ends.
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number, no pointer.
    syscall!(prctl(libc::PR_SET_PDEATHSIG, sig)).map(drop)
}

/// getppid(2).
pub fn parent_pid() -> libc::pid_t {
    // SAFETY: getppid takes no arguments and cannot fail.
    unsafe { libc::getppid() }
}
