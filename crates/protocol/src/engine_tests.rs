//! Tests of the engine, named for the items of the specification checklist
//! (shared/reference/spec-checklist.md) they cover.

use super::*;
use crate::record::{push_end_request, push_nv_pair, push_record, push_unknown_type, rtype};

/// What the engine told the sink. Consecutive STDIN (or DATA) chunks of one id are merged, so
/// streams compare equal however they were split.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Begin(u16, Role, bool),
    Params(u16, Vec<(Vec<u8>, Vec<u8>)>),
    Stdin(u16, Vec<u8>),
    StdinEnd(u16),
    Data(u16, Vec<u8>),
    DataEnd(u16),
    Abort(u16),
}

struct TestSink {
    events: Vec<Ev>,
    admission: Admission,
    /// Bytes taken per stdin/data call at most (back-pressure).
    take: usize,
    mgmt: Vec<(Vec<u8>, Vec<u8>)>,
}

impl TestSink {
    fn new() -> TestSink {
        TestSink {
            events: Vec::new(),
            admission: Admission::Admit,
            take: usize::MAX,
            mgmt: vec![
                (b"FCGI_MAX_CONNS".to_vec(), b"10".to_vec()),
                (b"FCGI_MAX_REQS".to_vec(), b"50".to_vec()),
                (b"FCGI_MPXS_CONNS".to_vec(), b"1".to_vec()),
            ],
        }
    }

    fn stream(&mut self, id: u16, data: &[u8], is_data: bool) -> usize {
        let n = data.len().min(self.take);
        let data = &data[..n];
        match self.events.last_mut() {
            Some(Ev::Stdin(i, buf)) if *i == id && !is_data => buf.extend_from_slice(data),
            Some(Ev::Data(i, buf)) if *i == id && is_data => buf.extend_from_slice(data),
            _ if is_data => self.events.push(Ev::Data(id, data.to_vec())),
            _ => self.events.push(Ev::Stdin(id, data.to_vec())),
        }
        n
    }
}

impl Sink for TestSink {
    fn begin(&mut self, id: u16, role: Role, keep_conn: bool) -> Admission {
        self.events.push(Ev::Begin(id, role, keep_conn));
        self.admission
    }
    fn params(&mut self, id: u16, params: &mut ParamStore) {
        let mut taken = ParamStore::new();
        std::mem::swap(&mut taken, params);
        let pairs = taken
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        self.events.push(Ev::Params(id, pairs));
    }
    fn stdin(&mut self, id: u16, data: &[u8]) -> usize {
        assert!(!data.is_empty(), "empty stdin chunk");
        self.stream(id, data, false)
    }
    fn stdin_end(&mut self, id: u16) {
        self.events.push(Ev::StdinEnd(id));
    }
    fn data(&mut self, id: u16, data: &[u8]) -> usize {
        assert!(!data.is_empty(), "empty data chunk");
        self.stream(id, data, true)
    }
    fn data_end(&mut self, id: u16) {
        self.events.push(Ev::DataEnd(id));
    }
    fn abort(&mut self, id: u16) {
        self.events.push(Ev::Abort(id));
    }
    fn mgmt_value(&mut self, name: &[u8], out: &mut Vec<u8>) -> bool {
        match self.mgmt.iter().find(|(n, _)| n == name) {
            Some((_, v)) => {
                out.extend_from_slice(v);
                true
            }
            None => false,
        }
    }
}

/// Padding bytes are garbage, so a padding byte taken for data shows up.
const PAD_BYTE: u8 = 0xee;

/// A record with explicit padding.
fn rec(rt: u8, id: u16, content: &[u8], pad: u8) -> Vec<u8> {
    let mut v = Header::encode(rt, id, content.len() as u16, pad).to_vec();
    v.extend_from_slice(content);
    v.resize(v.len() + pad as usize, PAD_BYTE);
    v
}

fn begin_body(role: u16, flags: u8) -> [u8; 8] {
    let r = role.to_be_bytes();
    [r[0], r[1], flags, 0, 0, 0, 0, 0]
}

fn nv(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (n, val) in pairs {
        push_nv_pair(&mut v, n, val);
    }
    v
}

