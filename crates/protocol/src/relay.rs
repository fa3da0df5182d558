//! Record boundaries for relaying one request to another process (the runtime's relay,
//! runtime/relay.rs): which bytes of the web server's connection make up the request's
//! input, and which bytes of the other process's connection make up its response. Sans-IO:
//! the caller reads and writes; this only scans whole records and copies them.
//!
//! The request goes over as the web server sent it, KEEP_CONN included: the process that serves
//! it treats the connection as the web server asked (a kept one is not closed under input that
//! may still arrive, such as an ABORT_REQUEST, which would reset it and lose the response's
//! end); the relay carries exactly one request and closes its connection after END_REQUEST.

use super::record::{
    push_nv_pair, push_record, push_stream, push_stream_end, rtype, Header, Role, HEADER_LEN,
    KEEP_CONN, MANAGEMENT_ID, VERSION_1,
};

/// What a scan found wrong: the bytes are not FastCGI records of one request.
#[derive(Debug, PartialEq, Eq)]
pub struct NotFastCgi;

/// The length of the whole record at the front of `buf` with its header, once all of it is
/// there.
fn whole_record(buf: &[u8]) -> Result<Option<(Header, usize)>, NotFastCgi> {
    let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let h = Header::parse(h);
    if h.version != VERSION_1 {
        return Err(NotFastCgi);
    }
    let len = HEADER_LEN + h.content_len as usize + h.padding_len as usize;
    Ok((buf.len() >= len).then_some((h, len)))
}

/// What was read of a request before it was relayed: enough to send it again.
pub struct ReadSoFar<'a, P> {
    pub id: u16,
    pub role: Role,
    pub keep: bool,
    /// Its parameters, complete.
    pub params: P,
    /// The STDIN bytes received and not read by the application (none was), and whether the
    /// stream ended.
    pub stdin: &'a [u8],
    pub stdin_eof: bool,
    /// The same for DATA (the Filter role).
    pub data: &'a [u8],
    pub data_eof: bool,
}

impl<'a, P: Iterator<Item = (&'a [u8], &'a [u8])>> ReadSoFar<'a, P> {
    /// Writes the request as records to `out` (BEGIN_REQUEST with the web server's KEEP_CONN,
    /// PARAMS, the input so far) and returns the scan that carries on with the rest of its input, which
    /// the web server's connection still holds.
    pub fn resend(self, out: &mut Vec<u8>) -> RequestScan {
        let r = (self.role as u16).to_be_bytes();
        let flags = if self.keep { KEEP_CONN } else { 0 };
        push_record(
            out,
            rtype::BEGIN_REQUEST,
            self.id,
            &[r[0], r[1], flags, 0, 0, 0, 0, 0],
        );
        let mut pairs = Vec::new();
        for (name, value) in self.params {
            push_nv_pair(&mut pairs, name, value);
        }
        push_stream(out, rtype::PARAMS, self.id, &pairs);
        push_stream_end(out, rtype::PARAMS, self.id);
        push_stream(out, rtype::STDIN, self.id, self.stdin);
        if self.stdin_eof {
            push_stream_end(out, rtype::STDIN, self.id);
        }
        let filter = self.role == Role::Filter;
        if filter {
            push_stream(out, rtype::DATA, self.id, self.data);
            if self.data_eof {
                push_stream_end(out, rtype::DATA, self.id);
            }
        }
        RequestScan {
            id: Some(self.id),
            next_begun: false,
            keep: self.keep,
            filter,
            stdin_done: self.stdin_eof,
            data_done: self.data_eof,
        }
    }
}

/// The web server's side: the records of one request, up to the end of its input.
#[derive(Debug, Default)]
pub struct RequestScan {
    id: Option<u16>,
    next_begun: bool,
    keep: bool,
    filter: bool,
    stdin_done: bool,
    data_done: bool,
}

