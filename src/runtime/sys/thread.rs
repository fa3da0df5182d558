//! Threads the runtime starts. Each one blocks every signal from its first instruction, so a
//! signal sent to the process reaches only the application's threads: an application that
//! blocks SIGTERM or SIGQUIT with `sigprocmask` (PHP-FPM's workers do) finds it pending instead
//! of having it delivered to (and, at its default action, kill the process from) a thread it
//! knows nothing of.

use std::io;
use std::mem::MaybeUninit;
use std::ptr;
use std::thread::{Builder, JoinHandle};

/// `pthread_sigmask` returns its error number instead of setting errno, so it does not fit
/// [`syscall!`].
fn sigmask(
    how: libc::c_int,
    set: &libc::sigset_t,
    old: Option<&mut libc::sigset_t>,
) -> io::Result<()> {
    let old = old.map_or(ptr::null_mut(), |o| o as *mut libc::sigset_t);
    // SAFETY: `set` is an initialised signal set and `old` is NULL or points at one to fill.
    match unsafe { libc::pthread_sigmask(how, set, old) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Every signal. The kernel ignores SIGKILL and SIGSTOP in a mask, and glibc keeps the two it
/// uses itself (thread cancellation, setxid) out of it.
fn all_signals() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises the set it is given.
    unsafe {
        libc::sigfillset(set.as_mut_ptr());
        set.assume_init()
    }
}

/// Spawns `f` on a thread that blocks every signal. The calling thread's mask is set to
/// "everything" around the spawn and restored afterwards: a new thread inherits its creator's
/// mask, so it never runs a single instruction with a signal unblocked.
pub fn spawn_signals_blocked<F, T>(builder: Builder, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: a zeroed sigset_t is a valid (empty) set; pthread_sigmask overwrites it.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    sigmask(libc::SIG_SETMASK, &all_signals(), Some(&mut old))?;
    let spawned = builder.spawn(f);
    // Cannot fail: the set came from pthread_sigmask itself.
    let _ = sigmask(libc::SIG_SETMASK, &old, None);
    spawned
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's mask.
    fn current() -> libc::sigset_t {
        // SAFETY: zeroed sets are valid and empty; pthread_sigmask fills `m`.
        let (none, mut m): (libc::sigset_t, libc::sigset_t) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        sigmask(libc::SIG_BLOCK, &none, Some(&mut m)).unwrap();
        m
    }

    fn blocks(m: &libc::sigset_t, sig: libc::c_int) -> bool {
        // SAFETY: an initialised set.
        unsafe { libc::sigismember(m, sig) == 1 }
    }

    #[test]
    fn the_new_thread_blocks_everything_and_the_caller_keeps_its_mask() {
        let before = current();
        let h = spawn_signals_blocked(Builder::new(), current).unwrap();
        let inside = h.join().unwrap();
        for sig in [
            libc::SIGTERM,
            libc::SIGQUIT,
            libc::SIGINT,
            libc::SIGUSR1,
            libc::SIGHUP,
        ] {
            assert!(
                blocks(&inside, sig),
                "signal {sig} not blocked in the thread"
            );
        }
        let after = current();
        for sig in 1..32 {
            assert_eq!(blocks(&before, sig), blocks(&after, sig), "signal {sig}");
        }
    }
}