fn owned(pairs: &[(&[u8], &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect()
}

fn with_role(role: &str, pairs: &[(&[u8], &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v = vec![(b"FCGI_ROLE".to_vec(), role.as_bytes().to_vec())];
    v.extend(owned(pairs));
    v
}

/// Everything a run produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    result: Result<(), ProtocolError>,
    events: Vec<Ev>,
    out: Vec<u8>,
}

/// Feeds `input` in pieces ending at `cuts`, re-offering what back-pressure left unconsumed.
fn run_cuts(engine: &mut Engine, sink: &mut TestSink, input: &[u8], cuts: &[usize]) -> Outcome {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut result = Ok(());
    'pieces: for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let end = end.clamp(pos, input.len());
        while pos < end {
            match engine.feed(&input[pos..end], sink, &mut out) {
                Ok(n) => {
                    assert!(n <= end - pos);
                    assert!(n > 0, "no progress at {pos}");
                    pos += n;
                }
                Err(e) => {
                    result = Err(e);
                    break 'pieces;
                }
            }
        }
    }
    Outcome {
        result,
        events: std::mem::take(&mut sink.events),
        out,
    }
}

fn run_with(cfg: EngineConfig, sink: &mut TestSink, input: &[u8], cuts: &[usize]) -> Outcome {
    run_cuts(&mut Engine::new(cfg), sink, input, cuts)
}

fn run(input: &[u8]) -> Outcome {
    run_with(EngineConfig::default(), &mut TestSink::new(), input, &[])
}

fn run_bytewise(input: &[u8]) -> Outcome {
    let cuts: Vec<usize> = (1..input.len()).collect();
    run_with(EngineConfig::default(), &mut TestSink::new(), input, &cuts)
}

/// A complete Filter request on id 1 whose every record has `pad` bytes of padding, plus
/// management records, and the events it must produce.
fn full_request(pad: u8) -> (Vec<u8>, Vec<Ev>, Vec<u8>) {
    let params: &[(&[u8], &[u8])] = &[
        (b"SCRIPT_NAME", b"/x.php"),
        (b"LONG", &[b'L'; 200]),
        (b"", b""),
    ];
    let body = nv(params);
    let mut s = Vec::new();
    s.extend(rec(
        rtype::GET_VALUES,
        0,
        &nv(&[(b"FCGI_MPXS_CONNS", b"")]),
        pad,
    ));
    s.extend(rec(rtype::BEGIN_REQUEST, 1, &begin_body(3, 1), pad));
    s.extend(rec(rtype::PARAMS, 1, &body[..20], pad));
    s.extend(rec(200, 0, b"INJ", pad));
    s.extend(rec(rtype::PARAMS, 1, &body[20..], pad));
    s.extend(rec(rtype::PARAMS, 1, &[], pad));
    s.extend(rec(rtype::STDIN, 1, b"abc", pad));
    s.extend(rec(rtype::STDIN, 1, b"defgh", pad));
    s.extend(rec(rtype::STDIN, 1, &[], pad));
    s.extend(rec(rtype::DATA, 1, b"data", pad));
    s.extend(rec(rtype::DATA, 1, &[], pad));
    s.extend(rec(rtype::STDOUT, 1, b"ignored", pad));
    let events = vec![
        Ev::Begin(1, Role::Filter, true),
        Ev::Params(1, with_role("FILTER", params)),
        Ev::Stdin(1, b"abcdefgh".to_vec()),
        Ev::StdinEnd(1),
        Ev::Data(1, b"data".to_vec()),
        Ev::DataEnd(1),
    ];
    let mut out = Vec::new();
    push_record(
        &mut out,
        rtype::GET_VALUES_RESULT,
        0,
        &nv(&[(b"FCGI_MPXS_CONNS", b"1")]),
    );
    push_unknown_type(&mut out, 200);
    (s, events, out)
}

fn ok(events: Vec<Ev>, out: Vec<u8>) -> Outcome {
    Outcome {
        result: Ok(()),
        events,
        out,
    }
}

#[test]
fn item7_item9_header_fields() {
    // requestId is B1<<8|B0; content length up to 65535 and padding up to 255.
    let id = 0x1234;
    let big = vec![b'z'; 0xffff];
    let mut s = rec(rtype::BEGIN_REQUEST, id, &begin_body(1, 0), 0);
    s.extend(rec(rtype::PARAMS, id, &[], 0));
    s.extend(rec(rtype::STDIN, id, &big, 255));
    s.extend(rec(rtype::STDIN, id, &[], 255));
    let o = run(&s);
    let expect = vec![
        Ev::Begin(id, Role::Responder, false),
        Ev::Params(id, with_role("RESPONDER", &[])),
        Ev::Stdin(id, big),
        Ev::StdinEnd(id),
    ];
    assert_eq!(o, ok(expect, vec![]));
}

#[test]
fn item8_bad_version_is_an_error() {
    for v in [0u8, 2, 255] {
        let mut h = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
        h[0] = v;
        assert_eq!(run(&h).result, Err(ProtocolError::BadVersion(v)));
        // Mid-request, after some STDIN.
        let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
        s.extend(rec(rtype::PARAMS, 1, &[], 0));
        s.extend(rec(rtype::STDIN, 1, b"ab", 6));
        let mut bad = rec(rtype::STDIN, 1, b"cd", 0);
        bad[0] = v;
        s.extend(bad);
        let o = run(&s);
        assert_eq!(o.result, Err(ProtocolError::BadVersion(v)));
        assert_eq!(o.events.last(), Some(&Ev::Stdin(1, b"ab".to_vec())));
    }
    // The error sticks.
    let mut e = Engine::new(EngineConfig::default());
    let mut sink = TestSink::new();
    let mut out = Vec::new();
    let bad = [9u8, 1, 0, 1, 0, 8, 0, 0];
    assert!(e.feed(&bad, &mut sink, &mut out).is_err());
    let good = rec(rtype::GET_VALUES, 0, &[], 0);
    assert_eq!(
        e.feed(&good, &mut sink, &mut out),
        Err(ProtocolError::BadVersion(9))
    );
    assert!(out.is_empty());
}

#[test]
fn item10_padding_skipped_on_every_record() {
    for pad in 0..=255u8 {
        let (s, events, out) = full_request(pad);
        assert_eq!(run(&s), ok(events.clone(), out.clone()), "pad {pad}");
        assert_eq!(run_bytewise(&s), ok(events, out), "pad {pad} bytewise");
    }
}

#[test]
fn item10_padding_split_at_every_offset() {
    for pad in [0u8, 1, 7, 8, 9, 255] {
        let (s, events, out) = full_request(pad);
        for cut in 0..=s.len() {
            let o = run_with(EngineConfig::default(), &mut TestSink::new(), &s, &[cut]);
            assert_eq!(o, ok(events.clone(), out.clone()), "pad {pad} cut {cut}");
        }
    }
}

#[test]
fn item10_padding_skipped_on_begin_request() {
    // libfcgi lost every param when BEGIN_REQUEST carried padding.
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 8);
    s.extend(rec(rtype::PARAMS, 1, &nv(&[(b"A", b"1")]), 3));
    s.extend(rec(rtype::PARAMS, 1, &[], 5));
    s.extend(rec(rtype::STDIN, 1, b"x", 7));
    let o = run(&s);
    assert_eq!(o.result, Ok(()));
    assert_eq!(
        o.events[1],
        Ev::Params(1, with_role("RESPONDER", &[(b"A", b"1")]))
    );
    assert_eq!(o.events[2], Ev::Stdin(1, b"x".to_vec()));
}

#[test]
fn item12_item13_records_for_inactive_ids_ignored() {
    let mut s = Vec::new();
    for rt in [
        rtype::PARAMS,
        rtype::STDIN,
        rtype::DATA,
        rtype::ABORT_REQUEST,
    ] {
        s.extend(rec(rt, 5, &nv(&[(b"X", b"Y")]), 3));
        s.extend(rec(rt, 5, &[], 1));
    }
    assert_eq!(run(&s), ok(vec![], vec![]));
    // An id that ended is inactive again.
    let mut e = Engine::new(EngineConfig::default());
    let mut sink = TestSink::new();
    let mut req = rec(rtype::BEGIN_REQUEST, 5, &begin_body(1, 0), 0);
    req.extend(rec(rtype::PARAMS, 5, &[], 0));
    run_cuts(&mut e, &mut sink, &req, &[]);
    assert_eq!(e.active(), 1);
    e.end_request(5);
    assert_eq!(e.active(), 0);
    assert!(e.is_idle());
    assert_eq!(run_cuts(&mut e, &mut sink, &s, &[]), ok(vec![], vec![]));
}

#[test]
fn item14_item20_item21_item22_get_values_answer_byte_exact() {
    let q = nv(&[
        (b"FCGI_MAX_CONNS", b"ignored"),
        (b"UNKNOWN", b""),
        (b"FCGI_MAX_REQS", b""),
        (b"FCGI_MPXS_CONNS", b""),
    ]);
    let o = run(&rec(rtype::GET_VALUES, 0, &q, 3));
    let mut expect = Vec::new();
    let body = nv(&[
        (b"FCGI_MAX_CONNS", b"10"),
        (b"FCGI_MAX_REQS", b"50"),
        (b"FCGI_MPXS_CONNS", b"1"),
    ]);
    push_record(&mut expect, rtype::GET_VALUES_RESULT, 0, &body);
    assert_eq!(o, ok(vec![], expect));
    // An empty query gets an empty answer; a GET_VALUES with a request id is not management.
    let o = run(&rec(rtype::GET_VALUES, 0, &[], 0));
    assert_eq!(o.out, [1, 10, 0, 0, 0, 0, 0, 0]);
    assert_eq!(run(&rec(rtype::GET_VALUES, 1, &q, 0)), ok(vec![], vec![]));
}

#[test]
fn item20_get_values_answer_capped_at_one_record() {
    let mut sink = TestSink::new();
    sink.mgmt.push((b"BIG".to_vec(), vec![b'b'; 40_000]));
    // Asked twice, the 40000-byte value fits once; small names after it still fit.
    let q = nv(&[(b"BIG", b""), (b"BIG", b""), (b"FCGI_MAX_REQS", b"")]);
    let o = run_with(
        EngineConfig::default(),
        &mut sink,
        &rec(rtype::GET_VALUES, 0, &q, 0),
        &[],
    );
    assert_eq!(o.result, Ok(()));
    let mut expect = Vec::new();
    let body = nv(&[(b"BIG", &[b'b'; 40_000]), (b"FCGI_MAX_REQS", b"50")]);
    push_record(&mut expect, rtype::GET_VALUES_RESULT, 0, &body);
    assert_eq!(o.out, expect);
    // Thousands of repeated names (libfcgi overflowed its stack buffer): bounded answer.
    let name = b"FCGI_MPXS_CONNS";
    let q = nv(&[(name, b"")]).repeat(0xffff / 17);
    let o = run(&rec(rtype::GET_VALUES, 0, &q, 0));
    assert_eq!(o.result, Ok(()));
    let h = Header::parse(o.out[..8].try_into().unwrap());
    assert_eq!(h.rtype, rtype::GET_VALUES_RESULT);
    assert_eq!(
        o.out.len(),
        8 + h.content_len as usize + h.padding_len as usize
    );
    assert_eq!(h.content_len as usize, 0xffff / 18 * 18);
}

#[test]
fn item20_malformed_get_values_is_an_error() {
    let o = run(&rec(rtype::GET_VALUES, 0, &[5, 0, b'a'], 0));
    assert_eq!(o.result, Err(ProtocolError::MalformedGetValues));
    assert!(o.out.is_empty());
}

#[test]
fn item23_get_values_at_any_time() {
    let gv = rec(rtype::GET_VALUES, 0, &nv(&[(b"FCGI_MAX_REQS", b"")]), 2);
    let mut answer = Vec::new();
    push_record(
        &mut answer,
        rtype::GET_VALUES_RESULT,
        0,
        &nv(&[(b"FCGI_MAX_REQS", b"50")]),
    );
    let params = nv(&[(b"NAME", b"VALUE")]);
    let mut s = gv.clone();
    s.extend(rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0));
    s.extend(&gv);
    s.extend(rec(rtype::PARAMS, 1, &params[..3], 0));
    s.extend(&gv);
    s.extend(rec(rtype::PARAMS, 1, &params[3..], 0));
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    s.extend(&gv);
    s.extend(rec(rtype::STDIN, 1, b"abc", 0));
    s.extend(&gv);
    s.extend(rec(rtype::STDIN, 1, b"def", 0));
    s.extend(rec(rtype::STDIN, 1, &[], 0));
    s.extend(&gv);
    let expect = vec![
        Ev::Begin(1, Role::Responder, false),
        Ev::Params(1, with_role("RESPONDER", &[(b"NAME", b"VALUE")])),
        Ev::Stdin(1, b"abcdef".to_vec()),
        Ev::StdinEnd(1),
    ];
    let o = run(&s);
    assert_eq!(o, ok(expect, answer.repeat(6)));
    assert_eq!(run_bytewise(&s), o);
}

