//! Serves "Hello, world!" as text/plain over FastCGI with the blocking face of the safe Rust
//! API.
//!
//! ```sh
//! cargo run --release -p fcgi-runtime --example hello -- 127.0.0.1:9555
//! target/release/fcgi-client 127.0.0.1:9555 /        # or nginx: fastcgi_pass 127.0.0.1:9555;
//! ```
//!
//! One argument: the address to listen on (`host:port`, `[v6]:port`, `port` or a Unix socket
//! path). The environment variable `HELLO_THREADS` sets the number of threads (default: one per
//! CPU).

use fcgi_runtime::Server;
use std::io::Write;
use std::process::ExitCode;

const HELLO: &[u8] = b"Content-Type: text/plain\r\n\r\nHello, world!\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr] = args.as_slice() else {
        eprintln!("usage: hello ADDRESS   (e.g. hello 127.0.0.1:9555)");
        return ExitCode::from(2);
    };
    let threads = std::env::var("HELLO_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let served = Server::bind(addr)
        .and_then(|server| server.threads(threads).serve(|req| req.write_all(HELLO)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
