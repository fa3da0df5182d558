//! The async face for tokio: the runtime's non-blocking core (the event loop behind the C
//! API's `fcgi_loop_*`, evloop.rs) driven from a tokio task.
//!
//! An [`AsyncServer`] owns one event loop on its listening socket. The loop's descriptor (an
//! epoll holding the loop's connections, the listener, the runtime's timers and the loop's
//! eventfd) is registered with tokio through [`AsyncFd`]; a driver task spawned by the server
//! does the loop's work whenever it is readable, then wakes the tasks whose requests can go
//! on (the loop names them: input arrived, room to write came, aborted) and the task waiting
//! in [`AsyncServer::accept`]. Reads and writes of an [`AsyncRequest`] are the loop's
//! non-blocking calls: one that would wait registers the task's waker and returns `Pending`.
//! Nothing blocks a tokio worker thread.

use super::request::{self, Params, Role};
use super::server::{check_listener, inherited, listen, local_addr, Listener};
use crate::evloop::EvLoop;
use crate::request::{AcceptError, Request as Inner, WOULD_BLOCK};
use crate::server::Stream;
use crate::waiter::Waiter;
use fcgi_runtime_protocol::record::rtype;
use parking_lot::Mutex;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The loop's descriptor, for `AsyncFd` (which does not own it: the loop does).
struct LoopFd(RawFd);

impl AsRawFd for LoopFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// A loop request object and its key on the loop.
struct Obj {
    inner: Box<Inner>,
    key: usize,
}

/// What [`AsyncServer::serve`] runs for each request: spawns the handler's task.
type Spawn = Arc<dyn Fn(AsyncRequest) + Send + Sync>;

/// What the driver, the server and the requests share under one lock.
#[derive(Default)]
struct State {
    /// The waiter of each request object, by key (the driver re-arms it when it is woken).
    waiters: Vec<Arc<Waiter>>,
    /// The task waiting on each request object, by key.
    wakers: Vec<Option<Waker>>,
    /// Request objects not in use.
    spare: Vec<Obj>,
    /// The task waiting in `accept`.
    acceptor: Option<Waker>,
    /// Set by `serve`: the driver takes ready requests itself and spawns a task for each.
    spawn: Option<Spawn>,
    /// The task in `serve`, woken when serving ends (shutdown or failure).
    server: Option<Waker>,
    /// Serving ended: shutdown was requested.
    shut_down: bool,
    /// Requests handed out and not yet finished.
    live: usize,
    /// The server was dropped: the driver ends once no request is live.
    closed: bool,
    /// The driver ended on this error.
    failed: Option<String>,
}

struct Core {
    ev: EvLoop,
    listener: Listener,
    st: Mutex<State>,
}

