//! FCGX_Stream: readers over a request's STDIN/DATA, writers into its STDOUT/STDERR, and the
//! standalone record writer of FCGX_CreateWriter.
//!
//! A request's streams live in its [`LfState`](super::fcgx::LfState) and are reused request
//! after request. `data` points at a [`Backing`] saying what the stream is attached to.
//!
//! Readers keep libfcgi's buffer discipline in the public fields (`rdNext..stop` is the unread
//! part of the current fill, `stopUnget` its start, so `FCGX_UnGetChar` works as in libfcgi).
//! Writers keep `rdNext == wrNext == stop`: their bytes go straight into the runtime's output
//! framer, which builds the STDOUT/STDERR records and sends them when its buffer fills, on
//! FCGX_FFlush, and at the end of the request.
//!
//! Error codes (FCGX_GetError): 0, a positive errno, or a negative FCGX_* code as in libfcgi.
//! An aborted request reports ECONNABORTED on every stream (libfcgi reports a protocol error,
//! and only on stdin); a connection that failed reports ECONNRESET on reads and EPIPE on writes.

use super::fcgx::LfState;
use super::types::*;
use crate::ffi::panic::{guard, guard_or};
use fcgi_runtime::io::SendError;
use fcgi_runtime::server::Stream;
use fcgi_runtime::sys;
use fcgi_runtime_protocol::record::{padding_for, rtype, Header, HEADER_LEN};
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;

/// What a stream is attached to.
pub(super) enum Backing {
    /// One of a request's three streams.
    Request { owner: *mut LfState, kind: Kind },
    /// A writer made by FCGX_CreateWriter: records straight to a descriptor.
    Fd(FdWriter),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    In,
    Out,
    Err,
}

/// Readers: bytes per fill (libfcgi's reader buffer is 8192 bytes too).
pub(super) const READ_BUF: usize = 8192;

impl FCGX_Stream {
    pub(super) fn zeroed() -> FCGX_Stream {
        FCGX_Stream {
            rdNext: ptr::null_mut(),
            wrNext: ptr::null_mut(),
            stop: ptr::null_mut(),
            stopUnget: ptr::null_mut(),
            isReader: 0,
            isClosed: 0,
            wasFCloseCalled: 0,
            FCGI_errno: 0,
            fillBuffProc: None,
            emptyBuffProc: None,
            data: ptr::null_mut(),
        }
    }

    /// Makes the stream an open, empty reader over `buf` (or an open writer).
    pub(super) fn reset(&mut self, reader: bool, buf: *mut u8) {
        self.rdNext = buf;
        self.wrNext = buf;
        self.stop = buf;
        self.stopUnget = buf;
        self.isReader = reader as c_int;
        self.isClosed = 0;
        self.wasFCloseCalled = 0;
        self.FCGI_errno = 0;
    }

    /// libfcgi's SetError: the first error sticks, and the stream is closed.
    pub(super) fn set_error(&mut self, code: c_int) {
        if self.FCGI_errno == 0 {
            self.FCGI_errno = code;
        }
        self.isClosed = 1;
    }
}

/// The stream behind a pointer, or None for NULL.
///
/// # Safety
/// `s` is NULL or a stream made by this library and not yet freed.
unsafe fn stream<'a>(s: *mut FCGX_Stream) -> Option<&'a mut FCGX_Stream> {
    // SAFETY: per the function's contract.
    unsafe { s.as_mut() }
}

/// The backing of a stream.
///
/// # Safety
/// `s.data` is NULL or points at a live `Backing` (true for every stream this library makes).
unsafe fn backing<'a>(s: &FCGX_Stream) -> Option<&'a mut Backing> {
    // SAFETY: per the function's contract.
    unsafe { (s.data as *mut Backing).as_mut() }
}

/// The request state and stream kind of a request stream.
///
/// # Safety
/// As [`backing`]; the owner outlives its streams.
unsafe fn owner<'a>(s: &FCGX_Stream) -> Option<(&'a mut LfState, Kind)> {
    // SAFETY: per the function's contract.
    match unsafe { backing(s) }? {
        // SAFETY: the state owns the stream, so it is alive while the stream is used.
        Backing::Request { owner, kind } => unsafe { owner.as_mut() }.map(|o| (o, *kind)),
        Backing::Fd(_) => None,
    }
}

