//! Floods of input: PARAMS at and past the limits, endless PARAMS, STDIN to an application
//! that does not read it.

use crate::app::{req, App, Spec};
use fcgi_runtime_protocol::record::{
    push_begin_request, push_nv_pair, push_record, push_stream_end, rtype,
};
use fcgi_runtime_tools::client::{Client, Request};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `count` pairs whose names and values add up to exactly `bytes`.
fn pairs_totalling(count: usize, bytes: usize) -> Vec<(String, Vec<u8>)> {
    let names: Vec<String> = (0..count).map(|i| format!("P{i:04}")).collect();
    let name_bytes: usize = names.iter().map(|n| n.len()).sum();
    let values = bytes - name_bytes;
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let len = values / count + usize::from(i < values % count);
            (n, vec![b'v'; len])
        })
        .collect()
}

fn request_with(pairs: &[(String, Vec<u8>)]) -> Request {
    pairs
        .iter()
        .fold(Request::new(1), |r, (n, v)| r.param(n, v))
}

/// The peer is cut off: EOF or a reset, without END_REQUEST.
fn assert_cut(c: &mut Client) {
    loop {
        match c.read_record() {
            Ok(None) => return,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Ok(Some(r)) if r.rtype != rtype::END_REQUEST => continue,
            other => panic!("expected the connection to be cut, got {other:?}"),
        }
    }
}

/// 4 threads x 25 connections send PARAMS exactly at the byte and count limits (served), one
/// byte over (cut), one pair over (cut). RSS stays within 64 MiB of the start.
#[test]
fn params_at_and_past_the_limits_from_many_connections() {
    let env = [
        ("FCGI_RUNTIME_MAX_PARAMS_BYTES", "65536"),
        ("FCGI_RUNTIME_MAX_PARAMS_COUNT", "100"),
    ];
    let mut app = App::start(Spec::adv(4, &env));
    app.assert_serves();
    let rss0 = app.rss_kib();
    let at = Arc::new(request_with(&pairs_totalling(100, 65536)));
    let bytes_over = Arc::new(request_with(&pairs_totalling(100, 65537)));
    let count_over = Arc::new(request_with(&pairs_totalling(101, 60000)));
    let addr = app.addr.clone();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (addr, at, bo, co) = (
                addr.clone(),
                at.clone(),
                bytes_over.clone(),
                count_over.clone(),
            );
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let connect = || {
                        let c = Client::connect(&addr).expect("connect");
                        c.set_timeout(Some(crate::app::IO_TIMEOUT)).unwrap();
                        c
                    };
                    let mut c = connect();
                    let out = c.request(&at).expect("at the limits").stdout;
                    assert!(out.ends_with(b"STDIN_LENGTH=0\n"));
                    for over in [&bo, &co] {
                        let mut c = connect();
                        let _ = c.send_request(over);
                        assert_cut(&mut c);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    app.assert_serves();
    let rss1 = app.rss_kib();
    eprintln!("params at/over limits: RSS {rss0} -> {rss1} KiB");
    assert!(
        rss1 < rss0 + 64 * 1024,
        "RSS grew from {rss0} to {rss1} KiB"
    );
}

/// Sends one request whose PARAMS never end, as fast as the server takes them, each record
/// holding `pair` repeated; returns the bytes the server took before cutting the connection.
fn endless_params(app: &App, pair: &[u8]) -> u64 {
    let mut c = app.connect();
    let mut wire = Vec::new();
    push_begin_request(&mut wire, 1, 1, false);
    c.send_raw(&wire).unwrap();
    let mut content = Vec::new();
    while content.len() + pair.len() <= 65535 {
        content.extend_from_slice(pair);
    }
    let mut rec = Vec::new();
    push_record(&mut rec, rtype::PARAMS, 1, &content);
    let mut sent = 0u64;
    // At most 1 GiB: a server that never cuts fails the assertion below, not the time box.
    while sent < 1 << 30 {
        if c.send_raw(&rec).is_err() {
            break;
        }
        sent += rec.len() as u64;
    }
    sent
}

/// A peer sending endless PARAMS (big pairs: the byte limit; empty pairs: the count limit,
/// default limits) is cut after about the limit plus what the sockets buffer; RSS stays within
/// 64 MiB of the start.
#[test]
fn endless_params_are_cut_at_the_limits() {
    let mut app = App::start(Spec::adv(2, &[]));
    app.assert_serves();
    let rss0 = app.rss_kib();
    let mut big = Vec::new();
    push_nv_pair(&mut big, b"N", &vec![b'v'; 4000]);
    let sent_big = endless_params(&app, &big);
    let sent_empty = endless_params(&app, &[0, 0]);
    eprintln!("endless PARAMS: {sent_big} bytes (big pairs), {sent_empty} (empty pairs) taken");
    // The default byte limit is 1 MiB; loopback socket buffers hold a few MiB more.
    assert!(sent_big < 32 << 20, "{sent_big} bytes of PARAMS taken");
    assert!(sent_empty < 32 << 20, "{sent_empty} bytes of PARAMS taken");
    app.assert_serves();
    let rss1 = app.rss_kib();
    eprintln!("endless PARAMS: RSS {rss0} -> {rss1} KiB");
    assert!(
        rss1 < rss0 + 64 * 1024,
        "RSS grew from {rss0} to {rss1} KiB"
    );
}

/// 64 MiB of STDIN to a request whose application never reads it (it answers after 3 s): the
/// server stops reading the socket after its per-request buffer (64 KiB), so the client can
/// only write what the buffers hold; RSS stays within 32 MiB of the start.
#[test]
fn stdin_flood_to_an_application_that_does_not_read_is_held_back() {
    let mut app = App::start(Spec::adv(2, &[]));
    app.assert_serves();
    let rss0 = app.rss_kib();
    let mut c = app.connect();
    let mut head = Vec::new();
    fcgi_runtime_tools::client::encode_begin_and_params(
        &req(1, "noread=1&sleep_ms=3000"),
        &mut head,
    );
    c.send_raw(&head).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let mut w = Client::from_stream(c.stream().try_clone().unwrap());
    w.set_timeout(Some(Duration::from_secs(20))).unwrap();
    let writer = {
        let written = written.clone();
        std::thread::spawn(move || {
            let mut rec = Vec::new();
            push_record(&mut rec, rtype::STDIN, 1, &vec![b's'; 65528]);
            for _ in 0..1024 {
                if w.send_raw(&rec).is_err() {
                    return false;
                }
                written.fetch_add(rec.len() as u64, Ordering::Relaxed);
            }
            let mut end = Vec::new();
            push_stream_end(&mut end, rtype::STDIN, 1);
            w.send_raw(&end).is_ok()
        })
    };
    std::thread::sleep(Duration::from_millis(2000));
    let held = written.load(Ordering::Relaxed);
    let rss_mid = app.rss_kib();
    let resp = c.read_response(1).expect("answer without reading STDIN");
    assert!(resp.stdout.ends_with(b"STDIN_LENGTH=0\n"));
    let completed = writer.join().unwrap();
    eprintln!(
        "STDIN flood: {held} bytes taken while the application did not read (of 64 MiB); \
         writer {}; RSS {rss0} -> {rss_mid} KiB",
        if completed {
            "completed"
        } else {
            "was cut off"
        }
    );
    assert!(
        held < 16 << 20,
        "{held} bytes of STDIN taken by a request that does not read"
    );
    assert!(
        rss_mid < rss0 + 32 * 1024,
        "RSS grew from {rss0} to {rss_mid} KiB"
    );
    app.assert_serves();
}
