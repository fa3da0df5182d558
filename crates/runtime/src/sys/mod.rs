//! The system-call fence: the libc calls of the library (descriptors, sockets and their
//! addresses, signal dispositions and masks, errno, starting a program) live here, in files
//! named for the operating-system concept they wrap (mio's `sys/unix` layout). Each goes
//! through `syscall!`, which turns `-1` into `io::Error::last_os_error()`, where the call
//! reports errors that way; each call site says in a `// SAFETY:` line why its pointers are
//! valid. `tools/check-syscall-fence.sh` (part of `make lint`) rejects a `libc::` call
//! elsewhere in src/ unless its allow-list names it with a reason.

/// Calls a libc function and maps a negative result to the OS error.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)? ) ) => {{
        // SAFETY: the macro only forwards the call; each use of `syscall!` has its own
        // `// SAFETY:` line saying why that call's arguments are valid.
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
mod errno;
mod eventfd;
mod fd;
mod mman;
mod poll;
mod process;
pub mod signal;
mod sockaddr;
mod socket;
mod thread;
mod time;
mod timerfd;
mod users;

pub use epoll::{Epoll, Event};
pub use errno::{errno, set_errno};
pub use eventfd::{wake_raw, EventFd};
pub use fd::{add_status_flags, close, dev_ino, dup2, dup_at_least, pipe, set_cloexec};
pub use mman::{file_size, map_shared, memfd, page_size, unmap};
pub use poll::{await_peer_shutdown, poll, poll_one, poll_two, ppoll};
pub use process::{
    at_exit, describe_wait_status, fork, kill, parent_pid, pid, set_parent_death_signal,
    spawn_on_fd0, tgkill, waitpid_nohang,
};
pub use sockaddr::{socket_addr_of, SockAddr, SUN_PATH_LEN};
pub use socket::{
    accept, accept_blocking, bind, check_listening, connect_nonblocking, has_unread_input, is_tcp,
    listen, local_addr, peek, peer_addr, read, read_raw, send, send_raw, set_defer_accept,
    set_int_option, set_nodelay, set_nonblocking, shutdown, shutdown_write, socket, take_error,
    tcp_info, write, writev,
};
pub use thread::spawn_signals_blocked;
pub use time::{clock_ms, clock_us, cpu_and_peak_rss, strftime_local};
pub use timerfd::TimerFd;
pub use users::{group_id, user_id};
