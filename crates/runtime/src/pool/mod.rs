//! A pre-fork pool in the library (docs/pool-design.md): the parent opens the listening
//! sockets, forks workers that inherit them, and supervises them (replacement with back-off,
//! static/dynamic/on-demand modes, recycling, graceful stop and reload); the runtime's threads
//! start only in the workers.

mod access_log;
mod capture;
pub mod config;
pub mod hooks;
mod jitter;
pub mod listen;
#[doc(hidden)]
pub mod notify;
mod ping;
pub mod scoreboard;
pub mod signals;
pub mod slowlog;
pub mod status;
mod status_listen;
mod status_render;
mod supervisor;
mod worker;

pub use config::{Mode, Settings};

use std::os::fd::{IntoRawFd, RawFd};

/// What [`Pool::run`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// In a new worker: serve the pool's sockets, return when accept gives no more requests.
    Worker(usize),
    /// In the parent: the pool stopped (every worker has exited).
    Stopped,
}

/// A pool: its settings and listening sockets. `run` forks.
pub struct Pool {
    pub settings: Settings,
    /// Listening sockets, and whether the pool opened them (closed by `close_sockets`).
    sockets: Vec<(RawFd, bool)>,
    worker_index: Option<usize>,
    seat: Option<supervisor::WorkerSeat>,
    ran: bool,
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new()
    }
}

impl Pool {
    /// A pool with the defaults of [`Settings::from_env`] and no socket.
    pub fn new() -> Pool {
        Pool {
            settings: Settings::from_env(),
            sockets: Vec::new(),
            worker_index: None,
            seat: None,
            ran: false,
        }
    }

    /// Opens a listening socket (with SO_REUSEPORT if `reuseport` is set); its index.
    pub fn listen(&mut self, addr: &str, backlog: i32) -> Result<usize, String> {
        if self.ran {
            return Err("pool: fcgi_pool_listen after fcgi_pool_run".to_string());
        }
        let fd = listen::open(addr, backlog, self.settings.reuseport)?;
        self.sockets.push((fd.into_raw_fd(), true));
        Ok(self.sockets.len() - 1)
    }

    /// The listening descriptor at `index`.
    pub fn socket(&self, index: usize) -> Option<RawFd> {
        self.sockets.get(index).map(|s| s.0)
    }

    /// The worker's index (0..), `None` in the parent.
    pub fn worker_index(&self) -> Option<usize> {
        self.worker_index
    }

    /// Runs the pool: returns `Role::Worker` in each worker, `Role::Stopped` in the parent
    /// once the pool has stopped. Refuses (`Err`) when the settings are inconsistent, no
    /// socket is available, the pool ran already, or the process has more than one thread
    /// (forking a multi-threaded process is unsafe).
    pub fn run(&mut self) -> Result<Role, String> {
        if self.ran {
            return Err("pool: fcgi_pool_run called twice".to_string());
        }
        self.settings.validate()?;
        let threads = thread_count();
        if threads != Some(1) {
            return Err(format!(
                "pool: the process has {} threads; a pool must start before any thread \
                 (and before the first fcgi_accept_request)",
                threads.map_or("an unknown number of".to_string(), |n| n.to_string())
            ));
        }
        if self.sockets.is_empty() {
            self.sockets = listen::inherited()?
                .into_iter()
                .map(|fd| (fd, false))
                .collect();
        }
        self.ran = true;
        let fds: Vec<RawFd> = self.sockets.iter().map(|s| s.0).collect();
        let (role, seat) = supervisor::run(&self.settings, &fds)?;
        if let Role::Worker(i) = role {
            self.worker_index = Some(i);
            self.seat = seat;
        }
        Ok(role)
    }

    /// Makes the pool's workers exec programs (fcgi-spawn): set before `run`. The scoreboard
    /// then lives in a memfd the programs inherit; a program on this library attaches to it
    /// (status page, slow log, max_requests, SIGQUIT drain), any other is drained with
    /// SIGTERM, which libfcgi takes as "finish the request in hand, then exit".
    pub fn set_exec(&mut self, on: bool) {
        self.settings.exec = on;
    }

    /// In a worker of an exec pool, just before exec: every signal back to its default and
    /// none blocked, the scoreboard's memfd inheritable. Returns the environment variables to
    /// add to the program's environment.
    pub fn prepare_exec(&mut self) -> Result<Vec<(String, String)>, String> {
        let Some(seat) = self.seat else {
            return Err("pool: prepare_exec outside a worker".to_string());
        };
        signals::reset_for_exec();
        let mut env = Vec::new();
        if seat.board_fd >= 0 {
            // The scoreboard's memfd, which this process holds, made inheritable.
            if let Err(e) = crate::sys::set_cloexec(seat.board_fd, false) {
                return Err(format!("pool: cannot pass the scoreboard: {e}"));
            }
            env.push((
                hooks::ENV.to_string(),
                format!("{}:{}", seat.board_fd, seat.slot),
            ));
        }
        Ok(env)
    }

    /// Closes the sockets the pool opened (in the parent; a worker keeps them: its request
    /// objects serve them).
    pub fn close_sockets(&mut self) {
        if self.worker_index.is_some() {
            return;
        }
        for (fd, owned) in self.sockets.drain(..) {
            if owned {
                // A descriptor this pool opened and nobody else closes.
                let _ = crate::sys::close(fd);
            }
        }
    }
}

/// Threads of this process (/proc/self/task), `None` if unknown.
pub fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(|d| d.filter(|e| e.is_ok()).count())
}
