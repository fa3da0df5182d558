//! Builds a valid-ish FastCGI stream from fuzz input, so that coverage reaches deep engine
//! states (multiplexed ids, aborts, GET_VALUES, filter DATA) without the fuzzer having to
//! discover the record format byte by byte. Used by the `engine_records` target.

use fcgi_runtime_protocol::record::{
    mgmt, push_nv_len, push_nv_pair, rtype, Header, MANAGEMENT_ID,
};

use crate::driver::{Knobs, KNOB_LEN};
use crate::rng::Bytes;

/// Ids the operations use: small ones collide on purpose, 0 is the management id.
const IDS: [u16; 8] = [1, 2, 3, 1, 0x100, 0xffff, 0, 7];
/// Stop building past this size.
const MAX_STREAM: usize = 1 << 20;

struct Builder<'a> {
    b: Bytes<'a>,
    out: Vec<u8>,
    /// 0: records padded to 8 bytes; otherwise padding lengths come from the input.
    pad_mode: u8,
}

impl Builder<'_> {
    fn record(&mut self, t: u8, id: u16, content: &[u8]) {
        let pad = if self.pad_mode == 0 {
            ((8 - content.len() % 8) % 8) as u8
        } else {
            self.b.u8()
        };
        self.out
            .extend_from_slice(&Header::encode(t, id, content.len() as u16, pad));
        self.out.extend_from_slice(content);
        // Padding bytes are garbage on purpose: receivers must skip, not read, them.
        self.out.extend(std::iter::repeat_n(0xa5, pad as usize));
    }

    /// `data` as records of sizes chosen by the input (without the empty end record).
    fn stream(&mut self, t: u8, id: u16, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            let s = self.b.u8() as usize;
            let k = if s == 0 { 0xffff } else { s * s };
            let (a, b) = rest.split_at(k.min(rest.len()).min(0xffff));
            self.record(t, id, a);
            rest = b;
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let fill = self.b.u8();
        (0..n).map(|i| fill.wrapping_add(i as u8)).collect()
    }

    fn pairs(&mut self) -> Vec<u8> {
        let names: [&[u8]; 6] = [
            b"SCRIPT_FILENAME",
            b"CONTENT_LENGTH",
            b"",
            b"FCGI_ROLE",
            b"REQUEST_METHOD",
            b"\0=\xff",
        ];
        let mut buf = Vec::new();
        for _ in 0..1 + self.b.u8() % 4 {
            let sel = self.b.u8();
            let name = names[sel as usize % names.len()].to_vec();
            let scale = [1, 16, 300][(sel >> 4) as usize % 3];
            let n = self.b.u8() as usize * scale;
            let value = self.bytes(n);
            push_nv_pair(&mut buf, &name, &value);
        }
        buf
    }

    fn op(&mut self) {
        let op = self.b.u8();
        let id = IDS[(op >> 4) as usize & 7];
        match op & 15 {
            0 => {
                let role = match self.b.u8() % 8 {
                    0..=4 => 1,
                    5 => 2,
                    6 => 3,
                    _ => self.b.u16(),
                };
                let r = role.to_be_bytes();
                let body = [r[0], r[1], self.b.u8(), 0, 0, 0, 0, 0];
                self.record(rtype::BEGIN_REQUEST, id, &body);
            }
            1 => {
                let p = self.pairs();
                self.stream(rtype::PARAMS, id, &p);
            }
            2 => self.record(rtype::PARAMS, id, &[]),
            3 | 5 => {
                let n = self.b.u16() as usize % 3000;
                let d = self.bytes(n);
                let t = if op & 15 == 3 {
                    rtype::STDIN
                } else {
                    rtype::DATA
                };
                self.stream(t, id, &d);
            }
            4 => self.record(rtype::STDIN, id, &[]),
            6 => self.record(rtype::DATA, id, &[]),
            7 => {
                let n = self.b.u8() as usize % 3;
                let c = self.bytes(n);
                self.record(rtype::ABORT_REQUEST, id, &c);
            }
            8 => {
                let names: [&[u8]; 6] = [
                    mgmt::MAX_CONNS,
                    mgmt::MAX_REQS,
                    mgmt::MPXS_CONNS,
                    b"FUZZ_BIG",
                    b"X",
                    b"",
                ];
                let mut body = Vec::new();
                for _ in 0..self.b.u8() % 32 {
                    let sel = self.b.u8() as usize;
                    let value: &[u8] = if sel & 0x80 != 0 { b"1" } else { b"" };
                    push_nv_pair(&mut body, names[sel % names.len()], value);
                }
                self.record(
                    rtype::GET_VALUES,
                    MANAGEMENT_ID,
                    &body[..body.len().min(0xffff)],
                );
            }
            9 => {
                let t = self.b.u8();
                let n = self.b.u8() as usize % 40;
                let c = self.bytes(n);
                self.record(t, MANAGEMENT_ID, &c);
            }
            10 => {
                let (v, t, rid) = (self.b.u8(), self.b.u8(), self.b.u16());
                let len = self.b.u16() as usize % 600;
                let pad = self.b.u8();
                let c = self.bytes(len);
                let v = if v < 0xf0 { 1 } else { v };
                let mut h = Header::encode(t, rid, len as u16, pad);
                h[0] = v;
                self.out.extend_from_slice(&h);
                self.out.extend_from_slice(&c);
                self.out.extend(std::iter::repeat_n(0, pad as usize));
            }
            11 => {
                self.record(rtype::BEGIN_REQUEST, id, &[0, 1, 1, 0, 0, 0, 0, 0]);
                let mut p = Vec::new();
                push_nv_pair(&mut p, b"REQUEST_METHOD", b"GET");
                push_nv_pair(&mut p, b"CONTENT_LENGTH", b"1");
                self.stream(rtype::PARAMS, id, &p);
                self.record(rtype::PARAMS, id, &[]);
                self.record(rtype::STDIN, id, b"x");
                self.record(rtype::STDIN, id, &[]);
            }
            12 => {
                // A pair cut short: inside a 4-byte length, a name or a value.
                let mut p = self.pairs();
                let cut = self.b.u8() as usize % p.len();
                p.truncate(cut.max(1));
                self.record(rtype::PARAMS, id, &p);
            }
            13 => {
                // Declared lengths far beyond anything sent (CVE-2025-23016's shape).
                let mut p = Vec::new();
                push_nv_len(&mut p, (self.b.u32() & 0x7fff_ffff) as usize);
                push_nv_len(&mut p, (self.b.u32() & 0x7fff_ffff) as usize);
                let n = self.b.u8() as usize % 32;
                let tail = self.bytes(n);
                p.extend_from_slice(&tail);
                self.record(rtype::PARAMS, id, &p);
            }
            14 => {
                let n = self.b.u8() as usize % 16;
                let raw = self.b.take(n).to_vec();
                self.out.extend_from_slice(&raw);
            }
            _ => self.pad_mode = self.b.u8() & 1,
        }
    }
}

/// Knobs from the first bytes, then a stream built from the rest.
pub fn build(data: &[u8]) -> (Knobs, Vec<u8>) {
    let mut b = Bytes(data);
    let mut k = [0u8; KNOB_LEN];
    for x in &mut k {
        *x = b.u8();
    }
    let mut builder = Builder {
        b,
        out: Vec::new(),
        pad_mode: 0,
    };
    while !builder.b.is_empty() && builder.out.len() < MAX_STREAM {
        builder.op();
    }
    (Knobs::from_bytes(k), builder.out)
}
