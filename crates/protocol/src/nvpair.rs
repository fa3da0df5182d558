//! Name-value pairs (§3.4): an incremental decoder for PARAMS streams and a parser for
//! complete buffers (GET_VALUES bodies).
//!
//! A length is one byte when its high bit is 0 (0..=127), otherwise four bytes, big-endian,
//! carrying 31 bits. A pair is `nameLength valueLength nameData valueData`.
//!
//! [`NvDecoder`] accepts a stream cut at any byte (inside a length, a name or a value) and
//! writes straight into a [`ParamStore`]. Limits are checked as soon as the lengths are known,
//! and memory is reserved only for bytes that arrived, never for a peer's declared size.

use super::params::ParamStore;

/// Why a name-value stream was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvError {
    /// The stream ended inside a pair, or (for complete buffers) a length runs past the end.
    Malformed,
    /// The pairs' name and value bytes exceed the byte limit.
    TooLarge,
    /// The pairs exceed the pair-count limit.
    TooMany,
}

/// Which part of a pair the decoder expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NameLen,
    ValueLen,
    Name,
    Value,
}

/// Incremental decoder of a name-value pair stream into a [`ParamStore`].
///
/// The decoder counts the pairs and bytes it decoded itself since the last
/// [`NvDecoder::reset`]; the limits passed to [`NvDecoder::feed`] apply to those counts only,
/// so pairs pushed into the store by other means (such as `FCGI_ROLE`) are not charged.
#[derive(Clone, Debug)]
pub struct NvDecoder {
    state: State,
    /// Bytes of the length being read.
    len_buf: [u8; 4],
    /// How many bytes of `len_buf` are filled.
    len_have: u8,
    /// Name length of the current pair (valid from `ValueLen` on).
    name_len: usize,
    /// Bytes of the current name or value still to come.
    remaining: usize,
    /// Value length of the current pair (valid from `Name` on).
    value_len: usize,
    /// Name and value bytes of the pairs begun so far.
    bytes: usize,
    /// Pairs begun so far.
    count: usize,
}

impl Default for NvDecoder {
    fn default() -> Self {
        NvDecoder::new()
    }
}

impl NvDecoder {
    /// A decoder at the start of a stream.
    pub const fn new() -> NvDecoder {
        NvDecoder {
            state: State::NameLen,
            len_buf: [0; 4],
            len_have: 0,
            name_len: 0,
            remaining: 0,
            value_len: 0,
            bytes: 0,
            count: 0,
        }
    }

    /// Goes back to the start of a stream and zeroes the counters.
    pub fn reset(&mut self) {
        *self = NvDecoder::new();
    }

    /// Name and value bytes of the pairs decoded (or begun) since the last reset.
    pub fn payload_bytes(&self) -> usize {
        self.bytes
    }

    /// Pairs decoded (or begun) since the last reset.
    pub fn pair_count(&self) -> usize {
        self.count
    }

    /// Whether the decoder sits between two pairs (a stream may end here).
    pub fn at_boundary(&self) -> bool {
        self.state == State::NameLen && self.len_have == 0
    }

    /// The end of the stream: an error unless the last pair is complete.
    ///
    /// # Errors
    /// [`NvError::Malformed`] when the stream ends inside a length, a name or a value.
    pub fn finish(&self) -> Result<(), NvError> {
        if self.at_boundary() {
            Ok(())
        } else {
            Err(NvError::Malformed)
        }
    }

