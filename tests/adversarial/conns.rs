//! Connections that hold the server's resources without finishing anything: slowloris, many
//! idle kept-alive connections, a kept-alive connection that never sends again.

use crate::app::{raise_nofile, req, App, Spec};
use fcgi_runtime_protocol::record::{push_begin_request, rtype};
use fcgi_runtime_tools::client::Client;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Slowloris: 100 connections trickle one byte of PARAMS every 100 ms. Normal requests are
/// served meanwhile; every trickling connection is cut at the PARAMS timeout (1.5 s); the
/// server's descriptors return to where they were; RSS stays within 32 MiB of the start.
#[test]
fn slowloris_connections_are_cut_at_the_params_timeout() {
    const N: usize = 100;
    let mut app = App::start(Spec::adv(4, &[("FCGI_RUNTIME_PARAMS_TIMEOUT_MS", "1500")]));
    app.assert_serves();
    let (fds0, rss0) = (app.fds(), app.rss_kib());
    let mut conns: Vec<Client> = (0..N).map(|_| app.connect()).collect();
    for c in &mut conns {
        let mut wire = Vec::new();
        push_begin_request(&mut wire, 1, 1, true);
        // A PARAMS record announcing 1000 bytes of content, which come one at a time.
        wire.extend_from_slice(&[1, rtype::PARAMS, 0, 1, 0x03, 0xe8, 0, 0]);
        c.send_raw(&wire).expect("begin");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss0));
    let pid = app.pid();
    let trickler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            let mut alive = vec![true; conns.len()];
            let deadline = Instant::now() + Duration::from_secs(30);
            while alive.iter().any(|a| *a)
                && Instant::now() < deadline
                && !stop.load(Ordering::Relaxed)
            {
                for (c, a) in conns.iter_mut().zip(alive.iter_mut()) {
                    if *a && c.send_raw(b"x").is_err() {
                        *a = false;
                    }
                }
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    if let Some(kb) = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                    {
                        peak.fetch_max(kb, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            alive.iter().filter(|a| **a).count()
        })
    };
    // Served while the trickle goes on.
    for _ in 0..5 {
        app.assert_serves();
        std::thread::sleep(Duration::from_millis(200));
    }
    let still_open = trickler.join().expect("trickler");
    stop.store(true, Ordering::Relaxed);
    assert_eq!(
        still_open, 0,
        "trickling connections not cut: {still_open} of {N}"
    );
    assert!(app.log_text().contains("not complete within 1500 ms"));
    app.assert_serves();
    assert!(
        app.eventually("descriptors back to the start", || app.fds() <= fds0),
        "server holds {} descriptors, {fds0} before",
        app.fds()
    );
    let peak = peak.load(Ordering::Relaxed);
    eprintln!("slowloris: RSS {rss0} KiB at start, peak {peak} KiB");
    assert!(
        peak < rss0 + 32 * 1024,
        "RSS grew from {rss0} to {peak} KiB"
    );
}