#[test]
fn item24_unknown_management_types_answered_and_skipped() {
    // libfcgi delivered "abc" + UNKNOWN("INJ") + "def" as 9 bytes of stdin.
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    s.extend(rec(rtype::STDIN, 1, b"abc", 0));
    let types = [
        200,
        rtype::GET_VALUES_RESULT,
        rtype::PARAMS,
        rtype::STDIN,
        rtype::BEGIN_REQUEST,
        rtype::UNKNOWN_TYPE,
        0,
        255,
    ];
    let mut expect_out = Vec::new();
    for t in types {
        s.extend(rec(t, 0, b"INJ", 5));
        push_unknown_type(&mut expect_out, t);
    }
    s.extend(rec(rtype::STDIN, 1, b"def", 0));
    let o = run(&s);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.events[2], Ev::Stdin(1, b"abcdef".to_vec()));
    assert_eq!(o.out, expect_out);
    assert_eq!(
        &o.out[..16],
        &[1, 11, 0, 0, 0, 8, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0]
    );
    // Before any BEGIN_REQUEST the connection survives too.
    let o = run(&rec(77, 0, b"xyz", 0));
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.out, [1, 11, 0, 0, 0, 8, 0, 0, 77, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn item25_item26_item27_item28_begin_request_body() {
    let cases = [
        (1u16, 0u8, Role::Responder, false, "RESPONDER"),
        (2, 1, Role::Authorizer, true, "AUTHORIZER"),
        (3, 0xff, Role::Filter, true, "FILTER"),
        (1, 0xfe, Role::Responder, false, "RESPONDER"),
    ];
    for (role, flags, r, keep, name) in cases {
        let mut s = rec(rtype::BEGIN_REQUEST, 9, &begin_body(role, flags), 0);
        // Reserved bytes are ignored.
        s[8 + 3..8 + 8].copy_from_slice(&[1, 2, 3, 4, 5]);
        s.extend(rec(rtype::PARAMS, 9, &[], 0));
        let o = run(&s);
        assert_eq!(
            o,
            ok(
                vec![Ev::Begin(9, r, keep), Ev::Params(9, with_role(name, &[]))],
                vec![]
            )
        );
    }
}

#[test]
fn item25_begin_request_of_wrong_length_is_an_error() {
    for len in [0usize, 1, 7, 9, 16] {
        let o = run(&rec(rtype::BEGIN_REQUEST, 1, &vec![0; len], 0));
        assert_eq!(o.result, Err(ProtocolError::BadBeginLength(len as u16)));
        assert!(o.events.is_empty());
    }
}

#[test]
fn item12_duplicate_request_id_is_an_error() {
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
    s.extend(rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0));
    let o = run(&s);
    assert_eq!(o.result, Err(ProtocolError::DuplicateRequestId(1)));
    assert_eq!(o.events, [Ev::Begin(1, Role::Responder, false)]);
}

