//! fcgi_init on the native face advertises FCGI_MPXS_CONNS=0, as PHP's does (FPM's test
//! bug76922-fcgi-get-value-conn asks for it), and a second request on a busy connection is
//! then refused with FCGI_CANT_MPX_CONN (FastCGI §4.1, §5.5). An application that wants
//! multiplexing opts in through the API (fpm_worker -m: fcgi_set_limit), and one that cannot
//! call the API through FCGI_RUNTIME_MPXS_CONNS=1. (The libfcgi face keeps answering "1" and
//! multiplexing: tests/libfcgi_lifecycle.rs, tests/libfcgi_compare.rs.)

use crate::worker::{body, request, Worker};
use fcgi_runtime_protocol::record::{push_stream_end, rtype};
use fcgi_runtime_tools::client::{encode_begin_and_params, Client, Response, ResponseBuilder};
use std::collections::HashMap;

fn mpxs_conns(c: &mut Client) -> String {
    let v = c.get_values(&["FCGI_MPXS_CONNS"]).expect("GET_VALUES");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0, "FCGI_MPXS_CONNS");
    v[0].1.clone()
}

/// Sends requests 1 and 2 on one connection, the second BEGIN_REQUEST while the first request
/// is still in progress (its STDIN not ended), then ends both STDINs; returns both responses.
fn two_at_once(c: &mut Client) -> HashMap<u16, Response> {
    let mut wire = Vec::new();
    encode_begin_and_params(&request(1, "first").keep_conn(true), &mut wire);
    encode_begin_and_params(&request(2, "second").keep_conn(true), &mut wire);
    push_stream_end(&mut wire, rtype::STDIN, 1);
    push_stream_end(&mut wire, rtype::STDIN, 2);
    c.send_raw(&wire).unwrap();
    let mut open: HashMap<u16, ResponseBuilder> =
        [(1, ResponseBuilder::new()), (2, ResponseBuilder::new())].into();
    let mut done = HashMap::new();
    while !open.is_empty() {
        let rec = c.read_record().unwrap().expect("a record");
        let id = rec.id;
        let b = open.get_mut(&id).expect("a record of request 1 or 2");
        if b.feed(rec).expect("valid framing") {
            done.insert(id, open.remove(&id).unwrap().into_response());
        }
    }
    done
}

#[test]
fn without_opting_in_the_native_face_advertises_0_and_refuses_a_second_request() {
    let w = Worker::start(&[], &[]);
    let mut c = w.connect();
    assert_eq!(mpxs_conns(&mut c), "0");
    let r = two_at_once(&mut c);
    assert_eq!(r[&2].protocol_status, 1, "FCGI_CANT_MPX_CONN");
    assert!(r[&2].stdout.is_empty());
    assert_eq!(r[&1].protocol_status, 0);
    assert_eq!(body(&r[&1]), "ok\n");
    // The connection goes on serving, one request at a time.
    let again = c.request(&request(3, "third").keep_conn(true)).unwrap();
    assert_eq!(body(&again), "ok\n");
}

#[test]
fn an_application_that_opts_in_advertises_1_and_serves_both() {
    let w = Worker::start(&["-m"], &[]);
    let mut c = w.connect();
    assert_eq!(mpxs_conns(&mut c), "1");
    let r = two_at_once(&mut c);
    for id in [1, 2] {
        assert_eq!(r[&id].protocol_status, 0, "request {id}");
        assert_eq!(body(&r[&id]), "ok\n");
    }
}

#[test]
fn the_environment_opts_in_a_program_that_does_not_itself() {
    let w = Worker::start(&[], &[("FCGI_RUNTIME_MPXS_CONNS", "1")]);
    let mut c = w.connect();
    assert_eq!(mpxs_conns(&mut c), "1");
    let r = two_at_once(&mut c);
    assert!(r.values().all(|r| r.protocol_status == 0), "{r:?}");
}
