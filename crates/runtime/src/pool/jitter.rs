//! The recycling spread (`max_requests_jitter`, `max_lifetime_jitter_ms`): a small xorshift
//! generator in the supervisor, seeded once from /dev/urandom (the clock and the pid when that
//! cannot be read), so a pool's workers do not all recycle together. Not for secrets.

use std::io::Read;

/// xorshift64* (Vigna): enough to spread restarts.
pub struct Jitter(u64);

impl Jitter {
    pub fn new() -> Jitter {
        let mut b = [0u8; 8];
        let seeded = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .is_ok();
        let mut s = u64::from_ne_bytes(b);
        if !seeded {
            s = super::scoreboard::unix_ms() ^ (u64::from(crate::sys::pid()) << 32);
        }
        // xorshift must not start at 0.
        Jitter(s | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in 0..=max.
    pub fn upto(&mut self, max: u64) -> u64 {
        match max {
            0 => 0,
            u64::MAX => self.next(),
            m => self.next() % (m + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_range_and_spread() {
        let mut j = Jitter::new();
        let v: Vec<u64> = (0..200).map(|_| j.upto(20)).collect();
        assert!(v.iter().all(|&x| x <= 20));
        let distinct: std::collections::BTreeSet<_> = v.iter().collect();
        assert!(distinct.len() > 5, "{v:?}");
        assert_eq!(j.upto(0), 0);
    }
}
