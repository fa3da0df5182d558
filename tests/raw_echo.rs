//! `c-examples/echo` driven with raw FastCGI records over TCP and Unix sockets: keep-alive,
//! pipelining, multiplexing, ABORT_REQUEST, management records, rejection, padding, split
//! pairs, large bodies and output framing. Every read has a timeout; nothing asserts on timing.

mod common;

use common::{
    assert_closed, assert_output, body, cgi_request, echo_expected, echo_expected_for, read_mixed,
    Server, Transport,
};
use fcgi_runtime_protocol::record::{
    push_abort_request, push_begin_request, push_nv_pair, push_record, push_stream,
    push_stream_end, rtype, Header,
};
use fcgi_runtime_tools::client::{decode_nv_pairs, encode_request, Request};
use std::time::Duration;

/// One record with `pad` bytes of (non-zero) padding, whatever alignment that gives.
fn padded(t: u8, id: u16, content: &[u8], pad: u8) -> Vec<u8> {
    let mut v = Header::encode(t, id, content.len() as u16, pad).to_vec();
    v.extend_from_slice(content);
    v.resize(v.len() + pad as usize, 0xEE);
    v
}

/// The encoded PARAMS payload of `req` (no record framing).
fn params_payload(req: &Request) -> Vec<u8> {
    fcgi_runtime_tools::client::encode_pairs(&req.params)
}

fn simple(t: Transport) {
    let s = Server::echo(t, 1);
    let mut c = s.connect();
    let req = cgi_request(1, "a=1&b=2").stdin("hello, world");
    let r = c.request(&req).unwrap();
    assert_output(&r.stdout, &echo_expected_for(&req));
    assert!(r.stderr.is_empty());
    assert_eq!((r.app_status, r.protocol_status), (0, 0));
    // KEEP_CONN was not set: the application closes the connection (§5.1).
    assert_closed(&mut c);
}

fn sequential_same_id(t: Transport) {
    let s = Server::echo(t, 1);
    let mut c = s.connect();
    for i in 0..3 {
        let req = cgi_request(1, &format!("n={i}"))
            .keep_conn(i < 2)
            .stdin(body(100 * i, i as u64));
        let r = c.request(&req).unwrap();
        assert_output(&r.stdout, &echo_expected_for(&req));
    }
    assert_closed(&mut c);
}

fn pipelined(t: Transport) {
    // Requests 2 and 3 arrive while 1 is in progress: multiplexing, which echo opts in to
    // (without it, as under PHP, they would get FCGI_CANT_MPX_CONN).
    let s = Server::echo_mpx(t, 1);
    let mut c = s.connect();
    let reqs: Vec<Request> = (1..=3)
        .map(|id| {
            cgi_request(id, &format!("req={id}"))
                .keep_conn(true)
                .stdin(body(1000 * id as usize, id.into()))
        })
        .collect();
    let mut wire = Vec::new();
    for r in &reqs {
        encode_request(r, &mut wire);
    }
    c.send_raw(&wire).unwrap();
    // One application thread: answered in order, each response whole before the next.
    for r in &reqs {
        let resp = c.read_response(r.id).unwrap();
        assert_output(&resp.stdout, &echo_expected_for(r));
    }
    let last = cgi_request(4, "last").stdin("x");
    let resp = c.request(&last).unwrap();
    assert_output(&resp.stdout, &echo_expected_for(&last));
    assert_closed(&mut c);
}

fn multiplexed(t: Transport) {
    let s = Server::echo_mpx(t, 3);
    let mut c = s.connect();
    let reqs: Vec<Request> = (1..=3u16)
        .map(|id| {
            cgi_request(id, &format!("mpx={id}"))
                .param("ID", id.to_string())
                .keep_conn(true)
                .stdin(body(3000 * id as usize + 17, 100 + u64::from(id)))
        })
        .collect();
    let mut wire = Vec::new();
    for r in &reqs {
        push_begin_request(&mut wire, r.id, 1, true);
    }
    for r in &reqs {
        push_stream(&mut wire, rtype::PARAMS, r.id, &params_payload(r));
        push_stream_end(&mut wire, rtype::PARAMS, r.id);
    }
    // STDIN records of the three requests interleaved, 1000 bytes at a time.
    let chunks: Vec<Vec<&[u8]>> = reqs
        .iter()
        .map(|r| r.stdin.chunks(1000).collect())
        .collect();
    let rounds = chunks.iter().map(Vec::len).max().unwrap();
    for k in 0..rounds {
        for (r, ch) in reqs.iter().zip(&chunks) {
            if let Some(piece) = ch.get(k) {
                push_record(&mut wire, rtype::STDIN, r.id, piece);
            }
        }
    }
    for id in [3, 1, 2] {
        push_stream_end(&mut wire, rtype::STDIN, id);
    }
    c.send_raw(&wire).unwrap();
    let got = c.read_responses(&[1, 2, 3]).unwrap();
    for r in &reqs {
        let resp = &got[&r.id];
        assert_output(&resp.stdout, &echo_expected_for(r));
        assert_eq!(resp.protocol_status, 0);
    }
    // Still usable afterwards.
    let again = cgi_request(2, "again");
    assert_output(
        &c.request(&again).unwrap().stdout,
        &echo_expected_for(&again),
    );
}

