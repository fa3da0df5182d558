//! Record headers and the record encoders: parse/encode round trips, and every push_*
//! encoder's output decoded back by a strict parser.
#![no_main]

use fcgi_fuzz::rng::Bytes;
use fcgi_fuzz::wire::parse_strict;
use fcgi_runtime_protocol::record::{
    padding_for, push_abort_request, push_begin_request, push_end_request, push_nv_len,
    push_record, push_stream, push_stream_end, push_unknown_type, rtype, Header,
    MAX_ALIGNED_CONTENT_LEN, VERSION_1,
};
use fcgi_runtime_protocol::{ProtocolStatus, Role};
use libfuzzer_sys::fuzz_target;

const STATUSES: [ProtocolStatus; 4] = [
    ProtocolStatus::RequestComplete,
    ProtocolStatus::CantMpxConn,
    ProtocolStatus::Overloaded,
    ProtocolStatus::UnknownRole,
];

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    // Any 8 bytes parse; encoding the fields gives them back (version 1, reserved 0).
    let mut raw = [0u8; 8];
    for x in &mut raw {
        *x = b.u8();
    }
    let h = Header::parse(&raw);
    let enc = Header::encode(h.rtype, h.request_id, h.content_len, h.padding_len);
    let mut want = raw;
    want[0] = VERSION_1;
    want[7] = 0;
    assert_eq!(enc, want);
    assert_eq!(Header::parse(&enc), Header { version: 1, ..h });

    let (t, id) = (b.u8(), b.u16());
    let rest = b.rest();

    // One record of up to 65535 bytes.
    let content = &rest[..rest.len().min(0xffff)];
    let mut out = Vec::new();
    push_record(&mut out, t, id, content);
    assert_eq!(
        out.len(),
        8 + content.len() + padding_for(content.len()) as usize
    );
    let recs = parse_strict(&out);
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (recs[0].rtype, recs[0].id, recs[0].content),
        (t, id, content)
    );

    // A stream of any length (the input repeated to pass 64 KiB): aligned records, none empty,
    // their contents concatenated give the data back; the end record is separate.
    let data: Vec<u8> = match rest.first() {
        Some(&k) if k & 1 == 1 => rest.iter().cycle().take(rest.len() * 64).copied().collect(),
        _ => rest.to_vec(),
    };
    let mut out = Vec::new();
    push_stream(&mut out, t, id, &data);
    push_stream_end(&mut out, t, id);
    let recs = parse_strict(&out);
    let (last, body) = recs.split_last().unwrap();
    assert!(last.content.is_empty() && (last.rtype, last.id) == (t, id));
    let mut joined = Vec::new();
    for r in body {
        assert!(!r.content.is_empty() && r.content.len() <= MAX_ALIGNED_CONTENT_LEN);
        assert_eq!((r.rtype, r.id), (t, id));
        joined.extend_from_slice(r.content);
    }
    assert_eq!(joined, data);

    // The fixed-body records.
    let app_status = u32::from_be_bytes([t, t ^ 0x55, (id >> 8) as u8, id as u8]);
    let status = STATUSES[t as usize % 4];
    let role = id;
    let keep = t & 1 == 1;
    let mut out = Vec::new();
    push_end_request(&mut out, id, app_status, status);
    push_unknown_type(&mut out, t);
    push_begin_request(&mut out, id, role, keep);
    push_abort_request(&mut out, id);
    let recs = parse_strict(&out);
    assert_eq!(recs.len(), 4);
    assert_eq!((recs[0].rtype, recs[0].id), (rtype::END_REQUEST, id));
    assert_eq!(&recs[0].content[..4], &app_status.to_be_bytes());
    assert_eq!(&recs[0].content[4..], &[status as u8, 0, 0, 0]);
    assert_eq!((recs[1].rtype, recs[1].id), (rtype::UNKNOWN_TYPE, 0));
    assert_eq!(recs[1].content, &[t, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!((recs[2].rtype, recs[2].id), (rtype::BEGIN_REQUEST, id));
    let c = recs[2].content;
    assert_eq!(u16::from_be_bytes([c[0], c[1]]), role);
    assert_eq!(c[2], u8::from(keep));
    assert_eq!(&c[3..], &[0; 5]);
    assert_eq!(
        (recs[3].rtype, recs[3].id, recs[3].content),
        (rtype::ABORT_REQUEST, id, &[][..])
    );
    if let Some(r) = Role::from_u16(role) {
        assert_eq!(r as u16, role);
    } else {
        assert!(role == 0 || role > 3);
    }

    // Name-value lengths: 1 byte up to 127, else 4 bytes with the high bit, value kept.
    let len = (app_status & 0x7fff_ffff) as usize >> (t % 32);
    let mut out = Vec::new();
    push_nv_len(&mut out, len);
    if len <= 127 {
        assert_eq!(out, [len as u8]);
    } else {
        assert_eq!(out.len(), 4);
        assert_eq!(
            u32::from_be_bytes(out[..].try_into().unwrap()),
            len as u32 | 0x8000_0000
        );
    }
});
