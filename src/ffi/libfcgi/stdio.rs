//! fcgi_stdio.h: the FCGI_* layer and `_fcgi_sF`.
//!
//! A program compiled with `#include "fcgi_stdio.h"` has `FILE`, `stdin`, `printf`, `fread` and
//! the rest of stdio macro-renamed to the FCGI_* functions below, and `stdin`/`stdout`/`stderr`
//! become `&_fcgi_sF[0..2]`. Each `FCGI_FILE` wraps either a libc `FILE` (CGI mode, files the
//! program opens) or a FastCGI stream (the current request's stdin/stdout/stderr). Every function
//! dispatches the same way: the libc stream if set, else the FastCGI stream, else it fails.
//! The printf family lives in C (csrc/printf.c, see [`super::trampolines`]).
//!
//! # Deliberate differences from libfcgi 2.4.2
//! - A failed FCGI_Accept NULLs the three FastCGI streams (and `environ`, when it points at a
//!   request's parameters), so later writes fail cleanly instead of touching freed streams.
//! - Every function accepts a NULL `FCGI_FILE *` and returns its failure value (libfcgi crashes).
//! - `fflush(NULL)` flushes the FastCGI stdout and stderr of the current request too, not only
//!   libc's streams: that is what `fflush(NULL)` means to a stdio program.
//! - fread/fwrite return an item count never larger than `nmemb`: 0 when the FILE has no stream
//!   (libfcgi returns `(size_t)EOF`), the items transferred before a write error (libfcgi
//!   returns `(size_t)-1 / size`). A `size * nmemb` that overflows fails with EOVERFLOW; counts
//!   above INT_MAX bytes are transferred in pieces (libfcgi truncates them to an int).
//! - ftell of a libc stream whose offset does not fit the `int` libfcgi's prototype returns
//!   fails with EOVERFLOW instead of returning a truncated offset.
//! - perror reads `errno` before writing anything (libfcgi reads it after two writes that may
//!   change it); a NULL or empty prefix prints the message alone, as C's perror does.
//! - A failed freopen leaves the FILE without a stream (libfcgi keeps a pointer to the closed
//!   libc FILE or FastCGI stream).
//!
//! # Threads
//! Like libfcgi's, this layer is single-threaded: `_fcgi_sF` and `environ` are process-wide
//! and unsynchronised, so the FCGI_* functions must not run concurrently with each other or
//! with anything reading the environment. Multi-threaded programs use FCGX_Accept_r.

use super::fcgx::*;
use super::stream::*;
use super::types::*;
use crate::ffi::panic::guard;
use fcgi_runtime::sys::{self, errno, set_errno};
use std::os::raw::{c_char, c_int, c_long, c_void};
use std::ptr::{self, null_mut};
use std::sync::atomic::{AtomicBool, Ordering};

const NO_FILE: FCGI_FILE = FCGI_FILE {
    stdio_stream: null_mut(),
    fcgx_stream: null_mut(),
};

/// `FCGI_stdin`, `FCGI_stdout`, `FCGI_stderr`: 48 bytes, zero until the first FCGI_Accept.
///
/// A C executable that uses the macros takes a copy relocation of this object, so the library
/// must reach it through the GOT (it does: the symbol is exported, hence preemptible). Only
/// ever accessed through raw pointers ([`std_file`]), never through references.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut _fcgi_sF: [FCGI_FILE; 3] = [NO_FILE, NO_FILE, NO_FILE];

const _: () = assert!(std::mem::size_of::<[FCGI_FILE; 3]>() == 48);

mod libc_std {
    unsafe extern "C" {
        /// glibc's `stdin`, `stdout`, `stderr` variables.
        pub static stdin: *mut libc::FILE;
        pub static stdout: *mut libc::FILE;
        pub static stderr: *mut libc::FILE;
        /// The environment getenv() reads.
        pub static mut environ: *mut *mut libc::c_char;
    }
}

/// Whether FCGI_Accept has run once, and what the first call decided.
static ACCEPT_CALLED: AtomicBool = AtomicBool::new(false);
static IS_CGI: AtomicBool = AtomicBool::new(false);
/// Whether `environ` currently points at a request's parameters (set by FCGI_Accept).
static ENV_INSTALLED: AtomicBool = AtomicBool::new(false);

const STDIN: usize = 0;
const STDOUT: usize = 1;
const STDERR: usize = 2;

/// `&_fcgi_sF[i]` as a raw pointer (`i` < 3).
fn std_file(i: usize) -> *mut FCGI_FILE {
    debug_assert!(i < 3);
    (&raw mut _fcgi_sF).cast::<FCGI_FILE>().wrapping_add(i)
}