pub(super) fn send_error_code(e: SendError) -> c_int {
    match e {
        SendError::Aborted => libc::ECONNABORTED,
        SendError::Broken => libc::EPIPE,
    }
}

/// Refills a reader. Returns false at the end of the stream or on error (the stream is then
/// closed, with the error recorded).
///
/// # Safety
/// `s` is a live stream of this library.
unsafe fn fill(s: &mut FCGX_Stream) -> bool {
    if s.isClosed != 0 || s.isReader == 0 {
        return false;
    }
    // SAFETY: per the function's contract.
    let Some((st, Kind::In)) = (unsafe { owner(s) }) else {
        return false;
    };
    if !st.is_current() {
        s.set_error(FCGX_CALL_SEQ_ERROR);
        return false;
    }
    let which = if st.reading_data {
        Stream::Data
    } else {
        Stream::Stdin
    };
    let buf = st.rbuf.as_mut_ptr();
    let n = st.req.read(which, &mut st.rbuf[..]);
    if n > 0 {
        s.rdNext = buf;
        s.stopUnget = buf;
        // SAFETY: n <= rbuf.len().
        s.stop = unsafe { buf.add(n as usize) };
        s.wrNext = s.stop;
        true
    } else if n == 0 {
        s.rdNext = buf;
        s.stop = buf;
        s.wrNext = buf;
        s.isClosed = 1;
        false
    } else {
        s.set_error(st.input_error());
        false
    }
}

/// Writes `data` to a writer. Returns false (with the error recorded) on failure.
///
/// # Safety
/// `s` is a live stream of this library.
unsafe fn put(s: &mut FCGX_Stream, data: &[u8]) -> bool {
    if s.isClosed != 0 || s.isReader != 0 {
        return false;
    }
    // SAFETY: per the function's contract.
    let r = match unsafe { backing(s) } {
        Some(Backing::Request { owner, kind }) => {
            // SAFETY: the state owns the stream and outlives it.
            let Some(st) = (unsafe { owner.as_mut() }) else {
                return false;
            };
            if !st.is_current() {
                s.set_error(FCGX_CALL_SEQ_ERROR);
                return false;
            }
            let rt = if *kind == Kind::Err {
                rtype::STDERR
            } else {
                rtype::STDOUT
            };
            st.req.write(rt, data).map_err(send_error_code)
        }
        Some(Backing::Fd(w)) => w.put(data),
        None => Err(libc::EBADF),
    };
    match r {
        Ok(()) => true,
        Err(code) => {
            s.set_error(code);
            false
        }
    }
}

/// Reads one byte: 0..255, or EOF at the end of the stream, on error, or for a writer.
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetChar(stream: *mut FCGX_Stream) -> c_int {
    guard("FCGX_GetChar", || {
        // SAFETY: the caller passes a stream of this library or NULL.
        let Some(s) = (unsafe { self::stream(stream) }) else {
            return EOF;
        };
        if s.isReader == 0 {
            return EOF;
        }
        // SAFETY: rdNext < stop lie in the current fill of the reader's buffer.
        unsafe {
            if s.rdNext == s.stop && !fill(s) {
                return EOF;
            }
            let c = *s.rdNext;
            s.rdNext = s.rdNext.add(1);
            c as c_int
        }
    })
}

/// Pushes `c` back: possible only back to the start of the current buffer fill. Returns `c`,
/// or EOF when it cannot (c is EOF, the stream is closed or not a reader, nothing to push back).
#[no_mangle]
pub unsafe extern "C" fn FCGX_UnGetChar(c: c_int, stream: *mut FCGX_Stream) -> c_int {
    guard("FCGX_UnGetChar", || {
        // SAFETY: the caller passes a stream of this library or NULL.
        let Some(s) = (unsafe { self::stream(stream) }) else {
            return EOF;
        };
        if c == EOF || s.isReader == 0 || s.isClosed != 0 || s.rdNext == s.stopUnget {
            return EOF;
        }
        // SAFETY: stopUnget < rdNext, both in the current fill.
        unsafe {
            s.rdNext = s.rdNext.sub(1);
            *s.rdNext = c as u8;
        }
        c
    })
}

