//! Requests as a web server would send them, encoded once per request id.

use crate::cli::Options;
use fcgi_runtime_protocol::record::{push_stream, push_stream_end, rtype, MAX_ALIGNED_CONTENT_LEN};
use fcgi_runtime_tools::client::{encode_begin_and_params, encode_request, Request};
use std::io::{self, Write};

/// The PARAMS of every request: what nginx's fastcgi_params sends for this URI, then the `-p`
/// overrides (in place when they replace one, appended otherwise).
pub(crate) fn build_params(o: &Options) -> Vec<(String, String)> {
    let (path, query) = o.uri.split_once('?').unwrap_or((o.uri.as_str(), ""));
    let post = o.body > 0;
    let mut p: Vec<(String, String)> = Vec::new();
    let mut add = |n: &str, v: &str| p.push((n.to_string(), v.to_string()));
    add("QUERY_STRING", query);
    add("REQUEST_METHOD", if post { "POST" } else { "GET" });
    add(
        "CONTENT_TYPE",
        if post { "application/octet-stream" } else { "" },
    );
    add(
        "CONTENT_LENGTH",
        &if post {
            o.body.to_string()
        } else {
            String::new()
        },
    );
    add("SCRIPT_NAME", path);
    add("REQUEST_URI", &o.uri);
    add("DOCUMENT_URI", path);
    add("DOCUMENT_ROOT", "/var/www/html");
    add("SERVER_PROTOCOL", "HTTP/1.1");
    add("REQUEST_SCHEME", "http");
    add("GATEWAY_INTERFACE", "CGI/1.1");
    add("SERVER_SOFTWARE", "nginx/1.22.1");
    add("REMOTE_ADDR", "127.0.0.1");
    add("REMOTE_PORT", "54321");
    add("SERVER_ADDR", "127.0.0.1");
    add("SERVER_PORT", "80");
    add("SERVER_NAME", "localhost");
    add("REDIRECT_STATUS", "200");
    add("SCRIPT_FILENAME", &format!("/var/www/html{path}"));
    add("HTTP_HOST", "localhost");
    add("HTTP_USER_AGENT", "fcgi-bench/0.1");
    add(
        "HTTP_ACCEPT",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    );
    add("HTTP_ACCEPT_ENCODING", "gzip, deflate");
    add("HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5");
    add("HTTP_CONNECTION", "keep-alive");
    for (n, v) in &o.params {
        match p.iter_mut().find(|(pn, _)| pn == n) {
            Some(slot) => slot.1 = v.clone(),
            None => p.push((n.clone(), v.clone())),
        }
    }
    p
}

/// Above this encoded size a request's body is written as repeated STDIN chunks (bounded memory)
/// and connections use a writer thread.
pub(crate) const INLINE_LIMIT: u64 = 256 * 1024;

/// The bytes of one request: `head`, then `chunk` `nchunks` times, then `tail`.
pub(crate) struct Encoded {
    pub(crate) head: Vec<u8>,
    pub(crate) chunk: Vec<u8>,
    pub(crate) nchunks: u64,
    pub(crate) tail: Vec<u8>,
}

impl Encoded {
    pub(crate) fn len(&self) -> u64 {
        self.head.len() as u64 + self.chunk.len() as u64 * self.nchunks + self.tail.len() as u64
    }

    pub(crate) fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.head)?;
        for _ in 0..self.nchunks {
            w.write_all(&self.chunk)?;
        }
        w.write_all(&self.tail)
    }
}

/// A deterministic body pattern.
pub(crate) fn body_byte(i: u64) -> u8 {
    b'a' + (i % 26) as u8
}

pub(crate) fn encode(o: &Options, params: &[(String, String)], id: u16) -> Encoded {
    let mut req = Request::new(id).keep_conn(o.keep);
    for (n, v) in params {
        req = req.param(n, v);
    }
    if o.body <= INLINE_LIMIT {
        req.stdin = (0..o.body).map(body_byte).collect();
        let mut head = Vec::new();
        encode_request(&req, &mut head);
        return Encoded {
            head,
            chunk: Vec::new(),
            nchunks: 0,
            tail: Vec::new(),
        };
    }
    // The body as push_stream would split it, without holding it: `nchunks` records of
    // MAX_ALIGNED_CONTENT_LEN bytes, then the rest and the stream's end.
    let mut head = Vec::new();
    encode_begin_and_params(&req, &mut head);
    let full = MAX_ALIGNED_CONTENT_LEN as u64;
    let data: Vec<u8> = (0..full).map(body_byte).collect();
    let mut chunk = Vec::new();
    push_stream(&mut chunk, rtype::STDIN, id, &data);
    let mut tail = Vec::new();
    push_stream(
        &mut tail,
        rtype::STDIN,
        id,
        &data[..(o.body % full) as usize],
    );
    push_stream_end(&mut tail, rtype::STDIN, id);
    Encoded {
        head,
        chunk,
        nchunks: o.body / full,
        tail,
    }
}
