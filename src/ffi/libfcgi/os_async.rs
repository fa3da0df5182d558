//! The asynchronous half of fcgios.h, which only cgi-fcgi uses: `OS_AsyncReadStdin`,
//! `OS_AsyncRead`, `OS_AsyncWrite` register one-shot operations; `OS_DoIo` waits for some to be
//! ready, performs each with one `read()`/`write()` and calls its completion procedure with the
//! result (bytes transferred, 0 for end of file, -1 on error with `errno` set).
//!
//! Differences from libfcgi, all deliberate:
//! - `poll()` instead of `select()`: no `FD_SETSIZE` limit (libfcgi's fortified `FD_SET`
//!   aborts on fd >= 1024), and the table is a map that grows as needed;
//! - a signal interrupting `OS_DoIo` makes it return 0 (the caller loops) where libfcgi
//!   `exit()`s the process; any other poll failure returns -1 with `errno` set;
//! - registering a second operation of the same kind on a descriptor fails with `EBUSY`
//!   (libfcgi asserts), and a NULL procedure, a negative length or a negative descriptor fail
//!   with `EINVAL`/`EBADF`; registration also works before `OS_LibInit` (libfcgi crashes);
//! - a spurious readiness (the read or write would block) re-arms the operation instead of
//!   reporting -1/EAGAIN to the procedure;
//! - writes to sockets use `send(MSG_NOSIGNAL)`, so a closed peer gives -1/EPIPE, not SIGPIPE;
//! - the table is behind a mutex; the procedures run without it held, so they may register new
//!   operations (on the same descriptor too), close descriptors or call `OS_DoIo` again.
//!
//! As in libfcgi, operations that become ready in one `OS_DoIo` run in descriptor order, the
//! read before the write of a descriptor; each entry is cleared before its procedure runs, and
//! an operation registered (or re-registered) by a procedure waits for the next `OS_DoIo`.

use super::{ClientData, OS_AsyncProc};
use crate::ffi::panic::guard;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::os::raw::{c_int, c_void};

/// Direction of an operation. Reads sort before writes, as libfcgi dispatches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Dir {
    Read,
    Write,
}

/// One pending operation.
struct Op {
    proc_: unsafe extern "C" fn(ClientData, c_int),
    data: ClientData,
    buf: *mut c_void,
    len: usize,
    /// Distinguishes this registration from a later one on the same descriptor.
    seq: u64,
}

// SAFETY: the pointers are the caller's; this module only hands them back to the caller's
// procedure or to read()/write(), which is what the caller registered them for (libfcgi has the
// same contract, without a lock). Nothing here dereferences them.
unsafe impl Send for Op {}

struct Table {
    ops: BTreeMap<(c_int, Dir), Op>,
    next_seq: u64,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    ops: BTreeMap::new(),
    next_seq: 0,
});

/// Registers an operation; 0 or -1 with errno set.
fn register(
    fd: c_int,
    dir: Dir,
    buf: *mut c_void,
    len: c_int,
    proc_: OS_AsyncProc,
    data: ClientData,
) -> c_int {
    let Some(proc_) = proc_ else {
        super::set_errno(libc::EINVAL);
        return -1;
    };
    if fd < 0 {
        super::set_errno(libc::EBADF);
        return -1;
    }
    if len < 0 {
        super::set_errno(libc::EINVAL);
        return -1;
    }
    let mut t = TABLE.lock();
    let seq = t.next_seq;
    t.next_seq += 1;
    match t.ops.entry((fd, dir)) {
        std::collections::btree_map::Entry::Occupied(_) => {
            drop(t);
            super::set_errno(libc::EBUSY);
            -1
        }
        std::collections::btree_map::Entry::Vacant(v) => {
            v.insert(Op {
                proc_,
                data,
                buf,
                len: len as usize,
                seq,
            });
            0
        }
    }
}

/// Cancels the pending operation of `fd` in direction `dir` (none: no effect).
pub(super) fn cancel(fd: c_int, dir: Dir) {
    TABLE.lock().ops.remove(&(fd, dir));
}

/// Cancels both operations of `fd`.
pub(super) fn cancel_fd(fd: c_int) {
    let mut t = TABLE.lock();
    t.ops.remove(&(fd, Dir::Read));
    t.ops.remove(&(fd, Dir::Write));
}