#[test]
fn item35_cant_mpx_conn_byte_exact() {
    let cfg = EngineConfig {
        mpxs_conns: false,
        ..EngineConfig::default()
    };
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 1), 0);
    s.extend(rec(rtype::BEGIN_REQUEST, 2, &begin_body(1, 1), 4));
    s.extend(rec(rtype::PARAMS, 2, &nv(&[(b"A", b"B")]), 0));
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    let o = run_with(cfg, &mut TestSink::new(), &s, &[]);
    let expect = vec![
        Ev::Begin(1, Role::Responder, true),
        Ev::Params(1, with_role("RESPONDER", &[])),
    ];
    let out = vec![1, 3, 0, 2, 0, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
    assert_eq!(o, ok(expect, out));
}

#[test]
fn item36_unknown_role_byte_exact() {
    for role in [0u16, 4, 0x0100, 0xffff] {
        let mut s = rec(rtype::BEGIN_REQUEST, 0x0203, &begin_body(role, 1), 0);
        // The id stays inactive: its records are ignored.
        s.extend(rec(rtype::PARAMS, 0x0203, &nv(&[(b"A", b"B")]), 0));
        s.extend(rec(rtype::PARAMS, 0x0203, &[], 0));
        let mut e = Engine::new(EngineConfig::default());
        let o = run_cuts(&mut e, &mut TestSink::new(), &s, &[]);
        let out = vec![1, 3, 2, 3, 0, 8, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0];
        assert_eq!(o, ok(vec![], out), "role {role}");
        assert_eq!(e.active(), 0);
    }
}

#[test]
fn item37_overloaded_byte_exact() {
    let cfg = EngineConfig {
        max_reqs_per_conn: 2,
        ..EngineConfig::default()
    };
    let mut s = Vec::new();
    for id in 1..=3 {
        s.extend(rec(rtype::BEGIN_REQUEST, id, &begin_body(1, 0), 0));
    }
    let mut e = Engine::new(cfg);
    let o = run_cuts(&mut e, &mut TestSink::new(), &s, &[]);
    let expect = vec![
        Ev::Begin(1, Role::Responder, false),
        Ev::Begin(2, Role::Responder, false),
    ];
    assert_eq!(
        o,
        ok(expect, vec![1, 3, 0, 3, 0, 8, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0])
    );
    assert_eq!(e.active(), 2);
    // Once one ends, the next is admitted.
    e.end_request(1);
    let o = run_cuts(&mut e, &mut TestSink::new(), &s[32..], &[]);
    assert_eq!(o, ok(vec![Ev::Begin(3, Role::Responder, false)], vec![]));
}

