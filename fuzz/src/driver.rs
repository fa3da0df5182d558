//! Drives one [`Engine`] over a byte stream split at input-chosen points, with a checking
//! sink, an application that ends requests at chosen moments, and invariants checked after
//! every call. See docs/fuzzing.md for the list.

use std::collections::HashMap;

use fcgi_runtime_protocol::engine::SPARE_SLOTS;
use fcgi_runtime_protocol::nvpair::parse_pairs;
use fcgi_runtime_protocol::record::{rtype, MANAGEMENT_ID};
use fcgi_runtime_protocol::{Engine, EngineConfig, ProtocolError};

use crate::rng::Rng;
use crate::sink::{mgmt_answer, Behaviour, CheckSink, Ev, Phase};
use crate::walker::Walker;
use crate::wire::parse_strict;

/// Bytes at the start of an `engine` input that choose the knobs.
pub const KNOB_LEN: usize = 8;

/// Knobs of a sensible server: multiplexing, 4 requests per connection, the default PARAMS
/// limits, no back-pressure, the application never ends a request, all admitted.
pub const DEFAULT_KNOBS: [u8; KNOB_LEN] = [0x01, 3, 8, 6, 0, 0, 0, 0];
/// Knobs of a hostile setting: no multiplexing, 1 request, 64-byte/3-pair PARAMS limits,
/// back-pressure, the application ends requests as soon as it can, one in four refused.
pub const TIGHT_KNOBS: [u8; KNOB_LEN] = [0x16, 0, 3, 3, 1, 2, 3, 4];

const PARAMS_BYTES: [u32; 11] = [
    0,
    1,
    16,
    64,
    200,
    1000,
    4096,
    65535,
    1 << 20,
    0x7fff_ffff,
    u32::MAX,
];
const PARAMS_COUNT: [u32; 8] = [0, 1, 2, 3, 10, 100, 1000, u32::MAX];

/// What the knob bytes chose.
#[derive(Clone, Copy, Debug)]
pub struct Knobs {
    pub cfg: EngineConfig,
    pub backpressure: bool,
    /// 0: the application never ends a request (enables the one-shot differential check);
    /// 1: it ends requests whose input is done (and some still running) between feeds;
    /// 2: it also ends random ids; 3: as 2, and it changes the limits now and then.
    pub end_mode: u8,
    pub refuse_mode: u8,
    /// 0: random chunk sizes; 1: one byte at a time; 2: large chunks; 3: mixed.
    pub split_mode: u8,
    pub seed: u64,
}

/// An engine configuration from two bytes of knobs.
pub fn config_from(flags: u8, reqs: u8, bytes: u8, count: u8) -> EngineConfig {
    EngineConfig {
        mpxs_conns: flags & 1 != 0,
        max_reqs_per_conn: match reqs {
            0xff => 65535,
            0xfe => 0,
            r => (r as u32 % 8) + 1,
        },
        max_params_bytes: PARAMS_BYTES[bytes as usize % PARAMS_BYTES.len()],
        max_params_count: PARAMS_COUNT[count as usize % PARAMS_COUNT.len()],
    }
}

impl Knobs {
    pub fn from_bytes(b: [u8; KNOB_LEN]) -> Knobs {
        Knobs {
            cfg: config_from(b[0], b[1], b[2], b[3]),
            backpressure: b[0] & 2 != 0,
            end_mode: (b[0] >> 2) & 3,
            refuse_mode: (b[0] >> 4) & 3,
            split_mode: b[0] >> 6,
            seed: u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as u64,
        }
    }
}

/// Splits `data` into knobs and the stream, and runs the checks.
pub fn run_input(data: &[u8]) {
    if data.len() < KNOB_LEN {
        return;
    }
    let (k, stream) = data.split_at(KNOB_LEN);
    run(&Knobs::from_bytes(k.try_into().unwrap()), stream);
}

/// Feeds `stream` split as the knobs say and checks every invariant; with `end_mode` 0 also
/// checks that the same stream fed at once gives the same events, answers and error.
pub fn run(knobs: &Knobs, stream: &[u8]) {
    let split = drive(knobs, stream, None);
    if knobs.end_mode == 0 {
        let one_shot = drive(knobs, stream, Some(split.decisions.clone()));
        assert_eq!(split.error, one_shot.error, "error depends on the split");
        assert_eq!(split.log, one_shot.log, "events depend on the split");
        assert_eq!(split.out, one_shot.out, "answers depend on the split");
    }
}

/// What one run produced.
pub struct Outcome {
    pub log: Vec<Ev>,
    pub out: Vec<u8>,
    pub error: Option<ProtocolError>,
    pub decisions: Vec<fcgi_runtime_protocol::Admission>,
}

/// Counts of the engine's answers so far.
#[derive(Default)]
struct Answers {
    checked: usize,
    /// END_REQUEST per (id, protocol status).
    ends: HashMap<(u16, u8), usize>,
    unknown_types: Vec<u8>,
    get_values_results: usize,
}

