//! The structures of libfcgi's headers, laid out byte for byte as Debian's libfcgi 2.4.2 lays
//! them out (x86_64: FCGX_Stream 72 bytes, FCGX_Request 80, FCGI_FILE 16). C programs allocate
//! and read these directly, so nothing of the runtime may live inside them except behind the
//! private pointers (`FCGX_Stream::data`, `FCGX_Request::paramsPtr`).
#![allow(non_camel_case_types, non_snake_case)]

use std::os::raw::{c_char, c_int, c_void};

/// Error codes a stream reports besides a positive errno (fcgiapp.h).
pub const FCGX_UNSUPPORTED_VERSION: c_int = -2;
pub const FCGX_PROTOCOL_ERROR: c_int = -3;
pub const FCGX_PARAMS_ERROR: c_int = -4;
pub const FCGX_CALL_SEQ_ERROR: c_int = -5;

/// FCGX_InitRequest flag: fail accept when a signal interrupts it.
pub const FCGI_FAIL_ACCEPT_ON_INTR: c_int = 1;
/// The listening socket a FastCGI application inherits.
pub const FCGI_LISTENSOCK_FILENO: c_int = 0;

/// The EOF of stdio.
pub const EOF: c_int = -1;

/// A libfcgi stream. Readers keep `wrNext == stop`, writers keep `rdNext == stop`.
#[repr(C)]
pub struct FCGX_Stream {
    pub rdNext: *mut u8,
    pub wrNext: *mut u8,
    pub stop: *mut u8,
    pub stopUnget: *mut u8,
    pub isReader: c_int,
    pub isClosed: c_int,
    pub wasFCloseCalled: c_int,
    pub FCGI_errno: c_int,
    pub fillBuffProc: Option<unsafe extern "C" fn(*mut FCGX_Stream)>,
    pub emptyBuffProc: Option<unsafe extern "C" fn(*mut FCGX_Stream, c_int)>,
    /// Private: the runtime's state of the stream.
    pub data: *mut c_void,
}

/// A libfcgi request, allocated by the caller (Perl allocates exactly this size).
#[repr(C)]
pub struct FCGX_Request {
    pub requestId: c_int,
    pub role: c_int,
    pub r#in: *mut FCGX_Stream,
    pub out: *mut FCGX_Stream,
    pub err: *mut FCGX_Stream,
    pub envp: *mut *mut c_char,
    /// Private: the runtime's state of the request (a `Box<LfState>`), or NULL.
    pub paramsPtr: *mut c_void,
    pub ipcFd: c_int,
    pub isBeginProcessed: c_int,
    pub keepConnection: c_int,
    pub appStatus: c_int,
    pub nWriters: c_int,
    pub flags: c_int,
    pub listen_sock: c_int,
    pub detached: c_int,
}

/// fcgi_stdio.h's FILE: a libc stream or a FastCGI stream (or neither).
#[repr(C)]
pub struct FCGI_FILE {
    pub stdio_stream: *mut libc::FILE,
    pub fcgx_stream: *mut FCGX_Stream,
}

const _: () = {
    assert!(std::mem::size_of::<FCGX_Stream>() == 72);
    assert!(std::mem::size_of::<FCGX_Request>() == 80);
    assert!(std::mem::size_of::<FCGI_FILE>() == 16);
    assert!(std::mem::offset_of!(FCGX_Stream, data) == 64);
    assert!(std::mem::offset_of!(FCGX_Request, paramsPtr) == 40);
    assert!(std::mem::offset_of!(FCGX_Request, listen_sock) == 72);
    assert!(std::mem::offset_of!(FCGX_Request, detached) == 76);
};