impl Core {
    /// Registers `waker` as the task to wake for request object `key`.
    fn register(&self, key: usize, waker: &Waker) {
        let mut st = self.st.lock();
        match &mut st.wakers[key] {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    /// After the loop's work: wakes the tasks of the requests the loop names, and the
    /// acceptor. Returns true when the driver should end.
    fn dispatch(&self) -> bool {
        let mut wake: Vec<Waker> = Vec::new();
        let end = {
            let mut st = self.st.lock();
            while let Some(key) = self.ev.wake_side().pop() {
                let Some(w) = st.waiters.get(key) else {
                    continue;
                };
                w.rearm();
                if let Some(t) = st.wakers[key].take() {
                    wake.push(t);
                }
            }
            if let Some(t) = st.acceptor.take() {
                wake.push(t);
            }
            st.closed && st.live == 0
        };
        for w in wake {
            w.wake();
        }
        end
    }

    /// The driver ended: every waiting task is woken to see it.
    fn fail(&self, why: String) {
        let mut st = self.st.lock();
        st.failed = Some(why);
        let mut wake: Vec<Waker> = st.wakers.iter_mut().filter_map(Option::take).collect();
        wake.extend(st.acceptor.take());
        wake.extend(st.server.take());
        drop(st);
        for w in wake {
            w.wake();
        }
    }

    fn failure(&self) -> Option<io::Error> {
        self.st
            .lock()
            .failed
            .as_ref()
            .map(|m| io::Error::other(m.clone()))
    }

    /// One non-blocking attempt to take a ready request.
    fn try_accept(self: &Arc<Self>) -> Option<io::Result<Option<AsyncRequest>>> {
        if let Some(e) = self.failure() {
            return Some(Err(e));
        }
        let popped = self.st.lock().spare.pop();
        let mut obj = match popped {
            Some(o) => o,
            None => self.new_obj(),
        };
        match obj.inner.accept_loop() {
            Ok(Some(_)) => {
                self.st.lock().live += 1;
                Some(Ok(Some(AsyncRequest::new(obj, self.clone()))))
            }
            Ok(None) => {
                self.st.lock().spare.push(obj);
                None
            }
            Err(AcceptError::Shutdown) => {
                self.st.lock().spare.push(obj);
                Some(Ok(None))
            }
            Err(AcceptError::Io(e)) => {
                self.st.lock().spare.push(obj);
                Some(Err(e))
            }
        }
    }

    /// In `serve` mode, takes every ready request and spawns its task (no hop through an
    /// accepting task).
    fn spawn_ready(self: &Arc<Self>) {
        let Some(spawn) = self.st.lock().spawn.clone() else {
            return;
        };
        loop {
            match self.try_accept() {
                None => return,
                Some(Ok(Some(req))) => spawn(req),
                Some(Ok(None)) => {
                    let mut st = self.st.lock();
                    st.shut_down = true;
                    let w = st.server.take();
                    drop(st);
                    if let Some(w) = w {
                        w.wake();
                    }
                    return;
                }
                Some(Err(e)) => {
                    crate::fcgi_log!(Error, "cannot take a request: {e}");
                    return;
                }
            }
        }
    }

    fn new_obj(&self) -> Obj {
        let mut st = self.st.lock();
        let key = st.waiters.len();
        let waiter = Arc::new(Waiter::for_loop(self.ev.wake_side(), key));
        st.waiters.push(waiter.clone());
        st.wakers.push(None);
        let fd = self.listener.raw();
        let inner = Box::new(Inner::new_loop(fd, self.ev.server().clone(), waiter));
        Obj { inner, key }
    }

    /// A request is over: its object goes back for reuse.
    fn give_back(&self, obj: Obj) {
        let mut st = self.st.lock();
        st.wakers[obj.key] = None;
        st.spare.push(obj);
        st.live -= 1;
        let end = st.closed && st.live == 0;
        drop(st);
        if end {
            // The driver ends at its next round.
            self.ev.wake_side().wake();
        }
    }
}

/// The driver task's state. Fields drop in order: the registration of the loop's descriptor
/// goes before the loop that owns the descriptor can.
struct Driver {
    afd: AsyncFd<LoopFd>,
    core: Arc<Core>,
}

impl Driver {
    /// Registers the loop's descriptor with the current tokio runtime.
    fn new(core: Arc<Core>) -> io::Result<Driver> {
        let fd = LoopFd(core.ev.fd());
        // SAFETY: the descriptor is the loop's epoll, owned by `core.ev` (an `EvLoop`, which
        // closes it only when dropped). The `AsyncFd` is a field of `Driver` declared before
        // the `Arc<Core>` that keeps the loop alive, so it is deregistered and dropped while
        // the descriptor is still open and the same; `LoopFd` returns that one number.
        let afd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(Driver { afd, core })
    }

    /// Does the loop's work whenever its descriptor is readable, until the server is dropped
    /// and its last request finished.
    async fn run(self) {
        let core = &self.core;
        loop {
            let mut guard = match self.afd.readable().await {
                Ok(g) => g,
                Err(e) => {
                    core.fail(format!(
                        "the event loop's descriptor cannot be watched: {e}"
                    ));
                    return;
                }
            };
            loop {
                let again = core.ev.work() == 0;
                if core.dispatch() {
                    return;
                }
                core.spawn_ready();
                if again {
                    // More connections in the backlog than one round takes: the rest after
                    // the other tasks had a turn.
                    tokio::task::yield_now().await;
                    continue;
                }
                // Every descriptor in the loop's epoll is edge-triggered (its own eventfd was
                // drained by `work`), so it turns readable again only with a new event, and
                // tokio keeps an event that came after `readable()` returned.
                guard.clear_ready();
                break;
            }
        }
    }
}

/// A FastCGI server for tokio: the runtime's event loop on a listening socket, driven by a
/// task of the current tokio runtime. Needs the cargo feature `tokio`.
///
/// [`AsyncServer::serve`] runs a handler in a task per request; or requests come from
/// [`AsyncServer::accept`], each an [`AsyncRequest`] to move into a task of its own. Create
/// the server inside a tokio runtime (it spawns its driver task there). The runtime may be
/// multi-threaded: requests are `Send`.
///
/// ```no_run
/// use fcgi_runtime::AsyncServer;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// #[tokio::main]
/// async fn main() -> std::io::Result<()> {
///     let server = AsyncServer::bind("127.0.0.1:9000")?;
///     while let Some(mut req) = server.accept().await? {
///         tokio::spawn(async move {
///             let mut body = Vec::new();
///             req.read_to_end(&mut body).await?;
///             req.write_all(b"Content-Type: text/plain\r\n\r\n").await?;
///             req.write_all(format!("{} bytes\n", body.len()).as_bytes()).await?;
///             req.finish()
///         });
///     }
///     Ok(())
/// }
/// ```
pub struct AsyncServer {
    core: Arc<Core>,
}

impl AsyncServer {
    /// Listens on `address` (the forms of [`Server::bind`](super::Server::bind)) and starts
    /// serving it. Must be called inside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use fcgi_runtime::AsyncServer;
    ///
    /// let server = AsyncServer::bind("127.0.0.1:0")?;
    /// assert!(server.local_addr()?.port() != 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn bind(address: &str) -> io::Result<AsyncServer> {
        AsyncServer::from_fd(listen(address)?)
    }

    /// Serves a listening socket the application opened (a [`std::net::TcpListener`], a
    /// [`std::os::unix::net::UnixListener`], any listening socket as an [`OwnedFd`]). Must be
    /// called inside a tokio runtime.
    pub fn from_listener(listener: impl Into<OwnedFd>) -> io::Result<AsyncServer> {
        AsyncServer::from_fd(listener.into())
    }

    /// Serves the listening socket the process was started on (descriptor 0), as
    /// [`Server::inherited`](super::Server::inherited). Must be called inside a tokio runtime.
    pub fn inherited() -> io::Result<AsyncServer> {
        AsyncServer::from_fd(inherited()?)
    }

    fn from_fd(fd: OwnedFd) -> io::Result<AsyncServer> {
        check_listener(&fd)?;
        let listener = Listener::new(fd);
        let ev = EvLoop::new(listener.raw())?;
        listener.served.store(true, Ordering::Release);
        let core = Arc::new(Core {
            ev,
            listener,
            st: Mutex::new(State::default()),
        });
        tokio::spawn(Driver::new(core.clone())?.run());
        Ok(AsyncServer { core })
    }

    /// The address of a TCP listening socket (an error for a Unix socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(self.core.listener.fd())
    }

