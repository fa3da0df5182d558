//! One request of the blocking face: its parameters, body, output and end.

use super::server::Shared;
use crate::request::Request as Inner;
use crate::server::Stream;
use fcgi_runtime_protocol::record::rtype;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// The role a request asks the application to play (FastCGI specification, section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// An ordinary request: the application produces the response (CGI/1.1's role).
    Responder,
    /// The application says whether the request may go on: a `Status: 200` response
    /// authorizes it (with `Variable-*` headers passed on), any other status is the answer.
    Authorizer,
    /// The application filters a file, the FastCGI DATA stream ([`Request::data`]), read after
    /// the body.
    Filter,
}

impl Role {
    pub(crate) fn from_protocol(r: fcgi_runtime_protocol::Role) -> Role {
        match r {
            fcgi_runtime_protocol::Role::Responder => Role::Responder,
            fcgi_runtime_protocol::Role::Authorizer => Role::Authorizer,
            fcgi_runtime_protocol::Role::Filter => Role::Filter,
        }
    }

    /// The value of the `FCGI_ROLE` parameter for this role (`RESPONDER`, `AUTHORIZER`,
    /// `FILTER`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Responder => "RESPONDER",
            Role::Authorizer => "AUTHORIZER",
            Role::Filter => "FILTER",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An iterator over a request's parameters as `(name, value)` byte strings, in the order the
/// web server sent them (`FCGI_ROLE` first, added by the runtime). A name sent twice appears
/// twice; [`Request::param`] returns the last value.
pub struct Params<'a> {
    inner: Box<dyn Iterator<Item = (&'a [u8], &'a [u8])> + 'a>,
}

impl<'a> Params<'a> {
    pub(crate) fn of(req: &'a Inner) -> Params<'a> {
        Params {
            inner: Box::new(req.env.params.iter()),
        }
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Params { .. }")
    }
}

/// The accessors both faces share, over the runtime's request object.
pub(crate) fn param<'a>(req: &'a Inner, name: &[u8]) -> Option<&'a [u8]> {
    req.env.params.get(name)
}

pub(crate) fn role(req: &Inner) -> Role {
    Role::from_protocol(req.role().unwrap_or(fcgi_runtime_protocol::Role::Responder))
}

/// Converts the runtime's read result (bytes, 0 at the end, -1 on failure).
pub(crate) fn read_result(req: &Inner, n: isize) -> io::Result<usize> {
    if n >= 0 {
        Ok(n as usize)
    } else {
        Err(super::stream_error(req.is_aborted()))
    }
}

pub(crate) fn no_data_stream(role: Role, stdin_done: bool) -> Option<io::Error> {
    if role != Role::Filter {
        Some(io::Error::new(
            io::ErrorKind::InvalidInput,
            "only a Filter request has a DATA stream",
        ))
    } else if !stdin_done {
        Some(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the DATA stream follows the body: read the request (STDIN) to its end first",
        ))
    } else {
        None
    }
}

/// A FastCGI request being served, from [`Server::accept`](super::Server::accept) or handed to
/// the handler of [`Server::serve`](super::Server::serve).
///
/// It reads as its body (`std::io::Read`: the FastCGI STDIN stream, which ends where the body
/// ends) and writes as its response (`std::io::Write`: STDOUT, CGI headers first). Small writes
/// are buffered (up to [`Limit::OutputBufferBytes`](super::Limit::OutputBufferBytes)) and
/// larger ones go out at once; `flush` sends what is buffered. The request ends with
/// [`Request::finish`], or when it is dropped: the rest of the output, the end of the streams
/// and END_REQUEST with the [application status](Request::set_app_status) are sent, and the
/// connection is kept for the web server's next request if it asked for that.
///
/// When the web server aborts the request (FCGI_ABORT_REQUEST) or its connection fails,
/// [`Request::is_aborted`] turns true and reads and writes fail with
/// [`io::ErrorKind::ConnectionAborted`] (aborted) or [`io::ErrorKind::BrokenPipe`]
/// (connection gone).
///
/// ```no_run
/// use fcgi_runtime::{Role, Server};
/// use std::io::{Read, Write};
///
/// let server = Server::bind("127.0.0.1:9000")?;
/// while let Some(mut req) = server.accept()? {
///     assert_eq!(req.role(), Role::Responder);
///     let mut body = Vec::new();
///     req.read_to_end(&mut body)?;
///     let method = req.param_str("REQUEST_METHOD").unwrap_or("GET").to_owned();
///     write!(req, "Content-Type: text/plain\r\n\r\n{method} with {} bytes\n", body.len())?;
///     req.finish()?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Request {
    /// The runtime's request object; `None` only once given back (in `finish` or `drop`).
    inner: Option<Box<Inner>>,
    home: Arc<Shared>,
    role: Role,
    stdin_done: bool,
    app_status: u32,
}

