//! The nginx matrix: every configuration of nginx's FastCGI module that changes how it talks to
//! the application, each run against both faces of the project (the native API and the
//! libfcgi API), with the application on TCP and on a Unix socket.
//!
//! The application is tests/harness/web (webapp.c on fcgi.h, lf_webapp.c on fcgiapp.h; one handler,
//! webapp_core.c). nginx's locations are in `nginx_matrix/app.rs`. What is proved, and how,
//! without any timing in a pass/fail decision:
//!
//! - keep-conn on and off: the kernel's socket table shows one connection reused for 20
//!   requests, and 20 connections opened and closed without it;
//! - a 50 MB upload with request buffering on (curl) and off: with buffering off, the test
//!   sends the body in two parts and sends the second only after the application logged that it
//!   has read 1 MiB of the first, which only happens if nginx streams the body;
//! - buffering off: the application writes a piece, flushes and waits for a gate file that the
//!   test creates only after it received that piece over HTTP;
//! - 20 MB responses, HEAD, request and response headers at and past nginx's limits;
//! - clients that disconnect mid-upload and mid-download, with a one-thread application that
//!   must notice (it logs the cut body or the failed write) and go on serving;
//! - 1,000 concurrent HTTP connections, 3 requests each, over an upstream pool of 4;
//! - 2 application threads behind a pool of 8 kept-alive connections: 2 requests hold both
//!   threads while 6 more wait on 6 other connections; all 8 must be answered.
//!
//! `FCGI_TEST_LIBFCGI=debian` runs the libfcgi face on Debian's libfcgi.so.0 instead (the
//! reference; see `tests/harness/fixture.rs`). There the last two tests fail, as they should: libfcgi
//! keeps a thread on its kept-alive connection, so the 6 other connections get nginx's 504
//! after fastcgi_read_timeout, and 982 of the 1,000 clients failed in one run.

mod app;

use crate::harness;
use crate::harness::http;
use crate::harness::{check_echo, echo_lines, show, tcp_closed_with};
use app::{wait_for, Face, Matrix, POOL, POOL8};
use std::fs;
use std::io::Write;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

/// 50 MB, the upload.
const UPLOAD: usize = 50_000_000;
/// 20 MiB, the response.
const DOWNLOAD: usize = 20 * 1024 * 1024;