    /// The next request whose parameters have all arrived, or `Ok(None)` once
    /// [`shutdown`](super::shutdown) was called. Cancel-safe: a request is taken only when
    /// it is returned.
    pub async fn accept(&self) -> io::Result<Option<AsyncRequest>> {
        poll_fn(|cx| {
            if let Some(r) = self.core.try_accept() {
                return Poll::Ready(r);
            }
            self.core.st.lock().acceptor = Some(cx.waker().clone());
            match self.core.try_accept() {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            }
        })
        .await
    }
}

impl AsyncServer {
    /// Serves every request with `handler`, each in a task of its own, until
    /// [`shutdown`](super::shutdown) is called; then returns (the requests still running go on
    /// in their tasks). Instead of an [`accept`](AsyncServer::accept) loop, and a little faster:
    /// the task that drives the event loop spawns each request's task as it finds the request.
    ///
    /// An error the handler returns is logged (through the runtime's log, stderr by default);
    /// the request, which the handler owns, ends when it is finished or dropped.
    ///
    /// ```no_run
    /// use fcgi_runtime::AsyncServer;
    /// use tokio::io::AsyncWriteExt;
    ///
    /// #[tokio::main]
    /// async fn main() -> std::io::Result<()> {
    ///     AsyncServer::bind("127.0.0.1:9000")?
    ///         .serve(|mut req| async move {
    ///             req.write_all(b"Content-Type: text/plain\r\n\r\nHello, world!\n").await?;
    ///             req.finish()
    ///         })
    ///         .await
    /// }
    /// ```
    pub async fn serve<F, Fut>(self, handler: F) -> io::Result<()>
    where
        F: Fn(AsyncRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
    {
        let spawn: Spawn = Arc::new(move |req: AsyncRequest| {
            let id = req.id();
            let fut = handler(req);
            tokio::spawn(async move {
                if let Err(e) = fut.await {
                    crate::fcgi_log!(Warning, "request {id}: the handler failed: {e}");
                }
            });
        });
        self.core.st.lock().spawn = Some(spawn);
        // Requests already ready, then the driver's rounds.
        self.core.spawn_ready();
        self.core.ev.wake_side().wake();
        poll_fn(|cx| {
            let mut st = self.core.st.lock();
            if st.shut_down {
                return Poll::Ready(Ok(()));
            }
            if let Some(m) = &st.failed {
                return Poll::Ready(Err(io::Error::other(m.clone())));
            }
            st.server = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl Drop for AsyncServer {
    /// The driver goes on until the requests handed out are finished, then ends.
    fn drop(&mut self) {
        self.core.st.lock().closed = true;
        self.core.ev.wake_side().wake();
    }
}

impl fmt::Debug for AsyncServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncServer")
            .field("fd", &self.core.listener.raw())
            .finish_non_exhaustive()
    }
}

/// A FastCGI request of an [`AsyncServer`]: `tokio::io::AsyncRead` as its body (STDIN) and
/// `tokio::io::AsyncWrite` as its response (STDOUT), with the accessors of the blocking
/// [`Request`](super::Request). Writes are buffered up to the output buffer's size
/// ([`Limit::OutputBufferBytes`](super::Limit::OutputBufferBytes)); `flush` sends what is
/// buffered (for a response streamed in pieces); [`AsyncRequest::finish`] (or dropping the
/// request) sends the rest and END_REQUEST without waiting (what the socket does not take at
/// once leaves as the web server reads). A write waits (returns `Pending`) while the
/// connection holds more than the write-behind limit the web server has not read.
///
/// ```no_run
/// # async fn f(mut req: fcgi_runtime::AsyncRequest) -> std::io::Result<()> {
/// use tokio::io::AsyncWriteExt;
///
/// if req.param_str("HTTP_AUTHORIZATION") == Some("Bearer let-me-in") {
///     req.write_all(b"Status: 200 OK\r\n\r\n").await?;
/// } else {
///     req.write_all(b"Status: 403 Forbidden\r\n\r\n").await?;
/// }
/// req.finish()
/// # }
/// ```
pub struct AsyncRequest {
    obj: Option<Obj>,
    core: Arc<Core>,
    role: Role,
    stdin_done: bool,
    app_status: u32,
}

impl AsyncRequest {
    fn new(obj: Obj, core: Arc<Core>) -> AsyncRequest {
        let role = request::role(&obj.inner);
        AsyncRequest {
            obj: Some(obj),
            core,
            role,
            stdin_done: false,
            app_status: 0,
        }
    }

    fn obj(&self) -> &Obj {
        self.obj
            .as_ref()
            .expect("a request object until finish or drop")
    }

    fn inner(&self) -> &Inner {
        &self.obj().inner
    }

    /// One attempt of `op`; if it would wait, the task's waker is registered and `op` tried
    /// once more (a wake-up between the two is not lost), then `Pending`.
    fn poll_op<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut Inner) -> Option<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let Some(obj) = self.obj.as_mut() else {
            return Poll::Ready(Err(super::stream_error(false)));
        };
        if let Some(r) = op(&mut obj.inner) {
            return Poll::Ready(r);
        }
        if let Some(e) = self.core.failure() {
            return Poll::Ready(Err(e));
        }
        self.core.register(obj.key, cx.waker());
        match op(&mut obj.inner) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }

    fn poll_read_stream(
        &mut self,
        cx: &mut Context<'_>,
        which: Stream,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let r = self.poll_op(cx, |inner| {
            let b = buf.initialize_unfilled();
            match inner.read(which, b) {
                WOULD_BLOCK => None,
                n => Some(request::read_result(inner, n)),
            }
        });
        match r {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                if n == 0 && which == Stream::Stdin {
                    self.stdin_done = true;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write_stream(
        &mut self,
        cx: &mut Context<'_>,
        rt: u8,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.poll_op(cx, |inner| match inner.write_nb(rt, buf) {
            Ok(0) => None,
            Ok(n) => Some(Ok(n)),
            Err(e) => Some(Err(super::send_error(e))),
        })
    }

    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_op(cx, |inner| match inner.flush_nb() {
            Ok(true) => Some(Ok(())),
            Ok(false) => None,
            Err(e) => Some(Err(super::send_error(e))),
        })
    }

    /// The value of parameter `name`, as bytes (see [`Request::param`](super::Request::param)).
    pub fn param(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        request::param(self.inner(), name.as_ref())
    }

    /// The value of parameter `name` as text: `None` if absent or not UTF-8.
    pub fn param_str(&self, name: impl AsRef<[u8]>) -> Option<&str> {
        self.param(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every parameter, in the order the web server sent them.
    pub fn params(&self) -> Params<'_> {
        Params::of(self.inner())
    }

    /// The role the web server asked for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The FastCGI request id.
    pub fn id(&self) -> u16 {
        self.inner().id().unwrap_or(0)
    }

    /// True once the web server aborted the request or its connection failed. A task waiting
    /// in a read or write of the request is woken when that happens (the call then fails).
    pub fn is_aborted(&self) -> bool {
        self.inner().is_aborted()
    }

    /// Sets the application status sent in END_REQUEST.
    pub fn set_app_status(&mut self, status: u32) {
        self.app_status = status;
        if let Some(o) = self.obj.as_mut() {
            o.inner.set_app_status(status);
        }
    }

    /// The application status set so far.
    pub fn app_status(&self) -> u32 {
        self.app_status
    }

    /// The Filter role's DATA stream, readable once the body has been read to its end (see
    /// [`Request::data`](super::Request::data)).
    pub fn data(&mut self) -> AsyncData<'_> {
        AsyncData { req: self }
    }

    /// A writer to the request's STDERR stream.
    pub fn stderr(&mut self) -> AsyncStderr<'_> {
        AsyncStderr { req: self }
    }

    /// Ends the request: the rest of the output, the end of the streams and END_REQUEST go to
    /// the connection without waiting. Dropping the request does the same and ignores the
    /// error. Fails when the response could not be delivered (aborted or connection gone).
    pub fn finish(mut self) -> io::Result<()> {
        self.end()
    }

    fn end(&mut self) -> io::Result<()> {
        let Some(mut obj) = self.obj.take() else {
            return Ok(());
        };
        let (ok, _) = obj.inner.finish(false);
        let aborted = !ok && obj.inner.is_aborted();
        self.core.give_back(obj);
        if ok {
            Ok(())
        } else {
            Err(super::stream_error(aborted))
        }
    }
}

impl AsyncRead for AsyncRequest {
    /// Reads the body (STDIN); nothing read at its end.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_read_stream(cx, Stream::Stdin, buf)
    }
}

impl AsyncWrite for AsyncRequest {
    /// Writes to the response (STDOUT).
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_stream(cx, rtype::STDOUT, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_out(cx)
    }

    /// Flushes; the request ends with [`AsyncRequest::finish`] or when dropped.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_out(cx)
    }
}

impl Drop for AsyncRequest {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

impl fmt::Debug for AsyncRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRequest")
            .field("id", &self.obj.as_ref().and_then(|o| o.inner.id()))
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The Filter role's DATA stream of an [`AsyncRequest`], from [`AsyncRequest::data`].
#[derive(Debug)]
pub struct AsyncData<'a> {
    req: &'a mut AsyncRequest,
}

impl AsyncRead for AsyncData<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let req = &mut *self.get_mut().req;
        if let Some(e) = request::no_data_stream(req.role, req.stdin_done) {
            return Poll::Ready(Err(e));
        }
        req.poll_read_stream(cx, Stream::Data, buf)
    }
}

/// The STDERR stream of an [`AsyncRequest`], from [`AsyncRequest::stderr`].
#[derive(Debug)]
pub struct AsyncStderr<'a> {
    req: &'a mut AsyncRequest,
}

impl AsyncWrite for AsyncStderr<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().req.poll_write_stream(cx, rtype::STDERR, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().req.poll_flush_out(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().req.poll_flush_out(cx)
    }
}
