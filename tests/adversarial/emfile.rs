//! accept() hitting EMFILE: the server backs off instead of spinning, says so (rate-limited),
//! and serves the waiting connections once descriptors free up.

use crate::app::{req, App, Spec, IO_TIMEOUT};
use fcgi_runtime_tools::client::Client;
use std::time::Duration;

/// The server runs with RLIMIT_NOFILE 64 and 150 clients each send one kept-alive request.
/// About 55 are served and held; accept() then fails with EMFILE while the others wait in
/// the backlog. Over 2 s the server uses far less than a spinning core (bound: 50% of one
/// core), logs the condition at most a few times, and when the clients holding descriptors
/// close, serves every waiting connection.
#[test]
fn accept_hitting_emfile_backs_off_and_resumes() {
    const N: usize = 150;
    let mut spec = Spec::adv(4, &[]);
    spec.nofile = Some(64);
    let mut app = App::start(spec);
    app.assert_serves();
    let mut conns: Vec<Client> = (0..N)
        .map(|i| {
            let mut c = app.connect();
            c.send_request(&req(1, &format!("i={i}")).keep_conn(true))
                .expect("send");
            c
        })
        .collect();
    assert!(
        app.eventually("accept fails with EMFILE", || app
            .log_text()
            .contains("Too many open files")),
        "no EMFILE in the log: {}",
        app.log_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let cpu0 = app.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let used = app.cpu_ticks() - cpu0;
    let fds = app.fds();
    eprintln!("EMFILE: {used} ticks of CPU in 2 s ({hz} per s) with {fds} descriptors open");
    assert!(
        used < hz,
        "server used {used} ticks in 2 s at EMFILE: spinning"
    );
    assert!(fds <= 64);
    let reports = app.log_text().matches("accept failed").count();
    assert!(
        (1..=3).contains(&reports),
        "{reports} log lines about accept failing: {}",
        app.log_text()
    );
    assert!(app.log_text().contains("pausing new connections"));
    // Clients read their answer and leave, in order: the waiting ones get descriptors.
    for (i, c) in conns.iter_mut().enumerate() {
        c.set_timeout(Some(IO_TIMEOUT)).unwrap();
        let resp = c
            .read_response(1)
            .unwrap_or_else(|e| panic!("connection {i} never served: {e}"));
        assert!(resp.stdout.ends_with(b"STDIN_LENGTH=0\n"));
        c.stream().shutdown(std::net::Shutdown::Both).ok();
    }
    drop(conns);
    app.assert_serves();
}
