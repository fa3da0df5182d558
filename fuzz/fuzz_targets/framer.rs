//! The runtime's output framer: any sequence of writes, record closes, sends and finishes
//! gives well-formed records whose streams are exactly what was written, ended as the
//! specification asks (STDERR end only if used, STDOUT end, END_REQUEST).
#![no_main]

use fcgi_fuzz::rng::Bytes;
use fcgi_fuzz::wire::parse_strict;
use fcgi_runtime_protocol::framer::{large_record, Framer};
use fcgi_runtime_protocol::record::rtype;
use libfuzzer_sys::fuzz_target;

/// What one request wrote, and what the framer sent for it.
#[derive(Default)]
struct Expect {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    sent: Vec<u8>,
}

fn check(id: u16, e: &Expect, status: Option<u32>) {
    let recs = parse_strict(&e.sent);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut tail = Vec::new();
    for r in &recs {
        assert_eq!(r.id, id);
        assert!(r.content.len() <= 0xfff8);
        match r.rtype {
            rtype::STDOUT | rtype::STDERR if !r.content.is_empty() => {
                assert!(tail.is_empty(), "stream data after the end");
                let s = if r.rtype == rtype::STDOUT {
                    &mut out
                } else {
                    &mut err
                };
                s.extend_from_slice(r.content);
            }
            t => tail.push((t, r.content.to_vec())),
        }
    }
    assert_eq!(out, e.stdout);
    assert_eq!(err, e.stderr);
    match status {
        None => assert!(tail.is_empty()),
        Some(s) => {
            let mut want = Vec::new();
            if !e.stderr.is_empty() {
                want.push((rtype::STDERR, Vec::new()));
            }
            want.push((rtype::STDOUT, Vec::new()));
            let mut body = s.to_be_bytes().to_vec();
            body.extend_from_slice(&[0, 0, 0, 0]);
            want.push((rtype::END_REQUEST, body));
            assert_eq!(tail, want);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mut f = Framer::default();
    let mut id = b.u16();
    f.reset(id);
    let mut e = Expect::default();
    while !b.is_empty() {
        let op = b.u8();
        match op % 6 {
            0 | 1 => {
                let n = match op >> 6 {
                    0 => b.u8() as usize,
                    1 => b.u16() as usize,
                    _ => b.u16() as usize * 3,
                };
                let fill = b.u8();
                let d: Vec<u8> = (0..n).map(|i| fill ^ i as u8).collect();
                let rt = if op % 6 == 0 {
                    rtype::STDOUT
                } else {
                    rtype::STDERR
                };
                f.push(rt, &d);
                if rt == rtype::STDOUT {
                    &mut e.stdout
                } else {
                    &mut e.stderr
                }
                .extend_from_slice(&d);
            }
            2 => f.close_record(),
            3 => {
                e.sent.extend_from_slice(f.take_bytes());
                f.clear();
                assert!(f.is_empty());
            }
            4 => {
                // A write too large for the buffer goes out directly under large_record headers.
                e.sent.extend_from_slice(f.take_bytes());
                f.clear();
                let n = b.u16() as usize * 2;
                let d: Vec<u8> = (0..n).map(|i| i as u8).collect();
                let mut off = 0;
                while off < n {
                    let (h, r, pad) = large_record(rtype::STDOUT, id, n, off);
                    e.sent.extend_from_slice(&h);
                    e.sent.extend_from_slice(&d[r.clone()]);
                    e.sent.extend_from_slice(pad);
                    assert!(r.start == off && r.end > off);
                    off = r.end;
                }
                e.stdout.extend_from_slice(&d);
            }
            _ => {
                let status = b.u32();
                f.finish(status);
                e.sent.extend_from_slice(f.take_bytes());
                check(id, &e, Some(status));
                id = b.u16();
                f.reset(id);
                e = Expect::default();
            }
        }
    }
    e.sent.extend_from_slice(f.take_bytes());
    check(id, &e, None);
});
