//! Calls for embedders beyond PHP's header: what a language runtime binding needs that
//! PHP's per-item calls make slow or impossible from a foreign-function interface.
//!
//! - `fcgi_getenv_all`: the whole environment in one call (a binding pays per crossing of the
//!   boundary: through fcgi_loadenv, one callback per variable);
//! - `fcgi_set_log_func`: a log hook that is not variadic (ctypes, cgo, JNA and most other
//!   FFIs cannot implement PHP's printf-like `fcgi_logger`).
//!
//! # Safety
//! The contract of `native.rs` holds: each pointer is NULL or valid as its doc comment says.
#![allow(clippy::missing_safety_doc)]

use super::native::fcgi_request;
use super::native::req;
use super::native_types::fcgi_log_func;
use super::panic::guard;
use fcgi_runtime::log;
use std::os::raw::{c_char, c_int, c_long, c_void};

/// Copies every variable of the request's environment into `buf` as `NAME '\0' VALUE '\0'`
/// pairs, in fcgi_loadenv's order (PHP's: newest first, so fcgi_putenv additions, then the
/// received PARAMS from the last to arrive to the first; deleted names left out). A name or
/// value ends at its first NUL byte, as fcgi_getenv returns it.
/// Returns the number of bytes the whole block takes (0: no variables); when that is more
/// than `size`, nothing is written: call again with a buffer at least that large. Returns -1
/// when `req` is NULL, or `buf` is NULL with a non-zero `size`.
/// Ownership: `req` and `buf` are borrowed for the call; what is written is the caller's copy,
/// which stays valid after the request ends (unlike fcgi_getenv's pointers).
#[no_mangle]
pub unsafe extern "C" fn fcgi_getenv_all(
    req: *mut fcgi_request,
    buf: *mut c_char,
    size: usize,
) -> c_long {
    guard("fcgi_getenv_all", || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        let Some(r) = (unsafe { self::req(req) }) else {
            return -1;
        };
        if buf.is_null() && size != 0 {
            return -1;
        }
        let cut = |b: &[u8]| b.iter().position(|&c| c == 0).map_or(b.len(), |n| n);
        let mut need = 0usize;
        r.env_mut().for_each(|name, val, len| {
            // SAFETY: for_each hands out the stored value and its length.
            let val = unsafe { std::slice::from_raw_parts(val, len) };
            need += cut(name) + cut(val) + 2;
        });
        if need > size {
            return need as c_long;
        }
        // SAFETY: the caller gives `size` writable bytes at `buf`, and need <= size.
        let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
        let mut at = 0;
        r.env_mut().for_each(|name, val, len| {
            // SAFETY: as above.
            let val = unsafe { std::slice::from_raw_parts(val, len) };
            for part in [&name[..cut(name)], &val[..cut(val)]] {
                out[at..at + part.len()].copy_from_slice(part);
                out[at + part.len()] = 0;
                at += part.len() + 1;
            }
        });
        at as c_long
    })
}

/// Sets the function that receives the library's log messages, of every level, with `arg`
/// passed back on each call. NULL restores the default (messages of level FCGI_NOTICE and above
/// to stderr). Replaces a function set by fcgi_set_logger, and the reverse.
/// Ownership: `arg` stays the caller's: it is stored as given, never dereferenced or freed.
/// `func` and `arg` must stay valid until a later fcgi_set_log_func or fcgi_set_logger replaces
/// them; once that call returns, `func` is no longer running or called and `arg` may be freed.
/// Threads: `func` may be called from any thread, the library's own included, and on several
/// threads at once; it must not call back into the library.
#[no_mangle]
pub extern "C" fn fcgi_set_log_func(func: fcgi_log_func, arg: *mut c_void) {
    // The pointer travels into the logger closure as an address: the application owns it and
    // promises it stays valid while the hook is set.
    let arg = arg as usize;
    guard("fcgi_set_log_func", || match func {
        None => log::set_logger(None, true),
        Some(f) => log::set_logger(
            Some(Box::new(move |level, msg| {
                // SAFETY: the application's hook, with the message's bytes and length.
                unsafe {
                    f(
                        level as c_int,
                        msg.as_ptr().cast(),
                        msg.len(),
                        arg as *mut c_void,
                    )
                };
            })),
            true,
        ),
    })
}
