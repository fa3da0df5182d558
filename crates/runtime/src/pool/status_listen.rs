//! `status_listen` (FPM's `pm.status_listen`): one more listening socket, served by the
//! supervisor itself, so the status page and ping answer while every worker is busy.
//!
//! The supervisor's loop is single-threaded and must never block: the socket and its
//! connections are non-blocking and polled with the loop's other descriptors; at most
//! [`MAX_CONNS`] connections at once (the listening socket is not polled beyond that, so more
//! wait in its backlog), each read through a fixed stack buffer into the protocol crate's
//! [`Engine`] (PARAMS bounded by [`MAX_PARAMS_BYTES`]), each with a [`DEADLINE`]. A connection
//! gets one answer (status, ping, else 404) and is closed once it is written.

use super::scoreboard::Scoreboard;
use crate::sys;
use fcgi_runtime_protocol::record::{self, rtype};
use fcgi_runtime_protocol::{
    Admission, Engine, EngineConfig, ParamStore, ProtocolStatus, Role, Sink,
};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Connections served at once.
pub const MAX_CONNS: usize = 8;
/// A connection's whole life: accept to the last byte written.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Bytes read per read(2).
const READ_BUF: usize = 4096;
/// PARAMS of one request at most (a status request carries a few short params).
const MAX_PARAMS_BYTES: u32 = 16 * 1024;
const MAX_PARAMS_COUNT: u32 = 128;

/// The paths this socket answers.
pub struct Paths {
    pub status: Vec<u8>,
    pub ping: Vec<u8>,
    pub ping_body: Vec<u8>,
}

/// The listening socket and its connections.
pub struct StatusListener {
    sock: OwnedFd,
    conns: Vec<Conn>,
    paths: Paths,
    /// A Unix socket's path, removed when the supervisor that opened it stops (not when a
    /// forked worker drops its copy).
    unix_path: Option<std::path::PathBuf>,
    owner: u32,
}

