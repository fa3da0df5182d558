//! The application's side of a request: what one thread uses to accept, read, write and
//! finish requests. One `Request` per application thread; it is reused request after request.

use super::config::{self, Limit};
use super::env::Env;
use super::io::{SendError, SendPolicy};
use super::server::{Server, Stream, Taken};
use super::waiter::Waiter;
use super::worker::Worker;
use fcgi_runtime_protocol::framer::{large_record, Framer};
use fcgi_runtime_protocol::Role;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Why `accept` returned without a request.
#[derive(Debug)]
pub enum AcceptError {
    /// Shutdown was requested.
    Shutdown,
    /// The listening socket cannot be served.
    Io(io::Error),
}

/// A reusable request object, owned by one application thread at a time.
pub struct Request {
    listen_fd: RawFd,
    server: Option<Arc<Server>>,
    waiter: Arc<Waiter>,
    /// This object's worker (its epoll) on `server`, created at the first accept.
    worker: Option<Arc<Worker>>,
    cur: Option<Taken>,
    /// The environment of the current request (PARAMS plus `putenv` changes).
    pub env: Env,
    has_env: bool,
    out: Framer,
    keep: bool,
    ended: bool,
    app_status: u32,
    /// The current request's token from the process's request hooks (`hooks::NO_TOKEN`: none).
    hook_token: u8,
    /// The response's head, kept for the hooks when they ask (an access log's status);
    /// allocated at the first request that asks.
    head: Option<Box<super::hooks::Head>>,
    /// A request object of an event loop (see `evloop.rs`): no call waits.
    nb: bool,
    /// Letting go of a connection the web server did not keep waits for the web server to
    /// close its end, as PHP's layer does (see [`Request::wait_for_peer_close`]).
    close_waits_for_peer: bool,
}

/// What the non-blocking calls return when they would have to wait.
pub const WOULD_BLOCK: isize = -2;

impl Request {
    /// A request object serving connections accepted on `listen_fd`.
    pub fn new(listen_fd: RawFd) -> Request {
        Request {
            listen_fd,
            server: None,
            waiter: Arc::new(Waiter::default()),
            worker: None,
            cur: None,
            env: Env::default(),
            has_env: false,
            out: Framer::default(),
            keep: false,
            ended: false,
            app_status: 0,
            hook_token: super::hooks::NO_TOKEN,
            head: None,
            nb: false,
            close_waits_for_peer: false,
        }
    }

    /// A request object of an event loop on `server`: `waiter` is its loop waiter.
    pub fn new_loop(listen_fd: RawFd, server: Arc<Server>, waiter: Arc<Waiter>) -> Request {
        let mut r = Request::new(listen_fd);
        r.server = Some(server);
        r.waiter = waiter;
        r.nb = true;
        r
    }

    /// PHP's `fcgi_close`: letting go of a connection the web server did not keep shuts it
    /// down for writing and returns once the web server has closed its end (at most
    /// [`LINGER`](super::conn::LINGER); PHP waits without a bound). The thread stays busy,
    /// as a PHP worker does, until the web server has the whole response: a process manager
    /// counting busy workers (FPM's `pm = dynamic`) sees what it expects. Not for a loop's
    /// request objects, which never wait.
    pub fn wait_for_peer_close(&mut self, on: bool) {
        self.close_waits_for_peer = on && !self.nb;
    }

    /// True for a request object of an event loop.
    pub fn is_loop(&self) -> bool {
        self.nb
    }

    /// True while a request is in progress on this object (taken, not yet ended).
    pub fn in_request(&self) -> bool {
        self.cur.is_some() && !self.ended
    }

    /// The waiter of this request object.
    pub fn waiter(&self) -> &Arc<Waiter> {
        &self.waiter
    }

    /// How this object's sends treat a full socket: a blocking one waits (within the write
    /// timeout) once the write-behind buffer is full; a loop's never waits (its writes are
    /// bounded before they are framed, see [`Request::write_nb`]).
    fn policy(&self) -> SendPolicy {
        if self.nb {
            SendPolicy {
                write_behind: usize::MAX,
                wait: None,
            }
        } else {
            Server::app_policy()
        }
    }

    /// The listening socket.
    pub fn listen_fd(&self) -> RawFd {
        self.listen_fd
    }