fn is_std_file(fp: *mut FCGI_FILE) -> bool {
    (0..3).any(|i| ptr::eq(fp, std_file(i)))
}

/// What an `FCGI_FILE` currently wraps.
enum Target {
    Stdio(*mut libc::FILE),
    Fcgx(*mut FCGX_Stream),
    Neither,
}

/// # Safety
/// `fp` is NULL or points at a valid `FCGI_FILE`.
unsafe fn target(fp: *mut FCGI_FILE) -> Target {
    if fp.is_null() {
        return Target::Neither;
    }
    // SAFETY: fp is valid per the contract; the fields are read through the raw pointer.
    let (s, x) = unsafe { ((*fp).stdio_stream, (*fp).fcgx_stream) };
    if !s.is_null() {
        Target::Stdio(s)
    } else if !x.is_null() {
        Target::Fcgx(x)
    } else {
        Target::Neither
    }
}

/// Points the three std wrappers at a request's streams (and at no libc stream).
fn set_fcgx_streams(i: *mut FCGX_Stream, o: *mut FCGX_Stream, e: *mut FCGX_Stream) {
    for (n, s) in [(STDIN, i), (STDOUT, o), (STDERR, e)] {
        let fp = std_file(n);
        // SAFETY: fp points into _fcgi_sF; the layer is single-threaded (module docs).
        unsafe {
            (*fp).stdio_stream = null_mut();
            (*fp).fcgx_stream = s;
        }
    }
}

/// Forgets the request streams of the three std wrappers (a libc stream that freopen put
/// there stays, as in libfcgi).
fn forget_fcgx_streams() {
    for n in [STDIN, STDOUT, STDERR] {
        let fp = std_file(n);
        // SAFETY: fp points into _fcgi_sF; the layer is single-threaded (module docs).
        unsafe { (*fp).fcgx_stream = null_mut() };
    }
}

/// Sets `environ` (see the module docs on threads).
fn set_environ(envp: *mut *mut c_char) {
    // SAFETY: a plain store to glibc's environ; the layer's contract excludes concurrent
    // readers of the environment.
    unsafe { libc_std::environ = envp };
}

/// FCGX_IsCGI and FCGX_Finish called through unsafe fn pointers, whatever their Rust safety.
fn fcgx_is_cgi() -> bool {
    let f: unsafe extern "C" fn() -> c_int = FCGX_IsCGI;
    // SAFETY: FCGX_IsCGI takes no arguments.
    unsafe { f() != 0 }
}

fn fcgx_finish() {
    let f: unsafe extern "C" fn() = FCGX_Finish;
    // SAFETY: FCGX_Finish takes no arguments and finishes the static request.
    unsafe { f() }
}

extern "C" fn finish_at_exit() {
    // SAFETY: runs at exit, when the program no longer uses the stdio layer concurrently.
    unsafe { FCGI_Finish() }
}

/// Accepts the next request. The first call decides between CGI (fd 0 is not a listening
/// socket) and FastCGI, and registers FCGI_Finish with atexit. In CGI mode the first call
/// wires stdin/stdout/stderr to libc's and returns 0; later calls return -1. In FastCGI mode it
/// finishes the previous request, waits for the next, points stdin/stdout/stderr at its
/// streams and `environ` at its parameters, and returns 0; on failure it returns the negative
/// code of FCGX_Accept and leaves the three FILEs without a request stream (writes fail, reads
/// see EOF) and `environ` NULL if it pointed at the previous request's parameters.
#[no_mangle]
pub unsafe extern "C" fn FCGI_Accept() -> c_int {
    guard("FCGI_Accept", || {
        if !ACCEPT_CALLED.load(Ordering::Acquire) {
            IS_CGI.store(fcgx_is_cgi(), Ordering::Release);
            ACCEPT_CALLED.store(true, Ordering::Release);
            sys::at_exit(finish_at_exit);
        } else if IS_CGI.load(Ordering::Acquire) {
            return EOF;
        }
        if IS_CGI.load(Ordering::Acquire) {
            // SAFETY: plain reads of glibc's stdio pointers.
            let std = unsafe { [libc_std::stdin, libc_std::stdout, libc_std::stderr] };
            for (n, s) in std.into_iter().enumerate() {
                let fp = std_file(n);
                // SAFETY: fp points into _fcgi_sF; single-threaded layer.
                unsafe {
                    (*fp).stdio_stream = s;
                    (*fp).fcgx_stream = null_mut();
                }
            }
            return 0;
        }
        // FCGX_Accept frees the previous request's streams and parameters first: forget them
        // now, so nothing dangles whatever the outcome.
        forget_fcgx_streams();
        if ENV_INSTALLED.swap(false, Ordering::AcqRel) {
            set_environ(null_mut());
        }
        let (mut i, mut o, mut e) = (null_mut(), null_mut(), null_mut());
        let mut envp: *mut *mut c_char = null_mut();
        // SAFETY: four valid out-pointers.
        let rc = unsafe { FCGX_Accept(&mut i, &mut o, &mut e, &mut envp) };
        if rc < 0 {
            return rc;
        }
        set_fcgx_streams(i, o, e);
        set_environ(envp);
        ENV_INSTALLED.store(true, Ordering::Release);
        0
    })
}

