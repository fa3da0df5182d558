//! Strict parsing of the records the library writes.

use fcgi_runtime_protocol::record::{Header, HEADER_LEN, VERSION_1};

/// One record as written by the library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec<'a> {
    pub rtype: u8,
    pub id: u16,
    pub content: &'a [u8],
}

/// Parses `buf` as a sequence of whole, well-formed records: version 1, reserved byte 0,
/// zero padding bringing every record to a multiple of 8 bytes. Panics on anything else.
pub fn parse_strict(buf: &[u8]) -> Vec<Rec<'_>> {
    let mut recs = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        assert!(buf.len() - pos >= HEADER_LEN, "output ends inside a header");
        let raw: &[u8; HEADER_LEN] = buf[pos..pos + HEADER_LEN].try_into().unwrap();
        let h = Header::parse(raw);
        assert_eq!(h.version, VERSION_1, "output record version");
        assert_eq!(raw[7], 0, "output record reserved byte");
        let len = h.content_len as usize;
        let pad = h.padding_len as usize;
        assert!(pad < 8, "output padding {pad} >= 8");
        assert_eq!((len + pad) % 8, 0, "output record not 8-aligned");
        let end = pos + HEADER_LEN + len + pad;
        assert!(end <= buf.len(), "output ends inside a record");
        let content = &buf[pos + HEADER_LEN..pos + HEADER_LEN + len];
        assert!(
            buf[pos + HEADER_LEN + len..end].iter().all(|&b| b == 0),
            "output padding not zero"
        );
        recs.push(Rec {
            rtype: h.rtype,
            id: h.request_id,
            content,
        });
        pos = end;
    }
    recs
}