/// ABORT_REQUEST for a request whose PARAMS ended. With `pause`, the abort is sent a little
/// later, so the application has most likely taken the request and is sleeping in it; without,
/// it arrives in the same write and most likely finds the request still queued. Both outcomes
/// are valid either way: nothing here depends on which path the runtime took.
fn abort_case(t: Transport, pause: Option<Duration>) {
    let s = Server::echo(t, 1);
    let mut c = s.connect();
    let slow = cgi_request(1, "sleep_ms=500").keep_conn(true);
    let mut wire = Vec::new();
    push_begin_request(&mut wire, 1, 1, true);
    push_stream(&mut wire, rtype::PARAMS, 1, &params_payload(&slow));
    push_stream_end(&mut wire, rtype::PARAMS, 1);
    if let Some(p) = pause {
        c.send_raw(&wire).unwrap();
        wire.clear();
        std::thread::sleep(p);
    }
    push_abort_request(&mut wire, 1);
    c.send_raw(&wire).unwrap();
    // Output may precede it (an aborted request need not close STDOUT), then exactly one
    // END_REQUEST with REQUEST_COMPLETE (§5.4).
    loop {
        let r = c
            .read_record()
            .unwrap()
            .expect("END_REQUEST for the aborted request");
        assert_eq!(r.id, 1, "{r:?}");
        if r.rtype == rtype::END_REQUEST {
            assert_eq!(r.content.len(), 8);
            assert_eq!(r.content[4], 0, "REQUEST_COMPLETE");
            break;
        }
        assert!(matches!(r.rtype, rtype::STDOUT | rtype::STDERR), "{r:?}");
    }
    // The connection goes on; a stray record of request 1 would break these.
    let next = cgi_request(2, "after=abort").keep_conn(true).stdin("more");
    assert_output(&c.request(&next).unwrap().stdout, &echo_expected_for(&next));
    let reuse = cgi_request(1, "reuse=1").stdin("again");
    assert_output(
        &c.request(&reuse).unwrap().stdout,
        &echo_expected_for(&reuse),
    );
    assert_closed(&mut c);
}

fn abort_queued(t: Transport) {
    abort_case(t, None)
}

fn abort_running(t: Transport) {
    abort_case(t, Some(Duration::from_millis(200)))
}

fn get_values_mid_stdin(t: Transport) {
    let s = Server::echo(t, 1);
    let mut c = s.connect();
    let req = cgi_request(1, "gv=1").stdin("abcdef");
    let mut wire = Vec::new();
    push_begin_request(&mut wire, 1, 1, false);
    push_stream(&mut wire, rtype::PARAMS, 1, &params_payload(&req));
    push_stream_end(&mut wire, rtype::PARAMS, 1);
    push_record(&mut wire, rtype::STDIN, 1, b"abc");
    let mut q = Vec::new();
    for n in [
        "FCGI_MPXS_CONNS",
        "NO_SUCH_VARIABLE",
        "FCGI_MAX_CONNS",
        "FCGI_MAX_REQS",
    ] {
        push_nv_pair(&mut q, n.as_bytes(), b"");
    }
    push_record(&mut wire, rtype::GET_VALUES, 0, &q);
    push_record(&mut wire, rtype::STDIN, 1, b"def");
    push_stream_end(&mut wire, rtype::STDIN, 1);
    c.send_raw(&wire).unwrap();
    let (resp, others) = read_mixed(&mut c, 1);
    assert_output(&resp.stdout, &echo_expected_for(&req));
    assert_eq!(others.len(), 1, "{others:?}");
    let gv = &others[0];
    assert_eq!((gv.rtype, gv.id), (rtype::GET_VALUES_RESULT, 0));
    let pairs = decode_nv_pairs(&gv.content).unwrap();
    let get = |n: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == n.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let mpxs = get("FCGI_MPXS_CONNS").expect("FCGI_MPXS_CONNS answered");
    assert!(mpxs == "0" || mpxs == "1", "{mpxs}");
    for n in ["FCGI_MAX_CONNS", "FCGI_MAX_REQS"] {
        let v = get(n).unwrap_or_else(|| panic!("{n} answered"));
        assert!(v.parse::<u64>().is_ok(), "{n}={v}");
    }
    assert_eq!(get("NO_SUCH_VARIABLE"), None);
    assert_eq!(pairs.len(), 3);
    assert_closed(&mut c);
}

