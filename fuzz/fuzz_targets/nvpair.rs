//! Name-value pairs: `NvDecoder` fed the input split at input-chosen points must agree with a
//! reference decoder and with the one-shot `parse_pairs`, stay within its limits, hold memory
//! in proportion to what it was given, and `push_nv_pair` output must decode back.
#![no_main]

use fcgi_fuzz::nv::decode;
use fcgi_fuzz::rng::{Bytes, Rng};
use fcgi_runtime_protocol::nvpair::{encoded_len, parse_pairs, NvDecoder, NvError};
use fcgi_runtime_protocol::record::push_nv_pair;
use fcgi_runtime_protocol::ParamStore;
use libfuzzer_sys::fuzz_target;

const MAX_BYTES: [usize; 8] = [0, 1, 16, 64, 1000, 65535, 1 << 20, 1 << 30];
const MAX_COUNT: [usize; 6] = [0, 1, 2, 10, 1000, 1 << 28];

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let (lim, seed) = (b.u8(), b.u16());
    let max_bytes = MAX_BYTES[lim as usize % MAX_BYTES.len()];
    let max_count = MAX_COUNT[(lim >> 3) as usize % MAX_COUNT.len()];
    let stream = b.rest();
    let want = decode(stream, max_bytes, max_count);

    // Split at random points (seeded by the input), sometimes a byte at a time.
    let mut rng = Rng::new(seed as u64);
    let mut d = NvDecoder::new();
    let mut store = ParamStore::new();
    let mut pos = 0;
    let mut got = Ok(());
    while pos < stream.len() {
        let n = match seed & 3 {
            0 => 1,
            _ => 1 + rng.below(stream.len() - pos),
        };
        got = d.feed(&stream[pos..pos + n], &mut store, max_bytes, max_count);
        pos += n;
        // Memory held is what was given (plus slack), never what a length declared.
        assert!(
            store.heap_bytes() <= 4096 + 64 * pos,
            "store holds {} bytes after {pos} input bytes",
            store.heap_bytes()
        );
        if got.is_err() {
            break;
        }
    }
    assert_eq!(got.err(), want.error, "limit error");
    // The last entry may be a pair cut short: only whole ones can be read.
    let whole = store.len() - usize::from(!store.last_complete());
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = store
        .iter()
        .take(whole)
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    assert!(d.pair_count() <= max_count && d.payload_bytes() <= max_bytes);
    assert_eq!(store.payload_bytes(), d.payload_bytes());
    if want.error.is_none() {
        assert_eq!(
            (d.pair_count(), d.payload_bytes()),
            (want.count, want.bytes)
        );
        assert_eq!(pairs, want.pairs, "decoded pairs");
        assert_eq!(store.last_complete(), !want.partial);
        assert_eq!(d.finish().is_ok(), want.at_boundary);
        assert_eq!(d.at_boundary(), want.at_boundary);
    } else {
        // The pairs stored before the error are a prefix of the complete ones.
        assert!(want.pairs.starts_with(&pairs));
    }

    // parse_pairs on the whole buffer: the same complete pairs, an error iff the stream does
    // not end between pairs (it has no limits).
    let unlimited = decode(stream, usize::MAX / 4, usize::MAX);
    let mut one_shot = Vec::new();
    let mut malformed = false;
    for p in parse_pairs(stream) {
        match p {
            Ok((n, v)) => one_shot.push((n.to_vec(), v.to_vec())),
            Err(e) => {
                assert_eq!(e, NvError::Malformed);
                assert!(!malformed, "two errors");
                malformed = true;
            }
        }
    }
    assert_eq!(one_shot, unlimited.pairs);
    assert_eq!(malformed, !unlimited.at_boundary);

    // Encode the decoded pairs again: same bytes for canonical input, same pairs always.
    let mut enc = Vec::new();
    let mut size = 0;
    for (n, v) in &one_shot {
        push_nv_pair(&mut enc, n, v);
        size += encoded_len(n, v);
    }
    assert_eq!(enc.len(), size);
    let again: Vec<_> = parse_pairs(&enc)
        .map(|p| p.map(|(n, v)| (n.to_vec(), v.to_vec())))
        .collect::<Result<_, _>>()
        .expect("re-encoded pairs parse");
    assert_eq!(again, one_shot);
    let mut d = NvDecoder::new();
    let mut s = ParamStore::new();
    d.feed(&enc, &mut s, usize::MAX, usize::MAX).unwrap();
    d.finish().unwrap();
    assert_eq!(s.len(), one_shot.len());
    assert!(s
        .iter()
        .zip(&one_shot)
        .all(|(a, b)| a.0 == b.0 && a.1 == b.1));
});