/// Finishes the current request (flushes and completes it). Does nothing before the first
/// FCGI_Accept or in CGI mode. Afterwards stdin/stdout/stderr have no request stream and
/// `environ` is NULL until the next FCGI_Accept.
#[no_mangle]
pub unsafe extern "C" fn FCGI_Finish() {
    guard("FCGI_Finish", || {
        if !ACCEPT_CALLED.load(Ordering::Acquire) || IS_CGI.load(Ordering::Acquire) {
            return;
        }
        fcgx_finish();
        forget_fcgx_streams();
        ENV_INSTALLED.store(false, Ordering::Release);
        set_environ(null_mut());
    })
}

/// Switches stdin of a FILTER request to its FCGI_DATA stream (stdin must be at EOF).
/// Returns 0, or -1 (CGI mode, no request, or FCGX_StartFilterData's failure).
#[no_mangle]
pub unsafe extern "C" fn FCGI_StartFilterData() -> c_int {
    guard("FCGI_StartFilterData", || {
        // SAFETY: std_file points into _fcgi_sF.
        match unsafe { target(std_file(STDIN)) } {
            // SAFETY: the request's live stdin stream.
            Target::Fcgx(s) => unsafe { FCGX_StartFilterData(s) },
            _ => -1,
        }
    })
}

/// Sets the appStatus of the current request's END_REQUEST (FastCGI mode only).
#[no_mangle]
pub unsafe extern "C" fn FCGI_SetExitStatus(status: c_int) {
    guard("FCGI_SetExitStatus", || {
        let fp = std_file(STDIN);
        // SAFETY: fp points into _fcgi_sF.
        let s = unsafe { (*fp).fcgx_stream };
        if !s.is_null() {
            // SAFETY: the request's live stdin stream.
            unsafe { FCGX_SetExitStatus(status, s) };
        }
    })
}

/// Writes "str: strerror(errno)" to FCGI_stderr, without a newline (as libfcgi does).
#[no_mangle]
pub unsafe extern "C" fn FCGI_perror(str: *const c_char) {
    guard("FCGI_perror", || {
        let err = errno();
        let stderr = std_file(STDERR);
        // SAFETY: str is NULL or NUL-terminated (contract); stderr points into _fcgi_sF.
        unsafe {
            if !str.is_null() && *str != 0 {
                FCGI_fputs(str, stderr);
                FCGI_fputs(c": ".as_ptr(), stderr);
            }
            FCGI_fputs(libc::strerror(err), stderr);
        }
        set_errno(err);
    })
}

/// A malloc'd FCGI_FILE wrapping the libc stream `open` returns, or NULL (errno set) if
/// either fails. The wrapper is allocated first, so a failure never has to close a stream
/// that was already opened (for fdopen that would close the caller's descriptor).
fn wrap_new(open: impl FnOnce() -> *mut libc::FILE) -> *mut FCGI_FILE {
    // SAFETY: plain allocation.
    let fp = unsafe { libc::malloc(std::mem::size_of::<FCGI_FILE>()) }.cast::<FCGI_FILE>();
    if fp.is_null() {
        set_errno(libc::ENOMEM);
        return null_mut();
    }
    let file = open();
    if file.is_null() {
        let e = errno();
        // SAFETY: allocated above, never handed out.
        unsafe { libc::free(fp.cast()) };
        set_errno(e);
        return null_mut();
    }
    // SAFETY: fp is a fresh allocation of the right size and alignment (malloc).
    unsafe {
        fp.write(FCGI_FILE {
            stdio_stream: file,
            fcgx_stream: null_mut(),
        })
    };
    fp
}