    /// Decodes the next bytes of the stream into `store`.
    ///
    /// `max_bytes` bounds the sum of name and value lengths and `max_count` the number of
    /// pairs, both counted since the last reset. Both are checked before a pair is begun in the
    /// store, so nothing is reserved for a pair that would exceed them. After an error the
    /// decoder's state is unspecified until [`NvDecoder::reset`].
    ///
    /// # Errors
    /// [`NvError::TooLarge`] or [`NvError::TooMany`] when a pair would exceed a limit.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        store: &mut ParamStore,
        max_bytes: usize,
        max_count: usize,
    ) -> Result<(), NvError> {
        while !chunk.is_empty() {
            if self.state == State::NameLen && self.len_have == 0 {
                chunk = self.feed_whole_pairs(chunk, store, max_bytes, max_count)?;
                if chunk.is_empty() {
                    break;
                }
            }
            match self.state {
                State::NameLen | State::ValueLen => {
                    let b = chunk[0];
                    chunk = &chunk[1..];
                    let Some(len) = self.push_len_byte(b) else {
                        continue;
                    };
                    if self.state == State::NameLen {
                        self.check_limits(len, max_bytes, max_count)?;
                        self.name_len = len;
                        self.state = State::ValueLen;
                    } else {
                        let total = self.check_limits(self.name_len + len, max_bytes, max_count)?;
                        self.value_len = len;
                        self.bytes = total;
                        self.count += 1;
                        store.begin_pair(self.name_len, len, chunk.len());
                        self.state = State::Name;
                        self.remaining = self.name_len;
                        self.settle(store);
                    }
                }
                State::Name | State::Value => {
                    let n = self.remaining.min(chunk.len());
                    store.extend(&chunk[..n]);
                    chunk = &chunk[n..];
                    self.remaining -= n;
                    self.settle(store);
                }
            }
        }
        Ok(())
    }

    /// Fast path between pairs: stores every pair that lies whole in `chunk` (the usual case:
    /// a web server sends PARAMS in one record) and returns the rest, which starts inside a
    /// pair. Same limits, same order of checks as the byte-wise path.
    #[inline]
    fn feed_whole_pairs<'c>(
        &mut self,
        mut chunk: &'c [u8],
        store: &mut ParamStore,
        max_bytes: usize,
        max_count: usize,
    ) -> Result<&'c [u8], NvError> {
        let (mut bytes, mut count) = (self.bytes, self.count);
        let mut result = Ok(());
        while let Some((name, value, rest)) = whole_pair(chunk) {
            if count >= max_count {
                result = Err(NvError::TooMany);
                break;
            }
            match bytes.checked_add(name.len() + value.len()) {
                Some(total) if total <= max_bytes => bytes = total,
                _ => {
                    result = Err(NvError::TooLarge);
                    break;
                }
            }
            count += 1;
            store.push(name, value);
            chunk = rest;
        }
        self.bytes = bytes;
        self.count = count;
        result.map(|()| chunk)
    }

    /// Adds one byte to the length being read; returns the length once it is complete.
    #[inline]
    fn push_len_byte(&mut self, b: u8) -> Option<usize> {
        if self.len_have == 0 && b & 0x80 == 0 {
            return Some(b as usize);
        }
        self.len_buf[self.len_have as usize] = b;
        self.len_have += 1;
        if self.len_have < 4 {
            return None;
        }
        self.len_have = 0;
        Some((u32::from_be_bytes(self.len_buf) & 0x7fff_ffff) as usize)
    }

    /// Checks that one more pair of `pair_bytes` name and value bytes fits; returns the new
    /// byte total. `pair_bytes` is at most 2 * (2^31 - 1), so the sum cannot overflow a 64-bit
    /// `usize`; `checked_add` covers 32-bit targets.
    fn check_limits(
        &self,
        pair_bytes: usize,
        max_bytes: usize,
        max_count: usize,
    ) -> Result<usize, NvError> {
        if self.count >= max_count {
            return Err(NvError::TooMany);
        }
        match self.bytes.checked_add(pair_bytes) {
            Some(total) if total <= max_bytes => Ok(total),
            _ => Err(NvError::TooLarge),
        }
    }

    /// Moves past a name or value whose bytes are all stored (including empty ones).
    fn settle(&mut self, store: &mut ParamStore) {
        if self.remaining != 0 {
            return;
        }
        if self.state == State::Name {
            store.name_done();
            self.state = State::Value;
            self.remaining = self.value_len;
        }
        if self.state == State::Value && self.remaining == 0 {
            store.value_done();
            self.state = State::NameLen;
        }
    }
}

/// The first pair of `buf` and the bytes after it, if the pair is complete in `buf`.
#[inline]
fn whole_pair(buf: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (name_len, rest) = take_len(buf)?;
    let (value_len, rest) = take_len(rest)?;
    if name_len > rest.len() || value_len > rest.len() - name_len {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let (value, rest) = rest.split_at(value_len);
    Some((name, value, rest))
}

/// Iterator over the pairs of a complete buffer; see [`parse_pairs`].
#[derive(Clone, Debug)]
#[must_use = "iterators are lazy"]
pub struct Pairs<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// The pairs of a complete name-value buffer (such as a GET_VALUES body), in order.
///
/// Yields `Err(NvError::Malformed)` once, and then nothing, if a length is cut short or runs
/// past the end of the buffer.
pub fn parse_pairs(buf: &[u8]) -> Pairs<'_> {
    Pairs {
        rest: buf,
        failed: false,
    }
}

