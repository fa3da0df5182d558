// STUB: placeholder signatures until the real implementation lands (this line goes with it).
//! FCGX_Stream: readers over a request's STDIN/DATA, writers into its STDOUT/STDERR, and the
//! standalone record writer of FCGX_CreateWriter.

use super::types::*;
use std::os::raw::{c_char, c_int};

#[no_mangle]
pub unsafe extern "C" fn FCGX_GetChar(_stream: *mut FCGX_Stream) -> c_int {
    EOF
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_UnGetChar(_c: c_int, _stream: *mut FCGX_Stream) -> c_int {
    EOF
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetStr(
    _str: *mut c_char,
    _n: c_int,
    _stream: *mut FCGX_Stream,
) -> c_int {
    0
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetLine(
    _str: *mut c_char,
    _n: c_int,
    _stream: *mut FCGX_Stream,
) -> *mut c_char {
    std::ptr::null_mut()
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_HasSeenEOF(_stream: *mut FCGX_Stream) -> c_int {
    EOF
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_PutChar(_c: c_int, _stream: *mut FCGX_Stream) -> c_int {
    EOF
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_PutStr(
    _str: *const c_char,
    _n: c_int,
    _stream: *mut FCGX_Stream,
) -> c_int {
    -1
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_PutS(_str: *const c_char, _stream: *mut FCGX_Stream) -> c_int {
    -1
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_FFlush(_stream: *mut FCGX_Stream) -> c_int {
    -1
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_FClose(_stream: *mut FCGX_Stream) -> c_int {
    -1
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetError(_stream: *mut FCGX_Stream) -> c_int {
    0
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_ClearError(_stream: *mut FCGX_Stream) {}
#[no_mangle]
pub unsafe extern "C" fn FCGX_CreateWriter(
    _socket: c_int,
    _request_id: c_int,
    _bufflen: c_int,
    _stream_type: c_int,
) -> *mut FCGX_Stream {
    std::ptr::null_mut()
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_FreeStream(_stream: *mut *mut FCGX_Stream) {}
