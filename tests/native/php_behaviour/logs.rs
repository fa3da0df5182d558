//! The events PHP's layer logs come out with PHP's texts and levels, and no Rust debug format
//! (FPM's test socket-invalid-allowed-clients failed on this: "Tcp(127.0.0.1:59748)" at
//! WARNING). fpm_worker writes each line as FPM's zlog does, "LEVEL: message", so the expected
//! lines are the ones that FPM test looks for.

use super::worker::{request, Worker};
use crate::harness::assert_closed;
use std::net::TcpListener;

fn lines(w: &Worker) -> Vec<String> {
    w.log_text().lines().map(str::to_string).collect()
}

/// FPM's test, step by step: listen.allowed_clients = xxx, then a request from 127.0.0.1.
#[test]
fn an_allow_list_without_a_valid_address_and_a_disallowed_client_are_logged_as_php_does() {
    let w = Worker::start(&["-c", "xxx"], &[]);
    let mut c = w.connect();
    c.send_request(&request(1, "")).unwrap();
    assert_closed(&mut c);
    let log = lines(&w);
    let want = [
        "ERROR: Wrong IP address 'xxx' in listen.allowed_clients",
        "ERROR: There are no allowed addresses",
        "ERROR: Connection disallowed: IP address '127.0.0.1' has been dropped.",
    ];
    for line in want {
        assert!(log.iter().any(|l| l == line), "no {line:?} in {log:#?}");
    }
    assert_eq!(log[..2], want[..2], "logged when the list is set: {log:#?}");
    assert!(log.iter().all(|l| !l.contains("Tcp(")), "{log:#?}");
}

/// A valid list that leaves the client out: only the disallowed line.
#[test]
fn a_client_outside_the_list_is_dropped_with_phps_line() {
    let w = Worker::start(&["-c", "192.0.2.1,2001:db8::1"], &[]);
    let mut c = w.connect();
    c.send_request(&request(1, "")).unwrap();
    assert_closed(&mut c);
    let log = lines(&w);
    assert!(
        log.iter()
            .any(|l| l == "ERROR: Connection disallowed: IP address '127.0.0.1' has been dropped."),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("no allowed addresses")),
        "{log:#?}"
    );
}

/// fcgi_listen on an address in use: PHP's "Cannot bind/listen socket - [errno] strerror.".
#[test]
fn a_failed_listen_is_logged_as_php_does() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut w = Worker::spawn_on(&addr, &[], &[]);
    assert_eq!(w.wait_exit().code(), Some(1));
    assert_eq!(
        lines(&w),
        ["ERROR: Cannot bind/listen socket - [98] Address already in use."]
    );
}

/// fcgi_listen on a Unix path longer than `sun_path` holds, and on a host name that does not
/// resolve: PHP's lines for both.
#[test]
fn a_path_too_long_and_an_unknown_host_are_logged_as_php_does() {
    let long = format!("/tmp/{}", "p".repeat(120));
    let mut w = Worker::spawn_on(&long, &[], &[]);
    assert_eq!(w.wait_exit().code(), Some(1));
    assert_eq!(
        lines(&w),
        ["ERROR: Listening socket's path name is too long."]
    );
    // RFC 6761: names under .invalid never resolve.
    let mut w = Worker::spawn_on("no-such-host.invalid:9000", &[], &[]);
    assert_eq!(w.wait_exit().code(), Some(1));
    assert_eq!(
        lines(&w),
        ["ERROR: Cannot resolve host name 'no-such-host.invalid'!"]
    );
}
