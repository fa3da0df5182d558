//! Storage for a request's PARAMS.
//!
//! Every pair is stored as `NAME=VALUE\0` in one contiguous buffer, so the same bytes serve
//! PHP's API (a NUL-terminated value pointer) and libfcgi's (`envp`, `"name=value"` strings).
//! The buffer only grows while PARAMS are being received; once a request is handed to the
//! application it is frozen, so pointers into it stay valid until [`ParamStore::clear`].
//! Allocator metadata never sits between strings (the lesson of CVE-2019-11043).

/// One stored pair: `buf[off..off+name_len]` is the name, then `=`, the value and a NUL.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub off: u32,
    pub name_len: u32,
    pub value_len: u32,
}

impl Entry {
    /// Offset of the first value byte.
    #[inline]
    pub fn value_off(&self) -> usize {
        self.off as usize + self.name_len as usize + 1
    }
}

/// The pairs of one request, in arrival order. Buffers are reused across requests.
#[derive(Default, Debug)]
pub struct ParamStore {
    buf: Vec<u8>,
    entries: Vec<Entry>,
    /// Bytes of name and value received so far (the quantity limits are applied to).
    payload: usize,
}

impl ParamStore {
    pub fn new() -> ParamStore {
        ParamStore::default()
    }

    /// Forgets every pair, keeping the allocations.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.entries.clear();
        self.payload = 0;
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of name and value lengths of all pairs.
    pub fn payload_bytes(&self) -> usize {
        self.payload
    }

    /// Heap bytes the store holds (capacity of its buffers), for memory bounds in tests and
    /// fuzz targets.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() + self.entries.capacity() * std::mem::size_of::<Entry>()
    }

    /// Starts a pair whose lengths are known; its bytes follow through [`ParamStore::extend`].
    /// The caller has checked the lengths against its limits. Room is reserved only for the
    /// `arriving` bytes already at hand: a declared length is not an allocation request (six
    /// bytes may declare a gigabyte), so memory grows with the bytes that actually arrive.
    pub fn begin_pair(&mut self, name_len: usize, value_len: usize, arriving: usize) {
        let off = self.buf.len();
        self.buf.reserve((name_len + value_len).min(arriving) + 2);
        self.entries.push(Entry {
            off: off as u32,
            name_len: name_len as u32,
            value_len: value_len as u32,
        });
        self.payload += name_len + value_len;
    }

    /// Appends bytes of the pair begun last: the name, then (after [`ParamStore::name_done`])
    /// the value.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Marks the end of the current pair's name.
    pub fn name_done(&mut self) {
        self.buf.push(b'=');
    }

    /// Marks the end of the current pair's value.
    pub fn value_done(&mut self) {
        self.buf.push(0);
    }

    /// Adds a complete pair: `FCGI_ROLE`, and every pair the decoder finds whole in its input
    /// (the usual case), with one capacity check and two copies.
    #[inline]
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let (n, v) = (name.len(), value.len());
        let off = self.buf.len();
        let need = n + v + 2;
        self.buf.reserve(need);
        // SAFETY: `reserve` made room for `need` bytes after `off`; all of them are written
        // below before the length is raised to cover them. The sources are borrowed slices,
        // so they cannot overlap the spare capacity of `buf`.
        unsafe {
            let dst = self.buf.as_mut_ptr().add(off);
            std::ptr::copy_nonoverlapping(name.as_ptr(), dst, n);
            *dst.add(n) = b'=';
            std::ptr::copy_nonoverlapping(value.as_ptr(), dst.add(n + 1), v);
            *dst.add(n + 1 + v) = 0;
            self.buf.set_len(off + need);
        }
        self.entries.push(Entry {
            off: off as u32,
            name_len: n as u32,
            value_len: v as u32,
        });
        self.payload += n + v;
    }

    /// The pairs as (name, value), in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.entries.iter().map(move |e| self.pair(e))
    }

    /// The raw entries, in arrival order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn pair(&self, e: &Entry) -> (&[u8], &[u8]) {
        let n = e.off as usize;
        let v = e.value_off();
        (
            &self.buf[n..n + e.name_len as usize],
            &self.buf[v..v + e.value_len as usize],
        )
    }

    /// The value of the last pair called `name` (for duplicates the last one wins, as in PHP).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.find(name).map(|e| self.pair(e).1)
    }

    /// The entry of the last pair called `name`.
    pub fn find(&self, name: &[u8]) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| {
            e.name_len as usize == name.len()
                && &self.buf[e.off as usize..e.off as usize + name.len()] == name
        })
    }

    /// Pointer to the first byte of the buffer; entries are offsets from it. Stable while no
    /// pair is added.
    pub fn base_ptr(&mut self) -> *mut u8 {
        self.buf.as_mut_ptr()
    }

    /// Whether the last pair begun is complete (its NUL is stored).
    pub fn last_complete(&self) -> bool {
        match self.entries.last() {
            None => true,
            Some(e) => self.buf.len() == e.value_off() + e.value_len as usize + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_name_eq_value_nul() {
        let mut s = ParamStore::new();
        s.push(b"A", b"1");
        s.push(b"BB", b"");
        s.push(b"A", b"2");
        assert_eq!(s.len(), 3);
        assert_eq!(s.get(b"A"), Some(&b"2"[..]));
        assert_eq!(s.get(b"BB"), Some(&b""[..]));
        assert_eq!(s.get(b"C"), None);
        assert_eq!(s.payload_bytes(), 1 + 1 + 2 + 1 + 1);
        let e = s.entries()[1];
        let p = s.base_ptr();
        // SAFETY: the offsets come from the store itself and the buffer is not modified.
        let bytes = unsafe { std::slice::from_raw_parts(p.add(e.off as usize), 4) };
        assert_eq!(bytes, b"BB=\0");
        s.clear();
        assert!(s.is_empty());
    }
}