/// 10,000 idle connections (each kept alive after one request): a normal request is still
/// served, no thread is added, the server holds them all, and RSS grows by less than 64 MiB
/// (6.5 KiB per connection; measured: about 1.7 KiB).
#[test]
fn ten_thousand_idle_connections_cost_no_threads() {
    let hard = raise_nofile();
    let want = 10_000usize;
    let n = if hard < want as u64 + 500 {
        let n = hard.saturating_sub(500) as usize;
        eprintln!(
            "\n*** RLIMIT_NOFILE hard limit is {hard}: testing {n} idle connections, not {want} ***\n"
        );
        n
    } else {
        want
    };
    let mut spec = Spec::adv(4, &[]);
    spec.nofile = Some(hard);
    let mut app = App::start(spec);
    app.assert_serves();
    // 4 application threads and the library's standby thread, once all have started.
    assert!(app.eventually("5 threads", || app.threads() == 5));
    let (threads0, rss0) = (app.threads(), app.rss_kib());
    let addr = app.addr.clone();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for i in (w..n).step_by(4) {
                    let mut c = Client::connect(&addr).expect("connect");
                    c.set_timeout(Some(crate::app::IO_TIMEOUT)).unwrap();
                    let r = req(1, &format!("conn={i}")).keep_conn(true);
                    let resp = c.request(&r).expect("request on a new connection");
                    assert!(resp.stdout.ends_with(b"STDIN_LENGTH=0\n"));
                    held.push(c);
                }
                held
            })
        })
        .collect();
    let held: Vec<Vec<Client>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let open: usize = held.iter().map(|h| h.len()).sum();
    assert_eq!(open, n);
    assert!(app.fds() >= n, "server holds {} descriptors", app.fds());
    let (threads1, rss1) = (app.threads(), app.rss_kib());
    app.assert_serves();
    eprintln!(
        "{n} idle connections: threads {threads0} -> {threads1}, RSS {rss0} -> {rss1} KiB \
         ({} B per connection)",
        (rss1.saturating_sub(rss0) * 1024) / n as u64
    );
    assert_eq!(threads1, threads0, "threads grew with idle connections");
    assert!(
        rss1 < rss0 + 64 * 1024,
        "RSS grew from {rss0} to {rss1} KiB"
    );
    // Every held connection still works.
    let mut held = held;
    for c in held.iter_mut().flat_map(|h| h.iter_mut()).step_by(997) {
        let r = req(2, "again=1").keep_conn(true);
        assert!(c
            .request(&r)
            .expect("again")
            .stdout
            .ends_with(b"STDIN_LENGTH=0\n"));
    }
}

/// Kept-alive connections that never send again are closed at the keep-alive timeout: the
/// server's descriptor count returns to where it was, and every client reads EOF.
#[test]
fn idle_keepalive_connections_are_freed_by_the_timeout() {
    let mut app = App::start(Spec::adv(
        2,
        &[("FCGI_RUNTIME_KEEPALIVE_TIMEOUT_MS", "500")],
    ));
    app.assert_serves();
    let (fds0, rss0) = (app.fds(), app.rss_kib());
    let mut conns: Vec<Client> = (0..50)
        .map(|i| {
            let mut c = app.connect();
            let r = req(1, &format!("i={i}")).keep_conn(true);
            c.request(&r).expect("request");
            c
        })
        .collect();
    assert!(app.fds() >= fds0 + 40, "{} descriptors", app.fds());
    assert!(
        app.eventually("idle connections closed", || app.fds() <= fds0),
        "server still holds {} descriptors ({fds0} before)",
        app.fds()
    );
    for c in &mut conns {
        match c.read_record() {
            Ok(None) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected EOF, got {other:?}"),
        }
    }
    app.assert_serves();
    assert!(app.rss_kib() < rss0 + 16 * 1024);
}

/// Connections that connect and never send anything must not stop a server from accepting.
/// A fresh connection holds a waiting thread for up to 100 ms (so processes of a pre-fork pool
/// share new connections); once one of them stays silent that long, fresh connections stop
/// holding threads. Before that rule, a one-thread server took 100 ms per silent connection in
/// its backlog: 300 of them delayed the next real request by 30 s, past the client's timeout.
#[test]
fn silent_connections_do_not_stop_accepting() {
    const N: usize = 300;
    raise_nofile();
    let mut app = App::start(Spec::adv(1, &[]));
    app.assert_serves();
    let rss0 = app.rss_kib();
    let silent: Vec<Client> = (0..N).map(|_| app.connect()).collect();
    // Served although every silent connection reached the backlog first.
    app.assert_serves();
    app.assert_serves();
    let rss = app.rss_kib();
    eprintln!("silent connections: {N} open, RSS {rss0} -> {rss} KiB");
    assert!(rss < rss0 + 16 * 1024, "RSS grew from {rss0} to {rss} KiB");
    drop(silent);
    app.assert_serves();
}