impl RequestScan {
    /// Takes the whole records at the front of `buf`: the request's own (its BEGIN_REQUEST,
    /// its input, an ABORT_REQUEST) and management records (request id
    /// 0) are copied to `out`, to go over; records of any other request (a web server that
    /// multiplexes, or pipelines its next request) are set aside in `aside`, in their order,
    /// for the connection's next owner. Returns how many bytes of `buf` were taken.
    pub fn forward(
        &mut self,
        buf: &[u8],
        out: &mut Vec<u8>,
        aside: &mut Vec<u8>,
    ) -> Result<usize, NotFastCgi> {
        let mut at = 0;
        while let Some((h, len)) = whole_record(&buf[at..])? {
            let rec = &buf[at..at + len];
            // A BEGIN_REQUEST reusing this request's id starts the next request (the id is
            // free again only once this one has ended): from there on everything is the next
            // owner's.
            self.next_begun |= h.rtype == rtype::BEGIN_REQUEST && self.id == Some(h.request_id);
            if self.next_begun {
                aside.extend_from_slice(rec);
                at += len;
                continue;
            }
            match (h.rtype, self.id) {
                (rtype::BEGIN_REQUEST, None) if h.request_id != MANAGEMENT_ID => {
                    if h.content_len < 8 {
                        return Err(NotFastCgi);
                    }
                    let body = &rec[HEADER_LEN..];
                    let role = u16::from_be_bytes([body[0], body[1]]);
                    self.id = Some(h.request_id);
                    self.keep = body[2] & KEEP_CONN != 0;
                    self.filter = Role::from_u16(role) == Some(Role::Filter);
                    out.extend_from_slice(rec);
                }
                (_, _) if h.request_id == MANAGEMENT_ID => out.extend_from_slice(rec),
                (_, Some(id)) if id == h.request_id => {
                    match h.rtype {
                        rtype::STDIN if h.content_len == 0 => self.stdin_done = true,
                        rtype::DATA if h.content_len == 0 => self.data_done = true,
                        _ => {}
                    }
                    out.extend_from_slice(rec);
                }
                // Another request's record, or a stray one before any BEGIN_REQUEST.
                _ => aside.extend_from_slice(rec),
            }
            at += len;
        }
        Ok(at)
    }

    /// True once the request's input has been copied whole.
    pub fn input_complete(&self) -> bool {
        self.id.is_some() && self.stdin_done && (!self.filter || self.data_done)
    }

    /// The request's id, once its BEGIN_REQUEST was seen.
    pub fn id(&self) -> Option<u16> {
        self.id
    }

    /// Whether the web server asked to keep its connection open after the request.
    pub fn keep(&self) -> bool {
        self.keep
    }
}

/// The serving process's side: the records of the response, up to END_REQUEST.
#[derive(Debug, Default)]
pub struct ResponseScan {
    ended: bool,
}

impl ResponseScan {
    /// Copies the whole records at the front of `buf` to `out` until the END_REQUEST of
    /// request `id` (included). Returns how many bytes were taken.
    pub fn forward(&mut self, id: u16, buf: &[u8], out: &mut Vec<u8>) -> Result<usize, NotFastCgi> {
        let mut at = 0;
        while !self.ended {
            let Some((h, len)) = whole_record(&buf[at..])? else {
                break;
            };
            if h.request_id != id && h.request_id != MANAGEMENT_ID {
                return Err(NotFastCgi);
            }
            out.extend_from_slice(&buf[at..at + len]);
            self.ended = h.rtype == rtype::END_REQUEST && h.request_id == id;
            at += len;
        }
        Ok(at)
    }

    /// True once END_REQUEST was copied.
    pub fn ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{push_end_request, push_record, push_stream_end, ProtocolStatus};

    fn begin(out: &mut Vec<u8>, id: u16, role: u16, flags: u8) {
        let r = role.to_be_bytes();
        push_record(
            out,
            rtype::BEGIN_REQUEST,
            id,
            &[r[0], r[1], flags, 0, 0, 0, 0, 0],
        );
    }

    #[test]
    fn a_request_goes_over_as_sent_and_the_next_one_is_set_aside() {
        let mut wire = Vec::new();
        push_record(&mut wire, rtype::GET_VALUES, 0, b"");
        begin(&mut wire, 1, 1, KEEP_CONN);
        push_record(&mut wire, rtype::PARAMS, 1, b"\x01\x01ab");
        push_stream_end(&mut wire, rtype::PARAMS, 1);
        push_record(&mut wire, rtype::STDIN, 1, b"body");
        push_stream_end(&mut wire, rtype::STDIN, 1);
        let request_len = wire.len();
        begin(&mut wire, 1, 1, KEEP_CONN);
        let mut s = RequestScan::default();
        let (mut out, mut aside) = (Vec::new(), Vec::new());
        // Byte by byte: only whole records are taken.
        let mut at = 0;
        for end in 1..=wire.len() {
            at += s.forward(&wire[at..end], &mut out, &mut aside).unwrap();
        }
        assert_eq!(at, wire.len());
        assert_eq!(aside, wire[request_len..], "the next request is set aside");
        assert!(s.input_complete());
        assert!(s.keep());
        assert_eq!(s.id(), Some(1));
        assert_eq!(out, wire[..request_len]);
    }

