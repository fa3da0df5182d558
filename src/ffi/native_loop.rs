//! The non-blocking face of the native API (`fcgi_loop_*`): for applications that run their
//! own event loop (an epoll loop in C, Python's asyncio, libuv) and must never block in the
//! library. See docs/nonblocking-design.md and the README's "Non-blocking face".
//!
//! A loop owns the request objects it hands out. Each is a plain `fcgi_request`, so
//! fcgi_getenv, fcgi_getenv_all, fcgi_is_aborted, fcgi_request_id, fcgi_set_app_status and
//! the rest work on it; fcgi_loop_finish gives it back. Objects are kept for reuse and freed
//! by fcgi_loop_free. A key of a woken request is the object's address, which stays valid
//! (the object is never freed before its loop), so a stale key is only a spurious wake-up.
//!
//! # Safety
//! The contract of `native.rs` holds: each pointer is NULL or valid as its doc comment says.
//! A loop and its requests are used by one thread at a time.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

use super::native::{fcgi_request, req};
use super::native_types::*;
use super::panic::{guard, guard_or};
use fcgi_runtime::evloop::EvLoop;
use fcgi_runtime::io::SendError;
use fcgi_runtime::request::{AcceptError, Request, WOULD_BLOCK};
use fcgi_runtime::waiter::Waiter;
use fcgi_runtime_protocol::record::rtype;
use std::collections::HashSet;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::sync::Arc;

/// An event loop's handle on a listening socket. Opaque.
pub struct fcgi_loop {
    inner: EvLoop,
    listen_fd: c_int,
    /// Request objects handed to the application (addresses).
    live: HashSet<usize>,
    /// Request objects given back, kept for reuse.
    spare: Vec<*mut fcgi_request>,
}

/// # Safety
/// `p` is NULL or a pointer returned by fcgi_loop_new and not yet freed.
unsafe fn lp<'a>(p: *mut fcgi_loop) -> Option<&'a mut fcgi_loop> {
    // SAFETY: per the function's contract.
    unsafe { p.as_mut() }
}

/// Creates an event loop serving `listen_socket` (from fcgi_listen, or 0). No thread is
/// started: the runtime does its work inside fcgi_loop_work. Blocking threads
/// (fcgi_accept_request) may serve the same socket in the same process; they share the
/// connections, limits and timers. Several loops may serve one socket (one per thread).
/// Returns NULL on failure (logged). Free with fcgi_loop_free.
/// Ownership: the caller owns the returned loop until fcgi_loop_free frees it. `listen_socket`
/// stays the caller's: the library never closes it (it makes it non-blocking); keep it open as
/// long as the loop lives.
/// Threads: a loop has no lock: the loop and the request objects it hands out must be used by
/// one thread at a time (one loop per thread).
#[no_mangle]
pub extern "C" fn fcgi_loop_new(listen_socket: c_int) -> *mut fcgi_loop {
    guard("fcgi_loop_new", || {
        if listen_socket < 0 {
            return ptr::null_mut();
        }
        match EvLoop::new(listen_socket) {
            Ok(inner) => Box::into_raw(Box::new(fcgi_loop {
                inner,
                listen_fd: listen_socket,
                live: HashSet::new(),
                spare: Vec::new(),
            })),
            Err(e) => {
                fcgi_runtime::fcgi_log!(
                    Error,
                    "cannot serve listening socket {listen_socket}: {e}"
                );
                ptr::null_mut()
            }
        }
    })
}

/// Frees a loop. Requests it still holds are ended first (their output and END_REQUEST are
/// handed to the socket without waiting) and their objects freed. NULL is ignored.
/// Ownership: takes back `evloop` and frees it with every request object it handed out: those
/// pointers, and what fcgi_getenv and friends returned for them, are invalid afterwards. The
/// pointers given to fcgi_set_request_data are not freed: collect them first. The listening
/// socket stays open.
#[no_mangle]
pub unsafe extern "C" fn fcgi_loop_free(evloop: *mut fcgi_loop) {
    guard("fcgi_loop_free", || {
        if evloop.is_null() {
            return;
        }
        // SAFETY: evloop came from fcgi_loop_new (caller's contract) and is freed once.
        let b = unsafe { Box::from_raw(evloop) };
        for &p in &b.live {
            // SAFETY: live objects came from Box::into_raw below and are freed only here.
            let mut r = unsafe { Box::from_raw(p as *mut fcgi_request) };
            r.inner.finish(false);
        }
        for &p in &b.spare {
            // SAFETY: as above, for the objects given back.
            drop(unsafe { Box::from_raw(p) });
        }
    })
}