impl Drop for StatusListener {
    fn drop(&mut self) {
        if let Some(p) = &self.unix_path {
            if sys::pid() == self.owner {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

struct Conn {
    fd: OwnedFd,
    engine: Engine,
    req: Req,
    deadline: Instant,
    /// The answer, and how much of it was written.
    out: Vec<u8>,
    sent: usize,
}

/// The one request a connection carries, as the engine reports it.
#[derive(Default)]
struct Req {
    id: Option<u16>,
    params: ParamStore,
    /// STDIN ended (the request is complete: answering now leaves nothing unread).
    ready: bool,
    aborted: bool,
}

impl Sink for Req {
    fn begin(&mut self, id: u16, role: Role, _keep_conn: bool) -> Admission {
        if self.id.is_some() {
            return Admission::Refuse(ProtocolStatus::CantMpxConn);
        }
        if role != Role::Responder {
            return Admission::Refuse(ProtocolStatus::UnknownRole);
        }
        self.id = Some(id);
        Admission::Admit
    }

    fn params(&mut self, _id: u16, params: &mut ParamStore) {
        std::mem::swap(&mut self.params, params);
    }

    fn stdin(&mut self, _id: u16, data: &[u8]) -> usize {
        data.len() // A body is read and dropped.
    }

    fn stdin_end(&mut self, _id: u16) {
        self.ready = true;
    }

    fn data(&mut self, _id: u16, data: &[u8]) -> usize {
        data.len()
    }

    fn data_end(&mut self, _id: u16) {}

    fn abort(&mut self, _id: u16) {
        self.aborted = true;
    }

    fn mgmt_value(&mut self, _name: &[u8], _out: &mut Vec<u8>) -> bool {
        false
    }
}

impl StatusListener {
    /// Opens `addr` (host:port or a Unix socket path, as `fcgi_pool_listen` takes).
    pub fn open(addr: &str, paths: Paths) -> Result<StatusListener, String> {
        let sock = super::listen::open(addr, 64, false)
            .map_err(|e| format!("pool: status_listen: {e}"))?;
        sys::set_nonblocking(sock.as_raw_fd()).map_err(|e| format!("pool: status_listen: {e}"))?;
        let unix_path = match crate::addr::parse_listen(addr) {
            Ok(crate::addr::ListenAddr::Unix(p)) => Some(p),
            _ => None,
        };
        Ok(StatusListener {
            sock,
            conns: Vec::new(),
            paths,
            unix_path,
            owner: sys::pid(),
        })
    }

    /// The descriptors to poll, appended to `pfds`.
    pub fn poll_fds(&self, pfds: &mut Vec<libc::pollfd>) {
        if self.conns.len() < MAX_CONNS {
            pfds.push(pollfd(self.sock.as_raw_fd(), libc::POLLIN));
        }
        for c in &self.conns {
            let ev = if c.out.is_empty() {
                libc::POLLIN
            } else {
                libc::POLLOUT
            };
            pfds.push(pollfd(c.fd.as_raw_fd(), ev));
        }
    }

    /// Does what can be done without waiting: accepts, reads, answers, writes, and closes
    /// finished or expired connections. `pool_fd` is the pool's socket (its queue is shown);
    /// `draining`: ping answers 503.
    pub fn serve(&mut self, board: &Scoreboard, pool_fd: RawFd, draining: bool) {
        let now = Instant::now();
        while self.conns.len() < MAX_CONNS {
            match sys::accept(self.sock.as_raw_fd()) {
                Ok((fd, _)) => self.conns.push(Conn {
                    fd,
                    engine: Engine::new(EngineConfig {
                        mpxs_conns: false,
                        max_reqs_per_conn: 1,
                        max_params_bytes: MAX_PARAMS_BYTES,
                        max_params_count: MAX_PARAMS_COUNT,
                    }),
                    req: Req::default(),
                    deadline: now + DEADLINE,
                    out: Vec::new(),
                    sent: 0,
                }),
                Err(_) => break, // EAGAIN (none waiting), or a failed accept: next time.
            }
        }
        let paths = &self.paths;
        self.conns
            .retain_mut(|c| now < c.deadline && c.step(paths, board, pool_fd, draining));
    }
}

impl Conn {
    /// Reads and writes what it can; false once the connection is done (or failed).
    fn step(&mut self, paths: &Paths, board: &Scoreboard, pool_fd: RawFd, draining: bool) -> bool {
        if self.out.is_empty() {
            let mut buf = [0u8; READ_BUF];
            loop {
                match sys::read(self.fd.as_raw_fd(), &mut buf) {
                    Ok(0) => return false, // Closed before its request was complete.
                    Ok(n) => {
                        let mut off = 0;
                        while off < n {
                            match self.engine.feed(&buf[off..n], &mut self.req, &mut self.out) {
                                Ok(k) => off += k,
                                Err(_) => return false,
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
                if self.req.ready || self.req.aborted {
                    break;
                }
            }
            if self.req.aborted {
                return false;
            }
            match self.req.id {
                Some(id) if self.req.ready => {
                    let page = answer(paths, &self.req.params, board, pool_fd, draining);
                    record::push_stream(&mut self.out, rtype::STDOUT, id, &page);
                    record::push_stream_end(&mut self.out, rtype::STDOUT, id);
                    record::push_end_request(&mut self.out, id, 0, ProtocolStatus::RequestComplete);
                }
                // Refusals and GET_VALUES answers the engine wrote: sent, then the
                // connection is done.
                None if !self.out.is_empty() => {}
                _ => return true,
            }
        }
        while self.sent < self.out.len() {
            match sys::write(self.fd.as_raw_fd(), &self.out[self.sent..]) {
                Ok(n) if n > 0 => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                _ => return false,
            }
        }
        false
    }
}

/// The CGI response for a request on this socket.
fn answer(
    paths: &Paths,
    params: &ParamStore,
    board: &Scoreboard,
    pool_fd: RawFd,
    draining: bool,
) -> Vec<u8> {
    if super::status::matches(params, &paths.ping) {
        return super::ping::response(&paths.ping_body, draining);
    }
    if super::status::matches(params, &paths.status) {
        return super::status::page(board.header(), board.slots(), pool_fd, params);
    }
    b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n"
        .to_vec()
}

fn pollfd(fd: RawFd, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}