    fn server(&mut self) -> io::Result<Arc<Server>> {
        match &self.server {
            Some(s) if s.serves_this_process() => Ok(s.clone()),
            _ => {
                let s = Server::for_listener(self.listen_fd)?;
                self.server = Some(s.clone());
                // A worker of the parent's server (before a fork) is not this process's.
                self.worker = None;
                Ok(s)
            }
        }
    }

    /// This object's worker on `server`, created on first use.
    fn worker(&mut self, server: &Server) -> io::Result<Arc<Worker>> {
        if let Some(w) = &self.worker {
            return Ok(w.clone());
        }
        let w = server.new_worker(&self.waiter)?;
        self.worker = Some(w.clone());
        Ok(w)
    }

    /// Starts what [`Request::accept`] needs (the runtime of this object's socket, this
    /// object's worker, the standby thread) without waiting, so that a later `accept` takes a
    /// waiting connection at once. PHP's layer calls its `on_accept` hook right before
    /// accept(2): PHP-FPM's ondemand manager reads the state that hook sets ("accepting") to
    /// decide whether a new connection needs a new child, so the time from that hook to the
    /// connection in hand must be accept(2)'s, not the runtime's start-up in a fresh child. An
    /// error is left for `accept` to report.
    pub fn prepare(&mut self) {
        if super::in_shutdown() {
            return;
        }
        // Every request after the first: this process's runtime and this object's worker
        // exist, and the standby thread was started with them (by this or by `accept`). No
        // Arc is cloned: their counts are shared by every thread of the process.
        if self.worker.is_some()
            && self
                .server
                .as_ref()
                .is_some_and(|s| s.serves_this_process())
        {
            return;
        }
        if let Ok(server) = self.server() {
            if self.worker(&server).is_ok() {
                server.warm_up();
            }
        }
    }

    /// Finishes the current request if any, then waits for the next one. Returns the
    /// connection's descriptor.
    pub fn accept(&mut self) -> Result<RawFd, AcceptError> {
        if self.cur.is_some() {
            self.finish(false);
        }
        if super::in_shutdown() {
            return Err(AcceptError::Shutdown);
        }
        let server = self.server().map_err(AcceptError::Io)?;
        let worker = self.worker(&server).map_err(AcceptError::Io)?;
        loop {
            self.env.clear();
            let Some(t) = server.accept(&self.waiter, &worker, &mut self.env.params) else {
                return Err(AcceptError::Shutdown);
            };
            if let Some(fd) = self.install(t)? {
                return Ok(fd);
            }
        }
    }

    /// [`Request::accept`] for a loop request object: a ready request, or `Ok(None)` when
    /// none is ready now.
    pub fn accept_loop(&mut self) -> Result<Option<RawFd>, AcceptError> {
        if self.cur.is_some() {
            self.finish(false);
        }
        let Some(server) = self.server.clone() else {
            return Err(AcceptError::Shutdown);
        };
        loop {
            self.env.clear();
            self.has_env = false;
            match server.try_accept(&self.waiter, &mut self.env.params) {
                None => return Ok(None),
                Some(None) => return Err(AcceptError::Shutdown),
                Some(Some(t)) => {
                    if let Some(fd) = self.install(t)? {
                        return Ok(Some(fd));
                    }
                }
            }
        }
    }

    /// Makes `t` the current request. Returns its connection's descriptor, or `None` when the
    /// runtime answered it itself (a pool worker's status page) and the caller accepts again.
    fn install(&mut self, t: super::server::Taken) -> Result<Option<RawFd>, AcceptError> {
        self.out.reset(t.id);
        self.keep = t.keep_conn;
        self.ended = false;
        self.app_status = 0;
        self.has_env = true;
        let fd = t.io.fd();
        let hooks = if t.hooked { super::hooks::get() } else { None };
        self.cur = Some(t);
        let Some(hooks) = hooks else {
            return Ok(Some(fd));
        };
        let begin = hooks.begin(&self.env.params, self.listen_fd);
        self.hook_token = begin.token;
        match (&mut self.head, begin.capture_head) {
            (Some(h), on) => h.reset(on),
            (None, true) => self.head.get_or_insert_with(Box::default).reset(true),
            (None, false) => {}
        }
        // The hooks answered (a pool worker's status page): the application never sees it.
        match begin.answer {
            Some(page) => {
                let _ = self.write(fcgi_runtime_protocol::record::rtype::STDOUT, &page);
                self.finish(false);
                if super::in_shutdown() {
                    return Err(AcceptError::Shutdown);
                }
                Ok(None)
            }
            None => Ok(Some(fd)),
        }
    }

