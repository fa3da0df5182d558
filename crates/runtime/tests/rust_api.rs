//! The safe Rust API (`fcgi_runtime::api`) over real FastCGI: in-process servers on
//! ephemeral loopback ports, talked to with the project's client (`fcgi_runtime_tools::client`). The blocking
//! face (`Server`, `Request`) and, with `--features tokio`, the async face (`AsyncServer`,
//! `AsyncRequest`), each for: parameters as bytes and text, a body larger than the 64 KiB input
//! buffer, output written in many pieces, the Authorizer and Filter roles, an abort, the
//! application status, a handler's error, and concurrent requests.
//!
//! Nothing waits for time to pass: where an order matters (an abort after the handler started),
//! the handler reports over a channel; timeouts only turn a hang into a failure.

use fcgi_runtime::{Role, Server};
use fcgi_runtime_protocol::record::{push_abort_request, push_stream, rtype};
use fcgi_runtime_tools::client::{encode_begin_and_params, Client, Request as Req, Response};
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

/// Long enough never to be reached by a working server: a hang becomes a failure.
const HANG: Duration = Duration::from_secs(60);

/// A loopback listener on a free port and its address.
fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    (l, a)
}

fn client(addr: &str) -> Client {
    let c = Client::connect(addr).unwrap();
    c.set_timeout(Some(HANG)).unwrap();
    c
}

/// One request on a new connection.
fn ask(addr: &str, req: &Req) -> Response {
    client(addr).request(req).unwrap()
}

/// A blocking server with `threads` threads running `handler`, serving in the background.
fn blocking<F>(threads: usize, handler: F) -> String
where
    F: Fn(&mut fcgi_runtime::Request) -> io::Result<()> + Send + Sync + 'static,
{
    let (l, a) = listener();
    let server = Server::from_listener(l).unwrap().threads(threads);
    std::thread::spawn(move || server.serve(handler).unwrap());
    a
}

/// A pseudo-random body of `n` bytes.
fn body(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// FNV-1a of `b`.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &c| {
        (h ^ c as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The parameters every params test sends: text, bytes that are not UTF-8, an empty value and
/// a name sent twice.
fn params_request() -> Req {
    Req::new(1)
        .param("REQUEST_URI", "/caf\u{e9}?x=1")
        .param("BIN", [0xff, 0xfe, 0x00, 0x41])
        .param("EMPTY", "")
        .param("DUP", "1")
        .param("DUP", "2")
}

/// What a handler reports about `params_request` (the same text for both faces).
fn describe_params<'a>(
    role: Role,
    param: impl Fn(&str) -> Option<&'a [u8]>,
    param_str: impl Fn(&str) -> Option<&'a str>,
    all: Vec<(&'a [u8], &'a [u8])>,
) -> String {
    let names: Vec<String> = all
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    format!(
        "role={role}\nuri={:?}\nbin={:?} {:?}\nempty={:?}\ndup={:?}\nmissing={:?}\nnames={}\n",
        param_str("REQUEST_URI"),
        param("BIN"),
        param_str("BIN"),
        param_str("EMPTY"),
        param_str("DUP"),
        param("MISSING"),
        names.join(","),
    )
}

const PARAMS_EXPECTED: &str = "role=RESPONDER\nuri=Some(\"/caf\u{e9}?x=1\")\n\
     bin=Some([255, 254, 0, 65]) None\nempty=Some(\"\")\ndup=Some(\"2\")\nmissing=None\n\
     names=FCGI_ROLE,REQUEST_URI,BIN,EMPTY,DUP,DUP\n";

/// The pieces of the many-pieces response: 5,000 small writes, then one of 200 KiB.
fn pieces() -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut parts: Vec<Vec<u8>> = (0..5000)
        .map(|i| format!("piece {i:05}\n").into_bytes())
        .collect();
    parts.push(body(200 * 1024));
    let all = parts.concat();
    (parts, all)
}