#[test]
fn item37_sink_refusal_answers_end_request() {
    let mut sink = TestSink::new();
    sink.admission = Admission::Refuse(ProtocolStatus::Overloaded);
    let mut s = rec(rtype::BEGIN_REQUEST, 7, &begin_body(2, 0), 0);
    s.extend(rec(rtype::PARAMS, 7, &[], 0));
    let mut e = Engine::new(EngineConfig::default());
    let o = run_cuts(&mut e, &mut sink, &s, &[]);
    let mut out = Vec::new();
    push_end_request(&mut out, 7, 0, ProtocolStatus::Overloaded);
    assert_eq!(o, ok(vec![Ev::Begin(7, Role::Authorizer, false)], out));
    assert_eq!(e.active(), 0);
}

#[test]
fn item15_item16_item30_params_split_across_records_at_any_byte() {
    let pairs: &[(&[u8], &[u8])] = &[
        (b"REQUEST_METHOD", b"GET"),
        (&[b'n'; 130], &[b'v'; 300]),
        (b"E", b""),
        (b"\0\xff=", b"\0\x01"),
    ];
    let body = nv(pairs);
    for a in 0..=body.len() {
        for b in (a..=body.len()).step_by(7) {
            let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
            for part in [&body[..a], &body[a..b], &body[b..]] {
                if !part.is_empty() {
                    s.extend(rec(rtype::PARAMS, 1, part, 1));
                }
            }
            s.extend(rec(rtype::PARAMS, 1, &[], 0));
            let o = run(&s);
            let expect = vec![
                Ev::Begin(1, Role::Responder, false),
                Ev::Params(1, with_role("RESPONDER", pairs)),
            ];
            assert_eq!(o, ok(expect, vec![]), "split {a} {b}");
        }
    }
}

#[test]
fn item17_item18_item19_one_and_four_byte_lengths() {
    for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
        let name = vec![b'N'; len.min(300)];
        let value: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let body = nv(&[(&name, &value)]);
        let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
        for chunk in body.chunks(0xfff8) {
            s.extend(rec(rtype::PARAMS, 1, chunk, 0));
        }
        s.extend(rec(rtype::PARAMS, 1, &[], 0));
        let o = run(&s);
        assert_eq!(o.result, Ok(()));
        assert_eq!(
            o.events[1],
            Ev::Params(1, with_role("RESPONDER", &[(&name, &value)]))
        );
    }
}

#[test]
fn params_limits_refused_before_allocation() {
    let cfg = EngineConfig {
        max_params_bytes: 16,
        max_params_count: 2,
        ..EngineConfig::default()
    };
    let start = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
    // Name length 0x7ffffff0: refused as soon as the length is read, nothing reserved.
    let mut s = start.clone();
    s.extend(rec(rtype::PARAMS, 1, &[0xff, 0xff, 0xff, 0xf0, 16], 0));
    let mut e = Engine::new(EngineConfig::default());
    let o = run_cuts(&mut e, &mut TestSink::new(), &s, &[]);
    assert_eq!(o.result, Err(ProtocolError::ParamsTooLarge(1)));
    let store = e.params_of(1).unwrap();
    assert_eq!((store.len(), store.payload_bytes()), (1, 18)); // FCGI_ROLE only
                                                               // Bytes: 16 exactly is fine (FCGI_ROLE is not counted), 17 is not.
    let mut s = start.clone();
    s.extend(rec(rtype::PARAMS, 1, &nv(&[(b"ABCDEFGH", b"12345678")]), 0));
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    assert_eq!(run_with(cfg, &mut TestSink::new(), &s, &[]).result, Ok(()));
    let mut s = start.clone();
    s.extend(rec(
        rtype::PARAMS,
        1,
        &nv(&[(b"ABCDEFGH", b"123456789")]),
        0,
    ));
    let o = run_with(cfg, &mut TestSink::new(), &s, &[]);
    assert_eq!(o.result, Err(ProtocolError::ParamsTooLarge(1)));
    // Count: 2 pairs are fine, the third is refused.
    let mut s = start.clone();
    s.extend(rec(
        rtype::PARAMS,
        1,
        &nv(&[(b"A", b""), (b"B", b""), (b"C", b"")]),
        0,
    ));
    let o = run_with(cfg, &mut TestSink::new(), &s, &[]);
    assert_eq!(o.result, Err(ProtocolError::TooManyParams(1)));
    // Limits apply to requests that begin after set_config.
    let mut e = Engine::new(EngineConfig::default());
    let mut sink = TestSink::new();
    run_cuts(&mut e, &mut sink, &start, &[]);
    e.set_config(cfg);
    let big = nv(&[(b"BIG", &[b'x'; 100])]);
    let mut s = rec(rtype::PARAMS, 1, &big, 0);
    s.extend(rec(rtype::BEGIN_REQUEST, 2, &begin_body(1, 0), 0));
    s.extend(rec(rtype::PARAMS, 2, &big, 0));
    let o = run_cuts(&mut e, &mut sink, &s, &[]);
    assert_eq!(o.result, Err(ProtocolError::ParamsTooLarge(2)));
}

#[test]
fn item15_params_cut_inside_a_pair_is_malformed() {
    let body = nv(&[(b"NAME", b"VALUE")]);
    for cut in 1..body.len() {
        let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
        s.extend(rec(rtype::PARAMS, 1, &body[..cut], 0));
        s.extend(rec(rtype::PARAMS, 1, &[], 0));
        let o = run(&s);
        assert_eq!(
            o.result,
            Err(ProtocolError::MalformedParams(1)),
            "cut {cut}"
        );
        assert_eq!(o.events.len(), 1);
    }
}

