//! The connection table of a server: slots in chunks that are allocated once and never move,
//! so that finding the slot of an event's connection takes no lock; each slot is a mutex
//! around the connection it holds (the connection's one owner). A connection is named by its
//! slot index and a generation (slots are reused), packed into the epoll data word.

use super::conn::Conn;
use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;

const CHUNK: usize = 256;
/// 1,048,576 connections at most (FCGI_MAX_CONNS is checked long before).
const MAX_CHUNKS: usize = 4096;

/// The epoll data word of connection (`idx`, `gen`). Generations start at 1, so a word below
/// 2^32 names one of the server's own descriptors (listener, eventfds, timerfd) instead.
pub fn token(idx: u32, gen: u32) -> u64 {
    ((gen as u64) << 32) | idx as u64
}

/// The connection named by an epoll data word, or `None` for the server's own descriptors.
pub fn untoken(t: u64) -> Option<(u32, u32)> {
    let gen = (t >> 32) as u32;
    (gen != 0).then_some((t as u32, gen))
}

/// One slot: the connection in it, if any.
#[derive(Default)]
pub struct Slot {
    conn: Mutex<Option<Conn>>,
    /// The generation of the connection in the slot while no request of it has been taken
    /// yet (0 otherwise): the accept policy reads it without taking the slot's lock.
    fresh: AtomicU32,
}

struct Free {
    list: Vec<u32>,
    /// Slots ever handed out.
    next: u32,
}

pub struct ConnTable {
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    free: Mutex<Free>,
    open: AtomicUsize,
    next_gen: AtomicU32,
}

impl Default for ConnTable {
    fn default() -> Self {
        ConnTable {
            chunks: (0..MAX_CHUNKS).map(|_| OnceLock::new()).collect(),
            free: Mutex::new(Free {
                list: Vec::new(),
                next: 0,
            }),
            open: AtomicUsize::new(0),
            next_gen: AtomicU32::new(1),
        }
    }
}

impl ConnTable {
    fn slot(&self, idx: u32) -> Option<&Slot> {
        let chunk = self.chunks.get(idx as usize / CHUNK)?.get()?;
        chunk.get(idx as usize % CHUNK)
    }

    /// Locks the connection `idx` if it is still the one of generation `gen`.
    pub fn lock(&self, idx: u32, gen: u32) -> Option<MappedMutexGuard<'_, Conn>> {
        let g = self.slot(idx)?.conn.lock();
        MutexGuard::try_map(g, |c| c.as_mut().filter(|c| c.gen == gen)).ok()
    }

    /// True while connection (`idx`, `gen`) is open and none of its requests has been taken.
    pub fn is_fresh(&self, idx: u32, gen: u32) -> bool {
        self.slot(idx)
            .is_some_and(|s| s.fresh.load(Ordering::Acquire) == gen)
    }

    /// The first request of the connection in slot `idx` was taken (or it closed).
    pub fn not_fresh(&self, idx: u32) {
        if let Some(s) = self.slot(idx) {
            s.fresh.store(0, Ordering::Release);
        }
    }

    /// Locks slot `idx` whatever it holds (for walking the table).
    pub fn lock_slot(&self, idx: u32) -> Option<MutexGuard<'_, Option<Conn>>> {
        Some(self.slot(idx)?.conn.lock())
    }

    /// Reserves a free slot and a new generation for a connection about to be opened.
    /// `None` when the table is full.
    pub fn reserve(&self) -> Option<(u32, u32)> {
        let idx = {
            let mut f = self.free.lock();
            // A slot whose lock is held (its last connection is still being closed, or a
            // thread looks at a stale event of it) is left for later rather than waited for.
            let free = (0..f.list.len().min(4)).find_map(|_| {
                let i = f.list.pop()?;
                if self.slot(i).is_some_and(|s| s.conn.is_locked()) {
                    f.list.insert(0, i);
                    None
                } else {
                    Some(i)
                }
            });
            match free {
                Some(i) => i,
                None => {
                    let i = f.next;
                    let c = i as usize / CHUNK;
                    if c >= MAX_CHUNKS {
                        return None;
                    }
                    self.chunks[c].get_or_init(|| (0..CHUNK).map(|_| Slot::default()).collect());
                    f.next += 1;
                    i
                }
            }
        };
        let mut gen = self.next_gen.fetch_add(1, Ordering::Relaxed);
        if gen == 0 {
            gen = self.next_gen.fetch_add(1, Ordering::Relaxed);
        }
        Some((idx, gen))
    }

    /// Puts `conn` into the slot reserved for it.
    pub fn insert(&self, idx: u32, conn: Conn) {
        let slot = self.slot(idx).expect("reserved slot");
        let gen = conn.gen;
        *slot.conn.lock() = Some(conn);
        slot.fresh.store(gen, Ordering::Release);
        self.open.fetch_add(1, Ordering::AcqRel);
        crate::hooks::with(|h| h.connections_open(1));
    }

    /// Empties the slot held by `g` (the connection closes); the slot is free again once `g`
    /// is dropped by the caller, who calls [`ConnTable::release`].
    pub fn take(&self, g: &mut Option<Conn>) -> Option<Conn> {
        let c = g.take();
        if c.is_some() {
            self.open.fetch_sub(1, Ordering::AcqRel);
            crate::hooks::with(|h| h.connections_open(-1));
        }
        c
    }

    /// Frees slot `idx` for reuse (after [`ConnTable::take`], with its lock released).
    pub fn release(&self, idx: u32) {
        self.free.lock().list.push(idx);
    }

    /// Connections open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// One past the highest slot index ever used.
    pub fn high(&self) -> u32 {
        self.free.lock().next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_leave_room_for_the_servers_own_descriptors() {
        assert_eq!(untoken(token(7, 42)), Some((7, 42)));
        assert_eq!(
            untoken(token(u32::MAX, u32::MAX)),
            Some((u32::MAX, u32::MAX))
        );
        assert_eq!(untoken(3), None);
    }

    #[test]
    fn slots_are_reused_with_new_generations() {
        let t = ConnTable::default();
        let (a, ga) = t.reserve().unwrap();
        let (b, gb) = t.reserve().unwrap();
        assert_ne!(a, b);
        assert_ne!(ga, gb);
        assert!(t.lock(a, ga).is_none(), "nothing inserted yet");
        t.release(a);
        let (c, gc) = t.reserve().unwrap();
        assert_eq!(c, a);
        assert_ne!(gc, ga);
        assert_eq!(t.high(), 2);
        assert_eq!(t.open(), 0);
    }
}