fn unknown_management_type(t: Transport) {
    let s = Server::echo(t, 1);
    let mut c = s.connect();
    // Content that would corrupt the next stream if it were not skipped (§4.2).
    c.send_raw(&padded(20, 0, b"INJECTED", 5)).unwrap();
    let rec = c.read_record().unwrap().expect("UNKNOWN_TYPE");
    assert_eq!((rec.rtype, rec.id), (rtype::UNKNOWN_TYPE, 0));
    assert_eq!(rec.content, [20, 0, 0, 0, 0, 0, 0, 0]);
    let req = cgi_request(1, "").stdin("payload");
    assert_output(&c.request(&req).unwrap().stdout, &echo_expected_for(&req));
}

fn unknown_role(t: Transport) {
    let s = Server::echo(t, 1);
    let mut c = s.connect();
    // Its PARAMS and STDIN follow; they belong to an id that is inactive again and are ignored.
    let bad = cgi_request(1, "").role(9).keep_conn(true).stdin("ignored");
    c.send_request(&bad).unwrap();
    let r = c.read_response(1).unwrap();
    assert_eq!(r.protocol_status, 3, "FCGI_UNKNOWN_ROLE");
    assert_eq!(r.records, 1, "only END_REQUEST");
    let req = cgi_request(1, "after=role").stdin("ok");
    assert_output(&c.request(&req).unwrap().stdout, &echo_expected_for(&req));
}

fn padding_255(t: Transport) {
    let s = Server::echo(t, 1);
    let mut c = s.connect();
    let req = cgi_request(1, "pad=1").stdin("padded body");
    let mut wire = padded(rtype::BEGIN_REQUEST, 1, &[0, 1, 0, 0, 0, 0, 0, 0], 255);
    wire.extend(padded(rtype::PARAMS, 1, &params_payload(&req), 255));
    wire.extend(padded(rtype::PARAMS, 1, b"", 255));
    wire.extend(padded(rtype::STDIN, 1, b"padded", 1));
    wire.extend(padded(rtype::STDIN, 1, b" body", 255));
    wire.extend(padded(rtype::STDIN, 1, b"", 255));
    c.send_raw(&wire).unwrap();
    assert_output(
        &c.read_response(1).unwrap().stdout,
        &echo_expected_for(&req),
    );
}

fn split_pairs(t: Transport) {
    let s = Server::echo(t, 1);
    let req = cgi_request(1, "split=1")
        .param("A_LONGER_NAME_TO_CUT", "value")
        .param("BIG", "v".repeat(300))
        .stdin("s");
    let p = params_payload(&req);
    let big_at = p.windows(3).position(|w| w == b"BIG").unwrap() - 5;
    let name_at = p.windows(6).position(|w| w == b"LONGER").unwrap();
    // Cut mid-name, then inside the 4-byte value length of BIG.
    let cuts = [0, name_at, big_at + 2, p.len()];
    let mut c = s.connect();
    let mut wire = Vec::new();
    push_begin_request(&mut wire, 1, 1, true);
    for w in cuts.windows(2) {
        push_record(&mut wire, rtype::PARAMS, 1, &p[w[0]..w[1]]);
    }
    push_stream_end(&mut wire, rtype::PARAMS, 1);
    push_stream(&mut wire, rtype::STDIN, 1, b"s");
    push_stream_end(&mut wire, rtype::STDIN, 1);
    c.send_raw(&wire).unwrap();
    assert_output(
        &c.read_response(1).unwrap().stdout,
        &echo_expected_for(&req),
    );
    // The same params one byte per record (§3.3: a stream does not depend on its split).
    let mut wire = Vec::new();
    push_begin_request(&mut wire, 2, 1, false);
    for b in &p {
        push_record(&mut wire, rtype::PARAMS, 2, std::slice::from_ref(b));
    }
    push_stream_end(&mut wire, rtype::PARAMS, 2);
    push_stream(&mut wire, rtype::STDIN, 2, b"s");
    push_stream_end(&mut wire, rtype::STDIN, 2);
    c.send_raw(&wire).unwrap();
    assert_output(
        &c.read_response(2).unwrap().stdout,
        &echo_expected_for(&req),
    );
}

fn big_body(t: Transport) {
    let s = Server::echo(t, 1);
    let mut c = s.connect();
    let req = cgi_request(1, "big=1").stdin(body(10 << 20, 7));
    let r = c.request(&req).unwrap();
    assert_output(&r.stdout, &echo_expected_for(&req));
}