/// The abort scenario from the client's side: a request whose body never ends; once the
/// handler says it waits in a read, FCGI_ABORT_REQUEST. Returns the END_REQUEST's response.
fn abort_exchange(addr: &str, started: &mpsc::Receiver<()>) -> Response {
    let mut c = client(addr);
    // The runtime's END_REQUEST for an aborted request follows no empty STDOUT record.
    c.set_strict(false);
    let req = Req::new(7).param("REQUEST_URI", "/abort").keep_conn(true);
    let mut out = Vec::new();
    encode_begin_and_params(&req, &mut out);
    push_stream(&mut out, rtype::STDIN, 7, b"part of a body that never ends");
    c.send_raw(&out).unwrap();
    started.recv_timeout(HANG).expect("the handler started");
    let mut abort = Vec::new();
    push_abort_request(&mut abort, 7);
    c.send_raw(&abort).unwrap();
    c.read_response(7).unwrap()
}

/// What the abort handler saw: the read's error kind, `is_aborted` after it, whether a write
/// then failed.
type AbortSeen = (Option<io::ErrorKind>, bool, bool);

fn check_abort(seen: AbortSeen) {
    assert_eq!(
        seen,
        (Some(io::ErrorKind::ConnectionAborted), true, true),
        "(read error, is_aborted, write failed)"
    );
}

// ---- the blocking face ------------------------------------------------------------------------

#[test]
fn blocking_params_as_bytes_and_text() {
    let addr = blocking(1, |req| {
        let text = describe_params(
            req.role(),
            |n| req.param(n),
            |n| req.param_str(n),
            req.params().collect(),
        );
        let id = req.id();
        write!(req, "Content-Type: text/plain\r\n\r\n{text}id={id}\n")?;
        req.flush()
    });
    let r = ask(&addr, &params_request());
    let out = String::from_utf8(r.stdout).unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(body, format!("{PARAMS_EXPECTED}id=1\n"));
    assert_eq!((r.app_status, r.protocol_status), (0, 0));
}

#[test]
fn blocking_body_larger_than_the_input_buffer() {
    let addr = blocking(2, |req| {
        let mut got = Vec::new();
        // Small reads, then the rest: the body crosses the 64 KiB buffer several times.
        let mut chunk = [0u8; 1000];
        let n = req.read(&mut chunk)?;
        got.extend_from_slice(&chunk[..n]);
        req.read_to_end(&mut got)?;
        // The end stays the end.
        assert_eq!(req.read(&mut chunk)?, 0);
        write!(req, "\r\n{} {:016x}", got.len(), fnv(&got))
    });
    let b = body(1 << 20);
    let r = ask(&addr, &Req::new(1).stdin(b.clone()));
    assert_eq!(
        String::from_utf8(r.stdout).unwrap(),
        format!("\r\n{} {:016x}", b.len(), fnv(&b))
    );
}

#[test]
fn blocking_output_in_many_pieces() {
    let (parts, all) = pieces();
    let parts = Arc::new(parts);
    let addr = blocking(1, move |req| {
        for (i, p) in parts.iter().enumerate() {
            req.write_all(p)?;
            if i % 100 == 0 {
                req.flush()?;
            }
        }
        writeln!(req.stderr(), "a line on STDERR")?;
        Ok(())
    });
    let r = ask(&addr, &Req::new(1));
    assert_eq!(r.stdout.len(), all.len());
    assert!(r.stdout == all, "the pieces arrive whole and in order");
    assert_eq!(r.stderr, b"a line on STDERR\n");
    assert!(r.stdout_closed && r.stderr_closed);
}

#[test]
fn blocking_authorizer_role() {
    let addr = blocking(1, |req| {
        let allowed = req.role() == Role::Authorizer
            && req.param_str("HTTP_AUTHORIZATION") == Some("Bearer let-me-in");
        if allowed {
            req.write_all(b"Status: 200 OK\r\nVariable-USER: alice\r\n\r\n")
        } else {
            req.write_all(b"Status: 403 Forbidden\r\n\r\n")
        }
    });
    let ok = ask(
        &addr,
        &Req::new(1)
            .role(2)
            .param("HTTP_AUTHORIZATION", "Bearer let-me-in"),
    );
    assert_eq!(ok.stdout, b"Status: 200 OK\r\nVariable-USER: alice\r\n\r\n");
    let no = ask(&addr, &Req::new(1).role(2).param("HTTP_AUTHORIZATION", "x"));
    assert_eq!(no.stdout, b"Status: 403 Forbidden\r\n\r\n");
    // The same handler refuses a responder: the role is what the web server asked.
    let resp = ask(
        &addr,
        &Req::new(1).param("HTTP_AUTHORIZATION", "Bearer let-me-in"),
    );
    assert_eq!(resp.stdout, b"Status: 403 Forbidden\r\n\r\n");
}