/// The descriptor to add to the application's poller (epoll, poll, select, an asyncio
/// reader) for readability. When it is readable, call fcgi_loop_work, then fcgi_loop_accept
/// and fcgi_loop_woken until they return NULL. Level-triggered: it stays readable until that
/// work is done. -1 for NULL.
/// Ownership: `evloop` is borrowed for the call. The descriptor belongs to the loop: never
/// close it; it is valid until fcgi_loop_free.
#[no_mangle]
pub unsafe extern "C" fn fcgi_loop_fd(evloop: *mut fcgi_loop) -> c_int {
    guard("fcgi_loop_fd", || {
        // SAFETY: the caller passes NULL or a live loop from fcgi_loop_new, as `lp` requires.
        unsafe { lp(evloop) }.map_or(-1, |l| l.inner.fd())
    })
}

/// Does the runtime's work that is ready, without waiting: accepts connections, reads and
/// parses input, answers management records and refusals, fires timers (idle keep-alive,
/// PARAMS, write and linger timeouts). Returns the milliseconds after which it must be called
/// again even if the descriptor stays quiet, or -1 for no such time (call it when the
/// descriptor is readable). Call fcgi_loop_accept and fcgi_loop_woken afterwards.
/// Ownership: `evloop` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_loop_work(evloop: *mut fcgi_loop) -> c_int {
    guard("fcgi_loop_work", || {
        // SAFETY: the caller passes NULL or a live loop from fcgi_loop_new, as `lp` requires.
        unsafe { lp(evloop) }.map_or(-1, |l| l.inner.work())
    })
}

/// A request whose PARAMS have all arrived, or NULL when none is ready now (or on shutdown:
/// see fcgi_in_shutdown). Its environment is read with fcgi_getenv and friends; its body with
/// fcgi_loop_read; its response is written with fcgi_loop_write and ended with
/// fcgi_loop_finish, which gives the object back. Until then the loop reports the request as
/// woken (fcgi_loop_woken) whenever its input arrives, room to write comes after
/// FCGI_WOULD_BLOCK, or it is aborted.
/// Ownership: `evloop` is borrowed for the call. The returned object is owned by the loop
/// (never pass it to fcgi_destroy_request); the caller may use it until fcgi_loop_finish gives
/// it back, or until fcgi_loop_free. Its request data (fcgi_set_request_data) starts as NULL.
#[no_mangle]
pub unsafe extern "C" fn fcgi_loop_accept(evloop: *mut fcgi_loop) -> *mut fcgi_request {
    guard("fcgi_loop_accept", || {
        // SAFETY: the caller passes NULL or a live loop from fcgi_loop_new, as `lp` requires.
        let Some(l) = (unsafe { lp(evloop) }) else {
            return ptr::null_mut();
        };
        let p = match l.spare.pop() {
            Some(p) => p,
            None => {
                let server = l.inner.server().clone();
                let req = Request::new(l.listen_fd);
                let p = Box::into_raw(Box::new(fcgi_request::for_loop(req, evloop)));
                let waiter = Arc::new(Waiter::for_loop(l.inner.wake_side(), p as usize));
                // SAFETY: p was just allocated above and is not shared yet.
                unsafe { (*p).inner = Request::new_loop(l.listen_fd, server, waiter) };
                p
            }
        };
        // SAFETY: p is an object of this loop (allocated above or given back earlier).
        let r = unsafe { &mut *p };
        match r.inner.accept_loop() {
            Ok(Some(_)) => {
                r.note_client();
                r.data = ptr::null_mut();
                l.live.insert(p as usize);
                p
            }
            Ok(None) | Err(AcceptError::Shutdown) => {
                l.spare.push(p);
                ptr::null_mut()
            }
            Err(AcceptError::Io(e)) => {
                fcgi_runtime::fcgi_log!(
                    Error,
                    "cannot serve listening socket {}: {e}",
                    l.listen_fd
                );
                l.spare.push(p);
                ptr::null_mut()
            }
        }
    })
}