/// Drops every pending operation and frees the table (OS_LibShutdown).
pub(super) fn clear() {
    let mut t = TABLE.lock();
    t.ops = BTreeMap::new();
}

/// Number of pending operations (tests).
#[cfg(test)]
pub(super) fn pending() -> usize {
    TABLE.lock().ops.len()
}

/// Starts an asynchronous read of at most `len` bytes from fd 0 into `buf`. Returns 0, or -1
/// with errno set (EBUSY: a read of fd 0 is already pending; EINVAL: bad arguments).
#[no_mangle]
pub unsafe extern "C" fn OS_AsyncReadStdin(
    buf: *mut c_void,
    len: c_int,
    procPtr: OS_AsyncProc,
    clientData: ClientData,
) -> c_int {
    guard("OS_AsyncReadStdin", || {
        register(0, Dir::Read, buf, len, procPtr, clientData)
    })
}

/// Starts an asynchronous read of at most `len` bytes from `fd` into `buf`; `offset` is
/// ignored, as in libfcgi. Returns 0, or -1 with errno set.
#[no_mangle]
pub unsafe extern "C" fn OS_AsyncRead(
    fd: c_int,
    offset: c_int,
    buf: *mut c_void,
    len: c_int,
    procPtr: OS_AsyncProc,
    clientData: ClientData,
) -> c_int {
    let _ = offset;
    guard("OS_AsyncRead", || {
        register(fd, Dir::Read, buf, len, procPtr, clientData)
    })
}

/// Starts an asynchronous write of at most `len` bytes of `buf` to `fd`; `offset` is ignored,
/// as in libfcgi. Returns 0, or -1 with errno set.
#[no_mangle]
pub unsafe extern "C" fn OS_AsyncWrite(
    fd: c_int,
    offset: c_int,
    buf: *mut c_void,
    len: c_int,
    procPtr: OS_AsyncProc,
    clientData: ClientData,
) -> c_int {
    let _ = offset;
    guard("OS_AsyncWrite", || {
        register(fd, Dir::Write, buf, len, procPtr, clientData)
    })
}

const READ_READY: i16 = libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
const WRITE_READY: i16 = libc::POLLOUT | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;

/// The poll timeout of a `struct timeval` (NULL: none). Negative times count as zero.
fn timespec_of(tmo: *const libc::timeval) -> Option<libc::timespec> {
    // SAFETY: the caller passes NULL or a valid struct timeval.
    let tv = unsafe { tmo.as_ref() }?;
    let us = (i128::from(tv.tv_sec) * 1_000_000 + i128::from(tv.tv_usec)).max(0);
    let secs = (us / 1_000_000).min(i128::from(libc::time_t::MAX));
    Some(libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: ((us % 1_000_000) * 1000) as _,
    })
}

/// Waits for registered operations and runs the ready ones (see the module documentation).
/// `tmo` NULL waits until one is ready; otherwise at most that long. Returns 0 (also when a
/// signal interrupted the wait), or -1 with errno set if poll() itself failed.
#[no_mangle]
pub unsafe extern "C" fn OS_DoIo(tmo: *mut libc::timeval) -> c_int {
    guard("OS_DoIo", || {
        // A snapshot of what is registered now: fd, and the sequence numbers of its read and
        // write operations.
        let mut snap: Vec<(c_int, Option<u64>, Option<u64>)> = Vec::new();
        {
            let t = TABLE.lock();
            for (&(fd, dir), op) in &t.ops {
                if snap.last().map(|s| s.0) != Some(fd) {
                    snap.push((fd, None, None));
                }
                let last = snap.last_mut().expect("pushed above");
                match dir {
                    Dir::Read => last.1 = Some(op.seq),
                    Dir::Write => last.2 = Some(op.seq),
                }
            }
        }
        let mut pfds: Vec<libc::pollfd> = snap
            .iter()
            .map(|&(fd, r, w)| libc::pollfd {
                fd,
                events: if r.is_some() { libc::POLLIN } else { 0 }
                    | if w.is_some() { libc::POLLOUT } else { 0 },
                revents: 0,
            })
            .collect();
        let ts = timespec_of(tmo);
        if let Err(e) = fcgi_runtime::sys::ppoll(&mut pfds, ts.as_ref()) {
            let e = e.raw_os_error().unwrap_or(libc::EINVAL);
            if e == libc::EINTR {
                return 0;
            }
            super::set_errno(e);
            return -1;
        }
        for (p, &(fd, rseq, wseq)) in pfds.iter().zip(&snap) {
            if let Some(seq) = rseq {
                if p.revents & READ_READY != 0 {
                    run(fd, Dir::Read, seq);
                }
            }
            if let Some(seq) = wseq {
                if p.revents & WRITE_READY != 0 {
                    run(fd, Dir::Write, seq);
                }
            }
        }
        0
    })
}