fn output_framing(t: Transport) {
    let s = Server::echo(t, 1);
    let mut c = s.connect();
    let req = cgi_request(1, "frame=1").stdin(body(70_000, 3));
    c.send_request(&req).unwrap();
    let mut recs = Vec::new();
    loop {
        let r = c.read_record().unwrap().expect("END_REQUEST");
        let end = r.rtype == rtype::END_REQUEST;
        recs.push(r);
        if end {
            break;
        }
    }
    for r in &recs {
        assert_eq!(r.id, 1);
        assert_eq!(
            (r.content.len() + r.padding_len as usize) % 8,
            0,
            "aligned: {r:?}"
        );
    }
    let n = recs.len();
    assert!(n >= 3);
    assert_eq!(
        (recs[n - 2].rtype, recs[n - 2].content.len()),
        (rtype::STDOUT, 0)
    );
    assert_eq!(recs[n - 1].content, [0, 0, 0, 0, 0, 0, 0, 0]);
    let stdout: Vec<u8> = recs[..n - 2]
        .iter()
        .inspect(|r| assert!(r.rtype == rtype::STDOUT && !r.content.is_empty(), "{r:?}"))
        .flat_map(|r| r.content.clone())
        .collect();
    assert_output(&stdout, &echo_expected_for(&req));
    assert_closed(&mut c);
}

fn inactive_ids_ignored(t: Transport) {
    let s = Server::echo(t, 1);
    let mut c = s.connect();
    let mut junk = Vec::new();
    push_record(&mut junk, rtype::STDIN, 5, b"junk");
    push_stream_end(&mut junk, rtype::STDIN, 5);
    push_record(&mut junk, rtype::PARAMS, 6, b"\x01\x01AB");
    push_record(&mut junk, rtype::DATA, 7, b"data");
    push_abort_request(&mut junk, 8);
    c.send_raw(&junk).unwrap();
    let first = cgi_request(1, "first").keep_conn(true).stdin("one");
    assert_output(
        &c.request(&first).unwrap().stdout,
        &echo_expected_for(&first),
    );
    // Request 1 has ended: its records are now for an inactive id.
    let mut late = Vec::new();
    push_record(&mut late, rtype::STDIN, 1, b"late");
    push_stream_end(&mut late, rtype::STDIN, 1);
    push_abort_request(&mut late, 1);
    c.send_raw(&late).unwrap();
    let second = cgi_request(2, "second").stdin("two");
    assert_output(
        &c.request(&second).unwrap().stdout,
        &echo_expected_for(&second),
    );
    assert_closed(&mut c);
}

fn bad_version(t: Transport) {
    let s = Server::echo(t, 1);
    for version in [2u8, 0] {
        let mut c = s.connect();
        let mut wire = Vec::new();
        encode_request(&cgi_request(1, "v").keep_conn(true), &mut wire);
        wire[0] = version;
        c.send_raw(&wire).unwrap();
        assert_closed(&mut c);
    }
    // The server is still fine.
    let mut c = s.connect();
    let req = cgi_request(1, "ok");
    assert_output(&c.request(&req).unwrap().stdout, &echo_expected_for(&req));
}

macro_rules! on_transports {
    ($($name:ident),* $(,)?) => {
        mod tcp {
            $(#[test] fn $name() { super::$name(super::Transport::Tcp) })*
        }
        mod unix {
            $(#[test] fn $name() { super::$name(super::Transport::Unix) })*
        }
    };
}

on_transports!(
    simple,
    sequential_same_id,
    pipelined,
    multiplexed,
    abort_queued,
    abort_running,
    get_values_mid_stdin,
    unknown_management_type,
    unknown_role,
    padding_255,
    split_pairs,
    big_body,
    output_framing,
    inactive_ids_ignored,
    bad_version,
);

/// FastCGI §2.2: a listening socket inherited as fd 0, no address given.
#[test]
fn fd0_listening_socket() {
    let s = Server::echo(Transport::Fd0, 2);
    let mut c = s.connect();
    let req = cgi_request(1, "fd0=1").stdin("inherited");
    assert_output(&c.request(&req).unwrap().stdout, &echo_expected_for(&req));
}

/// A param whose value is empty and names with arbitrary bytes survive as they are.
#[test]
fn odd_params() {
    let s = Server::echo(Transport::Tcp, 1);
    let mut c = s.connect();
    let req = Request::new(9)
        .param("EMPTY", "")
        .param(b"BIN\x01\xff", b"v\x7f")
        .param("X", "y=z");
    let want = echo_expected("RESPONDER", &req.params, b"");
    assert_output(&c.request(&req).unwrap().stdout, &want);
}
