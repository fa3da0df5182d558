//! `fcgi-client` and `fcgi-bench` against an application that frames its answers as PHP's
//! FastCGI layer does: STDOUT records padded to 8 bytes, then END_REQUEST, and never the empty
//! STDOUT record that FastCGI §5.3 asks for (web servers take END_REQUEST as the end of the
//! output). By default the tools accept such a response and report it as a conformance note;
//! with `--strict` it is a protocol error. The application is a raw-byte server on a thread of
//! the test, so the exact bytes are known; the same server with the empty record shows that a
//! conforming response draws no note.

mod common;

use fcgi_runtime_protocol::record::{
    push_end_request, push_record, push_stream_end, rtype, Header, ProtocolStatus, KEEP_CONN,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

const BODY: &[u8] = b"Content-Type: text/plain\r\n\r\nHello from a PHP-framed answer\n";

/// Serves one connection: every request (up to its empty STDIN record) gets BODY as one
/// STDOUT record and END_REQUEST(COMPLETE), with the empty STDOUT record in between only when
/// `terminated`. Honours FCGI_KEEP_CONN, as PHP does.
fn serve(mut s: TcpStream, terminated: bool) {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut keep = false;
    loop {
        let mut h = [0u8; 8];
        if s.read_exact(&mut h).is_err() {
            return;
        }
        let h = Header::parse(&h);
        let mut c = vec![0; h.content_len as usize + h.padding_len as usize];
        if s.read_exact(&mut c).is_err() {
            return;
        }
        match h.rtype {
            rtype::BEGIN_REQUEST => keep = c[2] & KEEP_CONN != 0,
            rtype::STDIN if h.content_len == 0 => {
                let id = h.request_id;
                let mut out = Vec::new();
                push_record(&mut out, rtype::STDOUT, id, BODY);
                if terminated {
                    push_stream_end(&mut out, rtype::STDOUT, id);
                }
                push_end_request(&mut out, id, 0, ProtocolStatus::RequestComplete);
                if s.write_all(&out).is_err() || !keep {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// A server on 127.0.0.1 serving every connection on its own thread; returns its address.
fn app(terminated: bool) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve(s, terminated));
        }
    });
    addr
}

fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(common::tool(tool))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"))
}

fn client(args: &[&str]) -> Output {
    run("fcgi-client", args)
}

fn bench(args: &[&str]) -> Output {
    run("fcgi-bench", args)
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn fcgi_client_accepts_stdout_ended_by_end_request_with_a_note() {
    let addr = app(false);
    let o = client(&[&addr, "/index.php"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(o.stdout, BODY, "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "note: 1 of 1 responses ended STDOUT at END_REQUEST without the empty STDOUT record"
        ),
        "{}",
        show(&o)
    );
    // Three requests over one kept connection: three notes, counted in one line.
    let o = client(&["-n", "3", &addr, "/index.php"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(o.stdout, BODY.repeat(3), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("note: 3 of 3 responses"), "{}", show(&o));
    assert_eq!(err.lines().count(), 1, "{}", show(&o));
}

#[test]
fn fcgi_client_strict_refuses_stdout_ended_by_end_request() {
    let addr = app(false);
    let o = client(&["--strict", &addr, "/index.php"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("END_REQUEST(COMPLETE) without the empty STDOUT record"),
        "{}",
        show(&o)
    );
    assert!(!err.contains("note:"), "{}", show(&o));
}

#[test]
fn fcgi_client_notes_nothing_for_a_conforming_response() {
    let addr = app(true);
    for args in [&[][..], &["--strict"]] {
        let mut a = args.to_vec();
        a.extend([addr.as_str(), "/index.php"]);
        let o = client(&a);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        assert_eq!(o.stdout, BODY, "{}", show(&o));
        assert!(o.stderr.is_empty(), "{}", show(&o));
    }
}

#[test]
fn fcgi_bench_counts_stdout_ended_by_end_request_as_a_note() {
    let addr = app(false);
    for keep in [&[][..], &["--no-keep"]] {
        let mut a = vec!["-c", "2", "-n", "40", "--expect", "PHP-framed"];
        a.extend(keep);
        a.push(&addr);
        let o = bench(&a);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("ok 40, 0 errors"), "{}", show(&o));
        assert!(
            out.contains("notes     stdout_unterminated 40"),
            "{}",
            show(&o)
        );
    }
    let o = bench(&["-n", "10", "--json", &addr]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let json = String::from_utf8_lossy(&o.stdout);
    assert!(json.contains("\"errors\":0"), "{json}");
    assert!(json.contains("\"stdout_unterminated\":10"), "{json}");
}

#[test]
fn fcgi_bench_strict_counts_stdout_ended_by_end_request_as_protocol_errors() {
    let addr = app(false);
    let o = bench(&["--strict", "-n", "10", &addr]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ok 0, 10 errors"), "{}", show(&o));
    assert!(out.contains("protocol 10"), "{}", show(&o));
    assert!(!out.contains("notes"), "{}", show(&o));
    let o = bench(&["--strict", "-n", "10", "--json", &addr]);
    let json = String::from_utf8_lossy(&o.stdout);
    assert!(json.contains("\"stdout_unterminated\":0"), "{json}");
}

#[test]
fn fcgi_bench_notes_nothing_for_conforming_responses() {
    let addr = app(true);
    for strict in [&[][..], &["--strict"]] {
        let mut a = vec!["-n", "10", "--json"];
        a.extend(strict);
        a.push(&addr);
        let o = bench(&a);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        let json = String::from_utf8_lossy(&o.stdout);
        assert!(json.contains("\"errors\":0"), "{json}");
        assert!(json.contains("\"stdout_unterminated\":0"), "{json}");
    }
}