    /// Tells the process's request hooks that the current request ended.
    fn hooks_ended(hooked: bool, token: &mut u8, head: &mut Option<Box<super::hooks::Head>>) {
        if hooked {
            if let Some(h) = super::hooks::get() {
                let bytes = head.as_ref().map_or(&[][..], |h| h.bytes());
                h.ended(std::mem::replace(token, super::hooks::NO_TOKEN), bytes);
            }
            if let Some(h) = head {
                h.reset(false);
            }
        }
    }

    /// The current request, if any.
    pub fn current(&self) -> Option<&Taken> {
        self.cur.as_ref()
    }

    pub fn role(&self) -> Option<Role> {
        self.cur.as_ref().map(|t| t.role)
    }

    pub fn id(&self) -> Option<u16> {
        self.cur.as_ref().map(|t| t.id)
    }

    pub fn has_env(&self) -> bool {
        self.has_env
    }

    pub fn keep(&self) -> bool {
        self.keep
    }

    /// Overrides whether the connection is kept after this request.
    pub fn set_keep(&mut self, keep: bool) {
        self.keep = keep;
    }

    pub fn set_app_status(&mut self, status: u32) {
        self.app_status = status;
    }

    /// True if the server aborted the request or its connection failed.
    pub fn is_aborted(&self) -> bool {
        self.cur
            .as_ref()
            .is_some_and(|t| t.shared.is_aborted() || t.io.is_broken())
    }

    /// True once the web server closed its side of the connection (or it failed, or the
    /// request was aborted): see [`super::io::ReqShared::peer_closed`].
    pub fn peer_closed(&self) -> bool {
        self.cur.as_ref().is_some_and(|t| {
            t.shared
                .peer_closed
                .load(std::sync::atomic::Ordering::Acquire)
                || t.shared.is_aborted()
                || t.io.is_broken()
        })
    }

    /// Reads STDIN (or the Filter's DATA): bytes read, 0 at the end, -1 on abort or error.
    pub fn read(&mut self, which: Stream, buf: &mut [u8]) -> isize {
        let (Some(t), Some(s)) = (&self.cur, &self.server) else {
            return -1;
        };
        if self.ended {
            return -1;
        }
        if self.nb {
            return s
                .try_read(&self.waiter, t, which, buf)
                .unwrap_or(WOULD_BLOCK);
        }
        s.read(&self.waiter, t, which, buf)
    }

    /// Writes to STDOUT or STDERR (`rt`). Small writes are buffered; writes larger than the
    /// buffer go to the socket at once, without copying.
    pub fn write(&mut self, rt: u8, data: &[u8]) -> Result<(), SendError> {
        if self.nb {
            // A loop request written through the blocking call: what the connection takes
            // now, the rest only as room comes (a loop must not wait).
            let mut off = 0;
            while off < data.len() {
                match self.write_nb(rt, &data[off..])? {
                    0 => return Err(SendError::Broken),
                    n => off += n,
                }
            }
            return Ok(());
        }
        let Some(t) = &self.cur else {
            return Err(SendError::Broken);
        };
        if self.ended {
            return Err(SendError::Aborted);
        }
        if t.shared.is_aborted() {
            return Err(SendError::Aborted);
        }
        if let Some(h) = &mut self.head {
            if rt == fcgi_runtime_protocol::record::rtype::STDOUT {
                h.saw(data);
            }
        }
        let cap = config::get(Limit::OutputBufferBytes) as usize;
        if self.out.len() + data.len() <= cap {
            self.out.push(rt, data);
            return Ok(());
        }
        self.send_framed(rt, data)
    }

