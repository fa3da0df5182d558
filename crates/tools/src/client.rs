//! A small blocking FastCGI client: what a web server does, for the `fcgi-client` CLI and tests.
//!
//! ```no_run
//! use fcgi_runtime_tools::client::{Client, Request};
//! let mut c = Client::connect("127.0.0.1:9000")?;
//! let req = Request::new(1).param("REQUEST_METHOD", "GET").param("SCRIPT_NAME", "/");
//! let resp = c.request(&req)?;
//! print!("{}", String::from_utf8_lossy(&resp.stdout));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The reader checks the framing an application must produce and reports violations as
//! [`io::ErrorKind::InvalidData`]: a version other than 1, a stream record after that stream's
//! end, output after END_REQUEST, END_REQUEST(COMPLETE) without the empty STDOUT record, records
//! of unexpected types or ids. One of them real applications commit: PHP's FastCGI layer never
//! sends the empty STDOUT record, and web servers take END_REQUEST as the end of the output.
//! A lenient reader ([`Client::set_strict`], [`ResponseBuilder::lenient`]) accepts that and
//! notes it in [`Response::stdout_unterminated`].

use fcgi_runtime::addr::{self, ClientStream};
use fcgi_runtime_protocol::nvpair::parse_pairs;
use fcgi_runtime_protocol::record::{
    push_begin_request, push_nv_pair, push_record, push_stream, push_stream_end, rtype, Header,
    HEADER_LEN, MANAGEMENT_ID, VERSION_1,
};
use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

/// Above this many encoded bytes, [`Client::request`] writes from a helper thread while reading.
const THREADED_WRITE_THRESHOLD: usize = 64 * 1024;

/// One request as a web server would send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Request id (non-zero).
    pub id: u16,
    /// Role: 1 responder, 2 authorizer, 3 filter (other values to test rejection).
    pub role: u16,
    /// Whether BEGIN_REQUEST asks the application to keep the connection open.
    pub keep_conn: bool,
    /// Parameters, sent in this order.
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    /// The STDIN stream (the request body).
    pub stdin: Vec<u8>,
    /// The DATA stream, sent only for the filter role (3).
    pub data: Vec<u8>,
}

