//! The blocking face's server: a listening socket and the request objects that serve it.

use super::request::Request;
use crate::addr;
use crate::request::{AcceptError, Request as Inner};
use parking_lot::Mutex;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The listen backlog of [`Server::bind`] (the kernel caps it at `net.core.somaxconn`).
pub(crate) const BACKLOG: i32 = 1024;

/// Opens a listening socket: `host:port`, `[v6]:port`, `:port`, `port` or a Unix socket path.
/// An address that parses as a socket address (`127.0.0.1:0`, `[::1]:9000`) is TCP, port 0
/// included (a free port); other forms follow PHP's `fcgi_listen` syntax (see
/// [`addr::parse_listen`]), where a text like `name:0` would be a Unix socket path.
pub(crate) fn listen(address: &str) -> io::Result<OwnedFd> {
    let a = match address.parse::<SocketAddr>() {
        Ok(sa) => addr::ListenAddr::Tcp(sa),
        Err(_) => addr::parse_listen(address)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
    };
    addr::listen(&a, BACKLOG)
}

/// Checks that `fd` is a listening socket.
pub(crate) fn check_listener(fd: &OwnedFd) -> io::Result<()> {
    if addr::fd_is_listening_socket(fd.as_raw_fd()) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a listening socket",
        ))
    }
}

/// The listening socket a web server or spawner started the process on (descriptor 0, as
/// FastCGI's `FCGI_LISTENSOCK_FILENO`), duplicated.
pub(crate) fn inherited() -> io::Result<OwnedFd> {
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    check_listener(&fd).map_err(|_| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "descriptor 0 is not a listening socket: not started as a FastCGI application",
        )
    })?;
    Ok(fd)
}

/// The TCP address a listening socket is bound to.
pub(crate) fn local_addr(fd: &OwnedFd) -> io::Result<SocketAddr> {
    TcpListener::from(fd.try_clone()?).local_addr()
}

/// A listening socket kept open once the runtime served it (the runtime of a listening socket
/// lives as long as the process, and knows the socket by its descriptor number).
pub(crate) struct Listener {
    fd: Option<OwnedFd>,
    pub(crate) served: AtomicBool,
}

impl Listener {
    pub(crate) fn new(fd: OwnedFd) -> Listener {
        Listener {
            fd: Some(fd),
            served: AtomicBool::new(false),
        }
    }

    pub(crate) fn fd(&self) -> &OwnedFd {
        self.fd.as_ref().expect("the socket until drop")
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd().as_raw_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            if self.served.load(Ordering::Acquire) {
                // Left open on purpose: a descriptor number reused by another socket would
                // reach the runtime still serving this one.
                let _ = fd.into_raw_fd();
            }
        }
    }
}

/// What a server and its requests share: the socket and the request objects not in use.
pub(crate) struct Shared {
    listener: Listener,
    /// Boxed: an object moves between this list and a `Request` as a pointer, and a `Request`
    /// stays small to move around.
    #[allow(clippy::vec_box)]
    spare: Mutex<Vec<Box<Inner>>>,
}

impl Shared {
    /// A request object is done with: kept for the next request.
    pub(super) fn give_back(&self, inner: Box<Inner>) {
        self.spare.lock().push(inner);
    }
}

/// A blocking FastCGI server: a listening socket and the runtime serving it.
///
/// Create it with [`Server::bind`], [`Server::from_listener`] or [`Server::inherited`] (the
/// socket a web server started the application on), then run [`Server::serve`] with a handler,
/// or write the accept loop with [`Server::accept`]. Connections and threads are independent:
/// the runtime's event loop holds every connection (an idle keep-alive connection does not
/// hold a thread), and any thread waiting in `accept` takes the next ready request.
///
/// ```no_run
/// use fcgi_runtime::Server;
/// use std::io::Write;
///
/// // Started by a web server (spawn-fcgi, mod_fcgid): its socket; otherwise listen.
/// let server = match Server::inherited() {
///     Ok(s) => s,
///     Err(_) => Server::bind("127.0.0.1:9000")?,
/// };
/// server.threads(8).serve(|req| {
///     req.write_all(b"Status: 204 No Content\r\n\r\n")
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    shared: Arc<Shared>,
    threads: usize,
}

