//! A small HTTP/1.1 client over a plain `TcpStream`, for what curl cannot do in a test: a
//! thousand kept-alive connections from one process, a body sent in parts with a wait in
//! between, a response read piece by piece, and a connection dropped on purpose.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Read and write timeout of every connection: a bound on a hang, never a measurement.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub struct HttpResponse {
    pub status: u16,
    /// The header lines, lower-cased names, without the status line.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A connection to nginx on 127.0.0.1:`port`, with [`IO_TIMEOUT`] on both directions.
pub fn connect(port: u16) -> io::Result<BufReader<TcpStream>> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(BufReader::new(s))
}

/// Sends `METHOD path HTTP/1.1` with the given extra header lines (each without CRLF).
pub fn send_head(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    extra: &[String],
) -> io::Result<()> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    conn.get_mut().write_all(req.as_bytes())
}

fn read_line(conn: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before the end of the response",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads the status line and the header block.
pub fn read_head(conn: &mut BufReader<TcpStream>) -> io::Result<(u16, Vec<(String, String)>)> {
    let status_line = read_line(conn)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(conn)?;
        if line.is_empty() {
            return Ok((status, headers));
        }
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {line:?}")))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
}

/// Reads one response. `head_request`: the answer to HEAD, which has no body whatever its
/// headers say. Bodies come with Content-Length or chunked (decoded here).
pub fn read_response(
    conn: &mut BufReader<TcpStream>,
    head_request: bool,
) -> io::Result<HttpResponse> {
    let (status, headers) = read_head(conn)?;
    let mut r = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request {
        return Ok(r);
    }
    if r.header("transfer-encoding") == Some("chunked") {
        loop {
            let size_line = read_line(conn)?;
            let hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16)
                .map_err(|_| bad(format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                // Trailers, then the empty line.
                while !read_line(conn)?.is_empty() {}
                return Ok(r);
            }
            let at = r.body.len();
            r.body.resize(at + size, 0);
            conn.read_exact(&mut r.body[at..])?;
            if !read_line(conn)?.is_empty() {
                return Err(bad("no CRLF after a chunk".to_string()));
            }
        }
    }
    if let Some(len) = r.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        r.body.resize(len, 0);
        conn.read_exact(&mut r.body)?;
        return Ok(r);
    }
    conn.read_to_end(&mut r.body)?;
    Ok(r)
}

/// A GET on a kept-alive connection, and its response.
pub fn get(conn: &mut BufReader<TcpStream>, path: &str) -> io::Result<HttpResponse> {
    send_head(conn, "GET", path, &[])?;
    read_response(conn, false)
}

/// Reads raw bytes into `seen` until it contains `needle` (or the read times out or the
/// connection ends, which is an error).
pub fn read_until(
    conn: &mut BufReader<TcpStream>,
    seen: &mut Vec<u8>,
    needle: &[u8],
) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed before {:?} arrived",
                    String::from_utf8_lossy(needle)
                ),
            ));
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

/// The body of a chunked message (the bytes after the header block), or None if it is not
/// complete and well-formed.
pub fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return (raw == b"\r\n").then_some(body);
        }
        if raw.len() < size + 2 || &raw[size..size + 2] != b"\r\n" {
            return None;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}