/// A request of this loop whose wait may have ended: input arrived (or its end), room to
/// write came after FCGI_WOULD_BLOCK, or the request was aborted (fcgi_is_aborted) or its
/// connection failed. NULL when there is none. A request may be reported when nothing
/// changed for it; retrying its call then says FCGI_WOULD_BLOCK again.
/// Ownership: `evloop` is borrowed for the call. The returned object is one the caller holds
/// (from fcgi_loop_accept, not yet given back), owned by the loop: valid until fcgi_loop_finish
/// or fcgi_loop_free.
#[no_mangle]
pub unsafe extern "C" fn fcgi_loop_woken(evloop: *mut fcgi_loop) -> *mut fcgi_request {
    guard("fcgi_loop_woken", || {
        // SAFETY: the caller passes NULL or a live loop from fcgi_loop_new, as `lp` requires.
        let Some(l) = (unsafe { lp(evloop) }) else {
            return ptr::null_mut();
        };
        while let Some(k) = l.inner.wake_side().pop() {
            let p = k as *mut fcgi_request;
            // SAFETY: every key is the address of an object of this loop, live or spare, and
            // objects are freed only with the loop.
            unsafe { (*p).inner.waiter().rearm() };
            if l.live.contains(&k) {
                return p;
            }
        }
        ptr::null_mut()
    })
}

fn loop_req<'a>(p: *mut fcgi_request) -> Option<&'a mut fcgi_request> {
    // SAFETY: caller's contract (NULL or valid).
    unsafe { req(p) }.filter(|r| r.inner.is_loop())
}

/// Reads up to `len` bytes of the request body (STDIN) without waiting. Returns the count,
/// 0 at the end of the body (or if `len <= 0`), FCGI_WOULD_BLOCK when no byte is there yet
/// (the request is reported by fcgi_loop_woken when some arrive), or -1 if the request was
/// aborted, its connection failed or its body was cut short (also for a NULL or blocking
/// request). fcgi_read and fcgi_read_data on a loop request behave the same way.
/// Ownership: `req` and `buf` are borrowed for the call: at most `len` bytes are written into
/// `buf`, and no reference to it is kept.
#[no_mangle]
pub unsafe extern "C" fn fcgi_loop_read(
    req: *mut fcgi_request,
    buf: *mut c_char,
    len: c_int,
) -> c_int {
    guard("fcgi_loop_read", || {
        let Some(r) = loop_req(req) else {
            return -1;
        };
        if len <= 0 {
            return 0;
        }
        if buf.is_null() {
            return -1;
        }
        // SAFETY: the caller provides len writable bytes at buf.
        let b = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len as usize) };
        r.inner.read(fcgi_runtime::server::Stream::Stdin, b) as c_int
    })
}

/// Writes to the request's STDOUT (`type` FCGI_STDOUT) or STDERR (FCGI_STDERR) without
/// waiting. Returns how many bytes were taken: all of them while the connection has room (a
/// small write is buffered, a larger one goes to the socket or its write-behind buffer), fewer
/// when the room ends inside the write; FCGI_WOULD_BLOCK when there is no room at all (the
/// peer does not read fast enough: the request is reported by fcgi_loop_woken when room
/// comes; past the write timeout the connection is closed and the request aborted); -1 if the
/// request was aborted or its connection failed; 0 for `len <= 0`. fcgi_write on a loop
/// request behaves the same way.
/// Ownership: `req` and `buf` are borrowed for the call: the bytes taken are copied (into the
/// output or write-behind buffer) or written before it returns, and no reference to `buf` is
/// kept; pass the bytes not taken again later.
#[no_mangle]
pub unsafe extern "C" fn fcgi_loop_write(
    req: *mut fcgi_request,
    r#type: fcgi_request_type,
    buf: *const c_char,
    len: c_int,
) -> c_int {
    guard("fcgi_loop_write", || loop_write(req, r#type, buf, len))
}

pub(super) fn loop_write(
    req: *mut fcgi_request,
    r#type: fcgi_request_type,
    buf: *const c_char,
    len: c_int,
) -> c_int {
    let Some(r) = loop_req(req) else {
        return -1;
    };
    if len <= 0 {
        return 0;
    }
    let rt_ = match r#type {
        FCGI_STDOUT => rtype::STDOUT,
        FCGI_STDERR => rtype::STDERR,
        _ => return -1,
    };
    if buf.is_null() {
        return -1;
    }
    // SAFETY: the caller provides len readable bytes at buf.
    let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len as usize) };
    match r.inner.write_nb(rt_, data) {
        Ok(0) => WOULD_BLOCK as c_int,
        Ok(n) => n as c_int,
        Err(SendError::Broken) => {
            r.inner.set_keep(false);
            -1
        }
        Err(SendError::Aborted) => -1,
    }
}

