//! The write side of a connection, shared by the reactor and application threads.
//!
//! Application threads write their records straight to the non-blocking socket under the
//! connection's write lock. Whatever the socket does not take is kept in a bounded
//! write-behind buffer that the reactor drains on WRITABLE; a writer whose data would not fit
//! waits on the socket itself (`poll(POLLOUT)`), so it never depends on a reactor that may not
//! be polling. The per-request flags that guarantee exactly one END_REQUEST are only changed
//! under this lock.

use super::config::{self, Limit};
use super::sys;
use super::waiter::Waiter;
use parking_lot::Mutex;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Slices per `writev` call.
const MAX_IOV: usize = 64;
/// Output deferred on a connection at most (see [`ConnIo::defer`]); past it, output is sent.
pub const CORK_MAX: usize = 32 * 1024;

/// State of one request shared between the reactor and the application thread serving it.
#[derive(Default, Debug)]
pub struct ReqShared {
    /// ABORT_REQUEST arrived or the connection broke: the END_REQUEST is not the app's to send.
    pub aborted: AtomicBool,
    /// The END_REQUEST has been written (by the app, or by the runtime for an abort).
    pub ended: AtomicBool,
    /// The web server closed its side of the connection while the request was served: under
    /// the FastCGI spec (§5.4) the way it aborts a request on an unmultiplexed connection
    /// (nginx does when its client goes away), though a half-closing peer may still read
    /// the response, which is therefore still sent.
    pub peer_closed: AtomicBool,
}

impl ReqShared {
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }
}

/// Why a write failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum SendError {
    /// The request was aborted by the server; its output is discarded.
    Aborted,
    /// The connection failed (peer gone, write error or write timeout).
    Broken,
}

struct WriteState {
    /// Bytes accepted but not yet taken by the socket.
    pending: Vec<u8>,
    /// Offset of the first unsent byte in `pending`.
    sent: usize,
    broken: bool,
    /// shutdown(SHUT_WR) once `pending` is empty.
    shutdown_after_flush: bool,
    shut: bool,
    /// `pending` holds deferred output (see [`ConnIo::defer`]), not output the socket refused:
    /// the next send carries it along in the same write.
    corked: bool,
    /// Event-loop writers waiting for room in the write-behind buffer (see
    /// [`ConnIo::room_for`]), and since when the first of them waits.
    room_waiters: Vec<Arc<Waiter>>,
    room_wait_since: Option<Instant>,
}

impl WriteState {
    fn unsent(&self) -> usize {
        self.pending.len() - self.sent
    }
}

/// A connection's socket and its write side.
pub struct ConnIo {
    fd: OwnedFd,
    st: Mutex<WriteState>,
}

/// What a send may do when the socket is full.
#[derive(Clone, Copy, Debug)]
pub struct SendPolicy {
    /// Bytes that may wait in the write-behind buffer.
    pub write_behind: usize,
    /// How long a writer may wait for the socket; `None` never waits (reactor sends).
    pub wait: Option<Duration>,
}