#[test]
fn item38_records_out_of_order_are_errors() {
    let begin = rec(rtype::BEGIN_REQUEST, 1, &begin_body(3, 0), 0);
    let params_end = rec(rtype::PARAMS, 1, &[], 0);
    let stdin_end = rec(rtype::STDIN, 1, &[], 0);
    let data_end = rec(rtype::DATA, 1, &[], 0);
    let cases: Vec<(Vec<&[u8]>, u8, bool)> = vec![
        (vec![], rtype::STDIN, false),
        (vec![], rtype::STDIN, true),
        (vec![], rtype::DATA, true),
        (vec![&params_end], rtype::DATA, false),
        (vec![&params_end], rtype::DATA, true),
        (vec![&params_end], rtype::PARAMS, false),
        (vec![&params_end], rtype::PARAMS, true),
        (vec![&params_end, &stdin_end], rtype::STDIN, false),
        (vec![&params_end, &stdin_end], rtype::PARAMS, true),
        (vec![&params_end, &stdin_end, &data_end], rtype::DATA, false),
    ];
    for (before, rt, empty) in cases {
        let mut s = begin.clone();
        for r in &before {
            s.extend_from_slice(r);
        }
        s.extend(rec(rt, 1, if empty { b"" } else { b"x" }, 0));
        let o = run(&s);
        let err = ProtocolError::UnexpectedRecord {
            rtype: rt,
            request_id: 1,
        };
        assert_eq!(
            o.result,
            Err(err),
            "{} then {rt} empty={empty}",
            before.len()
        );
    }
}

#[test]
fn item15_extra_empty_stream_records_ignored() {
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(3, 0), 0);
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    s.extend(rec(rtype::STDIN, 1, &[], 0));
    s.extend(rec(rtype::STDIN, 1, &[], 3));
    s.extend(rec(rtype::DATA, 1, &[], 0));
    s.extend(rec(rtype::STDIN, 1, &[], 0));
    s.extend(rec(rtype::DATA, 1, &[], 0));
    let o = run(&s);
    let expect = vec![
        Ev::Begin(1, Role::Filter, false),
        Ev::Params(1, with_role("FILTER", &[])),
        Ev::StdinEnd(1),
        Ev::DataEnd(1),
    ];
    assert_eq!(o, ok(expect, vec![]));
}

#[test]
fn item31_item32_application_types_from_the_peer_ignored() {
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
    for rt in [
        rtype::STDOUT,
        rtype::STDERR,
        rtype::END_REQUEST,
        rtype::UNKNOWN_TYPE,
        rtype::GET_VALUES_RESULT,
        rtype::GET_VALUES,
        12,
        99,
        255,
    ] {
        s.extend(rec(rt, 1, b"leak", 4));
        s.extend(rec(rt, 1, &[], 0));
    }
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    s.extend(rec(rtype::STDIN, 1, b"ok", 0));
    let expect = vec![
        Ev::Begin(1, Role::Responder, false),
        Ev::Params(1, with_role("RESPONDER", &[])),
        Ev::Stdin(1, b"ok".to_vec()),
    ];
    assert_eq!(run(&s), ok(expect, vec![]));
}

#[test]
fn item33_abort_makes_the_id_inactive_at_once() {
    let mut e = Engine::new(EngineConfig::default());
    let mut sink = TestSink::new();
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 1), 0);
    s.extend(rec(rtype::PARAMS, 1, &nv(&[(b"A", b"B")]), 0));
    s.extend(rec(rtype::ABORT_REQUEST, 1, &[], 0));
    // Nothing more reaches the sink for the aborted id.
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    s.extend(rec(rtype::STDIN, 1, b"late", 0));
    s.extend(rec(rtype::ABORT_REQUEST, 1, &[], 0));
    let o = run_cuts(&mut e, &mut sink, &s, &[]);
    let expect = vec![Ev::Begin(1, Role::Responder, true), Ev::Abort(1)];
    assert_eq!(o, ok(expect, vec![]));
    assert_eq!(e.active(), 0);
    e.end_request(1); // The runtime's call after its END_REQUEST is harmless.
                      // Abort during STDIN; then the id can be used again.
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 1), 0);
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    s.extend(rec(rtype::STDIN, 1, b"ab", 0));
    s.extend(rec(rtype::ABORT_REQUEST, 1, b"body?", 3));
    s.extend(rec(rtype::STDIN, 1, b"cd", 0));
    s.extend(rec(rtype::BEGIN_REQUEST, 1, &begin_body(2, 0), 0));
    let o = run_cuts(&mut e, &mut sink, &s, &[]);
    let expect = vec![
        Ev::Begin(1, Role::Responder, true),
        Ev::Params(1, with_role("RESPONDER", &[])),
        Ev::Stdin(1, b"ab".to_vec()),
        Ev::Abort(1),
        Ev::Begin(1, Role::Authorizer, false),
    ];
    assert_eq!(o, ok(expect, vec![]));
    assert_eq!(e.active(), 1);
}

#[test]
fn item16_byte_by_byte_equals_one_shot() {
    let (s, events, out) = full_request(3);
    let one = run(&s);
    assert_eq!(one, ok(events, out));
    assert_eq!(run_bytewise(&s), one);
}

#[test]
fn item16_back_pressure_delivers_the_same_bytes() {
    let stdin: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(3, 0), 0);
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    for chunk in stdin.chunks(1000) {
        s.extend(rec(rtype::STDIN, 1, chunk, 5));
    }
    s.extend(rec(rtype::STDIN, 1, &[], 0));
    s.extend(rec(rtype::DATA, 1, &stdin[..100], 2));
    s.extend(rec(rtype::DATA, 1, &[], 0));
    let expect = run(&s);
    assert_eq!(expect.result, Ok(()));
    let mut sink = TestSink::new();
    sink.take = 3;
    assert_eq!(
        run_with(EngineConfig::default(), &mut sink, &s, &[]),
        expect
    );
    let cuts: Vec<usize> = (0..s.len()).step_by(11).collect();
    assert_eq!(
        run_with(EngineConfig::default(), &mut sink, &s, &cuts),
        expect
    );
}