/// Sends the request's buffered output now (fcgi_loop_write buffers writes that fit the
/// output buffer, FCGI_LIMIT_OUTPUT_BUFFER_BYTES, until it fills or the request ends), without
/// waiting: for a response streamed in small pieces. Returns 0 when nothing is left buffered,
/// FCGI_WOULD_BLOCK when the connection has no room (the request is reported by
/// fcgi_loop_woken when room comes; call again then), -1 if the request was aborted or its
/// connection failed (also for a NULL or blocking request). fcgi_flush on a loop request
/// sends without this check (it never waits either).
/// Ownership: `req` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_loop_flush(req: *mut fcgi_request) -> c_int {
    guard("fcgi_loop_flush", || {
        let Some(r) = loop_req(req) else {
            return -1;
        };
        match r.inner.flush_nb() {
            Ok(true) => 0,
            Ok(false) => WOULD_BLOCK as c_int,
            Err(SendError::Broken) => {
                r.inner.set_keep(false);
                -1
            }
            Err(SendError::Aborted) => -1,
        }
    })
}

/// Ends the request and gives its object back to the loop (do not use it afterwards): sends
/// the buffered output, the end of the streams and END_REQUEST (with fcgi_set_app_status's
/// status) without waiting (what the socket does not take now leaves from the write-behind
/// buffer as the peer reads), then keeps or closes the connection as for fcgi_finish_request.
/// Returns 0, or -1 when the output could not be delivered (the request was aborted or its
/// connection failed; the object is given back all the same), and -1 for a NULL or blocking
/// request.
/// Ownership: gives `req` back to its loop: neither it nor the pointers fcgi_getenv and friends
/// returned for it may be used afterwards (the loop hands the object out again for another
/// request). Its request data is reset to NULL, not freed.
#[no_mangle]
pub unsafe extern "C" fn fcgi_loop_finish(req: *mut fcgi_request) -> c_int {
    guard("fcgi_loop_finish", || {
        let Some(r) = loop_req(req) else {
            return -1;
        };
        // SAFETY: a loop request's owner is its loop, alive while the request is (contract).
        let Some(l) = (unsafe { lp(r.owner) }) else {
            return -1;
        };
        if !l.live.remove(&(req as usize)) {
            // Given back already.
            return -1;
        }
        let (ok, _) = r.inner.finish(false);
        r.data = ptr::null_mut();
        l.spare.push(req);
        if ok {
            0
        } else {
            -1
        }
    })
}

/// Returns 1 when the client of the request is gone: the web server closed its side of the
/// request's connection, the connection failed, or the request was aborted (fcgi_is_aborted).
/// Closing the connection is how the FastCGI spec lets a web server abort a request on an
/// unmultiplexed connection, and what nginx does when its own client goes away; the response
/// is still delivered to a web server that only half-closed. A loop request is reported by
/// fcgi_loop_woken when this becomes true. Works on blocking requests too. 0 otherwise (and
/// for NULL).
/// Ownership: `req` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn fcgi_peer_closed(req: *mut fcgi_request) -> c_int {
    // Failure value: a yes/no answer: a panic answers no.
    guard_or("fcgi_peer_closed", 0, || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        unsafe { self::req(req) }.is_some_and(|r| r.inner.peer_closed()) as c_int
    })
}

/// Attaches the application's pointer to a request object (for example its state for a request
/// of an event loop, found again when fcgi_loop_woken returns the request). NULL `req` is
/// ignored.
/// Ownership: `data` stays the caller's: the library stores it as given, never dereferences or
/// frees it (fcgi_destroy_request, fcgi_loop_finish and fcgi_loop_free do not free it). It is
/// kept until replaced: a blocking request object keeps it from request to request; a loop
/// resets it to NULL in fcgi_loop_finish and when fcgi_loop_accept hands the object out.
#[no_mangle]
pub unsafe extern "C" fn fcgi_set_request_data(req: *mut fcgi_request, data: *mut c_void) {
    guard("fcgi_set_request_data", || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        if let Some(r) = unsafe { self::req(req) } {
            r.data = data;
        }
    })
}

/// The pointer set by fcgi_set_request_data, or NULL.
/// Ownership: `req` is borrowed for the call; the result is the caller's own pointer (see
/// fcgi_set_request_data), not owned by the library.
#[no_mangle]
pub unsafe extern "C" fn fcgi_get_request_data(req: *mut fcgi_request) -> *mut c_void {
    guard("fcgi_get_request_data", || {
        // SAFETY: the caller passes NULL or a live request object from fcgi_init_request, as
        // `req` requires.
        unsafe { self::req(req) }.map_or(ptr::null_mut(), |r| r.data)
    })
}
