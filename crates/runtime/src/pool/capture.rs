//! `catch_workers_output`: each worker's stdout and stderr are pipes the supervisor reads in
//! its poll loop, line by line, into its log: decorated as FPM does (`[pool www] child 1234
//! said into stderr: "..."`, at warning level) or, with `decorate_workers_output` off, the raw
//! line. A line is never cut at FPM's 1,024 bytes: only a line longer than [`MAX_LINE`] is
//! split (into pieces of that size). A partial last line is logged when the worker exits.

use crate::sys;
use std::os::fd::RawFd;

/// Lines longer than this are logged in pieces of this size.
pub const MAX_LINE: usize = 64 * 1024;

/// The two pipes made for a worker before its fork: `[stdout, stderr]` read and write ends.
pub struct Pipes {
    read: [RawFd; 2],
    write: [RawFd; 2],
}

impl Pipes {
    /// Two close-on-exec pipes; the read ends non-blocking.
    pub fn new() -> Result<Pipes, String> {
        let out = sys::pipe(libc::O_CLOEXEC).map_err(|e| e.to_string())?;
        let err = match sys::pipe(libc::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => {
                close_all(&out);
                return Err(e.to_string());
            }
        };
        let mut p = Pipes {
            read: [out[0], err[0]],
            write: [out[1], err[1]],
        };
        // With the supervisor's stdout or stderr closed, a pipe end could be fd 1 or 2, which
        // the child's dup2 would overwrite: every end goes above 2 first.
        if let Err(e) = p.lift() {
            p.close();
            return Err(e.to_string());
        }
        for fd in p.read {
            if let Err(e) = sys::add_status_flags(fd, libc::O_NONBLOCK) {
                p.close();
                return Err(e.to_string());
            }
        }
        Ok(p)
    }

    fn lift(&mut self) -> std::io::Result<()> {
        let mut low = Vec::new();
        for fd in self.read.iter_mut().chain(self.write.iter_mut()) {
            if *fd <= 2 {
                let moved = sys::dup_at_least(*fd, 3)?;
                low.push(std::mem::replace(fd, moved));
            }
        }
        close_all(&low);
        Ok(())
    }

    /// Both pipes closed (a fork that failed).
    pub fn close(&self) {
        close_all(&self.read);
        close_all(&self.write);
    }

    /// In the worker after fork: the write ends become fds 1 and 2, the pipes' other
    /// descriptors close.
    pub fn into_stdio(self) {
        for (fd, to) in self.write.iter().zip([1, 2]) {
            // Descriptors this process holds; on failure the worker keeps the supervisor's.
            let _ = sys::dup2(*fd, to);
        }
        self.close();
        crate::log::stderr_changed();
    }
}

fn close_all(fds: &[RawFd]) {
    for &fd in fds {
        // A pipe end this module made, closed once.
        let _ = sys::close(fd);
    }
}

/// One worker's open streams.
struct Streams {
    pid: libc::pid_t,
    /// `[stdout, stderr]`: read end (-1 once closed) and the line so far.
    fd: [RawFd; 2],
    buf: [Vec<u8>; 2],
}

/// The supervisor's side: every worker's read ends.
pub struct Capture {
    pool: String,
    decorate: bool,
    workers: Vec<Streams>,
}

const NAMES: [&str; 2] = ["stdout", "stderr"];

impl Capture {
    pub fn new(pool: &str, decorate: bool) -> Capture {
        Capture {
            pool: pool.to_string(),
            decorate,
            workers: Vec::new(),
        }
    }

    /// In the supervisor after fork: keeps the read ends of worker `pid`.
    pub fn add(&mut self, pid: libc::pid_t, p: Pipes) {
        close_all(&p.write);
        self.workers.push(Streams {
            pid,
            fd: p.read,
            buf: [Vec::new(), Vec::new()],
        });
    }

    /// In a new worker: the other workers' read ends are the supervisor's, not its own.
    pub fn forget_in_child(&mut self) {
        for w in self.workers.drain(..) {
            close_all(&w.fd);
        }
    }

    /// The read ends to poll.
    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.workers
            .iter()
            .flat_map(|w| w.fd.iter().copied())
            .filter(|&fd| fd >= 0)
    }

    /// Reads what every pipe holds and logs the complete lines.
    pub fn read_all(&mut self) {
        for k in 0..self.workers.len() {
            for i in 0..2 {
                self.read_one(k, i);
            }
        }
    }

    /// Worker `pid` exited: reads what is left, logs a partial last line, closes its pipes.
    pub fn finish(&mut self, pid: libc::pid_t) {
        let Some(k) = self.workers.iter().position(|w| w.pid == pid) else {
            return;
        };
        for i in 0..2 {
            self.read_one(k, i);
            let rest = std::mem::take(&mut self.workers[k].buf[i]);
            if !rest.is_empty() {
                self.emit(pid, i, &rest);
            }
        }
        let w = self.workers.swap_remove(k);
        close_all(&w.fd);
    }

    fn read_one(&mut self, k: usize, i: usize) {
        let fd = self.workers[k].fd[i];
        if fd < 0 {
            return;
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match sys::read(fd, &mut chunk) {
                Ok(0) => {
                    // EOF: the worker (and whatever shared its output) closed it.
                    close_all(&[fd]);
                    self.workers[k].fd[i] = -1;
                    return;
                }
                Ok(n) => {
                    self.workers[k].buf[i].extend_from_slice(&chunk[..n]);
                    self.emit_lines(k, i);
                }
                Err(_) => return, // EAGAIN: empty for now.
            }
        }
    }

    /// Logs the complete lines of a buffer (and pieces of MAX_LINE of an overlong one).
    fn emit_lines(&mut self, k: usize, i: usize) {
        let pid = self.workers[k].pid;
        let mut buf = std::mem::take(&mut self.workers[k].buf[i]);
        let mut start = 0;
        loop {
            let rest = &buf[start..];
            let end = match rest.iter().position(|&b| b == b'\n') {
                Some(n) if n <= MAX_LINE => n,
                _ if rest.len() > MAX_LINE => MAX_LINE,
                _ => break,
            };
            let line = &rest[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.emit(pid, i, line);
            start += end + usize::from(rest.get(end) == Some(&b'\n'));
        }
        buf.drain(..start);
        self.workers[k].buf[i] = buf;
    }

    fn emit(&self, pid: libc::pid_t, i: usize, line: &[u8]) {
        if self.decorate {
            crate::fcgi_log!(
                Warning,
                "[pool {}] child {pid} said into {}: \"{}\"",
                self.pool,
                NAMES[i],
                String::from_utf8_lossy(line)
            );
        } else {
            crate::log::raw_line(line);
        }
    }
}