/// Frees `fp` unless it is one of the three std wrappers.
///
/// # Safety
/// `fp` came from [`wrap_new`] or is a std wrapper.
unsafe fn release(fp: *mut FCGI_FILE) {
    if !is_std_file(fp) {
        // SAFETY: allocated by wrap_new with malloc.
        unsafe { libc::free(fp.cast()) };
    }
}

/// fopen(3) wrapped in a new FCGI_FILE.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fopen(path: *const c_char, mode: *const c_char) -> *mut FCGI_FILE {
    guard("FCGI_fopen", || {
        if path.is_null() || mode.is_null() {
            set_errno(libc::EINVAL);
            return null_mut();
        }
        // SAFETY: NUL-terminated strings (contract).
        wrap_new(|| unsafe { libc::fopen(path, mode) })
    })
}

/// Closes the stream `fp` wraps and frees `fp` (never the three std wrappers, which are left
/// without a stream). Returns fclose's or FCGX_FClose's result, EOF if there was no stream.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fclose(fp: *mut FCGI_FILE) -> c_int {
    guard("FCGI_fclose", || {
        if fp.is_null() {
            return EOF;
        }
        // SAFETY: fp is a valid FCGI_FILE (contract); its streams are live.
        unsafe {
            let n = match target(fp) {
                Target::Stdio(s) => {
                    (*fp).stdio_stream = null_mut();
                    libc::fclose(s)
                }
                Target::Fcgx(s) => {
                    (*fp).fcgx_stream = null_mut();
                    FCGX_FClose(s)
                }
                Target::Neither => EOF,
            };
            release(fp);
            n
        }
    })
}

/// Flushes `fp`. With NULL, flushes every libc output stream and the current request's
/// stdout and stderr; returns EOF if any flush failed.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fflush(fp: *mut FCGI_FILE) -> c_int {
    guard("FCGI_fflush", || {
        if fp.is_null() {
            // SAFETY: fflush(NULL) is defined.
            let mut rc = unsafe { libc::fflush(null_mut()) };
            for n in [STDOUT, STDERR] {
                // SAFETY: std_file points into _fcgi_sF.
                if let Target::Fcgx(s) = unsafe { target(std_file(n)) } {
                    // SAFETY: the request's live stream.
                    if unsafe { FCGX_FFlush(s) } < 0 {
                        rc = EOF;
                    }
                }
            }
            return rc;
        }
        // SAFETY: fp is valid (contract); its streams are live.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract).
            Target::Stdio(s) => unsafe { libc::fflush(s) },
            // SAFETY: `s` is the live FastCGI stream the caller's FCGI_FILE wraps (its contract).
            Target::Fcgx(s) => unsafe { FCGX_FFlush(s) },
            Target::Neither => EOF,
        }
    })
}

/// freopen(3). On a FastCGI stream: closes it and opens `path` in its place. On failure the
/// FILE is left without a stream (the old one is closed in any case).
#[no_mangle]
pub unsafe extern "C" fn FCGI_freopen(
    path: *const c_char,
    mode: *const c_char,
    fp: *mut FCGI_FILE,
) -> *mut FCGI_FILE {
    guard("FCGI_freopen", || {
        if mode.is_null() {
            set_errno(libc::EINVAL);
            return null_mut();
        }
        // SAFETY: fp is NULL or valid, strings NUL-terminated (path may be NULL for libc's
        // freopen, which then changes the mode); the streams are live.
        unsafe {
            match target(fp) {
                Target::Stdio(s) => {
                    if libc::freopen(path, mode, s).is_null() {
                        // The old stream is closed whatever happened: forget it.
                        (*fp).stdio_stream = null_mut();
                        null_mut()
                    } else {
                        fp
                    }
                }
                Target::Fcgx(_) if path.is_null() => {
                    set_errno(libc::EINVAL);
                    null_mut()
                }
                Target::Fcgx(s) => {
                    FCGX_FClose(s);
                    (*fp).fcgx_stream = null_mut();
                    let f = libc::fopen(path, mode);
                    (*fp).stdio_stream = f;
                    if f.is_null() {
                        null_mut()
                    } else {
                        fp
                    }
                }
                Target::Neither => null_mut(),
            }
        }
    })
}

/// setvbuf(3) on a libc stream; -1 for a FastCGI stream.
#[no_mangle]
pub unsafe extern "C" fn FCGI_setvbuf(
    fp: *mut FCGI_FILE,
    buf: *mut c_char,
    bufmode: c_int,
    size: libc::size_t,
) -> c_int {
    guard("FCGI_setvbuf", || {
        // SAFETY: fp is NULL or valid; buf per setvbuf's contract.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract);
            // `buf` is NULL or the caller's buffer of `size` bytes, as setvbuf(3) requires.
            Target::Stdio(s) => unsafe { libc::setvbuf(s, buf, bufmode, size) },
            _ => -1,
        }
    })
}