fn chunk_len(mode: u8, rng: &mut Rng, avail: usize) -> usize {
    let n = match mode {
        0 => 1 + rng.below(64),
        1 => 1,
        2 => 1 + rng.below(70_000),
        _ => match rng.below(4) {
            0 => 1,
            1 => 1 + rng.below(8),
            2 => 1 + rng.below(300),
            _ => avail,
        },
    };
    n.min(avail)
}

/// One run. `replay` = None: split input, back-pressure and application as the knobs say.
/// `replay` = Some(admissions): the whole stream in one `feed`, nothing else.
fn drive(
    knobs: &Knobs,
    stream: &[u8],
    replay: Option<Vec<fcgi_runtime_protocol::Admission>>,
) -> Outcome {
    let one_shot = replay.is_some();
    let behaviour = Behaviour {
        refuse_mode: knobs.refuse_mode,
        backpressure: knobs.backpressure && !one_shot,
        replay,
    };
    let mut engine = Engine::new(knobs.cfg);
    let mut sink = CheckSink::new(knobs.cfg, knobs.seed, behaviour);
    let mut rng = Rng::new(knobs.seed ^ 0x5eed_5eed);
    let mut walker = Walker::default();
    let mut answers = Answers::default();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut error = None;
    // Largest PARAMS limits in force so far (slots keep what they reserved under them).
    let mut peak = (knobs.cfg.max_params_bytes, knobs.cfg.max_params_count);
    let mut chunks = 0usize;
    while pos < stream.len() {
        // The counts are checked over every id seen: after each of the first chunks, then
        // every 64th, and at the end (per chunk throughout, a stream fed byte by byte with
        // thousands of ids costs the harness seconds per input; the engine is not the cost).
        chunks += 1;
        let full_check = chunks <= 256 || chunks % 64 == 0;
        let avail = stream.len() - pos;
        let n = if one_shot {
            avail
        } else {
            chunk_len(knobs.split_mode, &mut rng, avail)
        };
        sink.paused = false;
        let res = engine.feed(&stream[pos..pos + n], &mut sink, &mut out);
        let forced = std::mem::take(&mut sink.no_pause);
        match res {
            Err(e) => {
                error = Some(e);
                // The engine read at most this chunk: count all of it as possibly consumed.
                pos += n;
                break;
            }
            Ok(c) => {
                assert!(c <= n, "consumed {c} of {n} bytes offered");
                assert_eq!(c < n, sink.paused, "early return without back-pressure");
                assert!(!(forced && sink.paused));
                sink.no_pause = sink.paused;
                pos += c;
            }
        }
        walker.advance(&stream[..pos]);
        check_answers(&out, &mut answers, &sink.cfg);
        if full_check {
            check_counts(&engine, &sink, &walker, &answers, true);
        }
        check_memory(&engine, peak, pos);
        if !one_shot {
            application(&mut engine, &mut sink, &mut rng, knobs.end_mode);
            peak.0 = peak.0.max(sink.cfg.max_params_bytes);
            peak.1 = peak.1.max(sink.cfg.max_params_count);
            if full_check {
                check_counts(&engine, &sink, &walker, &answers, true);
            }
        }
    }
    if let Some(e) = &error {
        // The connection is dead: same error, no event, no answer, whatever comes next.
        let (events, answered) = (sink.log.len(), out.len());
        for input in [
            &stream[pos..],
            &[][..],
            &b"\x01\x01\x00\x01\x00\x08\x00\x00"[..],
        ] {
            assert_eq!(engine.feed(input, &mut sink, &mut out).as_ref(), Err(e));
        }
        assert_eq!((sink.log.len(), out.len()), (events, answered));
        walker.advance(&stream[..pos]);
        check_answers(&out, &mut answers, &sink.cfg);
        check_counts(&engine, &sink, &walker, &answers, false);
    } else {
        assert_eq!(pos, stream.len());
        assert_eq!(engine.feed(&[], &mut sink, &mut out), Ok(0));
        check_answers(&out, &mut answers, &sink.cfg);
        check_counts(&engine, &sink, &walker, &answers, true);
    }
    Outcome {
        log: sink.log,
        out,
        error,
        decisions: sink.decisions,
    }
}

/// The application between two feeds: ends requests as `end_mode` says.
fn application(engine: &mut Engine, sink: &mut CheckSink, rng: &mut Rng, end_mode: u8) {
    if end_mode == 0 {
        return;
    }
    let ids: Vec<(u16, Phase)> = sink.active.iter().map(|(&id, r)| (id, r.phase)).collect();
    for (id, phase) in ids {
        let end = match phase {
            Phase::Done => rng.chance(1, 2),
            _ => rng.chance(1, 8),
        };
        if end {
            engine.end_request(id);
            sink.ended(id);
        }
    }
    if end_mode >= 2 && rng.chance(1, 4) {
        // Any id, active or not: inactive ones must be ignored.
        let id = rng.next_u64() as u16 % 8;
        engine.end_request(id);
        sink.ended(id);
    }
    if end_mode == 3 && rng.chance(1, 16) {
        let b = rng.next_u64().to_be_bytes();
        let cfg = config_from(b[0], b[1], b[2], b[3]);
        engine.set_config(cfg);
        sink.cfg = cfg;
    }
}

