//! Signal dispositions (sigaction(2)) and signal masks (pthread_sigmask(3)).

use std::io;
use std::mem::MaybeUninit;
use std::ptr;

/// A `sigaction` that is all zero: no handler (SIG_DFL), an empty mask (on Linux the empty
/// set is all zero bits), no flags.
fn zeroed_action() -> libc::sigaction {
    // SAFETY: sigaction is plain old data (a handler address, a bit set, integers); all-zero
    // bytes are a valid value of it.
    unsafe { std::mem::zeroed() }
}

/// The current disposition of `sig`.
pub fn action(sig: libc::c_int) -> io::Result<libc::sigaction> {
    let mut old = zeroed_action();
    // SAFETY: a NULL new action only queries; `old` is a live sigaction to fill in.
    syscall!(sigaction(sig, ptr::null(), &mut old))?;
    Ok(old)
}

/// Sets the disposition of `sig` to `handler` with `flags` (`SA_RESTART`, ...) and an empty
/// mask. Returns the disposition it replaced.
///
/// # Safety
/// `handler` is `SIG_DFL`, `SIG_IGN`, or the address of an `extern "C" fn(c_int)` that makes
/// only async-signal-safe calls (it may interrupt any code, malloc included).
pub unsafe fn set_action(
    sig: libc::c_int,
    handler: libc::sighandler_t,
    flags: libc::c_int,
) -> io::Result<libc::sigaction> {
    let mut act = zeroed_action();
    act.sa_sigaction = handler;
    act.sa_mask = empty_set();
    act.sa_flags = flags;
    let mut old = zeroed_action();
    // SAFETY: `act` is an initialised sigaction whose handler the caller vouches for (the
    // function's contract); `old` is a live sigaction to fill in.
    syscall!(sigaction(sig, &act, &mut old))?;
    Ok(old)
}

/// Puts back a disposition that [`action`] or [`set_action`] returned.
///
/// # Safety
/// `old` is such a disposition (its handler was valid for `sig` before; a made-up one may
/// point anywhere).
pub unsafe fn restore_action(sig: libc::c_int, old: &libc::sigaction) -> io::Result<()> {
    // SAFETY: `old` is a disposition the kernel returned (the function's contract); the
    // previous one is not asked for (NULL).
    syscall!(sigaction(sig, old, ptr::null_mut())).map(drop)
}

/// The set of no signal.
pub fn empty_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set it is given (it cannot fail for a valid
    // pointer), so assume_init reads an initialised value.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

/// Every signal. The kernel ignores SIGKILL and SIGSTOP in a mask, and glibc keeps the two it
/// uses itself (thread cancellation, setxid) out of it.
pub fn all_signals() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises the whole set it is given (it cannot fail for a valid
    // pointer), so assume_init reads an initialised value.
    unsafe {
        libc::sigfillset(set.as_mut_ptr());
        set.assume_init()
    }
}

/// True when `sig` is in `set`.
pub fn is_member(set: &libc::sigset_t, sig: libc::c_int) -> bool {
    // SAFETY: `set` is an initialised signal set, only read.
    unsafe { libc::sigismember(set, sig) == 1 }
}

/// `pthread_sigmask(how, set, old)` on the calling thread. It returns its error number
/// instead of setting errno, so it does not go through `syscall!`.
pub fn sigmask(
    how: libc::c_int,
    set: &libc::sigset_t,
    old: Option<&mut libc::sigset_t>,
) -> io::Result<()> {
    let old = old.map_or(ptr::null_mut(), |o| o as *mut libc::sigset_t);
    // SAFETY: `set` is an initialised signal set and `old` is NULL or points at a live set
    // to fill in.
    match unsafe { libc::pthread_sigmask(how, set, old) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Blocks every signal in the calling thread; returns the mask it replaced.
pub fn block_all() -> libc::sigset_t {
    let mut old = empty_set();
    // Cannot fail: SIG_SETMASK with valid sets.
    let _ = sigmask(libc::SIG_SETMASK, &all_signals(), Some(&mut old));
    old
}

/// Sets the calling thread's mask (one that [`block_all`] returned, or [`empty_set`]).
pub fn set_mask(mask: &libc::sigset_t) {
    // Cannot fail: SIG_SETMASK with a valid set.
    let _ = sigmask(libc::SIG_SETMASK, mask, None);
}