/// Reads up to `n` bytes into `str`. Returns the count; fewer than `n` means the end of the
/// stream or an error.
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetStr(
    str: *mut c_char,
    n: c_int,
    stream: *mut FCGX_Stream,
) -> c_int {
    // Failure value: a count of bytes read: a panic read nothing.
    guard_or("FCGX_GetStr", 0, || {
        // SAFETY: the caller passes a stream of this library or NULL.
        let Some(s) = (unsafe { self::stream(stream) }) else {
            return 0;
        };
        if n <= 0 || str.is_null() || s.isReader == 0 {
            return 0;
        }
        let mut got = 0usize;
        let want = n as usize;
        let dst = str.cast::<u8>();
        loop {
            // SAFETY: rdNext..stop is the unread part of the current fill; dst has room for
            // `want` bytes (the caller's contract).
            unsafe {
                let avail = s.stop.offset_from(s.rdNext) as usize;
                let take = avail.min(want - got);
                ptr::copy_nonoverlapping(s.rdNext, dst.add(got), take);
                s.rdNext = s.rdNext.add(take);
                got += take;
                if got == want || !fill(s) {
                    return got as c_int;
                }
            }
        }
    })
}

/// Reads a line: at most `n - 1` bytes, up to and including a newline, then a NUL. Returns
/// `str`, or NULL if the stream ended before any byte.
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetLine(
    str: *mut c_char,
    n: c_int,
    stream: *mut FCGX_Stream,
) -> *mut c_char {
    guard("FCGX_GetLine", || {
        if str.is_null() || n <= 0 {
            return ptr::null_mut();
        }
        let mut i = 0usize;
        let limit = (n - 1) as usize;
        while i < limit {
            // SAFETY: forwarded contract.
            let c = unsafe { FCGX_GetChar(stream) };
            if c == EOF {
                if i == 0 {
                    return ptr::null_mut();
                }
                break;
            }
            // SAFETY: i < n - 1, inside the caller's buffer.
            unsafe { *str.add(i) = c as c_char };
            i += 1;
            if c == b'\n' as c_int {
                break;
            }
        }
        // SAFETY: i <= n - 1.
        unsafe { *str.add(i) = 0 };
        str
    })
}

/// EOF (-1) once the stream is closed (its end was read, or an error happened), else 0.
#[no_mangle]
pub unsafe extern "C" fn FCGX_HasSeenEOF(stream: *mut FCGX_Stream) -> c_int {
    // SAFETY: the caller passes a stream of this library or NULL.
    match unsafe { self::stream(stream) } {
        Some(s) if s.isClosed == 0 => 0,
        _ => EOF,
    }
}

/// Writes one byte. Returns it (0..255), or EOF on error.
#[no_mangle]
pub unsafe extern "C" fn FCGX_PutChar(c: c_int, stream: *mut FCGX_Stream) -> c_int {
    guard("FCGX_PutChar", || {
        // SAFETY: the caller passes a stream of this library or NULL.
        let Some(s) = (unsafe { self::stream(stream) }) else {
            return EOF;
        };
        let b = c as u8;
        // SAFETY: a live stream.
        if unsafe { put(s, &[b]) } {
            b as c_int
        } else {
            EOF
        }
    })
}

/// Writes `n` bytes. Returns `n`, or -1 on error.
#[no_mangle]
pub unsafe extern "C" fn FCGX_PutStr(
    str: *const c_char,
    n: c_int,
    stream: *mut FCGX_Stream,
) -> c_int {
    guard("FCGX_PutStr", || {
        // SAFETY: the caller passes a stream of this library or NULL.
        let Some(s) = (unsafe { self::stream(stream) }) else {
            return -1;
        };
        if n < 0 || (str.is_null() && n > 0) {
            return -1;
        }
        if n == 0 {
            return if s.isClosed != 0 || s.isReader != 0 {
                -1
            } else {
                0
            };
        }
        // SAFETY: the caller passes n readable bytes.
        let data = unsafe { std::slice::from_raw_parts(str.cast::<u8>(), n as usize) };
        // SAFETY: a live stream.
        if unsafe { put(s, data) } {
            n
        } else {
            -1
        }
    })
}

