//! Frames a request's output into records inside one reusable buffer.
//!
//! The header of the open record is reserved in place and filled when the record closes, so
//! small writes are copied once (into the buffer) and a whole response of a few KiB leaves
//! with one `write`: STDOUT record(s), the empty STDOUT record and END_REQUEST together.
//! Writes larger than the buffer bypass it: the caller sends the buffer, then the data under
//! headers made by [`large_record`], without copying it.

use crate::record::{
    padding_for, push_end_request, push_stream_end, rtype, Header, ProtocolStatus, HEADER_LEN,
    MAX_ALIGNED_CONTENT_LEN,
};

/// Per-request output buffer of framed records.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the open record's header and its type.
    open: Option<(usize, u8)>,
    id: u16,
    stderr_used: bool,
}

const ZEROS: [u8; 8] = [0; 8];

impl Framer {
    /// Starts output for a new request.
    pub fn reset(&mut self, id: u16) {
        self.buf.clear();
        self.open = None;
        self.id = id;
        self.stderr_used = false;
    }

    /// Framed bytes waiting (including the open record).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends `data` to the stream `rt` (STDOUT or STDERR).
    pub fn push(&mut self, rt: u8, mut data: &[u8]) {
        if rt == rtype::STDERR && !data.is_empty() {
            self.stderr_used = true;
        }
        while !data.is_empty() {
            let start = match self.open {
                Some((s, t))
                    if t == rt && self.buf.len() - s - HEADER_LEN < MAX_ALIGNED_CONTENT_LEN =>
                {
                    s
                }
                _ => {
                    self.close_record();
                    let s = self.buf.len();
                    self.buf.extend_from_slice(&[0u8; HEADER_LEN]);
                    self.open = Some((s, rt));
                    s
                }
            };
            let room = MAX_ALIGNED_CONTENT_LEN - (self.buf.len() - start - HEADER_LEN);
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
    }

    /// Closes the open record: fills its header and pads it to 8 bytes.
    pub fn close_record(&mut self) {
        if let Some((s, t)) = self.open.take() {
            let len = self.buf.len() - s - HEADER_LEN;
            if len == 0 {
                self.buf.truncate(s);
                return;
            }
            let pad = padding_for(len);
            self.buf[s..s + HEADER_LEN]
                .copy_from_slice(&Header::encode(t, self.id, len as u16, pad));
            self.buf.extend_from_slice(&ZEROS[..pad as usize]);
        }
    }

    /// Closes the open record and appends the end of the request: an empty STDERR record if
    /// STDERR was used, the empty STDOUT record, and END_REQUEST with `app_status`.
    pub fn finish(&mut self, app_status: u32) {
        self.close_record();
        if self.stderr_used {
            push_stream_end(&mut self.buf, rtype::STDERR, self.id);
        }
        push_stream_end(&mut self.buf, rtype::STDOUT, self.id);
        push_end_request(
            &mut self.buf,
            self.id,
            app_status,
            ProtocolStatus::RequestComplete,
        );
    }

    /// The framed bytes, with the open record closed first.
    pub fn take_bytes(&mut self) -> &[u8] {
        self.close_record();
        &self.buf
    }

    /// Forgets bytes that were sent.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.open = None;
    }
}

/// Headers and padding for sending `len` bytes of stream `rt` directly (see module docs):
/// calls `f(header, chunk_range, padding)` for each record.
#[cfg(test)]
fn large_write_headers(
    rt: u8,
    id: u16,
    len: usize,
    mut f: impl FnMut([u8; 8], std::ops::Range<usize>, &'static [u8]),
) {
    let mut off = 0;
    while off < len {
        let (h, r, pad) = large_record(rt, id, len, off);
        off = r.end;
        f(h, r, pad);
    }
}

/// The record of a direct write of `len` bytes that starts at offset `off` (< `len`): its
/// header, its content range and its padding.
#[inline]
pub fn large_record(
    rt: u8,
    id: u16,
    len: usize,
    off: usize,
) -> ([u8; 8], std::ops::Range<usize>, &'static [u8]) {
    let n = (len - off).min(MAX_ALIGNED_CONTENT_LEN);
    let pad = padding_for(n);
    (
        Header::encode(rt, id, n as u16, pad),
        off..off + n,
        &ZEROS[..pad as usize],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(b: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
        let mut v = Vec::new();
        let mut p = 0;
        while p < b.len() {
            let h = Header::parse(b[p..p + 8].try_into().unwrap());
            assert_eq!(p % 8, 0);
            let c = b[p + 8..p + 8 + h.content_len as usize].to_vec();
            v.push((h.rtype, h.request_id, c));
            p += 8 + h.content_len as usize + h.padding_len as usize;
        }
        assert_eq!(p, b.len());
        v
    }

    #[test]
    fn small_response_is_one_buffer_with_end() {
        let mut f = Framer::default();
        f.reset(5);
        f.push(rtype::STDOUT, b"Content-Type: text/plain\r\n\r\n");
        f.push(rtype::STDOUT, b"hi");
        f.finish(7);
        let r = records(f.take_bytes());
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            (
                rtype::STDOUT,
                5,
                b"Content-Type: text/plain\r\n\r\nhi".to_vec()
            )
        );
        assert_eq!(r[1], (rtype::STDOUT, 5, vec![]));
        assert_eq!(r[2].0, rtype::END_REQUEST);
        assert_eq!(r[2].2, vec![0, 0, 0, 7, 0, 0, 0, 0]);
    }

    #[test]
    fn stderr_switch_closes_record_and_ends_stderr() {
        let mut f = Framer::default();
        f.reset(1);
        f.push(rtype::STDOUT, b"a");
        f.push(rtype::STDERR, b"b");
        f.push(rtype::STDOUT, b"c");
        f.finish(0);
        let r = records(f.take_bytes());
        let types: Vec<u8> = r.iter().map(|x| x.0).collect();
        assert_eq!(
            types,
            vec![
                rtype::STDOUT,
                rtype::STDERR,
                rtype::STDOUT,
                rtype::STDERR,
                rtype::STDOUT,
                rtype::END_REQUEST
            ]
        );
        assert!(r[3].2.is_empty() && r[4].2.is_empty());
    }

    #[test]
    fn big_push_splits_records() {
        let mut f = Framer::default();
        f.reset(1);
        f.push(rtype::STDOUT, &vec![1u8; 150_000]);
        let r = records(f.take_bytes());
        assert_eq!(r.iter().map(|x| x.2.len()).sum::<usize>(), 150_000);
        assert!(r
            .iter()
            .all(|x| x.2.len() <= MAX_ALIGNED_CONTENT_LEN && !x.2.is_empty()));
    }

    #[test]
    fn large_headers_cover_len() {
        let mut total = 0;
        large_write_headers(rtype::STDOUT, 1, 200_001, |h, r, pad| {
            let hh = Header::parse(&h);
            assert_eq!(hh.content_len as usize, r.len());
            assert_eq!((r.len() + pad.len()) % 8, 0);
            total += r.len();
        });
        assert_eq!(total, 200_001);
    }
}