/// setbuf(3) on a libc stream; nothing for a FastCGI stream.
#[no_mangle]
pub unsafe extern "C" fn FCGI_setbuf(fp: *mut FCGI_FILE, buf: *mut c_char) {
    guard("FCGI_setbuf", || {
        // SAFETY: fp is NULL or valid; buf per setbuf's contract.
        if let Target::Stdio(s) = unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its
            // contract); `buf` is NULL or the caller's buffer of BUFSIZ bytes, as setbuf(3)
            // requires.
            unsafe { libc::setbuf(s, buf) }
        }
    })
}

/// fseek(3) on a libc stream; -1 with errno ESPIPE otherwise.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fseek(fp: *mut FCGI_FILE, offset: c_long, whence: c_int) -> c_int {
    guard("FCGI_fseek", || {
        // SAFETY: fp is NULL or valid.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract).
            Target::Stdio(s) => unsafe { libc::fseek(s, offset, whence) },
            _ => {
                set_errno(libc::ESPIPE);
                -1
            }
        }
    })
}

/// ftell(3) on a libc stream (-1 with EOVERFLOW if the offset exceeds INT_MAX: libfcgi's
/// prototype returns int); -1 with errno ESPIPE otherwise.
#[no_mangle]
pub unsafe extern "C" fn FCGI_ftell(fp: *mut FCGI_FILE) -> c_int {
    guard("FCGI_ftell", || {
        // SAFETY: fp is NULL or valid.
        match unsafe { target(fp) } {
            Target::Stdio(s) => {
                // SAFETY: a live libc stream.
                let r = unsafe { libc::ftell(s) };
                c_int::try_from(r).unwrap_or_else(|_| {
                    set_errno(libc::EOVERFLOW);
                    -1
                })
            }
            _ => {
                set_errno(libc::ESPIPE);
                -1
            }
        }
    })
}

/// rewind(3) on a libc stream; sets errno ESPIPE otherwise.
#[no_mangle]
pub unsafe extern "C" fn FCGI_rewind(fp: *mut FCGI_FILE) {
    guard("FCGI_rewind", || {
        // SAFETY: fp is NULL or valid.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract).
            Target::Stdio(s) => unsafe { libc::rewind(s) },
            _ => set_errno(libc::ESPIPE),
        }
    })
}

/// fgetpos(3) on a libc stream; -1 with errno ESPIPE otherwise.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fgetpos(fp: *mut FCGI_FILE, pos: *mut libc::fpos_t) -> c_int {
    guard("FCGI_fgetpos", || {
        // SAFETY: fp is NULL or valid; pos per fgetpos's contract.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract);
            // `pos` was checked non-NULL and points at the caller's fpos_t.
            Target::Stdio(s) if !pos.is_null() => unsafe { libc::fgetpos(s, pos) },
            Target::Stdio(_) => {
                set_errno(libc::EINVAL);
                -1
            }
            _ => {
                set_errno(libc::ESPIPE);
                -1
            }
        }
    })
}

/// fsetpos(3) on a libc stream; -1 with errno ESPIPE otherwise.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fsetpos(fp: *mut FCGI_FILE, pos: *const libc::fpos_t) -> c_int {
    guard("FCGI_fsetpos", || {
        // SAFETY: fp is NULL or valid; pos per fsetpos's contract.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract);
            // `pos` was checked non-NULL and points at an fpos_t from fgetpos.
            Target::Stdio(s) if !pos.is_null() => unsafe { libc::fsetpos(s, pos) },
            Target::Stdio(_) => {
                set_errno(libc::EINVAL);
                -1
            }
            _ => {
                set_errno(libc::ESPIPE);
                -1
            }
        }
    })
}

/// The next byte (0..255), or EOF.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fgetc(fp: *mut FCGI_FILE) -> c_int {
    guard("FCGI_fgetc", || {
        // SAFETY: fp is NULL or valid; its streams are live.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract).
            Target::Stdio(s) => unsafe { libc::fgetc(s) },
            // SAFETY: `s` is the live FastCGI stream the caller's FCGI_FILE wraps (its contract).
            Target::Fcgx(s) => unsafe { FCGX_GetChar(s) },
            Target::Neither => EOF,
        }
    })
}