    #[test]
    fn a_filter_request_ends_with_its_data_stream() {
        let mut wire = Vec::new();
        begin(&mut wire, 3, 3, 0);
        push_stream_end(&mut wire, rtype::PARAMS, 3);
        push_stream_end(&mut wire, rtype::STDIN, 3);
        let mut s = RequestScan::default();
        let (mut out, mut aside) = (Vec::new(), Vec::new());
        assert_eq!(s.forward(&wire, &mut out, &mut aside), Ok(wire.len()));
        assert!(!s.input_complete());
        assert!(!s.keep());
        let mut more = Vec::new();
        push_stream_end(&mut more, rtype::DATA, 3);
        assert_eq!(s.forward(&more, &mut out, &mut aside), Ok(more.len()));
        assert!(s.input_complete());
        assert!(aside.is_empty());
    }

    #[test]
    fn other_requests_are_set_aside_and_garbled_input_is_refused() {
        let mut wire = Vec::new();
        begin(&mut wire, 1, 1, KEEP_CONN);
        let mut second = Vec::new();
        begin(&mut second, 2, 1, KEEP_CONN);
        push_stream_end(&mut second, rtype::PARAMS, 2);
        wire.extend_from_slice(&second);
        push_stream_end(&mut wire, rtype::PARAMS, 1);
        push_record(&mut wire, rtype::ABORT_REQUEST, 1, b"");
        let (mut out, mut aside) = (Vec::new(), Vec::new());
        let mut s = RequestScan::default();
        assert_eq!(s.forward(&wire, &mut out, &mut aside), Ok(wire.len()));
        assert_eq!(aside, second, "request 2's records, in order");
        assert_eq!(s.id(), Some(1));
        let mut want = Vec::new();
        begin(&mut want, 1, 1, KEEP_CONN);
        push_stream_end(&mut want, rtype::PARAMS, 1);
        push_record(&mut want, rtype::ABORT_REQUEST, 1, b"");
        assert_eq!(out, want, "request 1's records go over, its abort too");
        assert_eq!(
            RequestScan::default().forward(b"GET / HTTP/1.1\r\n", &mut out, &mut aside),
            Err(NotFastCgi)
        );
    }

    #[test]
    fn a_request_read_so_far_is_sent_again_and_its_input_carries_on() {
        let params: Vec<(&[u8], &[u8])> = vec![(b"A", b"1"), (b"LONG", &[b'x'; 300])];
        let mut out = Vec::new();
        let mut scan = ReadSoFar {
            id: 9,
            role: Role::Responder,
            keep: true,
            params: params.iter().map(|&(n, v)| (n, v)),
            stdin: b"first",
            stdin_eof: false,
            data: b"",
            data_eof: false,
        }
        .resend(&mut out);
        let mut want = Vec::new();
        begin(&mut want, 9, 1, KEEP_CONN);
        let mut pairs = Vec::new();
        push_nv_pair(&mut pairs, b"A", b"1");
        push_nv_pair(&mut pairs, b"LONG", &[b'x'; 300]);
        push_record(&mut want, rtype::PARAMS, 9, &pairs);
        push_stream_end(&mut want, rtype::PARAMS, 9);
        push_record(&mut want, rtype::STDIN, 9, b"first");
        assert_eq!(out, want);
        assert!(scan.keep() && !scan.input_complete());
        // The rest of STDIN, then the next request, on the web server's connection.
        let mut rest = Vec::new();
        push_record(&mut rest, rtype::STDIN, 9, b"second");
        push_stream_end(&mut rest, rtype::STDIN, 9);
        let len = rest.len();
        begin(&mut rest, 9, 1, KEEP_CONN);
        let (mut more, mut aside) = (Vec::new(), Vec::new());
        assert_eq!(scan.forward(&rest, &mut more, &mut aside), Ok(rest.len()));
        assert!(scan.input_complete());
        assert_eq!(more, rest[..len]);
        assert_eq!(aside, rest[len..]);
    }

    #[test]
    fn a_response_is_copied_up_to_its_end_request() {
        let mut wire = Vec::new();
        push_record(&mut wire, rtype::STDOUT, 7, b"Status: 200\r\n\r\nhi");
        push_record(&mut wire, rtype::STDERR, 7, b"warn");
        push_end_request(&mut wire, 7, 0, ProtocolStatus::RequestComplete);
        let len = wire.len();
        wire.extend_from_slice(b"junk after the end");
        let mut s = ResponseScan::default();
        let mut out = Vec::new();
        let mut at = 0;
        for end in 1..=wire.len() {
            at += s.forward(7, &wire[at..end], &mut out).unwrap();
        }
        assert_eq!(at, len);
        assert!(s.ended());
        assert_eq!(out, wire[..len]);
        let mut other = Vec::new();
        push_stream_end(&mut other, rtype::STDOUT, 8);
        assert_eq!(
            ResponseScan::default().forward(7, &other, &mut out),
            Err(NotFastCgi)
        );
    }
}
