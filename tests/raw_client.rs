//! The blocking client library (`fcgi_runtime_tools::client`) against fake applications that speak raw
//! records from a thread: framing checks, multiplexed reads, GET_VALUES, large bodies. Needs no
//! runtime and no C examples.

use fcgi_runtime_protocol::record::{
    push_end_request, push_nv_pair, push_record, push_stream, push_stream_end, rtype, Header,
    ProtocolStatus,
};
use fcgi_runtime_tools::client::{decode_nv_pairs, Client, Request, Response};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

/// Reads one record from a raw stream: (header, content); None at EOF.
fn srv_read(s: &mut TcpStream) -> Option<(Header, Vec<u8>)> {
    let mut h = [0u8; 8];
    s.read_exact(&mut h).ok()?;
    let h = Header::parse(&h);
    let mut c = vec![0; h.content_len as usize + h.padding_len as usize];
    s.read_exact(&mut c).ok()?;
    c.truncate(h.content_len as usize);
    Some((h, c))
}

/// Reads records until the empty STDIN of `id`; returns (params bytes, stdin bytes).
fn srv_read_request(s: &mut TcpStream) -> (Vec<u8>, Vec<u8>) {
    let (mut params, mut stdin) = (Vec::new(), Vec::new());
    while let Some((h, c)) = srv_read(s) {
        match h.rtype {
            rtype::PARAMS => params.extend(c),
            rtype::STDIN if c.is_empty() => break,
            rtype::STDIN => stdin.extend(c),
            _ => {}
        }
    }
    (params, stdin)
}

/// A one-connection fake application on 127.0.0.1.
fn fake(handler: impl FnOnce(TcpStream) + Send + 'static) -> (Client, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        handler(s)
    });
    let c = Client::connect(&a).unwrap();
    c.set_timeout(Some(Duration::from_secs(10))).unwrap();
    (c, h)
}

fn reply(id: u16, out: &[u8], err: &[u8], status: u32) -> Vec<u8> {
    let mut v = Vec::new();
    push_stream(&mut v, rtype::STDOUT, id, out);
    if !err.is_empty() {
        push_stream(&mut v, rtype::STDERR, id, err);
        push_stream_end(&mut v, rtype::STDERR, id);
    }
    push_stream_end(&mut v, rtype::STDOUT, id);
    push_end_request(&mut v, id, status, ProtocolStatus::RequestComplete);
    v
}

#[test]
fn simple_request() {
    let (mut c, h) = fake(|mut s| {
        let (params, stdin) = srv_read_request(&mut s);
        let pairs = decode_nv_pairs(&params).unwrap();
        let mut out = Vec::new();
        for (n, v) in pairs {
            out.extend(n);
            out.push(b'=');
            out.extend(v);
            out.push(b'\n');
        }
        out.extend(stdin);
        s.write_all(&reply(1, &out, b"warn", 7)).unwrap();
    });
    let r = c
        .request(&Request::new(1).param("X", "y").stdin("body"))
        .unwrap();
    assert_eq!(r.stdout, b"X=y\nbody");
    assert_eq!(r.stderr, b"warn");
    assert_eq!((r.app_status, r.protocol_status, r.records), (7, 0, 5));
    assert!(r.stdout_closed && r.stderr_closed);
    h.join().unwrap();
    assert!(c.read_record().unwrap().is_none());
}

#[test]
fn large_body_threaded_write() {
    let (mut c, h) = fake(|mut s| {
        // Answer a large part of the output before reading the body at all.
        let big = vec![b'o'; 3 << 20];
        let mut v = Vec::new();
        push_stream(&mut v, rtype::STDOUT, 1, &big);
        let mut w = s.try_clone().unwrap();
        let t = std::thread::spawn(move || w.write_all(&v).unwrap());
        let (_, stdin) = srv_read_request(&mut s);
        t.join().unwrap();
        let mut end = Vec::new();
        push_stream(
            &mut end,
            rtype::STDOUT,
            1,
            stdin.len().to_string().as_bytes(),
        );
        push_stream_end(&mut end, rtype::STDOUT, 1);
        push_end_request(&mut end, 1, 0, ProtocolStatus::RequestComplete);
        s.write_all(&end).unwrap();
    });
    let r = c
        .request(&Request::new(1).stdin(vec![7u8; 5 << 20]))
        .unwrap();
    assert_eq!(r.stdout.len(), (3 << 20) + 7);
    assert!(r.stdout.ends_with(b"5242880"));
    h.join().unwrap();
}