impl Request {
    /// A responder request with id `id`, no params, empty streams, KEEP_CONN unset.
    pub fn new(id: u16) -> Request {
        Request {
            id,
            role: 1,
            keep_conn: false,
            params: Vec::new(),
            stdin: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Sets the role.
    pub fn role(mut self, role: u16) -> Request {
        self.role = role;
        self
    }

    /// Sets KEEP_CONN.
    pub fn keep_conn(mut self, keep: bool) -> Request {
        self.keep_conn = keep;
        self
    }

    /// Appends a parameter.
    pub fn param(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Request {
        self.params
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Sets the STDIN stream.
    pub fn stdin(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.stdin = body.into();
        self
    }

    /// Sets the DATA stream (filter role).
    pub fn data(mut self, data: impl Into<Vec<u8>>) -> Request {
        self.data = data.into();
        self
    }
}

/// The encoded name-value pairs of `params`, in order.
pub fn encode_pairs(params: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in params {
        push_nv_pair(&mut out, n, v);
    }
    out
}

/// Encodes the start of `req`: BEGIN_REQUEST and the whole PARAMS stream, without STDIN (for
/// tests that send the body later, or never).
pub fn encode_begin_and_params(req: &Request, out: &mut Vec<u8>) {
    push_begin_request(out, req.id, req.role, req.keep_conn);
    push_stream(out, rtype::PARAMS, req.id, &encode_pairs(&req.params));
    push_stream_end(out, rtype::PARAMS, req.id);
}

/// Encodes `req` completely: BEGIN_REQUEST; the PARAMS stream (records of at most 65528 bytes,
/// pairs may straddle records) and its empty end record; STDIN records and the empty STDIN; for
/// the filter role, DATA records and the empty DATA.
pub fn encode_request(req: &Request, out: &mut Vec<u8>) {
    encode_begin_and_params(req, out);
    push_stream(out, rtype::STDIN, req.id, &req.stdin);
    push_stream_end(out, rtype::STDIN, req.id);
    if req.role == 3 {
        push_stream(out, rtype::DATA, req.id, &req.data);
        push_stream_end(out, rtype::DATA, req.id);
    }
}

/// One record as received (version already checked to be 1; padding read and dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    /// Record type.
    pub rtype: u8,
    /// Request id.
    pub id: u16,
    /// Content bytes.
    pub content: Vec<u8>,
    /// Padding length from the header.
    pub padding_len: u8,
}

/// What the application answered to one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// Concatenated STDOUT content.
    pub stdout: Vec<u8>,
    /// Concatenated STDERR content.
    pub stderr: Vec<u8>,
    /// appStatus of END_REQUEST.
    pub app_status: u32,
    /// protocolStatus of END_REQUEST (0 = REQUEST_COMPLETE).
    pub protocol_status: u8,
    /// Number of records received for the request, END_REQUEST included.
    pub records: usize,
    /// Whether the STDOUT stream was terminated by its empty record.
    pub stdout_closed: bool,
    /// Whether STDERR was terminated by its empty record (it may also never have been opened).
    pub stderr_closed: bool,
    /// END_REQUEST(COMPLETE) ended STDOUT without its empty record (FastCGI §5.3 wants one;
    /// PHP's layer never sends it). Only a lenient reader accepts such a response.
    pub stdout_unterminated: bool,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Accumulates the records of one request and checks their order; what
/// [`Client::read_response`] uses, public for readers that see several ids or management
/// records on one connection.
#[derive(Debug, Default)]
pub struct ResponseBuilder {
    resp: Response,
    ended: bool,
    lenient: bool,
}

impl ResponseBuilder {
    /// An empty builder that holds the application to the specification.
    pub fn new() -> ResponseBuilder {
        ResponseBuilder::default()
    }

    /// An empty builder that accepts END_REQUEST(COMPLETE) without the empty STDOUT record,
    /// setting [`Response::stdout_unterminated`] instead of failing.
    pub fn lenient() -> ResponseBuilder {
        ResponseBuilder {
            lenient: true,
            ..ResponseBuilder::default()
        }
    }

    /// Whether END_REQUEST has been fed.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The response so far (complete once [`ResponseBuilder::is_ended`]).
    pub fn response(&self) -> &Response {
        &self.resp
    }

    /// The response, consuming the builder.
    pub fn into_response(self) -> Response {
        self.resp
    }

    /// Adds a record of this request (the id is not checked); `Ok(true)` once END_REQUEST
    /// completed the response. Any record after END_REQUEST, a stream record after its
    /// stream's end, a malformed END_REQUEST, a type other than STDOUT, STDERR and
    /// END_REQUEST, and (unless lenient) END_REQUEST(COMPLETE) before the empty STDOUT record
    /// are `InvalidData`.
    pub fn feed(&mut self, rec: RawRecord) -> io::Result<bool> {
        if self.ended {
            return Err(invalid(format!(
                "record type {} after END_REQUEST (id {})",
                rec.rtype, rec.id
            )));
        }
        let r = &mut self.resp;
        r.records += 1;
        let id = rec.id;
        match rec.rtype {
            rtype::STDOUT | rtype::STDERR => {
                let (closed, buf, name) = if rec.rtype == rtype::STDOUT {
                    (&mut r.stdout_closed, &mut r.stdout, "STDOUT")
                } else {
                    (&mut r.stderr_closed, &mut r.stderr, "STDERR")
                };
                if *closed {
                    return Err(invalid(format!(
                        "{name} record after the end of {name} (id {id})"
                    )));
                }
                if rec.content.is_empty() {
                    *closed = true;
                } else {
                    buf.extend_from_slice(&rec.content);
                }
                Ok(false)
            }
            rtype::END_REQUEST => {
                let c = &rec.content;
                if c.len() != 8 {
                    return Err(invalid(format!(
                        "END_REQUEST of {} bytes (id {id})",
                        c.len()
                    )));
                }
                r.app_status = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                r.protocol_status = c[4];
                if r.protocol_status == 0 && !r.stdout_closed {
                    if !self.lenient {
                        return Err(invalid(format!(
                            "END_REQUEST(COMPLETE) without the empty STDOUT record (id {id})"
                        )));
                    }
                    r.stdout_unterminated = true;
                }
                self.ended = true;
                Ok(true)
            }
            t => Err(invalid(format!(
                "unexpected record type {t} for request {id}"
            ))),
        }
    }
}

/// Decodes a complete buffer of name-value pairs (FastCGI §3.4), such as a GET_VALUES_RESULT
/// body, into owned pairs: [`parse_pairs`], the protocol's decoder, collected. A pair cut short
/// or a length past the end is `InvalidData`.
pub fn decode_nv_pairs(b: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    parse_pairs(b)
        .map(|p| {
            p.map(|(n, v)| (n.to_vec(), v.to_vec()))
                .map_err(|_| invalid("truncated name-value pair".into()))
        })
        .collect()
}

/// A blocking connection to a FastCGI application.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<ClientStream>,
    strict: bool,
}

impl Client {
    /// Connects to an address in [`addr::connect`] syntax (`host:port`, `[v6]:port`, a path).
    pub fn connect(address: &str) -> io::Result<Client> {
        addr::connect(address).map(Client::from_stream)
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: ClientStream) -> Client {
        Client {
            reader: BufReader::with_capacity(64 * 1024, stream),
            strict: true,
        }
    }

    /// Whether responses must end STDOUT with its empty record (the default), or may end it
    /// at END_REQUEST as PHP's layer does (noted in [`Response::stdout_unterminated`]).
    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }

    fn builder(&self) -> ResponseBuilder {
        if self.strict {
            ResponseBuilder::new()
        } else {
            ResponseBuilder::lenient()
        }
    }

    /// The underlying stream (for timeouts, half-closing, raw reads in tests).
    pub fn stream(&self) -> &ClientStream {
        self.reader.get_ref()
    }

    /// Sets both read and write timeouts (`None`: block forever).
    pub fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.stream().set_read_timeout(t)?;
        self.stream().set_write_timeout(t)
    }

