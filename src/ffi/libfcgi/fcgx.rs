// STUB: placeholder signatures until the real implementation lands (this line goes with it).
//! fcgiapp.h's request side: FCGX_Init, FCGX_Accept_r and friends, on the runtime's reactor.

use super::types::*;
use std::os::raw::{c_char, c_int};

#[no_mangle]
pub extern "C" fn FCGX_IsCGI() -> c_int {
    1
}
#[no_mangle]
pub extern "C" fn FCGX_Init() -> c_int {
    0
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_OpenSocket(_path: *const c_char, _backlog: c_int) -> c_int {
    -1
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_InitRequest(
    _request: *mut FCGX_Request,
    _sock: c_int,
    _flags: c_int,
) -> c_int {
    0
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_Accept_r(_request: *mut FCGX_Request) -> c_int {
    -1
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_Finish_r(_request: *mut FCGX_Request) {}
#[no_mangle]
pub unsafe extern "C" fn FCGX_Free(_request: *mut FCGX_Request, _close: c_int) {}
#[no_mangle]
pub unsafe extern "C" fn FCGX_Accept(
    _in: *mut *mut FCGX_Stream,
    _out: *mut *mut FCGX_Stream,
    _err: *mut *mut FCGX_Stream,
    _envp: *mut *mut *mut c_char,
) -> c_int {
    -1
}
#[no_mangle]
pub extern "C" fn FCGX_Finish() {}
#[no_mangle]
pub unsafe extern "C" fn FCGX_StartFilterData(_stream: *mut FCGX_Stream) -> c_int {
    -1
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_SetExitStatus(_status: c_int, _stream: *mut FCGX_Stream) {}
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetParam(
    _name: *const c_char,
    _envp: *mut *mut c_char,
) -> *mut c_char {
    std::ptr::null_mut()
}
#[no_mangle]
pub extern "C" fn FCGX_ShutdownPending() {}
#[no_mangle]
pub unsafe extern "C" fn FCGX_Attach(_r: *mut FCGX_Request) -> c_int {
    0
}
#[no_mangle]
pub unsafe extern "C" fn FCGX_Detach(_r: *mut FCGX_Request) -> c_int {
    -1
}