#[test]
fn blocking_filter_role_reads_data_after_the_body() {
    let addr = blocking(1, |req| {
        assert_eq!(req.role(), Role::Filter);
        let early = req.data().read(&mut [0u8; 16]).map_err(|e| e.kind());
        let mut stdin = Vec::new();
        req.read_to_end(&mut stdin)?;
        let mut data = Vec::new();
        req.data().read_to_end(&mut data)?;
        write!(
            req,
            "early={early:?} stdin={} data={} {:016x}",
            stdin.len(),
            data.len(),
            fnv(&data)
        )
    });
    let data = body(150_000);
    let r = ask(&addr, &Req::new(1).role(3).stdin("abc").data(data.clone()));
    assert_eq!(
        String::from_utf8(r.stdout).unwrap(),
        format!(
            "early=Err(InvalidInput) stdin=3 data=150000 {:016x}",
            fnv(&data)
        )
    );
    // A responder has no DATA stream.
    let addr = blocking(1, |req| {
        let e = req.data().read(&mut [0u8; 16]).unwrap_err();
        write!(req, "{:?}", e.kind())
    });
    assert_eq!(ask(&addr, &Req::new(1)).stdout, b"InvalidInput");
}

#[test]
fn blocking_abort_fails_reads_and_writes() {
    let (started_tx, started) = mpsc::channel();
    let (seen_tx, seen) = mpsc::channel::<AbortSeen>();
    let (started_tx, seen_tx) = (Mutex::new(started_tx), Mutex::new(seen_tx));
    let addr = blocking(1, move |req| {
        let mut buf = [0u8; 4096];
        // The part of the body that was sent, then a read that waits.
        let first = req.read(&mut buf);
        assert!(matches!(first, Ok(n) if n > 0), "{first:?}");
        started_tx.lock().unwrap().send(()).unwrap();
        let r = req.read(&mut buf).err().map(|e| e.kind());
        let write_failed = req
            .write_all(b"too late")
            .and_then(|()| req.flush())
            .is_err();
        seen_tx
            .lock()
            .unwrap()
            .send((r, req.is_aborted(), write_failed))
            .unwrap();
        Ok(())
    });
    let r = abort_exchange(&addr, &started);
    check_abort(seen.recv_timeout(HANG).unwrap());
    // Exactly one END_REQUEST, and nothing of the output written after the abort.
    assert_eq!(r.stdout, b"");
}

#[test]
fn blocking_app_status_and_handler_errors() {
    let addr = blocking(1, |req| match req.param_str("REQUEST_URI") {
        Some("/status") => {
            req.set_app_status(42);
            assert_eq!(req.app_status(), 42);
            req.write_all(b"\r\n")
        }
        Some("/panic") => panic!("on purpose"),
        _ => Err(io::Error::other("the handler failed on purpose")),
    });
    let mut c = client(&addr);
    let r = c
        .request(&Req::new(1).keep_conn(true).param("REQUEST_URI", "/status"))
        .unwrap();
    assert_eq!((r.app_status, r.protocol_status), (42, 0));
    let r = c
        .request(&Req::new(2).keep_conn(true).param("REQUEST_URI", "/error"))
        .unwrap();
    assert_eq!(r.app_status, 1);
    assert_eq!(r.stderr, b"the handler failed on purpose\n");
    let r = c
        .request(&Req::new(3).keep_conn(true).param("REQUEST_URI", "/panic"))
        .unwrap();
    assert_eq!(r.app_status, 1);
    assert_eq!(r.stderr, b"the handler panicked: on purpose\n");
    // The thread goes on serving, on the same connection.
    let r = c
        .request(&Req::new(4).param("REQUEST_URI", "/status"))
        .unwrap();
    assert_eq!(r.app_status, 42);
}