#[test]
fn multiplexed_responses() {
    let (mut c, h) = fake(|mut s| {
        let mut v = Vec::new();
        push_stream(&mut v, rtype::STDOUT, 2, b"two-a");
        push_stream(&mut v, rtype::STDOUT, 1, b"one");
        push_stream(&mut v, rtype::STDOUT, 2, b"two-b");
        push_stream_end(&mut v, rtype::STDOUT, 1);
        push_stream_end(&mut v, rtype::STDOUT, 2);
        push_end_request(&mut v, 2, 2, ProtocolStatus::RequestComplete);
        push_end_request(&mut v, 1, 1, ProtocolStatus::RequestComplete);
        s.write_all(&v).unwrap();
        let _ = srv_read(&mut s);
    });
    let r = c.read_responses(&[1, 2]).unwrap();
    assert_eq!(r[&1].stdout, b"one");
    assert_eq!(r[&2].stdout, b"two-atwo-b");
    assert_eq!((r[&1].app_status, r[&2].app_status), (1, 2));
    drop(c);
    h.join().unwrap();
}

#[test]
fn get_values() {
    let (mut c, h) = fake(|mut s| {
        let (hdr, body) = srv_read(&mut s).unwrap();
        assert_eq!((hdr.rtype, hdr.request_id), (rtype::GET_VALUES, 0));
        let names = decode_nv_pairs(&body).unwrap();
        assert_eq!(names.len(), 2);
        let mut res = Vec::new();
        push_nv_pair(&mut res, b"FCGI_MPXS_CONNS", b"1");
        let mut v = Vec::new();
        push_record(&mut v, rtype::GET_VALUES_RESULT, 0, &res);
        s.write_all(&v).unwrap();
    });
    let v = c.get_values(&["FCGI_MPXS_CONNS", "BOGUS"]).unwrap();
    assert_eq!(v, [("FCGI_MPXS_CONNS".to_string(), "1".to_string())]);
    h.join().unwrap();
}

/// Runs a request against a fake that answers with `bytes`, returning the client's verdict.
fn answer_with(bytes: Vec<u8>) -> io::Result<Response> {
    let (mut c, h) = fake(move |mut s| {
        srv_read_request(&mut s);
        let _ = s.write_all(&bytes);
    });
    let r = c.request(&Request::new(1));
    h.join().unwrap();
    r
}

fn invalid_data(r: io::Result<Response>) -> bool {
    matches!(r, Err(e) if e.kind() == io::ErrorKind::InvalidData)
}

#[test]
fn rejects_bad_framing() {
    // Version 2.
    let mut v = reply(1, b"x", b"", 0);
    v[0] = 2;
    assert!(invalid_data(answer_with(v)));
    // STDOUT data after the end of STDOUT.
    let mut v = Vec::new();
    push_stream_end(&mut v, rtype::STDOUT, 1);
    push_stream(&mut v, rtype::STDOUT, 1, b"late");
    push_end_request(&mut v, 1, 0, ProtocolStatus::RequestComplete);
    assert!(invalid_data(answer_with(v)));
    // END_REQUEST(COMPLETE) without the empty STDOUT.
    let mut v = Vec::new();
    push_stream(&mut v, rtype::STDOUT, 1, b"x");
    push_end_request(&mut v, 1, 0, ProtocolStatus::RequestComplete);
    assert!(invalid_data(answer_with(v)));
    // A record for another id.
    let mut v = reply(2, b"x", b"", 0);
    v.extend(reply(1, b"x", b"", 0));
    assert!(invalid_data(answer_with(v)));
    // A management record in the middle of a response.
    let mut v = Vec::new();
    push_record(&mut v, rtype::UNKNOWN_TYPE, 0, &[99, 0, 0, 0, 0, 0, 0, 0]);
    assert!(invalid_data(answer_with(v)));
    // An input record type coming back.
    let mut v = Vec::new();
    push_stream_end(&mut v, rtype::STDIN, 1);
    assert!(invalid_data(answer_with(v)));
    // A short END_REQUEST body.
    let mut v = Vec::new();
    push_stream_end(&mut v, rtype::STDOUT, 1);
    push_record(&mut v, rtype::END_REQUEST, 1, &[0, 0, 0, 0]);
    assert!(invalid_data(answer_with(v)));
    // EOF before END_REQUEST, and EOF inside a record.
    let mut v = Vec::new();
    push_stream(&mut v, rtype::STDOUT, 1, b"x");
    let e = answer_with(v.clone()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    v.truncate(9);
    let e = answer_with(v).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn rejection_without_stdout_is_accepted() {
    let mut v = Vec::new();
    push_end_request(&mut v, 1, 0, ProtocolStatus::UnknownRole);
    let r = answer_with(v).unwrap();
    assert_eq!((r.protocol_status, r.records), (3, 1));
    assert!(!r.stdout_closed);
}

#[test]
fn padding_is_skipped() {
    // A STDOUT record with 255 bytes of padding, then the normal end.
    let mut v = Header::encode(rtype::STDOUT, 1, 3, 255).to_vec();
    v.extend(b"abc");
    v.extend([0xAA; 255]);
    v.extend(reply(1, b"", b"", 0));
    let r = answer_with(v).unwrap();
    assert_eq!(r.stdout, b"abc");
}