    /// Writes for a loop request, never waiting: returns how many bytes of `data` were taken
    /// (all of a small write, which is buffered; of a larger one, as many as the connection
    /// has room for now), `Ok(0)` when it has none (the request is woken when room comes, or
    /// when the connection breaks), or the error.
    pub fn write_nb(&mut self, rt: u8, data: &[u8]) -> Result<usize, SendError> {
        let (Some(t), Some(s)) = (&self.cur, &self.server) else {
            return Err(SendError::Broken);
        };
        if self.ended || t.shared.is_aborted() {
            return Err(SendError::Aborted);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let cap = config::get(Limit::OutputBufferBytes) as usize;
        let stdout = rt == fcgi_runtime_protocol::record::rtype::STDOUT;
        if self.out.len() + data.len() <= cap {
            if let (Some(h), true) = (&mut self.head, stdout) {
                h.saw(data);
            }
            self.out.push(rt, data);
            return Ok(data.len());
        }
        let room = t.io.room_for(&self.waiter)?;
        if room == 0 {
            s.watch_write_timeout(t);
            return Ok(0);
        }
        let n = data.len().min(room);
        if let (Some(h), true) = (&mut self.head, stdout) {
            h.saw(&data[..n]);
        }
        self.send_framed(rt, &data[..n]).map(|()| n)
    }

    /// Sends the buffered output of a loop request if the connection has room: `Ok(true)`
    /// when nothing is left buffered, `Ok(false)` when there is no room (the request is woken
    /// when room comes), or the error.
    pub fn flush_nb(&mut self) -> Result<bool, SendError> {
        let (Some(t), Some(s)) = (&self.cur, &self.server) else {
            return Err(SendError::Broken);
        };
        if self.ended || t.shared.is_aborted() {
            return Err(SendError::Aborted);
        }
        if self.out.is_empty() {
            return Ok(true);
        }
        if t.io.room_for(&self.waiter)? == 0 {
            s.watch_write_timeout(t);
            return Ok(false);
        }
        // At most the output buffer (64 KiB by default) beyond the room: bounded.
        self.flush().map(|()| true)
    }

    /// Sends what is buffered and `data` as records of `rt`, without copying `data`.
    fn send_framed(&mut self, rt: u8, data: &[u8]) -> Result<(), SendError> {
        let policy = self.policy();
        let Some(t) = &self.cur else {
            return Err(SendError::Broken);
        };
        // Records of at most 64 KiB each, GROUP of them per send, with the headers on the
        // stack: no copy of the data and no allocation.
        const GROUP: usize = 16;
        let buffered = self.out.take_bytes();
        let mut off = 0;
        let mut first = true;
        let mut r = Ok(());
        while off < data.len() {
            let mut heads = [[0u8; 8]; GROUP];
            let mut recs: [(std::ops::Range<usize>, &'static [u8]); GROUP] =
                std::array::from_fn(|_| (0..0, &[][..]));
            let mut k = 0;
            while k < GROUP && off < data.len() {
                let (h, range, pad) = large_record(rt, t.id, data.len(), off);
                off = range.end;
                heads[k] = h;
                recs[k] = (range, pad);
                k += 1;
            }
            let mut parts: [&[u8]; 1 + 3 * GROUP] = [&[]; 1 + 3 * GROUP];
            let mut m = 0;
            if first && !buffered.is_empty() {
                parts[m] = buffered;
                m += 1;
            }
            first = false;
            for (h, (range, pad)) in heads[..k].iter().zip(&recs[..k]) {
                parts[m] = h;
                parts[m + 1] = &data[range.clone()];
                m += 2;
                if !pad.is_empty() {
                    parts[m] = pad;
                    m += 1;
                }
            }
            r = t.io.send(Some(&t.shared), &parts[..m], false, policy);
            if r.is_err() {
                break;
            }
        }
        self.out.clear();
        r
    }

    /// Sends buffered output.
    pub fn flush(&mut self) -> Result<(), SendError> {
        let Some(t) = &self.cur else {
            return Err(SendError::Broken);
        };
        if self.ended || self.out.is_empty() {
            return Ok(());
        }
        let policy = self.policy();
        let r =
            t.io.send(Some(&t.shared), &[self.out.take_bytes()], false, policy);
        self.out.clear();
        r
    }

    /// Ends the request once: sends the rest of the output, the end of the streams and
    /// END_REQUEST, and frees the request id. The connection is kept or closed according to
    /// `keep`. Returns false when the output could not be written (aborted or broken).
    pub fn end(&mut self) -> bool {
        let (Some(t), Some(s)) = (&self.cur, &self.server) else {
            return true;
        };
        if self.ended {
            return true;
        }
        self.ended = true;
        self.out.finish(self.app_status);
        let policy = self.policy();
        let bytes = self.out.take_bytes();
        // A loop's output is never deferred: nothing would flush it if the loop went quiet.
        let deferred = if self.nb {
            s.retire(t);
            false
        } else {
            s.retire_deferring(t, Some(bytes))
        };
        let r = if deferred {
            Ok(())
        } else {
            t.io.send(Some(&t.shared), &[bytes], true, policy)
        };
        self.out.clear();
        Self::hooks_ended(t.hooked, &mut self.hook_token, &mut self.head);
        // A draining process (a pool worker) closes each connection after its current request.
        let drain = super::draining();
        // Aborted: the runtime already sent END_REQUEST and the connection is fine.
        s.settle(t, !self.keep || r == Err(SendError::Broken) || drain, false);
        r.is_ok()
    }

    /// Ends the request and lets go of it. `force` closes the connection at once (other
    /// requests multiplexed on it are aborted). Returns `end`'s result. Returns true if the
    /// connection was closed by this call.
    pub fn finish(&mut self, force: bool) -> (bool, bool) {
        if self.cur.is_none() {
            return (true, false);
        }
        let ok = self.end();
        let closed = self.close(force, true);
        (ok, closed)
    }

    /// Finishes the current request and waits until its output has left (at most the write
    /// timeout): for a request object that goes away, perhaps with the process.
    pub fn finish_and_drain(&mut self) {
        if self.nb {
            self.finish(false);
            return;
        }
        let io = self.cur.as_ref().map(|t| t.io.clone());
        self.finish(false);
        if let Some(io) = io {
            io.drain(Server::app_policy().wait.unwrap_or_default());
        }
    }

    /// PHP's `fcgi_close`: `destroy` forgets the environment; the connection is let go if
    /// `force` or not kept. Returns true if a connection was closed.
    pub fn close(&mut self, force: bool, destroy: bool) -> bool {
        if destroy {
            self.env.clear();
            self.has_env = false;
        }
        let Some(t) = self.cur.take() else {
            return false;
        };
        let Some(s) = self.server.clone() else {
            return false;
        };
        if !force && self.keep {
            // PHP keeps a kept connection open; the request is let go once it has ended.
            if !self.ended {
                self.cur = Some(t);
            }
            return false;
        }
        if !self.ended {
            // Closing without END_REQUEST: the request is over for the server too.
            self.ended = true;
            Self::hooks_ended(t.hooked, &mut self.hook_token, &mut self.head);
            s.retire(&t);
            s.settle(&t, true, force);
            if !force && self.close_waits_for_peer {
                Self::await_peer_close(&t);
            }
            return true;
        }
        if force {
            // The END_REQUEST may still be in the write-behind buffer: let it out first (a
            // loop does not wait: what the socket has not taken is lost).
            if !self.nb {
                t.io.drain(Server::app_policy().wait.unwrap_or_default());
            }
            return s.close_connection(&t);
        }
        if self.close_waits_for_peer {
            Self::await_peer_close(&t);
        }
        true
    }

    /// Waits until the output of a closing connection has left (within the write timeout),
    /// shuts it down for writing and waits for the peer's end of input, an error or
    /// [`LINGER`](super::conn::LINGER). The descriptor stays open meanwhile: `t` holds it,
    /// whoever closes the connection.
    fn await_peer_close(t: &Taken) {
        t.io.shutdown_when_flushed();
        // A connection the runtime has closed already had sent everything (or failed, and
        // the poll returns at once).
        t.io.drain(Server::app_policy().wait.unwrap_or_default());
        super::sys::await_peer_shutdown(t.io.fd(), super::conn::LINGER);
    }
}

impl Drop for Request {
    /// The connections this object's worker held go to the server's orphan epoll, where the
    /// standby serves them until another worker adopts them.
    fn drop(&mut self) {
        if let (Some(s), Some(w)) = (&self.server, &self.worker) {
            s.retire_worker(w);
        }
    }
}