macro_rules! both_faces {
    ($($name:ident),* $(,)?) => {
        mod native {
            $( #[test] fn $name() { super::$name(super::Face::Native) } )*
        }
        mod libfcgi {
            $( #[test] fn $name() { super::$name(super::Face::Libfcgi) } )*
        }
    };
}

both_faces!(
    keep_conn_on_and_off,
    upload_50_mb_with_request_buffering_on_and_off,
    buffering_off_streams_the_response_in_pieces,
    response_of_20_mib,
    head_requests,
    headers_at_nginx_limits,
    client_disconnects_mid_upload,
    client_disconnects_mid_download,
    thousand_concurrent_connections_over_a_small_pool,
    fewer_threads_than_pooled_connections,
);

fn keep_conn_on_and_off(face: Face) {
    let mut m = Matrix::start(face, 4);
    let closed_before = tcp_closed_with(m.app_port);
    let paths: Vec<String> = (0..20).map(|i| format!("/keep?seq={i}")).collect();
    for (i, r) in m.fx.curl_many(&paths).iter().enumerate() {
        let lines = echo_lines("GET", "/keep", &format!("seq={i}"), b"");
        check_echo(&m.fx, &format!("/keep request {i}"), r, &lines);
    }
    // 20 sequential requests: nginx took the one connection back from its pool each time.
    m.wait_established("after 20 requests with keep-conn", |n| n == 1);
    let closed_keep = tcp_closed_with(m.app_port) - closed_before;
    m.fx.check(closed_keep == 0, || {
        format!("keep-conn: {closed_keep} connections were closed, want 0")
    });

    let paths: Vec<String> = (0..20).map(|i| format!("/nokeep?seq={i}")).collect();
    for (i, r) in m.fx.curl_many(&paths).iter().enumerate() {
        let lines = echo_lines("GET", "/nokeep", &format!("seq={i}"), b"");
        check_echo(&m.fx, &format!("/nokeep request {i}"), r, &lines);
    }
    // Without FCGI_KEEP_CONN the application closes after each request (TIME_WAIT rows stay
    // for a minute), and the kept connection of /keep is still the only one open.
    m.wait_established("after 20 requests without keep-conn", |n| n == 1);
    let closed_nokeep = tcp_closed_with(m.app_port) - closed_before;
    m.fx.check(closed_nokeep >= 20, || {
        format!("no keep-conn: {closed_nokeep} connections closed, want at least 20")
    });
    m.check_alive();
    m.fx.check_error_log(&[]);
}

fn upload_50_mb_with_request_buffering_on_and_off(face: Face) {
    let mut m = Matrix::start(face, 2);
    let body = harness::body(UPLOAD, 0x50_0b0d);
    let file = m.fx.path("upload.bin");
    fs::write(&file, &body).expect("write the upload");
    let data = format!("@{}", file.display());

    // Buffering on (nginx's default): nginx takes the whole body, then sends it on.
    for loc in ["/keep", "/unix-keep"] {
        let ct = "Content-Type: application/octet-stream";
        let r =
            m.fx.curl(&["--data-binary", &data, "-H", ct], &format!("{loc}?up=1"));
        let mut lines = echo_lines("POST", loc, "up=1", &body);
        lines.push(format!("CONTENT_LENGTH={UPLOAD}"));
        check_echo(&m.fx, &format!("50 MB POST to {loc}"), &r, &lines);
    }

    // Buffering off: the second half is sent only once the application has read 1 MiB.
    for (loc, app) in [("/stream", "app-tcp"), ("/unix-stream", "app-unix")] {
        let query = "progress=1048576";
        let mut conn = http::connect(m.fx.port).expect("connect to nginx");
        let head = [format!("Content-Length: {UPLOAD}")];
        http::send_head(&mut conn, "POST", &format!("{loc}?{query}"), &head).expect("send");
        let half = UPLOAD / 2;
        conn.get_mut().write_all(&body[..half]).expect("send 25 MB");
        m.wait_log(app, "webapp: body reached 1048576", 1);
        conn.get_mut()
            .write_all(&body[half..])
            .expect("send the rest");
        let r = http::read_response(&mut conn, false).expect("the response");
        let text = r.text();
        m.fx.check(r.status == 200, || format!("{loc}: status {}", r.status));
        let mut want = echo_lines("POST", loc, query, &body);
        want.push(format!("CONTENT_LENGTH={UPLOAD}"));
        for line in want {
            m.fx.check(text.lines().any(|l| l == line), || {
                format!("{loc}: no line {line:?} in\n{text}")
            });
        }
    }
    m.check_alive();
    m.fx.check_error_log(&[]);
}

fn buffering_off_streams_the_response_in_pieces(face: Face) {
    let mut m = Matrix::start(face, 2);
    const PIECES: usize = 4;
    for loc in ["/unbuf", "/unix-unbuf"] {
        let gates = m.gate(&format!("gate{}", loc.replace('/', "-")));
        let path = format!("{loc}?pieces={PIECES}&gates={}", gates.display());
        let mut conn = http::connect(m.fx.port).expect("connect to nginx");
        http::send_head(&mut conn, "GET", &path, &[]).expect("send");
        let (status, headers) = http::read_head(&mut conn).expect("the response head");
        m.fx.check(status == 200, || format!("{loc}: status {status}"));
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v == "chunked");
        m.fx.check(chunked, || format!("{loc}: not chunked: {headers:?}"));
        // Piece i is only written once gate i exists, which the test creates only after
        // piece i-1 arrived: each piece crossed nginx on its own.
        let mut seen = Vec::new();
        for i in 0..PIECES {
            if i > 0 {
                m.open_gate(&gates.with_extension(i.to_string()));
            }
            let piece = format!("piece {i}\n");
            if let Err(e) = http::read_until(&mut conn, &mut seen, piece.as_bytes()) {
                m.fx.fail(&format!(
                    "{loc}: piece {i} did not arrive: {e}; got {seen:?}"
                ));
            }
        }
        let end = http::read_until(&mut conn, &mut seen, b"\r\n0\r\n\r\n");
        m.fx.check(end.is_ok(), || format!("{loc}: no last chunk: {end:?}"));
        let body = http::dechunk(&seen);
        let want: String = (0..PIECES).map(|i| format!("piece {i}\n")).collect();
        m.fx.check(body.as_deref() == Some(want.as_bytes()), || {
            format!("{loc}: body {:?}, want {want:?}", body.as_deref().map(show))
        });
        // The HTTP connection (and the upstream one) still serve a request.
        let r = http::get(&mut conn, &format!("{loc}?after=1")).expect("a second request");
        m.fx.check(
            r.status == 200 && r.text().contains("QUERY_STRING=after=1\n"),
            || format!("{loc}: second request: {} {}", r.status, r.text()),
        );
    }
    m.check_alive();
    m.fx.check_error_log(&[]);
}

/// The body of `bytes=N`: the alphabet repeated.
fn check_alphabet(m: &Matrix, what: &str, body: &[u8], len: usize) {
    m.fx.check(body.len() == len, || {
        format!("{what}: {} bytes, want {len}", body.len())
    });
    let alphabet = b"abcdefghijklmnopqrstuvwxyz";
    let bad = body
        .iter()
        .enumerate()
        .position(|(i, &b)| b != alphabet[i % 26]);
    m.fx.check(bad.is_none(), || {
        let at = bad.unwrap_or(0);
        let end = body.len().min(at + 64);
        format!("{what}: differs at byte {at}: {}", show(&body[at..end]))
    });
}

fn response_of_20_mib(face: Face) {
    let mut m = Matrix::start(face, 2);
    for loc in ["/keep", "/unbuf", "/unix-keep", "/unix-unbuf"] {
        let r = m.fx.get(&format!("{loc}?bytes={DOWNLOAD}"));
        m.fx.check(r.status == 200, || format!("{loc}: status {}", r.status));
        let cl = r.header("content-length");
        m.fx.check(cl == Some(DOWNLOAD.to_string()), || {
            format!("{loc}: Content-Length {cl:?}, want {DOWNLOAD}")
        });
        check_alphabet(&m, &format!("20 MiB from {loc}"), &r.body, DOWNLOAD);
    }
    m.check_alive();
    m.fx.check_error_log(&[]);
}

fn head_requests(face: Face) {
    let mut m = Matrix::start(face, 2);
    for loc in ["/keep", "/nokeep", "/unbuf", "/unix-keep"] {
        // HEAD, then a GET on the same HTTP connection: a body after the HEAD answer would be
        // read as the GET's status line.
        let mut conn = http::connect(m.fx.port).expect("connect to nginx");
        for (path, len) in [
            (format!("{loc}?bytes=1000000"), Some(1_000_000)),
            (loc.into(), None),
        ] {
            http::send_head(&mut conn, "HEAD", &path, &[]).expect("send HEAD");
            let r = http::read_response(&mut conn, true).expect("the HEAD response");
            m.fx.check(r.status == 200, || {
                format!("HEAD {path}: status {}", r.status)
            });
            if let Some(len) = len {
                let cl = r.header("content-length").map(str::to_string);
                m.fx.check(cl == Some(len.to_string()), || {
                    format!("HEAD {path}: Content-Length {cl:?}, want {len}")
                });
            }
            let r = http::get(&mut conn, &format!("{loc}?after=head")).expect("GET after HEAD");
            let ok = r.status == 200 && r.text().contains("REQUEST_METHOD=GET\n");
            m.fx.check(ok, || {
                format!("GET after HEAD {path}: {} {}", r.status, r.text())
            });
        }
    }
    m.check_alive();
    m.fx.check_error_log(&[]);
}

fn headers_at_nginx_limits(face: Face) {
    let mut m = Matrix::start(face, 2);
    // Request: large_client_header_buffers 4 8k, so a header line must fit in 8k and the whole
    // request head in 32k. Three lines of 8,000+ bytes: about 24k of headers.
    let values: Vec<String> = (1..=3u8)
        .map(|i| {
            let c = (b'a' + i) as char;
            c.to_string().repeat(8000)
        })
        .collect();
    let extra: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("X-Big-{}: {v}", i + 1))
        .collect();
    for loc in ["/keep", "/unix-keep"] {
        let mut conn = http::connect(m.fx.port).expect("connect to nginx");
        http::send_head(&mut conn, "GET", loc, &extra).expect("send");
        let r = http::read_response(&mut conn, false).expect("response");
        let text = r.text();
        m.fx.check(r.status == 200, || format!("{loc}: status {}", r.status));
        for (i, v) in values.iter().enumerate() {
            let line = format!("HTTP_X_BIG_{}={v}", i + 1);
            m.fx.check(text.lines().any(|l| l == line), || {
                format!("{loc}: header {} missing or changed", i + 1)
            });
        }
    }
    // Past nginx's limit nginx answers 400 itself; the application never sees it.
    let mut conn = http::connect(m.fx.port).expect("connect to nginx");
    let too_big = format!("X-Big: {}", "z".repeat(9000));
    http::send_head(&mut conn, "GET", "/keep", &[too_big]).expect("send");
    let r = http::read_response(&mut conn, false).expect("response");
    m.fx.check(r.status == 400, || {
        format!("9000-byte header: status {}", r.status)
    });

    // Response: fastcgi_buffer_size (one page, 4k) holds the whole response head.
    let r = m.fx.get("/keep?hdr=3500");
    let big = r.header("x-big").unwrap_or_default();
    m.fx.check(r.status == 200 && big == "h".repeat(3500), || {
        format!(
            "hdr=3500: status {}, X-Big of {} bytes",
            r.status,
            big.len()
        )
    });
    // Past it nginx answers 502 and logs "upstream sent too big header"...
    let r = m.fx.get("/keep?hdr=5000");
    m.fx.check(r.status == 502, || format!("hdr=5000: status {}", r.status));
    // ... unless the location has a larger buffer.
    let r = m.fx.get("/bighdr?hdr=30000");
    let big = r.header("x-big").unwrap_or_default();
    m.fx.check(r.status == 200 && big == "h".repeat(30000), || {
        format!(
            "/bighdr hdr=30000: status {}, X-Big of {} bytes",
            r.status,
            big.len()
        )
    });
    let r = m.fx.get("/keep?after=1");
    m.fx.check(r.status == 200, || format!("after: status {}", r.status));
    m.check_alive();
    m.fx.check_error_log(&["upstream sent too big header"]);
}