impl Server {
    /// Listens on `address`: `host:port` (`127.0.0.1:9000`, `localhost:9000`), `[v6]:port`,
    /// `:port` or `port` (every IPv4 address), or a Unix socket path (`/run/app.sock`; an
    /// existing socket file there is replaced). Port 0 picks a free port
    /// ([`Server::local_addr`] tells which).
    ///
    /// ```
    /// use fcgi_runtime::Server;
    ///
    /// let server = Server::bind("127.0.0.1:0")?;
    /// assert!(server.local_addr()?.port() != 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(address: &str) -> io::Result<Server> {
        Server::from_fd(listen(address)?)
    }

    /// Serves a listening socket the application opened: a [`std::net::TcpListener`], a
    /// [`std::os::unix::net::UnixListener`] or any listening socket as an [`OwnedFd`]. The
    /// runtime makes it non-blocking.
    ///
    /// ```
    /// use fcgi_runtime::Server;
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let server = Server::from_listener(listener)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_listener(listener: impl Into<OwnedFd>) -> io::Result<Server> {
        Server::from_fd(listener.into())
    }

    /// Serves the listening socket the process was started on, descriptor 0, as a web server
    /// (mod_fcgid, lighttpd's `bin-path`) or a spawner (spawn-fcgi, `fcgi-spawn`) starts a
    /// FastCGI application. An error of kind [`io::ErrorKind::NotFound`] when descriptor 0 is
    /// not a listening socket (the program was started some other way).
    pub fn inherited() -> io::Result<Server> {
        Server::from_fd(inherited()?)
    }

    fn from_fd(fd: OwnedFd) -> io::Result<Server> {
        check_listener(&fd)?;
        Ok(Server {
            shared: Arc::new(Shared {
                listener: Listener::new(fd),
                spare: Mutex::new(Vec::new()),
            }),
            threads: 1,
        })
    }

    /// How many threads [`Server::serve`] runs the handler on (at least 1; 1 by default).
    /// Each thread serves one request at a time.
    pub fn threads(mut self, n: usize) -> Server {
        self.threads = n.max(1);
        self
    }

    /// The address of a TCP listening socket (an error for a Unix socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(self.shared.listener.fd())
    }

    /// Waits for the next request and returns it, or `Ok(None)` once [`shutdown`] was
    /// called. Any number of threads may wait in `accept` at once (the server is `Sync`);
    /// each request goes to one of them. The request ends when it is finished or dropped.
    ///
    /// [`shutdown`]: super::shutdown
    pub fn accept(&self) -> io::Result<Option<Request>> {
        let shared = &self.shared;
        let popped = shared.spare.lock().pop();
        let mut inner = popped.unwrap_or_else(|| Box::new(Inner::new(shared.listener.raw())));
        shared.listener.served.store(true, Ordering::Release);
        match inner.accept() {
            Ok(_) => Ok(Some(Request::new(inner, shared.clone()))),
            Err(AcceptError::Shutdown) => {
                shared.give_back(inner);
                Ok(None)
            }
            Err(AcceptError::Io(e)) => {
                shared.give_back(inner);
                Err(e)
            }
        }
    }

    /// Serves requests with `handler` on [`threads`](Server::threads) threads (the calling
    /// thread and `threads - 1` more) until [`shutdown`](super::shutdown) is called, then
    /// returns once every thread has finished its request.
    ///
    /// The handler reads the request and writes its response; the request is finished when
    /// the handler returns. An error it returns is written to the request's STDERR stream (the
    /// web server logs it) unless the request was aborted, and the application status becomes
    /// 1 if it was still 0. A panic in the handler is caught the same way (the thread goes on
    /// serving). `serve` itself fails only if the listening socket cannot be served.
    pub fn serve<F>(self, handler: F) -> io::Result<()>
    where
        F: Fn(&mut Request) -> io::Result<()> + Sync,
    {
        let handler = &handler;
        let this = &self;
        std::thread::scope(|s| {
            let others: Vec<_> = (1..self.threads)
                .map(|_| s.spawn(move || this.serve_thread(handler)))
                .collect();
            let mut result = this.serve_thread(handler);
            for t in others {
                let r = t.join().unwrap_or_else(|_| {
                    Err(io::Error::other(
                        "a serving thread panicked outside its handler",
                    ))
                });
                if result.is_ok() {
                    result = r;
                }
            }
            result
        })
    }

    fn serve_thread<F>(&self, handler: &F) -> io::Result<()>
    where
        F: Fn(&mut Request) -> io::Result<()> + Sync,
    {
        while let Some(mut req) = self.accept()? {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&mut req)));
            let err = match run {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(p) => Some(panic_text(&*p)),
            };
            if let Some(e) = err {
                if !req.is_aborted() {
                    let _ = writeln!(req.stderr(), "{e}");
                }
                if req.app_status() == 0 {
                    req.set_app_status(1);
                }
            }
            let _ = req.finish();
        }
        Ok(())
    }
}

/// The message of a caught panic.
pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    format!("the handler panicked: {what}")
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("fd", &self.shared.listener.raw())
            .field("threads", &self.threads)
            .finish()
    }
}
