//! A reference decoder for name-value streams, written for clarity rather than speed, that
//! the `nvpair` target holds `NvDecoder` and `parse_pairs` to.

use fcgi_runtime_protocol::nvpair::NvError;

use crate::sink::Pairs;

/// What decoding a whole stream under limits must give.
#[derive(Debug, PartialEq, Eq)]
pub struct Expected {
    /// Complete pairs, in order.
    pub pairs: Pairs,
    /// The pair begun but cut short by the end of the stream: (name, value) bytes so far.
    pub partial: bool,
    /// Pairs begun (complete or not) and their declared name and value bytes.
    pub count: usize,
    pub bytes: usize,
    /// The limit error, if a pair broke one.
    pub error: Option<NvError>,
    /// Whether the stream ends between two pairs.
    pub at_boundary: bool,
}

fn len_at(s: &[u8], pos: usize) -> Option<(usize, usize)> {
    let b = *s.get(pos)?;
    if b & 0x80 == 0 {
        return Some((b as usize, pos + 1));
    }
    let q = s.get(pos..pos + 4)?;
    Some((
        (u32::from_be_bytes(q.try_into().unwrap()) & 0x7fff_ffff) as usize,
        pos + 4,
    ))
}

/// Decodes `s`: the count limit and the name length are checked as soon as the name length
/// is known, the name and value lengths together as soon as the value length is known.
pub fn decode(s: &[u8], max_bytes: usize, max_count: usize) -> Expected {
    let mut e = Expected {
        pairs: Vec::new(),
        partial: false,
        count: 0,
        bytes: 0,
        error: None,
        at_boundary: true,
    };
    let mut pos = 0;
    while pos < s.len() {
        e.at_boundary = false;
        let Some((nl, p)) = len_at(s, pos) else {
            return e;
        };
        if e.count >= max_count {
            e.error = Some(NvError::TooMany);
            return e;
        }
        if e.bytes + nl > max_bytes {
            e.error = Some(NvError::TooLarge);
            return e;
        }
        let Some((vl, p)) = len_at(s, p) else {
            return e;
        };
        if e.bytes + nl + vl > max_bytes {
            e.error = Some(NvError::TooLarge);
            return e;
        }
        e.count += 1;
        e.bytes += nl + vl;
        if s.len() - p < nl + vl {
            e.partial = true;
            return e;
        }
        e.pairs
            .push((s[p..p + nl].to_vec(), s[p + nl..p + nl + vl].to_vec()));
        pos = p + nl + vl;
        e.at_boundary = true;
    }
    e
}