#[test]
fn back_pressure_returns_the_consumed_count() {
    struct Paused(usize);
    impl Sink for Paused {
        fn begin(&mut self, _: u16, _: Role, _: bool) -> Admission {
            Admission::Admit
        }
        fn params(&mut self, _: u16, _: &mut ParamStore) {}
        fn stdin(&mut self, _: u16, data: &[u8]) -> usize {
            let n = data.len().min(self.0);
            self.0 -= n;
            n
        }
        fn stdin_end(&mut self, _: u16) {}
        fn data(&mut self, _: u16, _: &[u8]) -> usize {
            0
        }
        fn data_end(&mut self, _: u16) {}
        fn abort(&mut self, _: u16) {}
        fn mgmt_value(&mut self, _: &[u8], _: &mut Vec<u8>) -> bool {
            false
        }
    }
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    let stdin_at = s.len() + 8;
    s.extend(rec(rtype::STDIN, 1, b"0123456789", 6));
    let mut e = Engine::new(EngineConfig::default());
    let mut out = Vec::new();
    let mut sink = Paused(4);
    assert_eq!(e.feed(&s, &mut sink, &mut out), Ok(stdin_at + 4));
    assert_eq!(e.feed(&s[stdin_at + 4..], &mut sink, &mut out), Ok(0));
    assert!(!e.is_idle());
    sink.0 = 100;
    let rest = s.len() - stdin_at - 4;
    assert_eq!(e.feed(&s[stdin_at + 4..], &mut sink, &mut out), Ok(rest));
    assert_eq!(sink.0, 94);
}

#[test]
fn item38_multiplexed_ids_interleaved() {
    let mut s = Vec::new();
    let p1 = nv(&[(b"ID", b"one")]);
    let p2 = nv(&[(b"ID", b"two")]);
    s.extend(rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 1), 0));
    s.extend(rec(rtype::BEGIN_REQUEST, 2, &begin_body(3, 1), 1));
    s.extend(rec(rtype::PARAMS, 2, &p2[..4], 2));
    s.extend(rec(rtype::PARAMS, 1, &p1[..2], 3));
    s.extend(rec(rtype::PARAMS, 2, &p2[4..], 0));
    s.extend(rec(rtype::PARAMS, 1, &p1[2..], 0));
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    s.extend(rec(rtype::STDIN, 1, b"1a", 0));
    s.extend(rec(rtype::PARAMS, 2, &[], 0));
    s.extend(rec(rtype::STDIN, 2, b"2a", 0));
    s.extend(rec(rtype::STDIN, 1, b"1b", 0));
    s.extend(rec(rtype::STDIN, 2, &[], 0));
    s.extend(rec(rtype::DATA, 2, b"2d", 0));
    s.extend(rec(rtype::STDIN, 1, &[], 0));
    let expect = vec![
        Ev::Begin(1, Role::Responder, true),
        Ev::Begin(2, Role::Filter, true),
        Ev::Params(1, with_role("RESPONDER", &[(b"ID", b"one")])),
        Ev::Stdin(1, b"1a".to_vec()),
        Ev::Params(2, with_role("FILTER", &[(b"ID", b"two")])),
        Ev::Stdin(2, b"2a".to_vec()),
        Ev::Stdin(1, b"1b".to_vec()),
        Ev::StdinEnd(2),
        Ev::Data(2, b"2d".to_vec()),
        Ev::StdinEnd(1),
    ];
    let mut e = Engine::new(EngineConfig::default());
    assert_eq!(
        run_cuts(&mut e, &mut TestSink::new(), &s, &[]),
        ok(expect.clone(), vec![])
    );
    assert_eq!(e.active(), 2);
    assert!(e.is_active(1) && e.is_active(2) && !e.is_active(3));
    assert_eq!(run_bytewise(&s), ok(expect, vec![]));
}

#[test]
fn item12_end_request_recycles_and_skips_the_rest_of_a_record() {
    let mut e = Engine::new(EngineConfig::default());
    let mut sink = TestSink::new();
    assert!(e.is_idle());
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    let record = rec(rtype::STDIN, 1, b"0123456789", 6);
    s.extend(&record[..8 + 4]);
    let o = run_cuts(&mut e, &mut sink, &s, &[]);
    assert_eq!(o.events.last(), Some(&Ev::Stdin(1, b"0123".to_vec())));
    assert!(!e.is_idle());
    // The application ends the request while the record is half received.
    e.end_request(1);
    assert_eq!(e.active(), 0);
    assert!(!e.is_idle()); // still inside the record
    let mut rest = record[8 + 4..].to_vec();
    rest.extend(rec(rtype::STDIN, 1, b"more", 0));
    let o = run_cuts(&mut e, &mut sink, &rest, &[]);
    assert_eq!(o, ok(vec![], vec![]));
    assert!(e.is_idle());
    // A BEGIN_REQUEST half received when the application ends the same id is not lost.
    let mut s = rec(rtype::BEGIN_REQUEST, 1, &begin_body(1, 0), 0);
    s.extend(rec(rtype::PARAMS, 1, &[], 0));
    let begin = rec(rtype::BEGIN_REQUEST, 1, &begin_body(2, 0), 0);
    s.extend(&begin[..12]);
    run_cuts(&mut e, &mut sink, &s, &[]);
    e.end_request(1);
    let o = run_cuts(&mut e, &mut sink, &begin[12..], &[]);
    assert_eq!(o, ok(vec![Ev::Begin(1, Role::Authorizer, false)], vec![]));
    e.end_request(1);
    // Many requests in sequence reuse the same slot.
    for id in 1..=100 {
        let mut s = rec(rtype::BEGIN_REQUEST, id, &begin_body(1, 0), 0);
        s.extend(rec(rtype::PARAMS, id, &nv(&[(b"N", b"V")]), 0));
        s.extend(rec(rtype::PARAMS, id, &[], 0));
        let o = run_cuts(&mut e, &mut sink, &s, &[]);
        assert_eq!(
            o.events[1],
            Ev::Params(id, with_role("RESPONDER", &[(b"N", b"V")]))
        );
        e.end_request(id);
        assert_eq!(e.spare.len(), 1);
    }
}