/// Splits a length off the front of `buf`.
fn take_len(buf: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = buf.split_first()?;
    if first & 0x80 == 0 {
        return Some((first as usize, rest));
    }
    if buf.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes([first & 0x7f, buf[1], buf[2], buf[3]]);
    Some((len as usize, &buf[4..]))
}

impl<'a> Pairs<'a> {
    fn next_pair(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let (name, value, rest) = whole_pair(self.rest)?;
        self.rest = rest;
        Some((name, value))
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), NvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match self.next_pair() {
            Some(pair) => Some(Ok(pair)),
            None => {
                self.failed = true;
                Some(Err(NvError::Malformed))
            }
        }
    }
}

/// Encoded size of a pair (both lengths and both strings).
pub fn encoded_len(name: &[u8], value: &[u8]) -> usize {
    let len_size = |n: usize| if n <= 127 { 1 } else { 4 };
    len_size(name.len()) + len_size(value.len()) + name.len() + value.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::push_nv_pair;

    type OwnedPairs = Vec<(Vec<u8>, Vec<u8>)>;

    fn pairs_of(store: &ParamStore) -> OwnedPairs {
        store
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect()
    }

    fn sample() -> (Vec<u8>, OwnedPairs) {
        let pairs: OwnedPairs = vec![
            (b"A".to_vec(), b"1".to_vec()),
            (b"EMPTY".to_vec(), Vec::new()),
            (Vec::new(), b"no name".to_vec()),
            (vec![b'n'; 127], vec![b'v'; 128]),
            (vec![b'N'; 300], vec![0, 0xff, b'=', 0x80]),
            (b"\0bin\xff".to_vec(), vec![b'x'; 1000]),
        ];
        let mut buf = Vec::new();
        for (n, v) in &pairs {
            push_nv_pair(&mut buf, n, v);
        }
        (buf, pairs)
    }

    #[test]
    fn item17_item19_one_shot() {
        let (buf, pairs) = sample();
        let mut d = NvDecoder::new();
        let mut s = ParamStore::new();
        d.feed(&buf, &mut s, usize::MAX, usize::MAX).unwrap();
        d.finish().unwrap();
        assert_eq!(pairs_of(&s), pairs);
        assert!(s.last_complete());
        assert_eq!(d.pair_count(), pairs.len());
        assert_eq!(d.payload_bytes(), s.payload_bytes());
    }

    #[test]
    fn item16_split_at_every_byte() {
        let (buf, pairs) = sample();
        for cut in 0..=buf.len() {
            let mut d = NvDecoder::new();
            let mut s = ParamStore::new();
            d.feed(&buf[..cut], &mut s, usize::MAX, usize::MAX).unwrap();
            d.feed(&buf[cut..], &mut s, usize::MAX, usize::MAX).unwrap();
            d.finish().unwrap();
            assert_eq!(pairs_of(&s), pairs, "cut at {cut}");
        }
        let mut d = NvDecoder::new();
        let mut s = ParamStore::new();
        for b in &buf {
            d.feed(std::slice::from_ref(b), &mut s, usize::MAX, usize::MAX)
                .unwrap();
        }
        d.finish().unwrap();
        assert_eq!(pairs_of(&s), pairs);
    }

    #[test]
    fn item17_four_byte_length_of_small_value() {
        // A 4-byte length may encode a value below 128; the high bit of the first byte is
        // masked off.
        let buf = [0x80, 0, 0, 1, 0x80, 0, 0, 2, b'a', b'b', b'c'];
        let mut d = NvDecoder::new();
        let mut s = ParamStore::new();
        d.feed(&buf, &mut s, 100, 100).unwrap();
        d.finish().unwrap();
        assert_eq!(s.get(b"a"), Some(&b"bc"[..]));
        let all: Vec<_> = parse_pairs(&buf).collect();
        assert_eq!(all, vec![Ok((&b"a"[..], &b"bc"[..]))]);
    }

    #[test]
    fn truncated_stream_is_malformed() {
        let (buf, _) = sample();
        let mut boundaries = vec![0];
        for (n, v) in sample().1 {
            boundaries.push(boundaries.last().unwrap() + encoded_len(&n, &v));
        }
        for cut in 0..buf.len() {
            let mut d = NvDecoder::new();
            let mut s = ParamStore::new();
            d.feed(&buf[..cut], &mut s, usize::MAX, usize::MAX).unwrap();
            let expect_ok = boundaries.contains(&cut);
            assert_eq!(d.finish().is_ok(), expect_ok, "cut at {cut}");
            let complete = parse_pairs(&buf[..cut]).all(|p| p.is_ok());
            assert_eq!(complete, expect_ok, "parse_pairs cut at {cut}");
        }
    }

    #[test]
    fn limits_checked_before_reserving() {
        // Name length 0x7ffffff0: refused as soon as the name length is known.
        let mut d = NvDecoder::new();
        let mut s = ParamStore::new();
        let huge = [0xff, 0xff, 0xff, 0xf0, 16];
        assert_eq!(d.feed(&huge, &mut s, 1 << 20, 1000), Err(NvError::TooLarge));
        assert_eq!((s.len(), s.payload_bytes()), (0, 0));
        // Value length pushes the sum over the limit.
        let mut d = NvDecoder::new();
        let big_value = [4, 0xff, 0xff, 0xff, 0xf0];
        assert_eq!(
            d.feed(&big_value, &mut s, 1 << 20, 1000),
            Err(NvError::TooLarge)
        );
        assert_eq!((s.len(), s.payload_bytes()), (0, 0));
        // Exactly at the limit is fine; one byte more is not.
        let mut buf = Vec::new();
        push_nv_pair(&mut buf, b"ab", b"cd");
        push_nv_pair(&mut buf, b"e", b"");
        let mut d = NvDecoder::new();
        d.feed(&buf, &mut s, 5, 2).unwrap();
        assert_eq!(s.len(), 2);
        let mut d = NvDecoder::new();
        s.clear();
        assert_eq!(d.feed(&buf, &mut s, 4, 2), Err(NvError::TooLarge));
        assert_eq!(s.len(), 1);
        let mut d = NvDecoder::new();
        s.clear();
        assert_eq!(d.feed(&buf, &mut s, 5, 1), Err(NvError::TooMany));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn declared_lengths_are_not_reserved() {
        // Found by fuzz/nvpair: six bytes declaring a 16 MiB value made the store reserve
        // 16 MiB before any of it arrived.
        let mut d = NvDecoder::new();
        let mut s = ParamStore::new();
        d.feed(&[0, 0x81, 0, 0, 0x20, 0xf9], &mut s, 1 << 30, 1000)
            .unwrap();
        assert!(s.heap_bytes() < 1024, "{} bytes held", s.heap_bytes());
        // The value still arrives whole, however it is split.
        let rest = vec![b'v'; 0x0100_001f];
        for chunk in rest.chunks(100_000) {
            d.feed(chunk, &mut s, 1 << 30, 1000).unwrap();
        }
        d.finish().unwrap();
        assert_eq!(s.get(b"").map(|v| v.len()), Some(0x0100_0020));
        assert!(
            s.heap_bytes() <= 2 * 0x0100_0040,
            "{} bytes held",
            s.heap_bytes()
        );
    }

    #[test]
    fn limits_ignore_pairs_pushed_by_others() {
        let mut s = ParamStore::new();
        s.push(b"FCGI_ROLE", b"RESPONDER");
        let mut buf = Vec::new();
        push_nv_pair(&mut buf, b"A", b"B");
        let mut d = NvDecoder::new();
        d.feed(&buf, &mut s, 2, 1).unwrap();
        assert_eq!(s.len(), 2);
        d.reset();
        assert_eq!((d.pair_count(), d.payload_bytes()), (0, 0));
    }

    #[test]
    fn parse_pairs_complete_buffer() {
        let (buf, pairs) = sample();
        let got: Vec<_> = parse_pairs(&buf)
            .map(|p| p.map(|(n, v)| (n.to_vec(), v.to_vec())))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, pairs);
        assert_eq!(parse_pairs(&[]).count(), 0);
        // A length past the end: one error, then the iterator is done.
        let bad = [1, 0x80, 0xff, 0xff, 0xff, b'a'];
        let got: Vec<_> = parse_pairs(&bad).collect();
        assert_eq!(got, vec![Err(NvError::Malformed)]);
        let bad = [3, 0, b'a'];
        assert_eq!(parse_pairs(&bad).next(), Some(Err(NvError::Malformed)));
    }
}
