//! FastCGI records: the 8-byte header, the constants of the specification, and encoders for the
//! records an application (and a client, for tests and the CLI) sends.
//!
//! Everything here is pure: it reads from slices and appends to `Vec<u8>`.

/// The only protocol version the specification defines (§3.3).
pub const VERSION_1: u8 = 1;
/// Length of a record header.
pub const HEADER_LEN: usize = 8;
/// Largest content a single record can carry (contentLength is 16 bits).
pub const MAX_CONTENT_LEN: usize = 0xffff;
/// Largest 8-aligned content length: stream records of this size need no padding.
pub const MAX_ALIGNED_CONTENT_LEN: usize = 0xfff8;
/// Request id reserved for management records.
pub const MANAGEMENT_ID: u16 = 0;
/// Flag bit of BEGIN_REQUEST: keep the connection open after the request.
pub const KEEP_CONN: u8 = 1;

/// Record types (§8).
pub mod rtype {
    pub const BEGIN_REQUEST: u8 = 1;
    pub const ABORT_REQUEST: u8 = 2;
    pub const END_REQUEST: u8 = 3;
    pub const PARAMS: u8 = 4;
    pub const STDIN: u8 = 5;
    pub const STDOUT: u8 = 6;
    pub const STDERR: u8 = 7;
    pub const DATA: u8 = 8;
    pub const GET_VALUES: u8 = 9;
    pub const GET_VALUES_RESULT: u8 = 10;
    pub const UNKNOWN_TYPE: u8 = 11;
}

/// Names of the management variables of GET_VALUES (§4.1).
pub mod mgmt {
    pub const MAX_CONNS: &[u8] = b"FCGI_MAX_CONNS";
    pub const MAX_REQS: &[u8] = b"FCGI_MAX_REQS";
    pub const MPXS_CONNS: &[u8] = b"FCGI_MPXS_CONNS";
}

/// The role a BEGIN_REQUEST asks the application to play (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Role {
    Responder = 1,
    Authorizer = 2,
    Filter = 3,
}

impl Role {
    /// The role for a wire value, `None` for roles the specification does not define.
    pub fn from_u16(v: u16) -> Option<Role> {
        match v {
            1 => Some(Role::Responder),
            2 => Some(Role::Authorizer),
            3 => Some(Role::Filter),
            _ => None,
        }
    }

    /// The value of the `FCGI_ROLE` parameter PHP and libfcgi expose.
    pub fn name(self) -> &'static str {
        match self {
            Role::Responder => "RESPONDER",
            Role::Authorizer => "AUTHORIZER",
            Role::Filter => "FILTER",
        }
    }
}

/// protocolStatus of END_REQUEST (§5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ProtocolStatus {
    RequestComplete = 0,
    CantMpxConn = 1,
    Overloaded = 2,
    UnknownRole = 3,
}

/// A parsed record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub rtype: u8,
    pub request_id: u16,
    pub content_len: u16,
    pub padding_len: u8,
}

impl Header {
    /// Reads a header from its 8 bytes. The reserved byte is ignored.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            version: b[0],
            rtype: b[1],
            request_id: u16::from_be_bytes([b[2], b[3]]),
            content_len: u16::from_be_bytes([b[4], b[5]]),
            padding_len: b[6],
        }
    }

    /// The 8 bytes of a version-1 header.
    pub fn encode(rtype: u8, request_id: u16, content_len: u16, padding_len: u8) -> [u8; 8] {
        let id = request_id.to_be_bytes();
        let len = content_len.to_be_bytes();
        [
            VERSION_1,
            rtype,
            id[0],
            id[1],
            len[0],
            len[1],
            padding_len,
            0,
        ]
    }
}

/// Padding that brings a record with `content_len` bytes of content to a multiple of 8.
#[inline]
pub fn padding_for(content_len: usize) -> u8 {
    ((8 - (content_len & 7)) & 7) as u8
}

const ZEROS: [u8; 8] = [0; 8];

/// Appends one record (header, content, zero padding to 8 bytes).
///
/// # Panics
/// If `content` is longer than [`MAX_CONTENT_LEN`]; callers split streams with [`push_stream`].
pub fn push_record(out: &mut Vec<u8>, rtype: u8, request_id: u16, content: &[u8]) {
    assert!(content.len() <= MAX_CONTENT_LEN, "record content too long");
    let pad = padding_for(content.len());
    out.reserve(HEADER_LEN + content.len() + pad as usize);
    out.extend_from_slice(&Header::encode(
        rtype,
        request_id,
        content.len() as u16,
        pad,
    ));
    out.extend_from_slice(content);
    out.extend_from_slice(&ZEROS[..pad as usize]);
}