/// New answers in `out` are whole, well-formed records of the kinds the engine writes.
fn check_answers(out: &[u8], a: &mut Answers, cfg: &EngineConfig) {
    for r in parse_strict(&out[a.checked..]) {
        match r.rtype {
            rtype::END_REQUEST => {
                assert_ne!(r.id, MANAGEMENT_ID, "END_REQUEST for id 0");
                assert_eq!(r.content.len(), 8);
                let c = r.content;
                assert_eq!(&c[..4], &[0, 0, 0, 0], "refusal with an app status");
                assert!((1..=3).contains(&c[4]), "refusal status {}", c[4]);
                assert_eq!(&c[5..], &[0, 0, 0]);
                *a.ends.entry((r.id, c[4])).or_default() += 1;
            }
            rtype::UNKNOWN_TYPE => {
                assert_eq!(r.id, MANAGEMENT_ID);
                assert_eq!(r.content.len(), 8);
                assert_eq!(&r.content[1..], &[0; 7]);
                a.unknown_types.push(r.content[0]);
            }
            rtype::GET_VALUES_RESULT => {
                assert_eq!(r.id, MANAGEMENT_ID);
                for p in parse_pairs(r.content) {
                    let (name, value) = p.expect("GET_VALUES_RESULT body");
                    let want = mgmt_answer(name, cfg).expect("unknown name answered");
                    assert_eq!(value, &want[..], "value of {name:?}");
                }
                a.get_values_results += 1;
            }
            t => panic!("engine wrote a record of type {t}"),
        }
    }
    a.checked = out.len();
}

/// The answers add up to what the consumed input asked for, and the engine's view of the
/// active requests is the sink's. `exact` is false once an error cut the input short.
fn check_counts(engine: &Engine, sink: &CheckSink, w: &Walker, a: &Answers, exact: bool) {
    assert_eq!(engine.active(), sink.active.len(), "active requests");
    for &id in sink.active.keys() {
        assert!(engine.is_active(id), "id {id} not active in the engine");
    }
    assert!(engine.spare_slots() <= SPARE_SLOTS);
    let mut ends_per_id: HashMap<u16, usize> = HashMap::new();
    for (&(id, status), &n) in &a.ends {
        *ends_per_id.entry(id).or_default() += n;
        if status == 3 {
            let bad = w.bad_role_begins.get(&id).copied().unwrap_or(0);
            assert!(
                n == bad || (!exact && n < bad),
                "id {id}: {n} UNKNOWN_ROLE, {bad} bad roles"
            );
        }
    }
    for (&id, &n) in &ends_per_id {
        let begins = w.begins.get(&id).copied().unwrap_or(0);
        let admitted = sink.admitted.get(&id).copied().unwrap_or(0);
        assert!(
            n + admitted <= begins,
            "id {id}: {n} refusals + {admitted} admissions > {begins} BEGINs"
        );
    }
    if exact {
        for (&id, &begins) in &w.begins {
            let n = ends_per_id.get(&id).copied().unwrap_or(0);
            let admitted = sink.admitted.get(&id).copied().unwrap_or(0);
            assert_eq!(
                n + admitted,
                begins,
                "id {id}: BEGINs neither refused nor admitted"
            );
        }
        assert_eq!(a.unknown_types, w.unknown_types, "UNKNOWN_TYPE answers");
        assert_eq!(a.get_values_results, w.get_values, "GET_VALUES answers");
    } else {
        assert!(w.unknown_types.starts_with(&a.unknown_types));
        assert!(a.get_values_results <= w.get_values);
    }
}

/// Memory the engine holds: bounded by the limits, and proportional to the bytes received.
fn check_memory(engine: &Engine, peak: (u32, u32), consumed: usize) {
    // Management buffers: the GET_VALUES body and answer (at most one record each, doubled
    // by amortised growth) and one value.
    const FIXED: usize = 4 * 65536 + 16 * 1024;
    let held = engine.heap_bytes();
    assert!(
        held <= FIXED + 64 * consumed,
        "engine holds {held} bytes after {consumed} bytes of input"
    );
    let bytes = (peak.0 as usize).min(1 << 30);
    let count = (peak.1 as usize).min(1 << 28);
    let per_slot = 512 + 2 * (bytes + 2 * count + 64) + 2 * 12 * (count + 4);
    let slots = engine.active() + engine.spare_slots();
    assert!(
        held <= FIXED + slots * per_slot + 4096,
        "engine holds {held} bytes"
    );
}