#[test]
fn blocking_concurrent_requests() {
    // Four requests meet inside the handler: they pass only if four threads serve at once.
    let barrier = Arc::new(Barrier::new(4));
    let b = barrier.clone();
    let addr = blocking(4, move |req| {
        if req.param_str("REQUEST_URI") == Some("/meet") {
            b.wait();
        }
        let n = req.param_str("N").unwrap_or("-").to_owned();
        write!(req, "\r\n{n}")
    });
    let meet: Vec<_> = (0..4)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let r = ask(
                    &addr,
                    &Req::new(1)
                        .param("REQUEST_URI", "/meet")
                        .param("N", i.to_string()),
                );
                assert_eq!(r.stdout, format!("\r\n{i}").into_bytes());
            })
        })
        .collect();
    for t in meet {
        t.join().unwrap();
    }
    // And 8 keep-alive connections, 25 requests each, all at once.
    let conns: Vec<_> = (0..8)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut cl = client(&addr);
                for i in 0..25 {
                    let n = format!("{c}-{i}");
                    let r = cl
                        .request(&Req::new(1).keep_conn(true).param("N", &n))
                        .unwrap();
                    assert_eq!(r.stdout, format!("\r\n{n}").into_bytes());
                }
            })
        })
        .collect();
    for t in conns {
        t.join().unwrap();
    }
}