impl ConnIo {
    pub fn new(fd: OwnedFd) -> ConnIo {
        ConnIo {
            fd,
            st: Mutex::new(WriteState {
                pending: Vec::new(),
                sent: 0,
                broken: false,
                shutdown_after_flush: false,
                shut: false,
                corked: false,
                room_waiters: Vec::new(),
                room_wait_since: None,
            }),
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Marks the connection broken: later sends fail (and waiting loop writers hear of it).
    pub fn set_broken(&self) {
        let mut st = self.st.lock();
        st.broken = true;
        wake_room_waiters(&mut st);
    }

    /// For a writer that must not wait (an event loop's request): how many more bytes may
    /// be sent now. With nothing waiting in the write-behind buffer, up to the write-behind
    /// limit (at least 64 KiB: a send takes what the socket takes and keeps the rest); else
    /// what is left below the limit. `Ok(0)` registers `me` to be notified when the buffer
    /// drains below the limit or the connection breaks: the caller reports "would block".
    pub fn room_for(&self, me: &Arc<Waiter>) -> Result<usize, SendError> {
        let mut st = self.st.lock();
        if st.broken {
            return Err(SendError::Broken);
        }
        if st.unsent() > 0 && self.flush_locked(&mut st).is_err() {
            return Err(SendError::Broken);
        }
        let bound = config::get(Limit::WriteBehindBytes) as usize;
        let unsent = st.unsent();
        if unsent == 0 {
            return Ok(bound.max(64 * 1024));
        }
        if unsent < bound {
            return Ok(bound - unsent);
        }
        if !st.room_waiters.iter().any(|w| Arc::ptr_eq(w, me)) {
            st.room_waiters.push(me.clone());
        }
        st.room_wait_since.get_or_insert_with(Instant::now);
        Ok(0)
    }

    /// Since when an event-loop writer waits for room (the write timeout runs from there).
    pub fn room_wait_since(&self) -> Option<Instant> {
        self.st.lock().room_wait_since
    }

    pub fn is_broken(&self) -> bool {
        self.st.lock().broken
    }

    /// Sends `parts` (whole records) for a request (`req`), or for the connection itself.
    /// `end` marks the parts as carrying the request's END_REQUEST: it is sent only if the
    /// request was not aborted, and at most once. Returns once every byte is either written
    /// or in the write-behind buffer.
    pub fn send(
        &self,
        req: Option<&ReqShared>,
        parts: &[&[u8]],
        end: bool,
        policy: SendPolicy,
    ) -> Result<(), SendError> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        // The write timeout runs from the first time this send has to wait: no clock read on
        // the usual path, where the socket takes everything at once.
        let mut started: Option<Instant> = None;
        let mut st = self.st.lock();
        loop {
            if st.broken {
                return Err(SendError::Broken);
            }
            if let Some(r) = req {
                if r.aborted.load(Ordering::Acquire) || r.ended.load(Ordering::Acquire) {
                    return Err(SendError::Aborted);
                }
            }
            if st.unsent() == 0 {
                break;
            }
            if st.corked && st.unsent() + total <= CORK_MAX {
                // Deferred output of earlier requests: everything leaves in one write.
                st.corked = false;
                if let (true, Some(r)) = (end, req) {
                    r.ended.store(true, Ordering::Release);
                }
                for p in parts {
                    st.pending.extend_from_slice(p);
                }
                return match self.flush_locked(&mut st) {
                    Ok(()) => Ok(()),
                    Err(()) => Err(SendError::Broken),
                };
            }
            if self.flush_locked(&mut st).is_err() {
                return Err(SendError::Broken);
            }
            if st.unsent() == 0
                || st.unsent() + total <= policy.write_behind
                || policy.wait.is_none()
            {
                break;
            }
            drop(st);
            self.wait_writable(*started.get_or_insert_with(Instant::now), policy.wait)?;
            st = self.st.lock();
        }
        if let (true, Some(r)) = (end, req) {
            r.ended.store(true, Ordering::Release);
        }
        if st.unsent() > 0 {
            // Keep order: everything goes behind what is already waiting.
            for p in parts {
                st.pending.extend_from_slice(p);
            }
            let _ = self.flush_locked(&mut st);
            return Ok(());
        }
        // Nothing waiting: write directly from the caller's buffers.
        let mut skip = 0usize;
        loop {
            // Up to MAX_IOV slices from the first unsent byte on, in a stack array left
            // uninitialised (filling all 64 would cost more than the rest of the send): no
            // allocation on the per-request path.
            let mut slices = [const { MaybeUninit::<IoSlice<'_>>::uninit() }; MAX_IOV];
            let mut n = 0;
            let mut off = skip;
            for p in parts {
                if off >= p.len() {
                    off -= p.len();
                    continue;
                }
                slices[n].write(IoSlice::new(&p[off..]));
                n += 1;
                off = 0;
                if n == MAX_IOV {
                    break;
                }
            }
            if n == 0 {
                return Ok(());
            }
            // SAFETY: the first n elements were initialised just above; MaybeUninit<T> has the
            // layout of T.
            let filled =
                unsafe { std::slice::from_raw_parts(slices.as_ptr().cast::<IoSlice<'_>>(), n) };
            match sys::writev(self.fd(), filled) {
                Ok(n) => skip += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = total - skip;
                    if left <= policy.write_behind || policy.wait.is_none() {
                        let mut off = skip;
                        for p in parts {
                            if off >= p.len() {
                                off -= p.len();
                                continue;
                            }
                            st.pending.extend_from_slice(&p[off..]);
                            off = 0;
                        }
                        return Ok(());
                    }
                    drop(st);
                    self.wait_writable(*started.get_or_insert_with(Instant::now), policy.wait)?;
                    st = self.st.lock();
                    if st.broken {
                        return Err(SendError::Broken);
                    }
                }
                Err(_) => {
                    st.broken = true;
                    wake_room_waiters(&mut st);
                    return Err(SendError::Broken);
                }
            }
        }
    }

    /// Queues whole records of a request without writing them, for a later send on this
    /// connection (or [`ConnIo::flush_pending`]) to carry along: the responses of pipelined
    /// requests leave together. The caller guarantees that a flush follows (see
    /// `Server::retire`). Returns false, queuing nothing, when the output must be sent now
    /// instead: the request was aborted or ended, the connection broke, output the socket
    /// refused is waiting, or the deferred output would exceed [`CORK_MAX`].
    pub fn defer(&self, req: &ReqShared, bytes: &[u8], end: bool) -> bool {
        let mut st = self.st.lock();
        if st.broken
            || req.aborted.load(Ordering::Acquire)
            || req.ended.load(Ordering::Acquire)
            || (st.unsent() > 0 && !st.corked)
            || st.unsent() + bytes.len() > CORK_MAX
        {
            return false;
        }
        if end {
            req.ended.store(true, Ordering::Release);
        }
        st.pending.extend_from_slice(bytes);
        st.corked = true;
        true
    }

    /// Blocks until the write-behind buffer is empty (at most `timeout`). Used before a
    /// connection is closed at once, so answers already given are not lost. Returns false if
    /// the buffer could not be drained.
    pub fn drain(&self, timeout: Duration) -> bool {
        let policy = SendPolicy {
            write_behind: 0,
            wait: Some(timeout),
        };
        self.send(None, &[], false, policy).is_ok()
    }

    /// Writes the END_REQUEST of an aborted request unless the app already sent its own.
    /// Returns true if this call sent it.
    pub fn send_abort_end(&self, req: &ReqShared, records: &[u8]) -> bool {
        let mut st = self.st.lock();
        if req.ended.load(Ordering::Acquire) || req.aborted.load(Ordering::Acquire) {
            return false;
        }
        req.aborted.store(true, Ordering::Release);
        req.ended.store(true, Ordering::Release);
        if !st.broken {
            st.pending.extend_from_slice(records);
            let _ = self.flush_locked(&mut st);
        }
        true
    }

    /// Writes as much of the write-behind buffer as the socket takes. Returns true when it is
    /// empty afterwards (and performs a pending shutdown).
    pub fn flush_pending(&self) -> bool {
        let mut st = self.st.lock();
        if self.flush_locked(&mut st).is_err() {
            return true;
        }
        st.unsent() == 0
    }

    /// Bytes waiting in the write-behind buffer.
    pub fn pending_len(&self) -> usize {
        self.st.lock().unsent()
    }

    /// Asks for shutdown(SHUT_WR) as soon as everything queued is written. Returns true if it
    /// happened now.
    pub fn shutdown_when_flushed(&self) -> bool {
        let mut st = self.st.lock();
        st.shutdown_after_flush = true;
        let _ = self.flush_locked(&mut st);
        st.shut
    }

    fn flush_locked(&self, st: &mut WriteState) -> Result<(), ()> {
        st.corked = false;
        while st.unsent() > 0 {
            let r = sys::writev(self.fd(), &[IoSlice::new(&st.pending[st.sent..])]);
            match r {
                Ok(n) => st.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(_) => {
                    st.broken = true;
                    st.pending = Vec::new();
                    st.sent = 0;
                    wake_room_waiters(st);
                    return Err(());
                }
            }
        }
        if st.sent > 0 {
            st.sent = 0;
            st.pending.clear();
            if st.pending.capacity() > 64 * 1024 {
                st.pending = Vec::new();
            }
        }
        if st.shutdown_after_flush && !st.shut {
            st.shut = true;
            sys::shutdown_write(self.fd());
        }
        if !st.room_waiters.is_empty()
            && (st.unsent() == 0 || st.unsent() < config::get(Limit::WriteBehindBytes) as usize)
        {
            wake_room_waiters(st);
        }
        Ok(())
    }

    fn wait_writable(&self, started: Instant, wait: Option<Duration>) -> Result<(), SendError> {
        let limit = wait.unwrap_or_default();
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            self.set_broken();
            crate::fcgi_log!(
                Warning,
                "write timed out after {} ms; closing",
                limit.as_millis()
            );
            return Err(SendError::Broken);
        }
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        match sys::poll_one(self.fd(), libc::POLLOUT, ms.max(1)) {
            Ok(rev) if rev & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 => {
                // Let the next write report the error (POLLHUP may still allow writes).
                if rev & libc::POLLOUT == 0 {
                    self.set_broken();
                    return Err(SendError::Broken);
                }
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(_) => {
                self.set_broken();
                Err(SendError::Broken)
            }
        }
    }
}

/// Tells the event-loop writers waiting for room that there is some (or that the connection
/// broke): each is queued as woken on its loop.
fn wake_room_waiters(st: &mut WriteState) {
    st.room_wait_since = None;
    for w in st.room_waiters.drain(..) {
        w.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    #[test]
    fn deferred_output_leaves_with_the_next_send() {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let io = ConnIo::new(OwnedFd::from(a));
        let r1 = ReqShared::default();
        assert!(io.defer(&r1, b"first", true));
        assert!(r1.ended.load(Ordering::Acquire));
        assert_eq!(io.pending_len(), 5);
        let mut buf = [0u8; 64];
        assert!(b.read(&mut buf).is_err(), "nothing written yet");
        // An ended request is neither deferred nor sent again.
        assert!(!io.defer(&r1, b"again", true));
        let r2 = ReqShared::default();
        let policy = SendPolicy {
            write_behind: 1 << 20,
            wait: None,
        };
        io.send(Some(&r2), &[b"sec", b"ond"], true, policy).unwrap();
        assert_eq!(io.pending_len(), 0);
        let n = b.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"firstsecond");
        // Past CORK_MAX nothing is deferred; flush_pending writes what is.
        let r3 = ReqShared::default();
        assert!(!io.defer(&r3, &vec![0u8; CORK_MAX + 1], true));
        assert!(!r3.ended.load(Ordering::Acquire));
        assert!(io.defer(&r3, b"third", true));
        assert!(io.flush_pending());
        let n = b.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"third");
    }
}
