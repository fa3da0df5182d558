//! Threads the runtime starts. Each one blocks every signal from its first instruction, so a
//! signal sent to the process reaches only the application's threads: an application that
//! blocks SIGTERM or SIGQUIT with `sigprocmask` (PHP-FPM's workers do) finds it pending instead
//! of having it delivered to (and, at its default action, kill the process from) a thread it
//! knows nothing of.

use super::signal::{all_signals, empty_set, sigmask};
use std::io;
use std::thread::{Builder, JoinHandle};

/// Spawns `f` on a thread that blocks every signal. The calling thread's mask is set to
/// "everything" around the spawn and restored afterwards: a new thread inherits its creator's
/// mask, so it never runs a single instruction with a signal unblocked.
pub fn spawn_signals_blocked<F, T>(builder: Builder, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let mut old = empty_set();
    sigmask(libc::SIG_SETMASK, &all_signals(), Some(&mut old))?;
    let spawned = builder.spawn(f);
    // Cannot fail: the set came from pthread_sigmask itself.
    let _ = sigmask(libc::SIG_SETMASK, &old, None);
    spawned
}

#[cfg(test)]
mod tests {
    use super::super::signal::is_member as blocks;
    use super::*;

    /// The calling thread's mask.
    fn current() -> libc::sigset_t {
        let mut m = empty_set();
        sigmask(libc::SIG_BLOCK, &empty_set(), Some(&mut m)).unwrap();
        m
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