impl Request {
    pub(super) fn new(inner: Box<Inner>, home: Arc<Shared>) -> Request {
        let role = role(&inner);
        Request {
            inner: Some(inner),
            home,
            role,
            stdin_done: false,
            app_status: 0,
        }
    }

    fn inner(&self) -> &Inner {
        self.inner
            .as_ref()
            .expect("a request object until finish or drop")
    }

    fn inner_mut(&mut self) -> &mut Inner {
        self.inner
            .as_mut()
            .expect("a request object until finish or drop")
    }

    /// The value of parameter `name` (a CGI/1.1 variable such as `REQUEST_URI`, or an HTTP
    /// header as `HTTP_*`), as the bytes the web server sent, or `None` if it sent none.
    pub fn param(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        param(self.inner(), name.as_ref())
    }

    /// The value of parameter `name` as text: `None` if the web server sent no such parameter
    /// or its value is not UTF-8 (use [`Request::param`] for the bytes).
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

    /// The FastCGI request id (unique among the requests in flight on its connection).
    pub fn id(&self) -> u16 {
        self.inner().id().unwrap_or(0)
    }

    /// True once the web server aborted the request (FCGI_ABORT_REQUEST) or its connection
    /// failed: its output goes nowhere and reads and writes fail.
    pub fn is_aborted(&self) -> bool {
        self.inner().is_aborted()
    }

    /// Sets the application status sent in END_REQUEST (the `appStatus` field, like a CGI
    /// program's exit status; 0 unless set).
    pub fn set_app_status(&mut self, status: u32) {
        self.app_status = status;
        self.inner_mut().set_app_status(status);
    }

    /// The application status set so far.
    pub fn app_status(&self) -> u32 {
        self.app_status
    }

    /// The Filter role's DATA stream (the file to filter), readable once the body (STDIN)
    /// has been read to its end. Reading it for another role, or before the body's end, is an
    /// [`io::ErrorKind::InvalidInput`] error.
    pub fn data(&mut self) -> Data<'_> {
        Data { req: self }
    }

    /// A writer to the request's STDERR stream (the web server logs it). Unbuffered writes
    /// share the output buffer with STDOUT, so the order of the two streams is kept.
    pub fn stderr(&mut self) -> Stderr<'_> {
        Stderr { req: self }
    }

    /// Ends the request: sends the rest of the output, the end of its streams and END_REQUEST
    /// with the application status. Dropping the request does the same and ignores the
    /// error. Fails when the response could not be delivered (aborted or connection gone).
    pub fn finish(mut self) -> io::Result<()> {
        self.end()
    }

    fn end(&mut self) -> io::Result<()> {
        let Some(mut inner) = self.inner.take() else {
            return Ok(());
        };
        let (ok, _) = inner.finish(false);
        let aborted = !ok && inner.is_aborted();
        self.home.give_back(inner);
        if ok {
            Ok(())
        } else {
            Err(super::stream_error(aborted))
        }
    }

    fn write_to(&mut self, rt: u8, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            // An empty record would end the stream.
            return Ok(0);
        }
        self.inner_mut()
            .write(rt, buf)
            .map(|()| buf.len())
            .map_err(super::send_error)
    }
}

impl Read for Request {
    /// Reads the body (STDIN): 0 at its end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let inner = self.inner_mut();
        let n = inner.read(Stream::Stdin, buf);
        let r = read_result(inner, n);
        if matches!(r, Ok(0)) && !buf.is_empty() {
            self.stdin_done = true;
        }
        r
    }
}

impl Write for Request {
    /// Writes to the response (STDOUT).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_to(rtype::STDOUT, buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_to(rtype::STDOUT, buf).map(drop)
    }

    /// Sends what is buffered.
    fn flush(&mut self) -> io::Result<()> {
        self.inner_mut().flush().map_err(super::send_error)
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.inner.as_ref().and_then(|r| r.id()))
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The Filter role's DATA stream of a [`Request`], from [`Request::data`].
#[derive(Debug)]
pub struct Data<'a> {
    req: &'a mut Request,
}

impl Read for Data<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = no_data_stream(self.req.role, self.req.stdin_done) {
            return Err(e);
        }
        let inner = self.req.inner_mut();
        let n = inner.read(Stream::Data, buf);
        read_result(inner, n)
    }
}

/// The STDERR stream of a [`Request`], from [`Request::stderr`].
#[derive(Debug)]
pub struct Stderr<'a> {
    req: &'a mut Request,
}

impl Write for Stderr<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.req.write_to(rtype::STDERR, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.req.flush()
    }
}
