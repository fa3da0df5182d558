//! Peers that go away or change their mind: vanishing mid-response (close and RST),
//! half-closed sockets, abort storms on a multiplexed connection.

use crate::app::{req, App, Spec, IO_TIMEOUT};
use fcgi_runtime_protocol::record::{push_abort_request, push_begin_request, push_record, rtype};
use fcgi_runtime_tools::client::{encode_begin_and_params, encode_request, Client};
use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Makes close() send RST (SO_LINGER with a zero timeout).
fn set_linger_zero(c: &Client) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a linger struct of the given size.
    let r = unsafe {
        libc::setsockopt(
            c.stream().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

/// 20 clients vanish (10 close, 10 reset) while the application writes 64 MiB to each, with
/// SIGPIPE at its default disposition: the process lives, every write reports the failure,
/// the server goes on, RSS stays within 64 MiB of the start.
#[test]
fn clients_vanishing_mid_response_kill_nothing() {
    let mut spec = Spec::adv(4, &[]);
    spec.args.push("-p".into());
    let mut app = App::start(spec);
    app.assert_serves();
    let rss0 = app.rss_kib();
    for i in 0..20 {
        let mut c = app.connect();
        c.send_request(&req(1, "out=67108864&chunk=65536")).unwrap();
        let mut got = 0;
        while got < 256 * 1024 {
            let r = c.read_record().expect("read").expect("response");
            got += r.content.len();
        }
        if i % 2 == 1 {
            set_linger_zero(&c);
        }
        drop(c);
    }
    let failures = || app.log_text().matches("write failed after").count();
    assert!(
        app.eventually("20 failed writes", || failures() >= 20),
        "{} failed writes reported: {}",
        failures(),
        app.log_text()
    );
    app.assert_serves();
    let rss1 = app.rss_kib();
    eprintln!("vanishing clients: RSS {rss0} -> {rss1} KiB");
    assert!(
        rss1 < rss0 + 64 * 1024,
        "RSS grew from {rss0} to {rss1} KiB"
    );
}

/// Reads until EOF or reset; returns the records' types and ids.
fn read_to_end(c: &mut Client) -> Vec<(u8, u16)> {
    let mut recs = Vec::new();
    loop {
        match c.read_record() {
            Ok(Some(r)) => recs.push((r.rtype, r.id)),
            Ok(None) => return recs,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return recs,
            Err(e) => panic!("reading to EOF: {e}"),
        }
    }
}

/// A request sent whole and then SHUT_WR is answered in full; a half-close in the middle of
/// PARAMS or STDIN ends the connection (no hang) and leaks no descriptor; 50 rounds each.
#[test]
fn half_closed_sockets() {
    let mut app = App::start(Spec::adv(2, &[]));
    app.assert_serves();
    let (fds0, rss0) = (app.fds(), app.rss_kib());
    let body = crate::common::body(100_000, 3);
    for _ in 0..50 {
        // Whole request, then half-close: the answer still arrives.
        let mut c = app.connect();
        let r = req(1, "").stdin(body.clone());
        c.send_request(&r).unwrap();
        c.stream().shutdown_write().unwrap();
        let resp = c.read_response(1).expect("answer after SHUT_WR");
        assert!(resp.stdout.ends_with(b"STDIN_LENGTH=100000\n"));
        // Half-close inside PARAMS.
        let mut c = app.connect();
        let mut wire = Vec::new();
        push_begin_request(&mut wire, 1, 1, true);
        push_record(&mut wire, rtype::PARAMS, 1, &[4, 3, b'A', b'B', b'C', b'D']);
        c.send_raw(&wire).unwrap();
        c.stream().shutdown_write().unwrap();
        let recs = read_to_end(&mut c);
        assert!(recs.iter().all(|(t, _)| *t != rtype::STDOUT), "{recs:?}");
        // Half-close inside STDIN: the application's read fails, it may still answer.
        let mut c = app.connect();
        let mut wire = Vec::new();
        encode_begin_and_params(&req(1, "").keep_conn(true), &mut wire);
        push_record(&mut wire, rtype::STDIN, 1, &body[..5000]);
        c.send_raw(&wire).unwrap();
        c.stream().shutdown_write().unwrap();
        let recs = read_to_end(&mut c);
        let ends = recs
            .iter()
            .filter(|(t, _)| *t == rtype::END_REQUEST)
            .count();
        assert!(ends <= 1, "{recs:?}");
    }
    app.assert_serves();
    assert!(
        app.eventually("descriptors back", || app.fds() <= fds0),
        "server holds {} descriptors, {fds0} before",
        app.fds()
    );
    let rss1 = app.rss_kib();
    eprintln!("half-close: RSS {rss0} -> {rss1} KiB");
    assert!(
        rss1 < rss0 + 32 * 1024,
        "RSS grew from {rss0} to {rss1} KiB"
    );
}

/// What came back on the stormed connection.
#[derive(Default)]
struct Tally {
    ends: HashMap<u16, usize>,
    stdout_seen: HashSet<u16>,
    others: Vec<(u8, u16)>,
}

impl Tally {
    fn add(&mut self, (t, id): (u8, u16)) {
        if t == rtype::END_REQUEST {
            *self.ends.entry(id).or_default() += 1;
        } else if t == rtype::STDOUT {
            self.stdout_seen.insert(id);
        } else if t != rtype::STDERR {
            self.others.push((t, id));
        }
    }
}

/// Thousands of requests on one multiplexed connection, most aborted: before the end of
/// PARAMS, in the middle of STDIN, after the application started writing; aborts for ids
/// never begun; complete requests in between. Exactly one END_REQUEST per begun id, none for
/// the others; RSS stays within 64 MiB of the start.
#[test]
fn abort_storm_on_a_multiplexed_connection() {
    let mut app = App::start(Spec::adv(4, &[]));
    app.assert_serves();
    let rss0 = app.rss_kib();
    let mut c = app.connect();
    let mut reader = Client::from_stream(c.stream().try_clone().unwrap());
    reader.set_timeout(Some(Duration::from_secs(30))).unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        while let Ok(Some(r)) = reader.read_record() {
            if tx.send((r.rtype, r.id)).is_err() {
                break;
            }
        }
    });
    let mut t = Tally::default();
    let mut begun: HashSet<u16> = HashSet::new();
    let mut never: HashSet<u16> = HashSet::new();
    // Phase A: 3000 ids in batches of 100.
    for batch in 0..30u16 {
        let mut wire = Vec::new();
        for k in 0..100u16 {
            let id = 1 + batch * 100 + k;
            match id % 4 {
                0 => {
                    push_begin_request(&mut wire, id, 1, true);
                    push_record(
                        &mut wire,
                        rtype::PARAMS,
                        id,
                        &[4, 3, b'A', b'B', b'C', b'D'],
                    );
                    push_abort_request(&mut wire, id);
                    begun.insert(id);
                }
                1 => {
                    encode_begin_and_params(&req(id, "").keep_conn(true), &mut wire);
                    push_record(&mut wire, rtype::STDIN, id, &[b's'; 100]);
                    push_abort_request(&mut wire, id);
                    begun.insert(id);
                }
                2 => {
                    push_abort_request(&mut wire, 40_000 + id);
                    never.insert(40_000 + id);
                }
                _ => {
                    encode_request(&req(id, "").keep_conn(true), &mut wire);
                    begun.insert(id);
                }
            }
        }
        c.send_raw(&wire).expect("send batch");
        while let Ok(r) = rx.try_recv() {
            t.add(r);
        }
    }
    // Phase A settles: every id it began ends (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    while begun.iter().any(|id| !t.ends.contains_key(id)) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(r) => t.add(r),
            Err(_) => break,
        }
    }
    // Phase B: 30 aborts after the application started writing. A request refused as
    // overloaded (its END_REQUEST comes first) is replaced by another id.
    let mut mid_write = 0;
    let mut id = 10_000u16;
    while mid_write < 30 && id < 10_300 {
        id += 1;
        let mut wire = Vec::new();
        encode_request(
            &req(id, "out=10000000&chunk=4096&pause_ms=5").keep_conn(true),
            &mut wire,
        );
        c.send_raw(&wire).unwrap();
        begun.insert(id);
        let deadline = Instant::now() + IO_TIMEOUT;
        while !t.stdout_seen.contains(&id) && !t.ends.contains_key(&id) {
            let r = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("output or end of the request before aborting it");
            t.add(r);
        }
        if t.ends.contains_key(&id) {
            continue;
        }
        let mut wire = Vec::new();
        push_abort_request(&mut wire, id);
        c.send_raw(&wire).unwrap();
        mid_write += 1;
    }
    assert_eq!(
        mid_write, 30,
        "requests aborted while the application wrote"
    );
    // Every begun id ends, once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while begun.iter().any(|id| !t.ends.contains_key(id)) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(r) => t.add(r),
            Err(_) => break,
        }
    }
    // A normal request on the same connection, after the storm.
    let mut wire = Vec::new();
    encode_request(&req(60_000, "").keep_conn(true), &mut wire);
    c.send_raw(&wire).unwrap();
    while !t.ends.contains_key(&60_000) {
        let r = rx.recv_timeout(IO_TIMEOUT).expect("answer after the storm");
        t.add(r);
    }
    begun.insert(60_000);
    c.stream().shutdown(std::net::Shutdown::Both).ok();
    reader.join().unwrap();
    while let Ok(r) = rx.try_recv() {
        t.add(r);
    }
    let missing: Vec<_> = begun.iter().filter(|id| !t.ends.contains_key(id)).collect();
    let doubled: Vec<_> = t.ends.iter().filter(|(_, n)| **n != 1).collect();
    let stray: Vec<_> = t.ends.keys().filter(|id| !begun.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "no END_REQUEST for {} ids: {missing:?}",
        missing.len()
    );
    assert!(
        doubled.is_empty(),
        "END_REQUEST more than once: {doubled:?}"
    );
    assert!(
        stray.is_empty(),
        "END_REQUEST for ids never begun: {stray:?}"
    );
    assert!(t.others.is_empty(), "unexpected records: {:?}", t.others);
    assert!(never.iter().all(|id| !t.stdout_seen.contains(id)));
    app.assert_serves();
    let rss1 = app.rss_kib();
    eprintln!(
        "abort storm: {} requests begun; RSS {rss0} -> {rss1} KiB",
        begun.len()
    );
    assert!(
        rss1 < rss0 + 64 * 1024,
        "RSS grew from {rss0} to {rss1} KiB"
    );
}