/// `fgetc(stdin)`.
#[no_mangle]
pub unsafe extern "C" fn FCGI_getchar() -> c_int {
    guard("FCGI_getchar", || {
        // SAFETY: std_file points into _fcgi_sF.
        unsafe { FCGI_fgetc(std_file(STDIN)) }
    })
}

/// Pushes `c` back; returns it, or EOF (a FastCGI stream only takes back bytes of its
/// current buffer).
#[no_mangle]
pub unsafe extern "C" fn FCGI_ungetc(c: c_int, fp: *mut FCGI_FILE) -> c_int {
    guard("FCGI_ungetc", || {
        // SAFETY: fp is NULL or valid; its streams are live.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract).
            Target::Stdio(s) => unsafe { libc::ungetc(c, s) },
            // SAFETY: `s` is the live FastCGI stream the caller's FCGI_FILE wraps (its contract).
            Target::Fcgx(s) => unsafe { FCGX_UnGetChar(c, s) },
            Target::Neither => EOF,
        }
    })
}

/// Reads a line of at most `size - 1` bytes (keeping the '\n') into `str`, NUL-terminated.
/// Returns `str`, or NULL at EOF before any byte.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fgets(
    str: *mut c_char,
    size: c_int,
    fp: *mut FCGI_FILE,
) -> *mut c_char {
    guard("FCGI_fgets", || {
        if str.is_null() || size <= 0 {
            return null_mut();
        }
        // SAFETY: fp is NULL or valid; str has room for size bytes (contract).
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract);
            // `str` was checked non-NULL and has room for `size` (> 0) bytes.
            Target::Stdio(s) => unsafe { libc::fgets(str, size, s) },
            // SAFETY: `s` is the live FastCGI stream the caller's FCGI_FILE wraps (its contract);
            // `str` as for the libc stream.
            Target::Fcgx(s) => unsafe { FCGX_GetLine(str, size, s) },
            Target::Neither => null_mut(),
        }
    })
}

/// Reads a line from stdin into `str` without its '\n'. Returns `str`, or NULL at EOF before
/// any byte.
///
/// Like C's gets, this cannot know the size of `str`: a longer line overflows it. It exists
/// because libfcgi exports it and old programs call it; use fgets.
#[no_mangle]
pub unsafe extern "C" fn FCGI_gets(str: *mut c_char) -> *mut c_char {
    guard("FCGI_gets", || {
        if str.is_null() {
            return null_mut();
        }
        let mut p = str;
        loop {
            // SAFETY: single-threaded use of the std wrappers.
            let c = unsafe { FCGI_getchar() };
            if c == c_int::from(b'\n') {
                break;
            }
            if c == EOF {
                if p == str {
                    return null_mut();
                }
                break;
            }
            // SAFETY: the caller guarantees room for the line (see above).
            unsafe {
                *p = c as c_char;
                p = p.add(1);
            }
        }
        // SAFETY: as above, room for the terminator.
        unsafe { *p = 0 };
        str
    })
}

/// Writes the byte `c`; returns it (as unsigned char), or EOF.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fputc(c: c_int, fp: *mut FCGI_FILE) -> c_int {
    guard("FCGI_fputc", || {
        // SAFETY: fp is NULL or valid; its streams are live.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract).
            Target::Stdio(s) => unsafe { libc::fputc(c, s) },
            // SAFETY: `s` is the live FastCGI stream the caller's FCGI_FILE wraps (its contract).
            Target::Fcgx(s) => unsafe { FCGX_PutChar(c, s) },
            Target::Neither => EOF,
        }
    })
}

/// `fputc(c, stdout)`.
#[no_mangle]
pub unsafe extern "C" fn FCGI_putchar(c: c_int) -> c_int {
    guard("FCGI_putchar", || {
        // SAFETY: std_file points into _fcgi_sF.
        unsafe { FCGI_fputc(c, std_file(STDOUT)) }
    })
}

/// Writes the string `str`; returns a non-negative number, or EOF.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fputs(str: *const c_char, fp: *mut FCGI_FILE) -> c_int {
    guard("FCGI_fputs", || {
        if str.is_null() {
            return EOF;
        }
        // SAFETY: fp is NULL or valid; str NUL-terminated (contract).
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract);
            // `str` was checked non-NULL and is NUL-terminated.
            Target::Stdio(s) => unsafe { libc::fputs(str, s) },
            // SAFETY: `s` is the live FastCGI stream the caller's FCGI_FILE wraps (its contract);
            // `str` as for the libc stream.
            Target::Fcgx(s) => unsafe { FCGX_PutS(str, s) },
            Target::Neither => EOF,
        }
    })
}