#[test]
fn blocking_accept_loop_and_bind() {
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || {
        for _ in 0..3 {
            let mut req = server.accept().unwrap().expect("a request");
            let mut b = Vec::new();
            req.read_to_end(&mut b).unwrap();
            req.write_all(&b).unwrap();
            req.finish().unwrap();
        }
        server
    });
    for i in 0..3 {
        let r = ask(&addr, &Req::new(1).stdin(format!("echo {i}")));
        assert_eq!(r.stdout, format!("echo {i}").into_bytes());
    }
    drop(t.join().unwrap());

    let e = Server::bind("[::1:9000").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let (l, a) = listener();
    let connected = std::net::TcpStream::connect(&a).unwrap();
    let e = Server::from_listener(connected).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    drop(l);
    // The test harness does not start us on a listening socket.
    assert_eq!(
        Server::inherited().unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn requests_are_send() {
    fn send<T: Send>() {}
    send::<fcgi_runtime::Request>();
    send::<Server>();
    fn sync<T: Sync>() {}
    sync::<Server>();
}

// ---- the async face -----------------------------------------------------------------------------

#[cfg(feature = "tokio")]
mod tokio_face {
    use super::*;
    use fcgi_runtime::{AsyncRequest, AsyncServer};
    use std::future::Future;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An async server on a 2-thread tokio runtime of its own, each request in a task.
    fn serve<F, Fut>(handler: F) -> String
    where
        F: Fn(AsyncRequest) -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<()>> + Send + 'static,
    {
        let (l, a) = listener();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = AsyncServer::from_listener(l).unwrap();
                while let Some(req) = server.accept().await.unwrap() {
                    tokio::spawn(handler(req));
                }
            });
        });
        a
    }

    #[test]
    fn async_params_as_bytes_and_text() {
        let addr = serve(|mut req| async move {
            let text = describe_params(
                req.role(),
                |n| req.param(n),
                |n| req.param_str(n),
                req.params().collect(),
            );
            let text = format!("\r\n{text}id={}\n", req.id());
            req.write_all(text.as_bytes()).await?;
            req.finish()
        });
        let r = ask(&addr, &params_request());
        let out = String::from_utf8(r.stdout).unwrap();
        assert_eq!(out, format!("\r\n{PARAMS_EXPECTED}id=1\n"));
    }

    #[test]
    fn async_body_larger_than_the_input_buffer() {
        let addr = serve(|mut req| async move {
            let mut got = Vec::new();
            let mut chunk = [0u8; 1000];
            let n = req.read(&mut chunk).await?;
            got.extend_from_slice(&chunk[..n]);
            req.read_to_end(&mut got).await?;
            assert_eq!(req.read(&mut chunk).await?, 0);
            let reply = format!("\r\n{} {:016x}", got.len(), fnv(&got));
            req.write_all(reply.as_bytes()).await?;
            req.finish()
        });
        let b = body(1 << 20);
        // Twice on one connection: the second body follows the first's END_REQUEST.
        let mut c = client(&addr);
        for id in [1, 2] {
            let r = c
                .request(&Req::new(id).keep_conn(true).stdin(b.clone()))
                .unwrap();
            assert_eq!(
                String::from_utf8(r.stdout).unwrap(),
                format!("\r\n{} {:016x}", b.len(), fnv(&b))
            );
        }
    }

    #[test]
    fn async_output_in_many_pieces() {
        let (parts, all) = pieces();
        let parts = Arc::new(parts);
        let addr = serve(move |mut req| {
            let parts = parts.clone();
            async move {
                for (i, p) in parts.iter().enumerate() {
                    req.write_all(p).await?;
                    if i % 100 == 0 {
                        req.flush().await?;
                    }
                }
                req.stderr().write_all(b"a line on STDERR\n").await?;
                req.finish()
            }
        });
        // A reader slower than the writer: the writes wait for room (back-pressure), and
        // the response still arrives whole.
        let mut c = client(&addr);
        let r = c.request(&Req::new(1)).unwrap();
        assert_eq!(r.stdout.len(), all.len());
        assert!(r.stdout == all, "the pieces arrive whole and in order");
        assert_eq!(r.stderr, b"a line on STDERR\n");
        // Several such responses at once, each on its own connection.
        let many: Vec<_> = (0..4)
            .map(|_| {
                let addr = addr.clone();
                let all = all.clone();
                std::thread::spawn(move || {
                    let r = ask(&addr, &Req::new(1));
                    assert!(r.stdout == all);
                })
            })
            .collect();
        for t in many {
            t.join().unwrap();
        }
    }

    #[test]
    fn async_authorizer_and_filter_roles() {
        let addr = serve(|mut req| async move {
            match req.role() {
                Role::Authorizer => {
                    let ok = req.param_str("HTTP_AUTHORIZATION") == Some("Bearer let-me-in");
                    let head: &[u8] = if ok {
                        b"Status: 200 OK\r\nVariable-USER: alice\r\n\r\n"
                    } else {
                        b"Status: 403 Forbidden\r\n\r\n"
                    };
                    req.write_all(head).await?;
                }
                Role::Filter => {
                    let early = req.data().read(&mut [0u8; 16]).await.map_err(|e| e.kind());
                    let mut stdin = Vec::new();
                    req.read_to_end(&mut stdin).await?;
                    let mut data = Vec::new();
                    req.data().read_to_end(&mut data).await?;
                    let reply = format!(
                        "early={early:?} stdin={} data={} {:016x}",
                        stdin.len(),
                        data.len(),
                        fnv(&data)
                    );
                    req.write_all(reply.as_bytes()).await?;
                }
                Role::Responder => req.write_all(b"responder").await?,
            }
            req.finish()
        });
        let ok = ask(
            &addr,
            &Req::new(1)
                .role(2)
                .param("HTTP_AUTHORIZATION", "Bearer let-me-in"),
        );
        assert_eq!(ok.stdout, b"Status: 200 OK\r\nVariable-USER: alice\r\n\r\n");
        let no = ask(&addr, &Req::new(1).role(2));
        assert_eq!(no.stdout, b"Status: 403 Forbidden\r\n\r\n");
        let data = body(150_000);
        let r = ask(&addr, &Req::new(1).role(3).stdin("abc").data(data.clone()));
        assert_eq!(
            String::from_utf8(r.stdout).unwrap(),
            format!(
                "early=Err(InvalidInput) stdin=3 data=150000 {:016x}",
                fnv(&data)
            )
        );
        assert_eq!(ask(&addr, &Req::new(1)).stdout, b"responder");
    }

    #[test]
    fn async_abort_wakes_and_fails_the_request() {
        let (started_tx, started) = mpsc::channel();
        let (seen_tx, seen) = mpsc::channel::<AbortSeen>();
        let (started_tx, seen_tx) = (
            Arc::new(Mutex::new(started_tx)),
            Arc::new(Mutex::new(seen_tx)),
        );
        let addr = serve(move |mut req| {
            let (started_tx, seen_tx) = (started_tx.clone(), seen_tx.clone());
            async move {
                let mut buf = [0u8; 4096];
                let first = req.read(&mut buf).await;
                assert!(matches!(first, Ok(n) if n > 0), "{first:?}");
                started_tx.lock().unwrap().send(()).unwrap();
                // Waits (Pending) until the abort wakes the task.
                let r = req.read(&mut buf).await.err().map(|e| e.kind());
                let write_failed = req.write_all(b"too late").await.is_err();
                let aborted = req.is_aborted();
                seen_tx
                    .lock()
                    .unwrap()
                    .send((r, aborted, write_failed))
                    .unwrap();
                Ok(())
            }
        });
        let r = abort_exchange(&addr, &started);
        check_abort(seen.recv_timeout(HANG).unwrap());
        assert_eq!(r.stdout, b"");
    }

    #[test]
    fn async_app_status() {
        let addr = serve(|mut req| async move {
            req.set_app_status(42);
            assert_eq!(req.app_status(), 42);
            req.write_all(b"\r\n").await?;
            // Dropping the request ends it as finish does.
            drop(req);
            Ok(())
        });
        let r = ask(&addr, &Req::new(1));
        assert_eq!((r.app_status, r.protocol_status), (42, 0));
        assert_eq!(r.stdout, b"\r\n");
    }

    #[test]
    fn async_concurrent_requests() {
        // Eight requests meet inside their tasks: they pass only if all are in flight at once.
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let addr = serve(move |mut req| {
            let barrier = barrier.clone();
            async move {
                if req.param_str("REQUEST_URI") == Some("/meet") {
                    barrier.wait().await;
                }
                let n = req.param_str("N").unwrap_or("-").to_owned();
                req.write_all(format!("\r\n{n}").as_bytes()).await?;
                req.finish()
            }
        });
        let meet: Vec<_> = (0..8)
            .map(|i| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let r = ask(
                        &addr,
                        &Req::new(1)
                            .param("REQUEST_URI", "/meet")
                            .param("N", i.to_string()),
                    );
                    assert_eq!(r.stdout, format!("\r\n{i}").into_bytes());
                })
            })
            .collect();
        for t in meet {
            t.join().unwrap();
        }
        // Multiplexed: three requests in flight on one connection, answered out of order is
        // fine, each whole.
        let mut c = client(&addr);
        let mut out = Vec::new();
        for id in 1..=3u16 {
            let req = Req::new(id).keep_conn(true).param("N", format!("m{id}"));
            fcgi_runtime_tools::client::encode_request(&req, &mut out);
        }
        c.send_raw(&out).unwrap();
        let rs = c.read_responses(&[1, 2, 3]).unwrap();
        for id in 1..=3u16 {
            assert_eq!(rs[&id].stdout, format!("\r\nm{id}").into_bytes());
        }
        // 8 keep-alive connections, 25 requests each, at once.
        let conns: Vec<_> = (0..8)
            .map(|c| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let mut cl = client(&addr);
                    for i in 0..25 {
                        let n = format!("{c}-{i}");
                        let r = cl
                            .request(&Req::new(1).keep_conn(true).param("N", &n))
                            .unwrap();
                        assert_eq!(r.stdout, format!("\r\n{n}").into_bytes());
                    }
                })
            })
            .collect();
        for t in conns {
            t.join().unwrap();
        }
    }

    #[test]
    fn async_serve_runs_a_task_per_request() {
        let (l, addr) = listener();
        let (done_tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let r = rt.block_on(async move {
                AsyncServer::from_listener(l)
                    .unwrap()
                    .serve(|mut req| async move {
                        let mut body = Vec::new();
                        req.read_to_end(&mut body).await?;
                        req.set_app_status(body.len() as u32);
                        req.write_all(b"\r\n").await?;
                        req.write_all(&body).await?;
                        req.finish()
                    })
                    .await
            });
            done_tx.send(r.is_ok()).unwrap();
        });
        let mut c = client(&addr);
        for (id, n) in [(1u16, 0usize), (2, 10), (3, 300_000)] {
            let b = body(n);
            let r = c
                .request(&Req::new(id).keep_conn(true).stdin(b.clone()))
                .unwrap();
            assert_eq!(r.app_status as usize, n);
            assert!(r.stdout[2..] == b[..]);
        }
        // Concurrent connections on the one-thread runtime.
        let ts: Vec<_> = (0..8)
            .map(|i| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let r = ask(&addr, &Req::new(1).stdin(body(i * 1000)));
                    assert_eq!(r.app_status as usize, i * 1000);
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        // serve() does not end while the server runs (shutdown is process-wide, not tested).
        assert!(done.try_recv().is_err());
    }

    #[test]
    fn async_requests_are_send() {
        fn send<T: Send + 'static>() {}
        send::<AsyncRequest>();
        send::<AsyncServer>();
    }
}
