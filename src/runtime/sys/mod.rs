//! The system-call fence: every libc call the runtime makes on descriptors (and on the signal
//! mask of the threads it starts) lives here, in
//! files named for the operating-system concept they wrap (mio's `sys/unix` layout). Each
//! goes through [`syscall!`], which turns `-1` into `io::Error::last_os_error()`; each call
//! site says in a `// SAFETY:` line why its pointers are valid.

/// Calls a libc function and maps a negative result to the OS error.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)? ) ) => {{
        #[allow(unused_unsafe)]
        let res = unsafe { libc::$fn($($arg, )*) };
        if res < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

pub mod epoll;
mod eventfd;
mod poll;
mod process;
mod socket;
mod thread;
mod timerfd;

pub use epoll::{Epoll, Event};
pub use eventfd::{wake_raw, EventFd};
pub use poll::{await_peer_shutdown, poll_one, poll_two};
pub use process::pid;
pub use socket::{
    accept, check_listening, connect_nonblocking, has_unread_input, is_tcp, local_addr, peek, read,
    set_defer_accept, set_nodelay, set_nonblocking, shutdown_write, take_error, writev, SockAddr,
};
pub use thread::spawn_signals_blocked;
pub use timerfd::TimerFd;