fn client_disconnects_mid_upload(face: Face) {
    // One thread: a thread left waiting for the rest of a body would stop the application.
    let mut m = Matrix::start(face, 1);
    let body = harness::body(4 << 20, 7);
    for (loc, app, keep) in [
        ("/stream", "app-tcp", "/keep"),
        ("/unix-stream", "app-unix", "/unix-keep"),
    ] {
        let mut conn = http::connect(m.fx.port).expect("connect to nginx");
        let head = [format!("Content-Length: {UPLOAD}")];
        let path = format!("{loc}?progress=1048576");
        http::send_head(&mut conn, "POST", &path, &head).expect("send");
        conn.get_mut().write_all(&body).expect("send 4 MiB");
        m.wait_log(app, "webapp: body reached 1048576", 1);
        drop(conn);
        m.wait_log(app, "webapp: body cut after", 1);
        let log = m.log(app);
        let cut = log
            .lines()
            .find(|l| l.contains("body cut after"))
            .unwrap_or("");
        // The read failed (-1, or FCGX_GetError set), not a quiet end of the body.
        m.fx.check(
            cut.ends_with(&format!(" of {UPLOAD} bytes (read error)")),
            || format!("{app}: {cut:?}"),
        );
        let r = m.fx.get(&format!("{keep}?after=cut"));
        check_echo(&m.fx, &format!("{keep} after the cut upload"), &r, &[]);
    }
    // Buffering on: nginx drops the half body; the application never hears of it.
    let mut conn = http::connect(m.fx.port).expect("connect to nginx");
    let head = [format!("Content-Length: {UPLOAD}")];
    http::send_head(&mut conn, "POST", "/keep?buffered=1", &head).expect("send");
    conn.get_mut().write_all(&body).expect("send 4 MiB");
    drop(conn);
    let r = m.fx.get("/keep?after=buffered");
    check_echo(&m.fx, "/keep after the dropped upload", &r, &[]);
    m.check_alive();
    m.fx.check_error_log(&[]);
}

