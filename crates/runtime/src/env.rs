//! A request's environment as PHP's API sees it: the PARAMS received, plus `putenv` changes.
//!
//! Values handed out are NUL-terminated and writable, and stay valid until [`Env::clear`]
//! (the next request, or `fcgi_close(.., destroy)`), even after `putenv` replaced them: the
//! received PARAMS are never modified by `putenv`, and replacement values live in segments
//! that never move.

use fcgi_runtime_protocol::params::Entry;
use fcgi_runtime_protocol::ParamStore;

const SEG: usize = 4096;

/// A `putenv` change: a name and its value (None: deleted).
#[derive(Debug)]
struct Override {
    name: Vec<u8>,
    /// The NUL-terminated value (inside a segment of `Env`) and its length.
    value: Option<(*mut u8, usize)>,
    /// A variable of its own, placed where `putenv` created it (PHP's new hash bucket);
    /// false: the received PARAMS variable of that name, changed or deleted in place.
    fresh: bool,
}

/// PARAMS plus overrides.
///
/// The order [`Env::for_each`] visits is PHP's (`fcgi_hash_apply`): its hash puts each new
/// variable at the head of a list, so variables come newest first: `putenv` additions (the
/// last one first), then the PARAMS by first arrival, the last one first, `FCGI_ROLE` (pushed
/// before every received pair) at the end. Giving an existing variable a new value keeps its
/// place; a deleted variable is skipped, and setting it again creates it anew (at the head).
#[derive(Default, Debug)]
pub struct Env {
    pub params: ParamStore,
    /// At most one per name, in order of creation.
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
        self.overrides.iter().find(|o| o.name == name)
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
        let ret = value.map_or(std::ptr::null_mut(), |(p, _)| p);
        match self.overrides.iter().position(|o| o.name == name) {
            // A live variable changes in place (or is deleted).
            Some(i) if self.overrides[i].value.is_some() => self.overrides[i].value = value,
            // A deleted one stays deleted, or is created anew: at the head of the order.
            Some(i) => {
                if value.is_some() {
                    let mut o = self.overrides.remove(i);
                    o.value = value;
                    o.fresh = true;
                    self.overrides.push(o);
                }
            }
            None => {
                let received = self.params.find(name).is_some();
                if received || value.is_some() {
                    self.overrides.push(Override {
                        name: name.to_vec(),
                        value,
                        fresh: !received,
                    });
                }
            }
        }
        ret
    }

    /// Visits every live variable in PHP's order (see [`Env`]): each gets its name and a
    /// writable value pointer with its length. Allocates nothing.
    pub fn for_each(&mut self, mut f: impl FnMut(&[u8], *mut u8, usize)) {
        for o in self.overrides.iter().rev().filter(|o| o.fresh) {
            if let Some((p, len)) = o.value {
                f(&o.name, p, len);
            }
        }
        let base = self.params.base_ptr();
        let entries = self.params.entries();
        // SAFETY: an entry's name bytes lie inside the params buffer, which does not change
        // while the application holds the request.
        let name_of = |e: &Entry| unsafe {
            std::slice::from_raw_parts(base.add(e.off as usize), e.name_len as usize)
        };
        for (i, e) in entries.iter().enumerate().rev() {
            let name = name_of(e);
            // A name is visited once, at its first arrival, with its last value.
            if entries[..i]
                .iter()
                .any(|p| p.name_len == e.name_len && name_of(p) == name)
            {
                continue;
            }
            match self.overrides.iter().find(|o| o.name == name) {
                Some(o) if o.fresh => {}
                Some(o) => {
                    if let Some((p, len)) = o.value {
                        f(name, p, len);
                    }
                }
                None => {
                    let last = entries[i..]
                        .iter()
                        .rev()
                        .find(|p| p.name_len == e.name_len && name_of(p) == name)
                        .unwrap_or(e);
                    // SAFETY: the entry's value lies inside the params buffer.
                    f(
                        name,
                        unsafe { base.add(last.value_off()) },
                        last.value_len as usize,
                    );
                }
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
        assert_eq!(seen, vec![("C".into(), 5000), ("A".into(), 3)]);
        e.clear();
        assert!(e.get_ptr(b"A").is_null());
    }

    fn visit(e: &mut Env) -> Vec<String> {
        let mut seen = Vec::new();
        e.for_each(|n, p, _| seen.push(format!("{}={}", String::from_utf8_lossy(n), s(p))));
        seen
    }

    #[test]
    fn newest_first_and_duplicates_at_their_first_arrival_with_the_last_value() {
        let mut e = Env::default();
        e.params.push(b"FCGI_ROLE", b"RESPONDER");
        e.params.push(b"X", b"1");
        e.params.push(b"Y", b"2");
        e.params.push(b"X", b"3");
        assert_eq!(visit(&mut e), ["Y=2", "X=3", "FCGI_ROLE=RESPONDER"]);
    }

    /// PHP's fcgi_hash: a new value keeps the variable's place, a new variable goes to the
    /// head, a deleted one is skipped and, set again, goes to the head too.
    #[test]
    fn putenv_moves_only_new_and_recreated_variables() {
        let mut e = Env::default();
        e.params.push(b"A", b"1");
        e.params.push(b"B", b"2");
        e.params.push(b"C", b"3");
        e.put(b"B", Some(b"two"));
        e.put(b"N", Some(b"new"));
        e.put(b"M", Some(b"more"));
        e.put(b"N", Some(b"newer"));
        assert_eq!(visit(&mut e), ["M=more", "N=newer", "C=3", "B=two", "A=1"]);
        e.put(b"A", None);
        e.put(b"M", None);
        e.put(b"GONE", None);
        assert_eq!(visit(&mut e), ["N=newer", "C=3", "B=two"]);
        e.put(b"A", Some(b"back"));
        assert_eq!(visit(&mut e), ["A=back", "N=newer", "C=3", "B=two"]);
        e.put(b"M", Some(b"again"));
        assert_eq!(
            visit(&mut e),
            ["M=again", "A=back", "N=newer", "C=3", "B=two"]
        );
        assert_eq!(s(e.get_ptr(b"A")), "back");
        assert!(e.get_ptr(b"GONE").is_null());
    }
}
