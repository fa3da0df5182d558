//! The benchmark's hello on tokio-fastcgi 1.3, a peer measured beside bench/apps/*.c.
//!
//!   tokio-hello ADDR THREADS MODE [MAX]
//!
//! MODE: hello (answers "Hello, world!\n") or big (100 KiB of text in one write, the same body
//! as the C programs). THREADS sizes tokio's multi-threaded runtime (its worker threads); MAX
//! must be 0 (the suite counts system calls of the C programs only). One task per accepted
//! connection, TCP_NODELAY set on it, requests of a connection processed in arrival order, as
//! tokio-fastcgi's examples do. Reads go through a BufReader (tokio-fastcgi reads each record
//! header and body with its own read_exact); writes cannot be buffered, since the library writes
//! END_REQUEST after the handler returns and offers no flush after it.

use std::process::ExitCode;
use tokio::io::BufReader;
use tokio::net::TcpListener;
use tokio_fastcgi::{RequestResult, Requests};

const HELLO: &[u8] = b"Content-Type: text/plain\r\n\r\nHello, world!\n";
const HEAD: &[u8] = b"Content-Type: text/plain\r\n\r\n";
const BIG: usize = 100 * 1024;

fn response(mode: &str) -> Option<Vec<u8>> {
    match mode {
        "hello" => Some(HELLO.to_vec()),
        "big" => {
            let mut v = HEAD.to_vec();
            v.extend((0..BIG).map(|i| {
                if i % 64 == 63 {
                    b'\n'
                } else {
                    b'a' + (i % 26) as u8
                }
            }));
            Some(v)
        }
        _ => None,
    }
}

async fn serve(listener: TcpListener, body: &'static [u8]) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                eprintln!("tokio-hello: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("tokio-hello: TCP_NODELAY: {e}");
        }
        tokio::spawn(async move {
            let (rd, wr) = stream.into_split();
            let mut requests = Requests::new(BufReader::new(rd), wr, 255, 255);
            while let Ok(Some(request)) = requests.next().await {
                let done = request
                    .process(|request| async move {
                        match request.get_stdout().write(body).await {
                            Ok(_) => RequestResult::Complete(0),
                            Err(_) => RequestResult::Complete(1),
                        }
                    })
                    .await;
                if done.is_err() {
                    break;
                }
            }
        });
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let usage = || {
        eprintln!("usage: tokio-hello ADDR THREADS hello|big [0]");
        ExitCode::from(2)
    };
    if args.len() < 4 || args.get(4).is_some_and(|m| m != "0") {
        return usage();
    }
    let Ok(threads) = args[2].parse::<usize>() else {
        return usage();
    };
    let Some(body) = response(&args[3]) else {
        return usage();
    };
    let body: &'static [u8] = body.leak();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio-hello: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        match TcpListener::bind(&args[1]).await {
            Ok(l) => {
                serve(l, body).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tokio-hello: cannot listen on {}: {e}", args[1]);
                ExitCode::FAILURE
            }
        }
    })
}
