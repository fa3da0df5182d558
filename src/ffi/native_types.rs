//! Constants and types of the native C API (include/fcgi.h), with PHP's names and values.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_uint, c_void};

pub const FCGI_VERSION_1: c_int = 1;
pub const FCGI_MAX_LENGTH: c_int = 0xffff;
pub const FCGI_KEEP_CONN: c_int = 1;
pub const FCGI_HASH_TABLE_SIZE: c_int = 128;
pub const FCGI_HASH_SEG_SIZE: c_int = 4096;

/// Returned by the non-blocking calls (fcgi_loop_read, fcgi_loop_write) when they would
/// have to wait.
pub const FCGI_WOULD_BLOCK: c_int = -2;

/// Log levels passed to the logger.
pub const FCGI_DEBUG: c_int = 1;
pub const FCGI_NOTICE: c_int = 2;
pub const FCGI_WARNING: c_int = 3;
pub const FCGI_ERROR: c_int = 4;
pub const FCGI_ALERT: c_int = 5;

/// Roles (fcgi_request_role).
pub const FCGI_RESPONDER: c_int = 1;
pub const FCGI_AUTHORIZER: c_int = 2;
pub const FCGI_FILTER: c_int = 3;

/// Record types (values of fcgi_request_type).
pub const FCGI_BEGIN_REQUEST: c_int = 1;
pub const FCGI_ABORT_REQUEST: c_int = 2;
pub const FCGI_END_REQUEST: c_int = 3;
pub const FCGI_PARAMS: c_int = 4;
pub const FCGI_STDIN: c_int = 5;
pub const FCGI_STDOUT: c_int = 6;
pub const FCGI_STDERR: c_int = 7;
pub const FCGI_DATA: c_int = 8;
pub const FCGI_GET_VALUES: c_int = 9;
pub const FCGI_GET_VALUES_RESULT: c_int = 10;

/// Protocol status values of END_REQUEST.
pub const FCGI_REQUEST_COMPLETE: c_int = 0;
pub const FCGI_CANT_MPX_CONN: c_int = 1;
pub const FCGI_OVERLOADED: c_int = 2;
pub const FCGI_UNKNOWN_ROLE: c_int = 3;

/// Limits for fcgi_set_limit / fcgi_get_limit (see README for defaults).
pub const FCGI_LIMIT_MAX_CONNS: c_int = 0;
pub const FCGI_LIMIT_MAX_REQS: c_int = 1;
pub const FCGI_LIMIT_MAX_REQS_PER_CONN: c_int = 2;
pub const FCGI_LIMIT_MPXS_CONNS: c_int = 3;
pub const FCGI_LIMIT_MAX_PARAMS_BYTES: c_int = 4;
pub const FCGI_LIMIT_MAX_PARAMS_COUNT: c_int = 5;
pub const FCGI_LIMIT_PARAMS_TIMEOUT_MS: c_int = 6;
pub const FCGI_LIMIT_KEEPALIVE_TIMEOUT_MS: c_int = 7;
pub const FCGI_LIMIT_STDIN_BUFFER_BYTES: c_int = 8;
pub const FCGI_LIMIT_OUTPUT_BUFFER_BYTES: c_int = 9;
pub const FCGI_LIMIT_WRITE_TIMEOUT_MS: c_int = 10;
pub const FCGI_LIMIT_WRITE_BEHIND_BYTES: c_int = 11;

/// A record type: FCGI_STDOUT or FCGI_STDERR for fcgi_write (PHP declares an enum of the
/// same values).
pub type fcgi_request_type = c_int;

/// One of the FCGI_LIMIT_* values.
pub type fcgi_limit = c_int;

/// Called by fcgi_loadenv for each variable: its name, the name's length, its value, the
/// value's length, and fcgi_loadenv's `array` as `arg`.
/// Ownership: all borrowed. `var` (NUL-terminated) is valid only during the call; `val`
/// (NUL-terminated, writable) is owned by the request object and valid as for fcgi_getenv;
/// `arg` is passed through untouched.
/// Threads: called on the thread inside fcgi_loadenv; it must not call the library with the
/// same request object.
pub type fcgi_apply_func = Option<
    unsafe extern "C" fn(
        var: *const c_char,
        var_len: c_uint,
        val: *mut c_char,
        val_len: c_uint,
        arg: *mut c_void,
    ),
>;

/// Receives a log message: its level (FCGI_DEBUG .. FCGI_ALERT), the text (not
/// NUL-terminated; no trailing newline) and its length, and the `arg` given to
/// fcgi_set_log_func.
/// Ownership: `msg` is borrowed, valid only during the call (copy it to keep it); `arg` stays
/// the application's.
/// Threads: see fcgi_set_log_func (any thread, several at once; no calls into the library).
pub type fcgi_log_func =
    Option<unsafe extern "C" fn(level: c_int, msg: *const c_char, len: usize, arg: *mut c_void)>;

/// A hook of fcgi_init_request, called without arguments.
/// Ownership: the request object keeps the function pointer (nothing to free); the function
/// must stay callable as long as that object lives (until fcgi_destroy_request).
/// Threads: see fcgi_init_request.
pub type fcgi_hook = Option<unsafe extern "C" fn()>;
