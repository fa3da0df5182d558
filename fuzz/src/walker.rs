//! An independent, whole-record view of the bytes the engine consumed: what the engine's
//! answers must add up to.

use std::collections::HashMap;

use fcgi_runtime_protocol::record::{rtype, Header, Role, HEADER_LEN, MANAGEMENT_ID, VERSION_1};

/// Walks the consumed prefix of the input stream record by record.
#[derive(Debug, Default)]
pub struct Walker {
    /// Start of the record being walked.
    at: usize,
    header_seen: bool,
    content_seen: bool,
    /// Complete BEGIN_REQUEST records (8-byte body) per id.
    pub begins: HashMap<u16, usize>,
    /// Of those, the ones with a role the specification does not define.
    pub bad_role_begins: HashMap<u16, usize>,
    /// Types of management records other than GET_VALUES, in order (answered at the header).
    pub unknown_types: Vec<u8>,
    /// Complete GET_VALUES records.
    pub get_values: usize,
}

impl Walker {
    /// Takes in `consumed`, the whole prefix consumed so far (it only ever grows).
    pub fn advance(&mut self, consumed: &[u8]) {
        loop {
            if consumed.len() < self.at + HEADER_LEN {
                return;
            }
            let raw: &[u8; HEADER_LEN] =
                consumed[self.at..self.at + HEADER_LEN].try_into().unwrap();
            let h = Header::parse(raw);
            if h.version != VERSION_1 {
                return; // The engine stops here.
            }
            let id = h.request_id;
            if !self.header_seen {
                self.header_seen = true;
                if id == MANAGEMENT_ID && h.rtype != rtype::GET_VALUES {
                    self.unknown_types.push(h.rtype);
                }
            }
            let body = self.at + HEADER_LEN;
            let len = h.content_len as usize;
            if consumed.len() < body + len {
                return;
            }
            if !self.content_seen {
                self.content_seen = true;
                if id == MANAGEMENT_ID && h.rtype == rtype::GET_VALUES {
                    self.get_values += 1;
                }
                if id != MANAGEMENT_ID && h.rtype == rtype::BEGIN_REQUEST && len == 8 {
                    *self.begins.entry(id).or_default() += 1;
                    let role = u16::from_be_bytes([consumed[body], consumed[body + 1]]);
                    if Role::from_u16(role).is_none() {
                        *self.bad_role_begins.entry(id).or_default() += 1;
                    }
                }
            }
            let end = body + len + h.padding_len as usize;
            if consumed.len() < end {
                return;
            }
            self.at = end;
            self.header_seen = false;
            self.content_seen = false;
        }
    }
}
