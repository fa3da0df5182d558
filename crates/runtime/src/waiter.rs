//! Something waiting in the library for a request's input, room to write, or its end: a
//! blocking application thread, or a request of an application's event loop.
//!
//! A blocking thread waits in `poll(2)` on its own connection and its own eventfd, so it can
//! read its connection itself and still be woken by another thread (one that read its input
//! first on a multiplexed connection, or saw an abort or a close). A loop request's waiter
//! carries a [`LoopHook`]: notifying it queues the request on its loop's [`LoopWake`] and makes
//! the loop's descriptor readable. Everything that ends a wait goes through
//! `Waiter::notify`.
//!
//! Threads waiting in accept are not `Waiter`s: they wait in the server's epoll, where the
//! kernel hands each event to one of them (see reactor.rs).

use super::sys::{self, EventFd};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

#[derive(Default)]
pub struct Waiter {
    /// A blocking thread's eventfd, created before the thread first registers itself.
    efd: OnceLock<Option<EventFd>>,
    hook: Option<LoopHook>,
}

impl Waiter {
    /// A waiter for a request of an event loop, known to the loop as `key`.
    pub fn for_loop(wake: &Arc<LoopWake>, key: usize) -> Waiter {
        Waiter {
            efd: OnceLock::new(),
            hook: Some(LoopHook::new(wake.clone(), key)),
        }
    }

    /// True for a waiter of an event loop (it never blocks).
    pub fn is_loop(&self) -> bool {
        self.hook.is_some()
    }

    /// Ends the wait: the thread's poll returns, or the loop request is queued as woken.
    pub(crate) fn notify(&self) {
        match &self.hook {
            Some(h) => h.notify(),
            None => {
                if let Some(Some(e)) = self.efd.get() {
                    e.wake();
                }
            }
        }
    }

    /// A loop request was handed to the application as woken: the next notify queues it again.
    pub fn rearm(&self) {
        if let Some(h) = &self.hook {
            h.rearm();
        }
    }

    /// Makes a blocking waiter ready to be notified: call before registering it where others
    /// will notify it.
    pub(crate) fn prepare(&self) {
        self.efd.get_or_init(|| match EventFd::new() {
            Ok(e) => Some(e),
            Err(e) => {
                crate::fcgi_log!(Error, "cannot create an eventfd for a waiting thread: {e}");
                None
            }
        });
    }

    /// Blocks until notified, or `fd` (if not negative) reports `events`, or `timeout_ms`
    /// passed (-1: no limit). The caller re-checks what it waits for: a return says only that
    /// something may have changed.
    pub(crate) fn wait(&self, fd: RawFd, events: i16, timeout_ms: i32) {
        let efd = self.efd.get().and_then(|e| e.as_ref());
        let Some(efd) = efd else {
            // No eventfd (out of descriptors): look again at least every 10 ms.
            let t = if timeout_ms < 0 {
                10
            } else {
                timeout_ms.min(10)
            };
            let _ = sys::poll_one(fd, events, t);
            return;
        };
        match sys::poll_two((fd, events), (efd.fd(), libc::POLLIN), timeout_ms) {
            Ok((_, rev)) if rev != 0 => efd.drain(),
            _ => {}
        }
    }
}

/// The wake-up side of an event loop, shared with the waiters of its requests.
pub struct LoopWake {
    woken: Mutex<VecDeque<usize>>,
    efd: EventFd,
}

impl LoopWake {
    pub fn new() -> std::io::Result<LoopWake> {
        Ok(LoopWake {
            woken: Mutex::new(VecDeque::new()),
            efd: EventFd::new()?,
        })
    }

    /// The eventfd inside the loop's descriptor.
    pub fn fd(&self) -> RawFd {
        self.efd.fd()
    }

    /// Makes the loop's descriptor readable.
    pub fn wake(&self) {
        self.efd.wake();
    }

    /// Makes it unreadable again (the loop is about to do its work).
    pub fn drain(&self) {
        self.efd.drain();
    }

    /// The key of the next woken request, if any.
    pub fn pop(&self) -> Option<usize> {
        self.woken.lock().pop_front()
    }
}

/// What makes a [`Waiter`] a loop request's: its loop and its key there.
pub struct LoopHook {
    wake: Arc<LoopWake>,
    key: usize,
    /// Queued on the loop and not yet handed to the application.
    queued: AtomicBool,
}

impl LoopHook {
    fn new(wake: Arc<LoopWake>, key: usize) -> LoopHook {
        LoopHook {
            wake,
            key,
            queued: AtomicBool::new(false),
        }
    }

    /// Queues the request once (until the application is handed it) and wakes the loop.
    fn notify(&self) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.wake.woken.lock().push_back(self.key);
            self.wake.wake();
        }
    }

    fn rearm(&self) {
        self.queued.store(false, Ordering::Release);
    }
}
