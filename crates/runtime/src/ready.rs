//! Requests whose PARAMS are complete and that no thread has taken yet, in arrival order.
//!
//! Most requests never enter it: the thread that reads a connection serves what it finds
//! there. The queue holds the others: the second and later requests of one read (pipelined or
//! multiplexed), and requests read by a thread that cannot serve them (the standby, a thread
//! waiting for its own input, an event loop). Its length is mirrored in an atomic so that the
//! request path can see "empty" without taking the lock.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A ready request: its connection (slot index, generation) and request id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    pub idx: u32,
    pub gen: u32,
    pub id: u16,
}

#[derive(Default)]
pub struct ReadyQueue {
    q: Mutex<VecDeque<Ready>>,
    len: AtomicUsize,
}

impl ReadyQueue {
    /// Queues a request.
    pub fn push(&self, r: Ready) {
        let mut q = self.q.lock();
        q.push_back(r);
        // SeqCst: pairs with the waiters' count (see `Reactor::wait_for_work`).
        self.len.store(q.len(), Ordering::SeqCst);
    }

    /// The oldest request, if any.
    pub fn pop(&self) -> Option<Ready> {
        if self.is_empty() {
            return None;
        }
        let mut q = self.q.lock();
        let r = q.pop_front();
        self.len.store(q.len(), Ordering::SeqCst);
        r
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_in_first_out_with_the_length_mirrored() {
        let q = ReadyQueue::default();
        assert!(q.pop().is_none());
        for id in 1..=3 {
            q.push(Ready { idx: 0, gen: 1, id });
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop().map(|r| r.id), Some(1));
        assert_eq!(q.pop().map(|r| r.id), Some(2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop().map(|r| r.id), Some(3));
        assert!(q.is_empty());
    }
}
