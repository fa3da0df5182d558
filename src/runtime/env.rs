//! A request's environment as PHP's API sees it: the PARAMS received, plus `putenv` changes.
//!
//! Values handed out are NUL-terminated and writable, and stay valid until [`Env::clear`]
//! (the next request, or `fcgi_close(.., destroy)`), even after `putenv` replaced them: the
//! received PARAMS are never modified by `putenv`, and replacement values live in segments
//! that never move.

use crate::protocol::ParamStore;

const SEG: usize = 4096;

/// One `putenv`: a name and its new value (None: deleted).
#[derive(Debug)]
struct Override {
    name: Vec<u8>,
    /// The NUL-terminated value (inside a segment of `Env`) and its length.
    value: Option<(*mut u8, usize)>,
}

/// PARAMS plus overrides.
#[derive(Default, Debug)]
pub struct Env {
    pub params: ParamStore,
    overrides: Vec<Override>,
    segs: Vec<Box<[u8]>>,
    used: usize,
}

impl Env {
    /// Forgets everything (keeps the first segment and the params buffer).
    pub fn clear(&mut self) {
        self.params.clear();
        self.overrides.clear();
        self.segs.truncate(1);
        if self.segs.first().is_some_and(|s| s.len() != SEG) {
            self.segs.clear();
        }
        self.used = 0;
    }

    /// Copies `val` plus a NUL into a segment that never moves; returns (pointer, len).
    fn store(&mut self, val: &[u8]) -> (*mut u8, usize) {
        let need = val.len() + 1;
        if need > SEG {
            // A dedicated segment; the current small segment stays the one filled next.
            let mut big = vec![0u8; need].into_boxed_slice();
            big[..val.len()].copy_from_slice(val);
            let p = big.as_mut_ptr();
            self.segs.push(big);
            self.used = SEG;
            return (p, val.len());
        }
        if self.segs.is_empty() || self.used + need > SEG {
            self.segs.push(vec![0u8; SEG].into_boxed_slice());
            self.used = 0;
        }
        let seg = self.segs.last_mut().expect("segment pushed above");
        let off = self.used;
        seg[off..off + val.len()].copy_from_slice(val);
        seg[off + val.len()] = 0;
        self.used += need;
        // SAFETY: off + need <= SEG, inside the segment.
        (unsafe { seg.as_mut_ptr().add(off) }, val.len())
    }

    fn override_of(&self, name: &[u8]) -> Option<&Override> {
        self.overrides.iter().rev().find(|o| o.name == name)
    }

    /// Pointer to the NUL-terminated value of `name`, or NULL.
    pub fn get_ptr(&mut self, name: &[u8]) -> *mut u8 {
        if let Some(o) = self.override_of(name) {
            return match o.value {
                Some((p, _)) => p,
                None => std::ptr::null_mut(),
            };
        }
        match self.params.find(name) {
            Some(e) => {
                let off = e.value_off();
                // SAFETY: the entry's offset lies inside the params buffer.
                unsafe { self.params.base_ptr().add(off) }
            }
            None => std::ptr::null_mut(),
        }
    }

    /// Sets (`Some`) or deletes (`None`) a variable; returns the stored copy or NULL.
    pub fn put(&mut self, name: &[u8], val: Option<&[u8]>) -> *mut u8 {
        let value = val.map(|v| self.store(v));
        match self.overrides.iter_mut().find(|o| o.name == name) {
            Some(o) => o.value = value,
            None => self.overrides.push(Override {
                name: name.to_vec(),
                value,
            }),
        }
        value.map_or(std::ptr::null_mut(), |(p, _)| p)
    }

    /// Visits every live variable in insertion order: received PARAMS (for duplicates, the
    /// last one, at its first position), then variables added by `put`. Each visit gets the
    /// name and a writable value pointer with its length.
    pub fn for_each(&mut self, mut f: impl FnMut(&[u8], *mut u8, usize)) {
        let base = self.params.base_ptr();
        let n = self.params.len();
        for i in 0..n {
            let e = self.params.entries()[i];
            let name = {
                // SAFETY: the entry's name bytes lie inside the params buffer.
                unsafe { std::slice::from_raw_parts(base.add(e.off as usize), e.name_len as usize) }
            };
            // Only the first occurrence of a name is visited (with the last value).
            let first = self.params.entries()[..i].iter().all(|p| {
                p.name_len != e.name_len
                    // SAFETY: as above, for an earlier entry.
                    || unsafe { std::slice::from_raw_parts(base.add(p.off as usize), p.name_len as usize) }
                        != name
            });
            if !first {
                continue;
            }
            match self.override_of(name).map(|o| o.value) {
                Some(None) => continue,
                Some(Some((p, len))) => f(name, p, len),
                None => {
                    let last = *self.params.find(name).unwrap_or(&e);
                    // SAFETY: the entry's value lies inside the params buffer.
                    f(
                        name,
                        unsafe { base.add(last.value_off()) },
                        last.value_len as usize,
                    )
                }
            }
        }
        for i in 0..self.overrides.len() {
            let o = &self.overrides[i];
            if self.params.find(&o.name).is_some() {
                continue;
            }
            if let Some((p, len)) = o.value {
                f(&o.name, p, len);
            }
        }
    }
}

// SAFETY: the raw pointers in `overrides` point into `segs`, which the Env owns and moves with
// it; nothing is shared with another Env.
unsafe impl Send for Env {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn s(p: *mut u8) -> String {
        assert!(!p.is_null());
        // SAFETY: test pointers come from Env and are NUL-terminated.
        unsafe { CStr::from_ptr(p.cast()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn get_put_delete_and_stable_pointers() {
        let mut e = Env::default();
        e.params.push(b"A", b"1");
        e.params.push(b"B", b"2");
        let a = e.get_ptr(b"A");
        assert_eq!(s(a), "1");
        let a2 = e.put(b"A", Some(b"one"));
        assert_eq!(s(e.get_ptr(b"A")), "one");
        assert_eq!(s(a), "1", "old pointer still valid");
        assert_eq!(s(a2), "one");
        assert!(e.put(b"B", None).is_null());
        assert!(e.get_ptr(b"B").is_null());
        e.put(b"C", Some(&vec![b'x'; 5000]));
        assert_eq!(s(e.get_ptr(b"C")).len(), 5000);
        let mut seen = Vec::new();
        e.for_each(|n, _, l| seen.push((String::from_utf8_lossy(n).to_string(), l)));
        assert_eq!(seen, vec![("A".into(), 3), ("C".into(), 5000)]);
        e.clear();
        assert!(e.get_ptr(b"A").is_null());
    }

    #[test]
    fn duplicates_last_value_first_position() {
        let mut e = Env::default();
        e.params.push(b"X", b"1");
        e.params.push(b"Y", b"2");
        e.params.push(b"X", b"3");
        let mut seen = Vec::new();
        e.for_each(|n, p, _| seen.push(format!("{}={}", String::from_utf8_lossy(n), s(p))));
        assert_eq!(seen, vec!["X=3", "Y=2"]);
    }
}
