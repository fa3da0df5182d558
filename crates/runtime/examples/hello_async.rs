//! Serves "Hello, world!" as text/plain over FastCGI with the async face of the safe Rust API,
//! on tokio.
//!
//! ```sh
//! cargo run --release -p fcgi-runtime --features tokio --example hello_async -- 127.0.0.1:9555
//! ```
//!
//! One argument: the address to listen on. The environment variable `HELLO_THREADS` sets the
//! number of tokio worker threads (default: tokio's, one per CPU).

use fcgi_runtime::AsyncServer;
use std::process::ExitCode;
use tokio::io::AsyncWriteExt;

const HELLO: &[u8] = b"Content-Type: text/plain\r\n\r\nHello, world!\n";

async fn serve(addr: &str) -> std::io::Result<()> {
    // One task per request, spawned by the task that drives the runtime's event loop.
    AsyncServer::bind(addr)?
        .serve(|mut req| async move {
            req.write_all(HELLO).await?;
            req.finish()
        })
        .await
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr] = args.as_slice() else {
        eprintln!("usage: hello_async ADDRESS   (e.g. hello_async 127.0.0.1:9555)");
        return ExitCode::from(2);
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("HELLO_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        rt.worker_threads(n);
    }
    let served = rt
        .enable_io()
        .build()
        .and_then(|rt| rt.block_on(serve(addr)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello_async: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