/// Writes `str` and a '\n' to stdout; returns the result of writing the '\n' ('\n'), or a
/// negative value.
#[no_mangle]
pub unsafe extern "C" fn FCGI_puts(str: *const c_char) -> c_int {
    guard("FCGI_puts", || {
        if str.is_null() {
            return EOF;
        }
        // SAFETY: std_file points into _fcgi_sF; str NUL-terminated (contract).
        match unsafe { target(std_file(STDOUT)) } {
            // SAFETY: `s` is the live libc stream of the std wrapper for stdout; `str` was checked
            // non-NULL and is NUL-terminated (the caller's contract).
            Target::Stdio(s) => unsafe {
                let n = libc::fputs(str, s);
                if n < 0 {
                    n
                } else {
                    libc::fputc(c_int::from(b'\n'), s)
                }
            },
            // SAFETY: `s` is the live FastCGI stream of the std wrapper for stdout; `str` as for
            // the libc stream.
            Target::Fcgx(s) => unsafe {
                let n = FCGX_PutS(str, s);
                if n < 0 {
                    n
                } else {
                    FCGX_PutChar(c_int::from(b'\n'), s)
                }
            },
            Target::Neither => EOF,
        }
    })
}

/// The bytes of `size * nmemb`, or None (errno EOVERFLOW) when that overflows.
fn byte_count(size: usize, nmemb: usize) -> Option<usize> {
    let n = size.checked_mul(nmemb);
    if n.is_none() {
        set_errno(libc::EOVERFLOW);
    }
    n
}

/// Moves `total` bytes in pieces of at most INT_MAX with `op` (which returns the bytes it
/// moved, fewer at EOF, or a negative value on error). Returns the bytes moved.
fn in_pieces(total: usize, mut op: impl FnMut(usize, c_int) -> c_int) -> usize {
    let mut done = 0;
    while done < total {
        let want = (total - done).min(c_int::MAX as usize) as c_int;
        let got = op(done, want);
        if got <= 0 {
            break;
        }
        done += got as usize;
        if got < want {
            break;
        }
    }
    done
}

/// Reads up to `nmemb` items of `size` bytes; returns the number of whole items read.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fread(
    ptr: *mut c_void,
    size: libc::size_t,
    nmemb: libc::size_t,
    fp: *mut FCGI_FILE,
) -> libc::size_t {
    guard("FCGI_fread", || {
        if size == 0 || nmemb == 0 || ptr.is_null() {
            return 0;
        }
        let Some(total) = byte_count(size, nmemb) else {
            return 0;
        };
        // SAFETY: fp is NULL or valid; ptr has room for size * nmemb bytes (contract).
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract);
            // `ptr` was checked non-NULL and has room for `size * nmemb` bytes (checked not to
            // overflow).
            Target::Stdio(s) => unsafe { libc::fread(ptr, size, nmemb, s) },
            Target::Fcgx(s) => {
                let base = ptr.cast::<c_char>();
                let got = in_pieces(total, |off, n| {
                    // SAFETY: off + n <= total, inside the caller's buffer.
                    unsafe { FCGX_GetStr(base.add(off), n, s) }
                });
                got / size
            }
            Target::Neither => 0,
        }
    })
}

/// Writes `nmemb` items of `size` bytes; returns the number of whole items written.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fwrite(
    ptr: *mut c_void,
    size: libc::size_t,
    nmemb: libc::size_t,
    fp: *mut FCGI_FILE,
) -> libc::size_t {
    guard("FCGI_fwrite", || {
        if size == 0 || nmemb == 0 || ptr.is_null() {
            return 0;
        }
        let Some(total) = byte_count(size, nmemb) else {
            return 0;
        };
        // SAFETY: fp is NULL or valid; ptr holds size * nmemb bytes (contract).
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract);
            // `ptr` was checked non-NULL and holds `size * nmemb` bytes (checked not to overflow).
            Target::Stdio(s) => unsafe { libc::fwrite(ptr, size, nmemb, s) },
            Target::Fcgx(s) => {
                let base = ptr.cast::<c_char>().cast_const();
                let put = in_pieces(total, |off, n| {
                    // SAFETY: off + n <= total, inside the caller's buffer.
                    unsafe { FCGX_PutStr(base.add(off), n, s) }
                });
                put / size
            }
            Target::Neither => 0,
        }
    })
}