/// Appends `data` as stream records of at most [`MAX_ALIGNED_CONTENT_LEN`] bytes each. Appends
/// nothing for empty `data`: the end of a stream is a separate, explicit [`push_stream_end`].
pub fn push_stream(out: &mut Vec<u8>, rtype: u8, request_id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_ALIGNED_CONTENT_LEN) {
        push_record(out, rtype, request_id, chunk);
    }
}

/// Appends the empty record that ends a stream.
pub fn push_stream_end(out: &mut Vec<u8>, rtype: u8, request_id: u16) {
    push_record(out, rtype, request_id, &[]);
}

/// Appends END_REQUEST with the application's status (big-endian) and a protocol status.
pub fn push_end_request(
    out: &mut Vec<u8>,
    request_id: u16,
    app_status: u32,
    status: ProtocolStatus,
) {
    let s = app_status.to_be_bytes();
    let body = [s[0], s[1], s[2], s[3], status as u8, 0, 0, 0];
    push_record(out, rtype::END_REQUEST, request_id, &body);
}

/// Appends UNKNOWN_TYPE for a management record type the application does not know (§4.2).
pub fn push_unknown_type(out: &mut Vec<u8>, unknown: u8) {
    let body = [unknown, 0, 0, 0, 0, 0, 0, 0];
    push_record(out, rtype::UNKNOWN_TYPE, MANAGEMENT_ID, &body);
}

/// Appends BEGIN_REQUEST (client side: used by the CLI and by tests).
pub fn push_begin_request(out: &mut Vec<u8>, request_id: u16, role: u16, keep_conn: bool) {
    let r = role.to_be_bytes();
    let flags = if keep_conn { KEEP_CONN } else { 0 };
    let body = [r[0], r[1], flags, 0, 0, 0, 0, 0];
    push_record(out, rtype::BEGIN_REQUEST, request_id, &body);
}

/// Appends ABORT_REQUEST (client side).
pub fn push_abort_request(out: &mut Vec<u8>, request_id: u16) {
    push_record(out, rtype::ABORT_REQUEST, request_id, &[]);
}

/// Appends a name-value length: 1 byte up to 127, else 4 bytes with the high bit set (§3.4).
///
/// # Panics
/// If `len` does not fit in 31 bits.
pub fn push_nv_len(out: &mut Vec<u8>, len: usize) {
    if len <= 127 {
        out.push(len as u8);
    } else {
        assert!(len <= 0x7fff_ffff, "name-value length exceeds 31 bits");
        out.extend_from_slice(&((len as u32) | 0x8000_0000).to_be_bytes());
    }
}

/// Appends one encoded name-value pair.
pub fn push_nv_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    push_nv_len(out, name.len());
    push_nv_len(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header::encode(rtype::STDOUT, 0x1234, 0xfff8, 7);
        assert_eq!(h, [1, 6, 0x12, 0x34, 0xff, 0xf8, 7, 0]);
        let p = Header::parse(&h);
        assert_eq!(p.request_id, 0x1234);
        assert_eq!(p.content_len, 0xfff8);
        assert_eq!(p.padding_len, 7);
    }

    #[test]
    fn records_are_8_aligned() {
        for n in 0..40 {
            let mut out = Vec::new();
            push_record(&mut out, rtype::STDOUT, 1, &vec![b'x'; n]);
            assert_eq!(out.len() % 8, 0, "content {n}");
            assert_eq!(out.len(), 8 + n + padding_for(n) as usize);
        }
    }

    #[test]
    fn stream_splits_at_aligned_max() {
        let mut out = Vec::new();
        push_stream(&mut out, rtype::STDOUT, 1, &vec![0u8; 200_000]);
        let mut pos = 0;
        let mut total = 0;
        while pos < out.len() {
            let h = Header::parse(out[pos..pos + 8].try_into().unwrap());
            assert!(h.content_len as usize <= MAX_ALIGNED_CONTENT_LEN);
            total += h.content_len as usize;
            pos += 8 + h.content_len as usize + h.padding_len as usize;
        }
        assert_eq!(total, 200_000);
    }

    #[test]
    fn nv_lengths() {
        let mut out = Vec::new();
        push_nv_len(&mut out, 127);
        push_nv_len(&mut out, 128);
        assert_eq!(out, [127, 0x80, 0, 0, 128]);
    }

    #[test]
    fn end_request_body() {
        let mut out = Vec::new();
        push_end_request(&mut out, 3, 0x01020304, ProtocolStatus::Overloaded);
        assert_eq!(&out[..8], &[1, 3, 0, 3, 0, 8, 0, 0]);
        assert_eq!(&out[8..], &[1, 2, 3, 4, 2, 0, 0, 0]);
    }
}