fn client_disconnects_mid_download(face: Face) {
    let mut m = Matrix::start(face, 1);
    const HUGE: usize = 500_000_000;
    for (loc, app, keep) in [
        ("/unbuf", "app-tcp", "/keep"),
        ("/unix-unbuf", "app-unix", "/unix-keep"),
    ] {
        let mut conn = http::connect(m.fx.port).expect("connect to nginx");
        http::send_head(&mut conn, "GET", &format!("{loc}?bytes={HUGE}"), &[]).expect("send");
        let (status, _) = http::read_head(&mut conn).expect("the response head");
        m.fx.check(status == 200, || format!("{loc}: status {status}"));
        let mut got = vec![0u8; 1 << 20];
        std::io::Read::read_exact(&mut conn, &mut got).expect("the first MiB");
        drop(conn);
        // nginx closes the upstream connection; the application's next writes fail.
        m.wait_log(app, "webapp: write failed after", 1);
        let log = m.log(app);
        let line = log
            .lines()
            .find(|l| l.contains("write failed after"))
            .unwrap_or("");
        let sent: usize = line
            .split_whitespace()
            .nth(4)
            .and_then(|n| n.parse().ok())
            .unwrap_or(HUGE);
        m.fx.check(sent < HUGE, || format!("{app}: {line:?}"));
        let r = m.fx.get(&format!("{keep}?after=cut"));
        check_echo(&m.fx, &format!("{keep} after the cut download"), &r, &[]);
    }
    m.check_alive();
    m.fx.check_error_log(&[]);
}