    /// Writes raw bytes (arbitrary, possibly malformed records).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Encodes and writes `req` without waiting for anything.
    pub fn send_request(&mut self, req: &Request) -> io::Result<()> {
        let mut buf = Vec::new();
        encode_request(req, &mut buf);
        self.send_raw(&buf)
    }

    /// Reads one record; `Ok(None)` on EOF at a record boundary. A version other than 1 or an
    /// EOF inside a record is an error.
    pub fn read_record(&mut self) -> io::Result<Option<RawRecord>> {
        let mut h = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match self.reader.read(&mut h[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let h = Header::parse(&h);
        if h.version != VERSION_1 {
            return Err(invalid(format!("record version {}", h.version)));
        }
        let mut content = vec![0; h.content_len as usize];
        self.reader.read_exact(&mut content)?;
        let mut pad = [0u8; 255];
        self.reader.read_exact(&mut pad[..h.padding_len as usize])?;
        Ok(Some(RawRecord {
            rtype: h.rtype,
            id: h.request_id,
            content,
            padding_len: h.padding_len,
        }))
    }

    /// Reads one record, turning EOF into an `UnexpectedEof` error.
    fn next_record(&mut self) -> io::Result<RawRecord> {
        self.read_record()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before END_REQUEST",
            )
        })
    }

    /// Reads the response to request `id`, up to and including its END_REQUEST. Records for any
    /// other id (management records included) are an error.
    pub fn read_response(&mut self, id: u16) -> io::Result<Response> {
        let mut p = self.builder();
        loop {
            let rec = self.next_record()?;
            if rec.id != id {
                return Err(invalid(format!(
                    "record type {} for id {} while reading the response to {id}",
                    rec.rtype, rec.id
                )));
            }
            if p.feed(rec)? {
                return Ok(p.into_response());
            }
        }
    }

    /// Reads the responses to several concurrent (multiplexed) requests, in whatever order their
    /// records arrive, until each id has its END_REQUEST. Other ids are an error.
    pub fn read_responses(&mut self, ids: &[u16]) -> io::Result<HashMap<u16, Response>> {
        let mut open: HashMap<u16, ResponseBuilder> =
            ids.iter().map(|&i| (i, self.builder())).collect();
        let mut done = HashMap::new();
        while !open.is_empty() {
            let rec = self.next_record()?;
            let id = rec.id;
            let p = open.get_mut(&id).ok_or_else(|| {
                invalid(format!("record type {} for unexpected id {id}", rec.rtype))
            })?;
            if p.feed(rec)? {
                let p = open.remove(&id).expect("present");
                done.insert(id, p.into_response());
            }
        }
        Ok(done)
    }

    /// Sends `req` and reads its response. Large requests are written from a helper thread
    /// while this thread reads, so an application that answers before consuming its whole body
    /// cannot deadlock the exchange. If the response arrives complete, a failed write of the
    /// rest of the request (the application closed early) is not an error.
    pub fn request(&mut self, req: &Request) -> io::Result<Response> {
        let mut buf = Vec::new();
        encode_request(req, &mut buf);
        if buf.len() <= THREADED_WRITE_THRESHOLD {
            self.send_raw(&buf)?;
            return self.read_response(req.id);
        }
        let mut writer = self.stream().try_clone()?;
        std::thread::scope(|s| {
            let h = s.spawn(move || writer.write_all(&buf));
            let resp = self.read_response(req.id);
            if resp.is_err() {
                // Unblock a writer stuck on a peer that stopped reading.
                let _ = self.stream().shutdown(Shutdown::Both);
            }
            // The write result only matters when the response did not arrive.
            let _ = h.join();
            resp
        })
    }

    /// Asks for management variables with GET_VALUES and returns the GET_VALUES_RESULT pairs.
    pub fn get_values(&mut self, names: &[&str]) -> io::Result<Vec<(String, String)>> {
        let mut body = Vec::new();
        for n in names {
            push_nv_pair(&mut body, n.as_bytes(), b"");
        }
        let mut out = Vec::new();
        push_record(&mut out, rtype::GET_VALUES, MANAGEMENT_ID, &body);
        self.send_raw(&out)?;
        let rec = self.next_record()?;
        if rec.id != MANAGEMENT_ID || rec.rtype != rtype::GET_VALUES_RESULT {
            return Err(invalid(format!(
                "expected GET_VALUES_RESULT, got type {} id {}",
                rec.rtype, rec.id
            )));
        }
        Ok(decode_nv_pairs(&rec.content)?
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits an encoded buffer into (header, content) pairs.
    fn split(mut b: &[u8]) -> Vec<(Header, Vec<u8>)> {
        let mut v = Vec::new();
        while !b.is_empty() {
            let h = Header::parse(b[..8].try_into().unwrap());
            let n = h.content_len as usize;
            v.push((h, b[8..8 + n].to_vec()));
            b = &b[8 + n + h.padding_len as usize..];
        }
        v
    }

    #[test]
    fn encode_responder() {
        let req = Request::new(7)
            .keep_conn(true)
            .param("A", "1")
            .param(vec![b'N'; 200], vec![b'v'; 70_000])
            .stdin(vec![1u8; 70_000])
            .data("ignored");
        let mut out = Vec::new();
        encode_request(&req, &mut out);
        let recs = split(&out);
        assert_eq!(recs[0].0.rtype, rtype::BEGIN_REQUEST);
        assert_eq!(recs[0].1, [0, 1, 1, 0, 0, 0, 0, 0]);
        let types: Vec<(u8, usize)> = recs.iter().map(|(h, c)| (h.rtype, c.len())).collect();
        assert!(recs.iter().all(|(h, _)| h.request_id == 7));
        let params: Vec<u8> = recs
            .iter()
            .filter(|(h, _)| h.rtype == rtype::PARAMS)
            .flat_map(|(_, c)| c.clone())
            .collect();
        let pairs = decode_nv_pairs(&params).unwrap();
        assert_eq!(pairs, req.params);
        assert_eq!(types.iter().filter(|t| t.0 == rtype::PARAMS).count(), 3);
        assert!(types.contains(&(rtype::PARAMS, 0)));
        assert_eq!(types.last(), Some(&(rtype::STDIN, 0)));
        assert!(!types.iter().any(|t| t.0 == rtype::DATA));
        assert_eq!(out.len() % 8, 0);
    }

    #[test]
    fn encode_filter_sends_data() {
        let mut out = Vec::new();
        encode_request(&Request::new(1).role(3).data("xyz"), &mut out);
        let t: Vec<(u8, Vec<u8>)> = split(&out).into_iter().map(|(h, c)| (h.rtype, c)).collect();
        assert_eq!(t[0].1, [0, 3, 0, 0, 0, 0, 0, 0]);
        let tail: Vec<_> = t[1..].to_vec();
        assert_eq!(
            tail,
            vec![
                (rtype::PARAMS, vec![]),
                (rtype::STDIN, vec![]),
                (rtype::DATA, b"xyz".to_vec()),
                (rtype::DATA, vec![])
            ]
        );
    }

    #[test]
    fn decode_pairs_long_lengths() {
        let mut b = Vec::new();
        push_nv_pair(&mut b, b"K", &[b'x'; 300]);
        push_nv_pair(&mut b, b"", b"");
        let p = decode_nv_pairs(&b).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1.len(), 300);
        assert!(decode_nv_pairs(&b[..b.len() - 3]).is_err());
        assert!(decode_nv_pairs(&[0x80, 0]).is_err());
    }

    #[test]
    fn only_a_lenient_builder_takes_stdout_ended_by_end_request() {
        let rec = |t: u8, c: &[u8]| RawRecord {
            rtype: t,
            id: 1,
            content: c.to_vec(),
            padding_len: 0,
        };
        let end = [0, 0, 0, 0, 0, 0, 0, 0];
        let mut strict = ResponseBuilder::new();
        strict.feed(rec(rtype::STDOUT, b"php")).unwrap();
        let e = strict.feed(rec(rtype::END_REQUEST, &end)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let mut lenient = ResponseBuilder::lenient();
        lenient.feed(rec(rtype::STDOUT, b"php")).unwrap();
        assert!(lenient.feed(rec(rtype::END_REQUEST, &end)).unwrap());
        let r = lenient.into_response();
        assert!(r.stdout_unterminated && !r.stdout_closed);
        assert_eq!(r.stdout, b"php");
        // A well-formed response is no note.
        let mut lenient = ResponseBuilder::lenient();
        lenient.feed(rec(rtype::STDOUT, b"")).unwrap();
        lenient.feed(rec(rtype::END_REQUEST, &end)).unwrap();
        assert!(!lenient.into_response().stdout_unterminated);
    }

    #[test]
    fn builder_rejects_records_after_end() {
        let rec = |t: u8, c: &[u8]| RawRecord {
            rtype: t,
            id: 1,
            content: c.to_vec(),
            padding_len: 0,
        };
        let mut b = ResponseBuilder::new();
        assert!(!b.feed(rec(rtype::STDOUT, b"hi")).unwrap());
        assert!(!b.feed(rec(rtype::STDOUT, b"")).unwrap());
        assert!(b
            .feed(rec(rtype::END_REQUEST, &[0, 0, 1, 0, 0, 0, 0, 0]))
            .unwrap());
        assert!(b.is_ended());
        assert_eq!(b.response().app_status, 256);
        let e = b.feed(rec(rtype::STDOUT, b"late")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(b.into_response().stdout, b"hi");
    }
}