/// Performs the operation registered as (`fd`, `dir`, `seq`) if it is still registered, then
/// calls its procedure.
fn run(fd: c_int, dir: Dir, seq: u64) {
    let op = {
        let mut t = TABLE.lock();
        match t.ops.get(&(fd, dir)) {
            Some(op) if op.seq == seq => t.ops.remove(&(fd, dir)).expect("present"),
            _ => return,
        }
    };
    let n = match dir {
        // SAFETY: the caller registered `buf` as writable for `len` bytes until completion.
        Dir::Read => unsafe { super::read_fd(fd, op.buf.cast(), op.len) },
        // SAFETY: the caller registered `buf` as readable for `len` bytes until completion.
        Dir::Write => unsafe { super::write_fd(fd, op.buf.cast_const().cast(), op.len) },
    };
    let err = super::errno();
    if n < 0 && (err == libc::EAGAIN || err == libc::EWOULDBLOCK) {
        // Not ready after all: keep waiting, unless the slot was taken meanwhile.
        let mut t = TABLE.lock();
        if let std::collections::btree_map::Entry::Vacant(v) = t.ops.entry((fd, dir)) {
            v.insert(op);
            return;
        }
    }
    super::set_errno(err);
    // SAFETY: the procedure and its client data were registered together for this call.
    unsafe { (op.proc_)(op.data, n) };
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::tests::{pipe, socketpair, Fd};
    use super::*;
    use std::ptr;

    /// Serialises the tests that use the process-wide table (OS_DoIo runs every registered
    /// operation, whoever registered it).
    pub(in super::super) static TABLE_LOCK: Mutex<()> = Mutex::new(());

    /// What a completion procedure saw.
    #[derive(Default)]
    struct Rec {
        results: Mutex<Vec<c_int>>,
        errnos: Mutex<Vec<c_int>>,
        /// When set, the procedure registers another read of this fd into `again_buf`.
        again_fd: Option<c_int>,
        again_buf: Mutex<Vec<u8>>,
        again_rc: Mutex<Option<c_int>>,
    }

    unsafe extern "C" fn record(cd: ClientData, n: c_int) {
        // SAFETY: every test passes a pointer to a live Rec as client data.
        let rec = unsafe { &*(cd as *const Rec) };
        rec.errnos.lock().push(super::super::errno());
        rec.results.lock().push(n);
        if let Some(fd) = rec.again_fd {
            let mut b = rec.again_buf.lock();
            // SAFETY: the buffer lives in `rec`, which outlives the operation (the test
            // cancels it before dropping `rec`).
            let rc = unsafe {
                OS_AsyncRead(
                    fd,
                    0,
                    b.as_mut_ptr().cast(),
                    b.len() as c_int,
                    Some(record),
                    cd,
                )
            };
            *rec.again_rc.lock() = Some(rc);
        }
    }

    fn cd(rec: &Rec) -> ClientData {
        rec as *const Rec as ClientData
    }

    fn tv(sec: i64, usec: i64) -> libc::timeval {
        libc::timeval {
            tv_sec: sec as libc::time_t,
            tv_usec: usec as libc::suseconds_t,
        }
    }

    /// Runs OS_DoIo until `rec` saw `n` results (each call blocks until something is ready).
    fn doio_until(rec: &Rec, n: usize) {
        while rec.results.lock().len() < n {
            // SAFETY: NULL timeout.
            assert_eq!(unsafe { OS_DoIo(ptr::null_mut()) }, 0);
        }
    }

    /// Raises RLIMIT_NOFILE so a descriptor >= `want` can exist; false if the hard limit is
    /// too low.
    fn allow_fd(want: u64) -> bool {
        // SAFETY: getrlimit/setrlimit on a local struct.
        unsafe {
            let mut rl: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
                return false;
            }
            if rl.rlim_cur > want {
                return true;
            }
            if rl.rlim_max <= want {
                return false;
            }
            rl.rlim_cur = rl.rlim_max.min(want * 2);
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl) == 0
        }
    }

    /// dup()s `fd` to the lowest free descriptor >= `min`.
    fn dup_at_least(fd: c_int, min: c_int) -> Fd {
        // SAFETY: F_DUPFD on a valid descriptor.
        let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
        assert!(d >= min, "F_DUPFD: {}", std::io::Error::last_os_error());
        Fd(d)
    }

    #[test]
    fn read_on_fd_above_fd_setsize() {
        let _g = TABLE_LOCK.lock();
        if !allow_fd(1600) {
            eprintln!("RLIMIT_NOFILE hard limit too low for fd 1500, skipping");
            return;
        }
        let (r, w) = pipe();
        let high = dup_at_least(r.0, 1500);
        drop(r);
        assert!(high.0 >= 1500);
        // SAFETY: writing from a static buffer to our pipe.
        assert_eq!(unsafe { libc::write(w.0, b"high".as_ptr().cast(), 4) }, 4);
        let rec = Rec::default();
        let mut buf = [0u8; 16];
        // SAFETY: buf and rec outlive the operation (completed below).
        let rc = unsafe {
            OS_AsyncRead(
                high.0,
                0,
                buf.as_mut_ptr().cast(),
                16,
                Some(record),
                cd(&rec),
            )
        };
        assert_eq!(rc, 0);
        doio_until(&rec, 1);
        assert_eq!(*rec.results.lock(), [4]);
        assert_eq!(&buf[..4], b"high");
        // End of file: the procedure gets 0.
        drop(w);
        // SAFETY: as above.
        let rc = unsafe {
            OS_AsyncRead(
                high.0,
                0,
                buf.as_mut_ptr().cast(),
                16,
                Some(record),
                cd(&rec),
            )
        };
        assert_eq!(rc, 0);
        doio_until(&rec, 2);
        assert_eq!(*rec.results.lock(), [4, 0]);
        assert_eq!(pending(), 0);
    }

    #[test]
    fn write_then_read_through_socketpair() {
        let _g = TABLE_LOCK.lock();
        let (a, b) = socketpair();
        let wrec = Rec::default();
        let rrec = Rec::default();
        let out = *b"ping-pong";
        let mut inb = [0u8; 32];
        // SAFETY: buffers and records outlive the operations, completed below.
        unsafe {
            assert_eq!(
                OS_AsyncWrite(
                    a.0,
                    0,
                    out.as_ptr() as *mut c_void,
                    9,
                    Some(record),
                    cd(&wrec)
                ),
                0
            );
            assert_eq!(
                OS_AsyncRead(b.0, 0, inb.as_mut_ptr().cast(), 32, Some(record), cd(&rrec)),
                0
            );
        }
        doio_until(&wrec, 1);
        assert_eq!(*wrec.results.lock(), [9]);
        doio_until(&rrec, 1);
        assert_eq!(*rrec.results.lock(), [9]);
        assert_eq!(&inb[..9], b"ping-pong");
        assert_eq!(pending(), 0);
    }

    #[test]
    fn one_shot_and_reregistration_from_the_procedure() {
        let _g = TABLE_LOCK.lock();
        let (r, w) = pipe();
        let rec = Rec {
            again_fd: Some(r.0),
            again_buf: Mutex::new(vec![0u8; 8]),
            ..Rec::default()
        };
        // SAFETY: writing 6 bytes from a static buffer to our pipe.
        assert_eq!(unsafe { libc::write(w.0, b"abcdef".as_ptr().cast(), 6) }, 6);
        let mut buf = [0u8; 2];
        // SAFETY: buf and rec outlive the operation.
        let rc =
            unsafe { OS_AsyncRead(r.0, 0, buf.as_mut_ptr().cast(), 2, Some(record), cd(&rec)) };
        assert_eq!(rc, 0);
        // A second read of the same fd while one is pending is refused.
        // SAFETY: as above; the call fails without registering.
        let rc2 =
            unsafe { OS_AsyncRead(r.0, 0, buf.as_mut_ptr().cast(), 2, Some(record), cd(&rec)) };
        assert_eq!(rc2, -1);
        assert_eq!(super::super::errno(), libc::EBUSY);
        // One OS_DoIo: the first read runs (2 bytes), its procedure re-registers the same fd
        // (allowed: the entry was cleared first), and the new read waits although data remains.
        // SAFETY: NULL timeout; an operation is registered and ready.
        assert_eq!(unsafe { OS_DoIo(ptr::null_mut()) }, 0);
        assert_eq!(*rec.results.lock(), [2]);
        assert_eq!(&buf, b"ab");
        assert_eq!(*rec.again_rc.lock(), Some(0));
        assert_eq!(pending(), 1);
        // The next OS_DoIo runs the re-registered read (which registers yet another one).
        // SAFETY: as above.
        assert_eq!(unsafe { OS_DoIo(ptr::null_mut()) }, 0);
        assert_eq!(*rec.results.lock(), [2, 4]);
        assert_eq!(&rec.again_buf.lock()[..4], b"cdef");
        cancel_fd(r.0);
        assert_eq!(pending(), 0);
    }

    #[test]
    fn error_result_and_errno() {
        let _g = TABLE_LOCK.lock();
        // A descriptor number nobody uses: a fresh high dup, closed again.
        let (r, _w) = pipe();
        let dead = dup_at_least(r.0, 900).0;
        // SAFETY: closing the descriptor we just created.
        unsafe { libc::close(dead) };
        let rec = Rec::default();
        let mut buf = [0u8; 4];
        // SAFETY: buf and rec outlive the operation.
        let rc =
            unsafe { OS_AsyncRead(dead, 0, buf.as_mut_ptr().cast(), 4, Some(record), cd(&rec)) };
        assert_eq!(rc, 0);
        doio_until(&rec, 1);
        assert_eq!(*rec.results.lock(), [-1]);
        assert_eq!(*rec.errnos.lock(), [libc::EBADF]);
    }

    #[test]
    fn timeout_cancel_and_bad_arguments() {
        let _g = TABLE_LOCK.lock();
        let (r, w) = pipe();
        let rec = Rec::default();
        let mut buf = [0u8; 4];
        // Nothing ready: a short timeout returns 0 without calling anything.
        // SAFETY: buf and rec outlive the operation, cancelled below.
        let rc =
            unsafe { OS_AsyncRead(r.0, 0, buf.as_mut_ptr().cast(), 4, Some(record), cd(&rec)) };
        assert_eq!(rc, 0);
        let mut t = tv(0, 1000);
        // SAFETY: a valid timeval.
        assert_eq!(unsafe { OS_DoIo(&mut t) }, 0);
        assert!(rec.results.lock().is_empty());
        // A cancelled read does not run even when data arrives.
        cancel(r.0, Dir::Read);
        // SAFETY: writing from a static buffer to our pipe.
        assert_eq!(unsafe { libc::write(w.0, b"x".as_ptr().cast(), 1) }, 1);
        let mut zero = tv(0, 0);
        // SAFETY: a valid timeval.
        assert_eq!(unsafe { OS_DoIo(&mut zero) }, 0);
        assert!(rec.results.lock().is_empty());
        // Negative times poll without waiting.
        let mut neg = tv(-5, 0);
        // SAFETY: a valid timeval.
        assert_eq!(unsafe { OS_DoIo(&mut neg) }, 0);
        // Bad arguments.
        // SAFETY: the calls fail before using the pointers.
        unsafe {
            assert_eq!(
                OS_AsyncRead(r.0, 0, buf.as_mut_ptr().cast(), 4, None, cd(&rec)),
                -1
            );
            assert_eq!(super::super::errno(), libc::EINVAL);
            assert_eq!(
                OS_AsyncRead(-1, 0, buf.as_mut_ptr().cast(), 4, Some(record), cd(&rec)),
                -1
            );
            assert_eq!(super::super::errno(), libc::EBADF);
            assert_eq!(
                OS_AsyncWrite(w.0, 0, buf.as_mut_ptr().cast(), -1, Some(record), cd(&rec)),
                -1
            );
            assert_eq!(super::super::errno(), libc::EINVAL);
        }
        assert_eq!(pending(), 0);
    }

    #[test]
    fn timespec_conversion() {
        assert!(timespec_of(ptr::null()).is_none());
        let t = timespec_of(&tv(2, 500_000)).unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (2, 500_000_000));
        let t = timespec_of(&tv(0, 2_500_000)).unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (2, 500_000_000));
        let t = timespec_of(&tv(-1, 0)).unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (0, 0));
    }
}