fn thousand_concurrent_connections_over_a_small_pool(face: Face) {
    const CLIENTS: usize = 1000;
    const REQUESTS: usize = 3;
    harness::raise_nofile();
    let mut m = Matrix::start_with(face, 4, 4096);
    let port = m.fx.port;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let barrier = barrier.clone();
            let failures = failures.clone();
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let conn = http::connect(port);
                    // Every client is connected before any sends.
                    barrier.wait();
                    let fail = |msg: String| failures.lock().unwrap().push(msg);
                    let mut conn = match conn {
                        Ok(c) => c,
                        Err(e) => return fail(format!("client {c}: connect: {e}")),
                    };
                    for r in 0..REQUESTS {
                        let query = format!("c={c}&r={r}");
                        match http::get(&mut conn, &format!("/keep?{query}")) {
                            Ok(resp) => {
                                let text = resp.text();
                                let ok = resp.status == 200
                                    && harness::role_in_place(&text.lines().collect::<Vec<_>>())
                                    && text.contains(&format!("\nQUERY_STRING={query}\n"))
                                    && text.ends_with(&format!(
                                        "STDIN_LENGTH=0\nSTDIN_FNV1A64={:016x}\n",
                                        harness::fnv1a64(b"")
                                    ));
                                if !ok {
                                    return fail(format!("{query}: {} {text}", resp.status));
                                }
                            }
                            Err(e) => return fail(format!("{query}: {e}")),
                        }
                    }
                })
                .expect("spawn a client thread")
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let failures = failures.lock().unwrap();
    m.fx.check(failures.is_empty(), || {
        format!(
            "{} of {CLIENTS} clients failed; first ones:\n{}",
            failures.len(),
            failures
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    // The burst over, nginx keeps at most POOL idle connections and closes the rest.
    m.wait_established("after the burst", |n| n <= POOL);
    eprintln!(
        "{face:?}: {} requests on {CLIENTS} connections; nginx closed {} upstream connections",
        CLIENTS * REQUESTS,
        tcp_closed_with(m.app_port)
    );
    let r = m.fx.get("/keep?after=burst");
    check_echo(&m.fx, "after the burst", &r, &[]);
    m.check_alive();
    m.fx.check_error_log(&[]);
}

fn fewer_threads_than_pooled_connections(face: Face) {
    // 2 threads, a pool of 8. A runtime that ties a thread to a kept-alive connection (as
    // libfcgi does) serves the 2 holders' connections and never the other 6.
    let mut m = Matrix::start(face, 2);
    for round in 0..3 {
        let gate = m.gate(&format!("hold-{round}"));
        let mut calls = Vec::new();
        for h in 0..2 {
            let query = format!("round={round}&holder={h}&hold={}", gate.display());
            calls.push((
                query.clone(),
                m.fx.curl_spawn(&[], &format!("/pool8?{query}")),
            ));
        }
        m.wait_log("app-tcp", &format!("waiting at {}", gate.display()), 2);
        for o in 0..POOL8 - 2 {
            let query = format!("round={round}&other={o}");
            calls.push((
                query.clone(),
                m.fx.curl_spawn(&[], &format!("/pool8?{query}")),
            ));
        }
        if round == 0 {
            // Both threads are held: nginx opens a connection for each of the other 6.
            m.wait_established("8 requests in flight", |n| n == POOL8);
        }
        m.open_gate(&gate);
        for (query, call) in calls {
            let r = m.fx.curl_wait(call);
            let lines = echo_lines("GET", "/pool8", &query, b"");
            check_echo(&m.fx, &format!("round {round}: {query}"), &r, &lines);
        }
    }
    let ok = wait_for(|| m.established() <= POOL8);
    m.fx.check(ok, || format!("{} connections", m.established()));
    m.check_alive();
    m.fx.check_error_log(&[]);
}