/// Writes a NUL-terminated string. Returns its length, or -1 on error.
#[no_mangle]
pub unsafe extern "C" fn FCGX_PutS(str: *const c_char, stream: *mut FCGX_Stream) -> c_int {
    if str.is_null() {
        return -1;
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let len = unsafe { libc::strlen(str) };
    if len > c_int::MAX as usize {
        return -1;
    }
    // SAFETY: forwarded contract.
    unsafe { FCGX_PutStr(str, len as c_int, stream) }
}

/// Sends what a writer has buffered. 0 on success (and for readers and closed streams), -1 if
/// the stream failed.
#[no_mangle]
pub unsafe extern "C" fn FCGX_FFlush(stream: *mut FCGX_Stream) -> c_int {
    guard("FCGX_FFlush", || {
        // SAFETY: the caller passes a stream of this library or NULL.
        let Some(s) = (unsafe { self::stream(stream) }) else {
            return 0;
        };
        if s.isClosed != 0 || s.isReader != 0 {
            return 0;
        }
        // SAFETY: a live stream.
        let r = match unsafe { backing(s) } {
            Some(Backing::Request { owner, .. }) => {
                // SAFETY: the state owns the stream and outlives it.
                match unsafe { owner.as_mut() } {
                    Some(st) if st.is_current() => st.req.flush().map_err(send_error_code),
                    _ => Err(FCGX_CALL_SEQ_ERROR),
                }
            }
            Some(Backing::Fd(w)) => w.flush(),
            None => Err(libc::EBADF),
        };
        match r {
            Ok(()) => 0,
            Err(code) => {
                s.set_error(code);
                -1
            }
        }
    })
}

/// Closes a stream (once; later calls only report). A writer sends what it buffered; the
/// end-of-stream records and END_REQUEST of a request go out when its last writer closes or
/// the request finishes. Returns 0, or EOF if the stream has an error.
#[no_mangle]
pub unsafe extern "C" fn FCGX_FClose(stream: *mut FCGX_Stream) -> c_int {
    guard("FCGX_FClose", || {
        // SAFETY: the caller passes a stream of this library or NULL.
        let Some(s) = (unsafe { self::stream(stream) }) else {
            return 0;
        };
        if s.wasFCloseCalled == 0 {
            if s.isReader == 0 && s.isClosed == 0 {
                // SAFETY: a live stream.
                match unsafe { backing(s) } {
                    Some(Backing::Request { owner, .. }) => {
                        // SAFETY: the state owns the stream and outlives it.
                        if let Some(st) = unsafe { owner.as_mut() } {
                            if let Err(code) = st.close_writer() {
                                s.set_error(code);
                            }
                        }
                    }
                    Some(Backing::Fd(w)) => {
                        if let Err(code) = w.close() {
                            s.set_error(code);
                        }
                    }
                    None => {}
                }
            }
            s.wasFCloseCalled = 1;
            s.isClosed = 1;
            if s.isReader != 0 {
                s.wrNext = s.rdNext;
                s.stop = s.rdNext;
            } else {
                s.rdNext = s.wrNext;
                s.stop = s.wrNext;
            }
        }
        if s.FCGI_errno == 0 {
            0
        } else {
            EOF
        }
    })
}

/// The stream's error: 0, a positive errno, or a negative FCGX_* code.
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetError(stream: *mut FCGX_Stream) -> c_int {
    // SAFETY: the caller passes a stream of this library or NULL.
    unsafe { self::stream(stream) }.map_or(0, |s| s.FCGI_errno)
}

/// Clears the error code (not the closed state, as in libfcgi).
#[no_mangle]
pub unsafe extern "C" fn FCGX_ClearError(stream: *mut FCGX_Stream) {
    // SAFETY: the caller passes a stream of this library or NULL.
    if let Some(s) = unsafe { self::stream(stream) } {
        s.FCGI_errno = 0;
    }
}

/// A writer that frames what is written as records of `stream_type` for `request_id` and
/// writes them to `socket` (cgi-fcgi sends its PARAMS this way). Closing it sends the
/// end-of-stream record; it never sends END_REQUEST. Free it with FCGX_FreeStream.
#[no_mangle]
pub extern "C" fn FCGX_CreateWriter(
    socket: c_int,
    request_id: c_int,
    bufflen: c_int,
    stream_type: c_int,
) -> *mut FCGX_Stream {
    guard("FCGX_CreateWriter", || {
        let w = FdWriter::new(socket, request_id as u16, bufflen, stream_type as u8);
        let back = Box::into_raw(Box::new(Backing::Fd(w)));
        let mut s = FCGX_Stream::zeroed();
        s.reset(false, ptr::null_mut());
        s.data = back as *mut c_void;
        Box::into_raw(Box::new(s))
    })
}

/// Frees a stream made by FCGX_CreateWriter and sets `*stream` to NULL. A request's own
/// streams belong to the request: for them it only clears the pointer.
#[no_mangle]
pub unsafe extern "C" fn FCGX_FreeStream(stream: *mut *mut FCGX_Stream) {
    guard("FCGX_FreeStream", || {
        // SAFETY: the caller passes NULL or a pointer to a stream pointer.
        let Some(slot) = (unsafe { stream.as_mut() }) else {
            return;
        };
        let s = *slot;
        *slot = ptr::null_mut();
        // SAFETY: a stream of this library or NULL.
        let Some(sr) = (unsafe { s.as_mut() }) else {
            return;
        };
        let is_fd = matches!(
            // SAFETY: a live stream.
            unsafe { backing(sr) },
            Some(Backing::Fd(_))
        );
        if is_fd {
            // SAFETY: both were made with Box::into_raw by FCGX_CreateWriter.
            unsafe {
                drop(Box::from_raw(sr.data as *mut Backing));
                drop(Box::from_raw(s));
            }
        }
    })
}

/// The record writer of FCGX_CreateWriter: blocking writes (waiting out EAGAIN) to a
/// descriptor the caller owns.
///
/// `buf` holds the record being built in place: 8 header bytes (filled at flush), the content,
/// and room for the padding, so a record leaves with one write and nothing is allocated after
/// creation.
pub(super) struct FdWriter {
    fd: c_int,
    id: u16,
    rtype: u8,
    /// Header space, then content: records carry at most `cap` content bytes.
    buf: Vec<u8>,
    cap: usize,
}

impl FdWriter {
    fn new(fd: c_int, id: u16, bufflen: c_int, rtype: u8) -> FdWriter {
        // libfcgi: the buffer is clamped to [32, 65536], rounded up to a multiple of 8, and
        // 8 bytes of it hold the header.
        let len = (bufflen.clamp(32, 65536) as usize).div_ceil(8) * 8;
        let mut buf = Vec::with_capacity(len + 8);
        buf.resize(HEADER_LEN, 0);
        FdWriter {
            fd,
            id,
            rtype,
            buf,
            cap: len - 8,
        }
    }

    /// Content bytes buffered.
    fn content_len(&self) -> usize {
        self.buf.len() - HEADER_LEN
    }

    fn put(&mut self, mut data: &[u8]) -> Result<(), c_int> {
        while !data.is_empty() {
            let room = self.cap - self.content_len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.content_len() == self.cap {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Sends the buffered bytes as one record (nothing if empty).
    fn flush(&mut self) -> Result<(), c_int> {
        let len = self.content_len();
        if len == 0 {
            return Ok(());
        }
        // cap <= 65528 and a multiple of 8, so the content fits a record and the padding
        // fits the capacity reserved at creation.
        let pad = padding_for(len);
        self.buf[..HEADER_LEN]
            .copy_from_slice(&Header::encode(self.rtype, self.id, len as u16, pad));
        self.buf.resize(self.buf.len() + pad as usize, 0);
        let r = write_all(self.fd, &self.buf);
        self.buf.truncate(HEADER_LEN);
        r
    }

    /// Sends the rest and the empty end-of-stream record.
    fn close(&mut self) -> Result<(), c_int> {
        self.flush()?;
        write_all(self.fd, &Header::encode(self.rtype, self.id, 0, 0))
    }
}

/// Writes everything, retrying on EINTR and waiting for POLLOUT on EAGAIN. Returns the errno
/// on failure.
fn write_all(fd: c_int, mut data: &[u8]) -> Result<(), c_int> {
    while !data.is_empty() {
        // send(MSG_NOSIGNAL) never raises SIGPIPE; write(2) for a descriptor that is not a
        // socket; EINTR is retried inside.
        match sys::send(fd, data) {
            Ok(n) => data = &data[n..],
            Err(e) => match e.raw_os_error().unwrap_or(libc::EIO) {
                libc::EAGAIN => {
                    let _ = sys::poll_one(fd, libc::POLLOUT, -1);
                }
                e => return Err(e),
            },
        }
    }
    Ok(())
}