/// Non-zero once the stream reached EOF (a FastCGI stream answers -1, also after an error);
/// -1 when `fp` has no stream.
#[no_mangle]
pub unsafe extern "C" fn FCGI_feof(fp: *mut FCGI_FILE) -> c_int {
    guard("FCGI_feof", || {
        // SAFETY: fp is NULL or valid; its streams are live.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract).
            Target::Stdio(s) => unsafe { libc::feof(s) },
            // SAFETY: `s` is the live FastCGI stream the caller's FCGI_FILE wraps (its contract).
            Target::Fcgx(s) => unsafe { FCGX_HasSeenEOF(s) },
            Target::Neither => -1,
        }
    })
}

/// The stream's error indicator: non-zero after an error (a FastCGI stream answers its
/// error code, which may be negative); -1 when `fp` has no stream.
#[no_mangle]
pub unsafe extern "C" fn FCGI_ferror(fp: *mut FCGI_FILE) -> c_int {
    guard("FCGI_ferror", || {
        // SAFETY: fp is NULL or valid; its streams are live.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract).
            Target::Stdio(s) => unsafe { libc::ferror(s) },
            // SAFETY: `s` is the live FastCGI stream the caller's FCGI_FILE wraps (its contract).
            Target::Fcgx(s) => unsafe { FCGX_GetError(s) },
            Target::Neither => -1,
        }
    })
}

/// Clears the stream's error indicator (and, for libc streams, EOF).
#[no_mangle]
pub unsafe extern "C" fn FCGI_clearerr(fp: *mut FCGI_FILE) {
    guard("FCGI_clearerr", || {
        // SAFETY: fp is NULL or valid; its streams are live.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract).
            Target::Stdio(s) => unsafe { libc::clearerr(s) },
            // SAFETY: `s` is the live FastCGI stream the caller's FCGI_FILE wraps (its contract).
            Target::Fcgx(s) => unsafe { FCGX_ClearError(s) },
            Target::Neither => {}
        }
    })
}

/// tmpfile(3) wrapped in a new FCGI_FILE.
#[no_mangle]
pub unsafe extern "C" fn FCGI_tmpfile() -> *mut FCGI_FILE {
    guard("FCGI_tmpfile", || {
        // SAFETY: no arguments.
        wrap_new(|| unsafe { libc::tmpfile() })
    })
}

/// The descriptor of a libc stream; -1 for a FastCGI stream (programs such as fcgiwrap close
/// it in a child, which must not close the connection) or no stream.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fileno(fp: *mut FCGI_FILE) -> c_int {
    guard("FCGI_fileno", || {
        // SAFETY: fp is NULL or valid.
        match unsafe { target(fp) } {
            // SAFETY: `s` is the live libc stream the caller's FCGI_FILE wraps (its contract).
            Target::Stdio(s) => unsafe { libc::fileno(s) },
            _ => -1,
        }
    })
}

/// fdopen(3) wrapped in a new FCGI_FILE.
#[no_mangle]
pub unsafe extern "C" fn FCGI_fdopen(fd: c_int, mode: *const c_char) -> *mut FCGI_FILE {
    guard("FCGI_fdopen", || {
        if mode.is_null() {
            set_errno(libc::EINVAL);
            return null_mut();
        }
        // SAFETY: mode NUL-terminated (contract).
        wrap_new(|| unsafe { libc::fdopen(fd, mode) })
    })
}

/// popen(3) wrapped in a new FCGI_FILE.
#[no_mangle]
pub unsafe extern "C" fn FCGI_popen(cmd: *const c_char, type_: *const c_char) -> *mut FCGI_FILE {
    guard("FCGI_popen", || {
        if cmd.is_null() || type_.is_null() {
            set_errno(libc::EINVAL);
            return null_mut();
        }
        // SAFETY: NUL-terminated strings (contract).
        wrap_new(|| unsafe { libc::popen(cmd, type_) })
    })
}

/// pclose(3) of a stream from FCGI_popen, freeing `fp`. EOF (and nothing freed) for a
/// FastCGI stream.
#[no_mangle]
pub unsafe extern "C" fn FCGI_pclose(fp: *mut FCGI_FILE) -> c_int {
    guard("FCGI_pclose", || {
        if fp.is_null() {
            return EOF;
        }
        // SAFETY: fp is valid (contract); a libc stream came from popen.
        unsafe {
            let n = match target(fp) {
                Target::Stdio(s) => {
                    (*fp).stdio_stream = null_mut();
                    libc::pclose(s)
                }
                Target::Fcgx(_) => return EOF,
                Target::Neither => EOF,
            };
            release(fp);
            n
        }
    })
}