/// A tiny xorshift generator: deterministic, no crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Checks the invariants that hold after any run, and that the run does not depend on how
/// the input was split.
fn check_consistent(s: &[u8], rng: &mut Rng, cfg: EngineConfig) {
    let mut e = Engine::new(cfg);
    let mut sink = TestSink::new();
    let whole = run_cuts(&mut e, &mut sink, s, &[]);
    assert!(e.active() <= cfg.max_reqs_per_conn as usize);
    for ev in &whole.events {
        let id = match ev {
            Ev::Begin(id, ..) | Ev::Params(id, _) | Ev::Stdin(id, _) | Ev::StdinEnd(id) => *id,
            Ev::Data(id, _) | Ev::DataEnd(id) | Ev::Abort(id) => *id,
        };
        assert_ne!(id, 0, "event for the management id");
    }
    // Every answer is a sequence of well-formed version-1 records.
    let mut pos = 0;
    while pos < whole.out.len() {
        let h = Header::parse(whole.out[pos..pos + 8].try_into().unwrap());
        assert_eq!(h.version, 1);
        pos += 8 + h.content_len as usize + h.padding_len as usize;
    }
    assert_eq!(pos, whole.out.len());
    let mut cuts: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(s.len() + 1)).collect();
    cuts.sort_unstable();
    let mut sink = TestSink::new();
    sink.take = 1 + rng.below(20);
    let split = run_with(cfg, &mut sink, s, &cuts);
    assert_eq!(split, whole, "split at {cuts:?}");
}

#[test]
fn fuzz_never_panics_and_is_split_invariant() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let cfgs = [
        EngineConfig::default(),
        EngineConfig {
            mpxs_conns: false,
            max_reqs_per_conn: 1,
            max_params_bytes: 64,
            max_params_count: 4,
        },
    ];
    // Random bytes, mostly behind plausible headers so that the parser gets deep.
    for i in 0..3000 {
        let mut s = Vec::new();
        for _ in 0..rng.below(12) {
            let rt = if rng.below(4) == 0 {
                rng.below(256) as u8
            } else {
                1 + rng.below(11) as u8
            };
            let id = [0u16, 1, 2, 3][rng.below(4)];
            let content: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
            let mut r = rec(rt, id, &content, rng.below(10) as u8);
            if rt == rtype::BEGIN_REQUEST && rng.below(3) != 0 {
                r = rec(rt, id, &begin_body(1 + rng.below(4) as u16, 1), 0);
            }
            if rng.below(30) == 0 {
                r[0] = rng.next() as u8;
            }
            s.extend(r);
        }
        if i % 3 == 0 {
            s = (0..rng.below(100)).map(|_| rng.next() as u8).collect();
        }
        check_consistent(&s, &mut rng, cfgs[i % 2]);
    }
    // Mutations of valid streams.
    let (base, _, _) = full_request(3);
    let mut mux = Vec::new();
    for id in 1..=2 {
        mux.extend(rec(rtype::BEGIN_REQUEST, id, &begin_body(3, 1), 0));
        mux.extend(rec(rtype::PARAMS, id, &nv(&[(b"K", &[b'v'; 130])]), 1));
    }
    for id in 1..=2 {
        mux.extend(rec(rtype::PARAMS, id, &[], 0));
        mux.extend(rec(rtype::STDIN, id, b"in", 0));
        mux.extend(rec(rtype::ABORT_REQUEST, id, &[], 0));
    }
    for i in 0..3000 {
        let mut s = if i % 2 == 0 {
            base.clone()
        } else {
            mux.clone()
        };
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(s.len());
            match rng.below(4) {
                0 => s[at] = rng.next() as u8,
                1 => s[at] ^= 1 << rng.below(8),
                2 => {
                    s.remove(at);
                }
                _ => s.insert(at, rng.next() as u8),
            }
        }
        if rng.below(4) == 0 {
            s.truncate(rng.below(s.len() + 1));
        }
        check_consistent(&s, &mut rng, cfgs[i % 2]);
    }
}

/// Found by fuzz/nvpair (input `00 81 00 00 20 f9`): a pair's 4-byte length declared 16 MiB
/// and the store reserved it before any of it arrived. Here 128 requests on one connection
/// each declare a value of 1 MiB (the default limit) in 13 bytes of PARAMS: memory must follow
/// the ~4 KiB received, not the 128 MiB declared.
#[test]
fn declared_params_lengths_are_not_reserved() {
    let mut input = Vec::new();
    for id in 1..=128 {
        input.extend(rec(rtype::BEGIN_REQUEST, id, &begin_body(1, 1), 0));
        let mut pair = vec![1, 0x80, 0x0f, 0xff, 0xff, b'K'];
        pair.extend_from_slice(b"partial");
        input.extend(rec(rtype::PARAMS, id, &pair, 0));
    }
    let mut engine = Engine::new(EngineConfig::default());
    let mut sink = TestSink::new();
    let mut out = Vec::new();
    assert_eq!(engine.feed(&input, &mut sink, &mut out), Ok(input.len()));
    assert_eq!(engine.active(), 128);
    let held = engine.heap_bytes();
    assert!(
        held < 64 * input.len(),
        "{held} bytes held for {} received",
        input.len()
    );
}
