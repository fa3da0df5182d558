//! A bounded byte queue for a request's STDIN or DATA. The allocation is made on first use and
//! kept for the next request on the slot; its size never exceeds the configured capacity.

use std::collections::VecDeque;

/// Bounded FIFO of bytes.
#[derive(Default, Debug)]
pub struct Ring {
    q: VecDeque<u8>,
    cap: usize,
}

impl Ring {
    /// Empties the ring and sets its capacity.
    pub fn reset(&mut self, cap: usize) {
        self.q.clear();
        self.cap = cap;
        if self.q.capacity() > cap * 2 {
            self.q = VecDeque::new();
        }
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Room left before the ring is full.
    pub fn room(&self) -> usize {
        self.cap.saturating_sub(self.q.len())
    }

    /// Appends as much of `data` as fits; returns the count.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = self.room().min(data.len());
        self.q.extend(&data[..n]);
        n
    }

    /// Moves up to `out.len()` bytes out; returns the count.
    pub fn pop_into(&mut self, out: &mut [u8]) -> usize {
        let (a, b) = self.q.as_slices();
        let n1 = a.len().min(out.len());
        out[..n1].copy_from_slice(&a[..n1]);
        let n2 = b.len().min(out.len() - n1);
        out[n1..n1 + n2].copy_from_slice(&b[..n2]);
        self.q.drain(..n1 + n2);
        n1 + n2
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    #[test]
    fn bounded_fifo() {
        let mut r = Ring::default();
        r.reset(5);
        assert_eq!(r.push(b"abcdefg"), 5);
        let mut o = [0u8; 3];
        assert_eq!(r.pop_into(&mut o), 3);
        assert_eq!(&o, b"abc");
        assert_eq!(r.push(b"xyz"), 3);
        let mut o = [0u8; 10];
        assert_eq!(r.pop_into(&mut o), 5);
        assert_eq!(&o[..5], b"dexyz");
        assert!(r.is_empty());
    }
}
