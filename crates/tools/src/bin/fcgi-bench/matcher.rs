//! Finding a substring in output that arrives in pieces, keeping only the last
//! `needle.len() - 1` bytes: responses are verified without being copied whole.

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A substring search over a stream fed in pieces.
#[derive(Clone, Debug)]
pub(crate) struct StreamMatch {
    needle: Vec<u8>,
    /// What the stream is taken to start with (a newline for "at the start of a line").
    prefix: Vec<u8>,
    /// The last bytes seen (at most needle.len() - 1), for matches across pieces.
    carry: Vec<u8>,
    join: Vec<u8>,
    found: bool,
}

impl StreamMatch {
    pub(crate) fn new(needle: &[u8], prefix: &[u8]) -> StreamMatch {
        let mut m = StreamMatch {
            needle: needle.to_vec(),
            prefix: prefix.to_vec(),
            carry: Vec::with_capacity(needle.len()),
            join: Vec::with_capacity(2 * needle.len()),
            found: false,
        };
        m.reset();
        m
    }

    /// Starts over for a new stream.
    pub(crate) fn reset(&mut self) {
        self.found = self.needle.is_empty();
        self.carry.clear();
        let keep = self.needle.len().saturating_sub(1);
        let p = &self.prefix[self.prefix.len().saturating_sub(keep)..];
        self.carry.extend_from_slice(p);
    }

    pub(crate) fn found(&self) -> bool {
        self.found
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.found || data.is_empty() {
            return;
        }
        let keep = self.needle.len() - 1;
        // Matches that straddle the carried bytes and this piece.
        self.join.clear();
        self.join.extend_from_slice(&self.carry);
        self.join.extend_from_slice(&data[..data.len().min(keep)]);
        if contains(&self.join, &self.needle) || contains(data, &self.needle) {
            self.found = true;
            return;
        }
        if data.len() >= keep {
            self.carry.clear();
            self.carry.extend_from_slice(&data[data.len() - keep..]);
        } else {
            self.carry.extend_from_slice(data);
            let excess = self.carry.len().saturating_sub(keep);
            self.carry.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found_in_pieces(hay: &[u8], needle: &[u8], prefix: &[u8], piece: usize) -> bool {
        let mut m = StreamMatch::new(needle, prefix);
        for c in hay.chunks(piece.max(1)) {
            m.feed(c);
        }
        m.found()
    }

    #[test]
    fn matches_whatever_the_split() {
        let hay = b"Content-Type: text/plain\r\n\r\nSTDIN_LENGTH=42\nbye";
        for piece in 1..hay.len() + 1 {
            assert!(found_in_pieces(hay, b"\nSTDIN_LENGTH=42\n", b"", piece));
            assert!(!found_in_pieces(hay, b"\nSTDIN_LENGTH=4\n", b"", piece));
            assert!(found_in_pieces(hay, b"\nContent-Type", b"\n", piece));
            assert!(!found_in_pieces(hay, b"\nContent-Type", b"", piece));
            assert!(found_in_pieces(hay, b"bye", b"", piece));
            assert!(!found_in_pieces(hay, b"byee", b"", piece));
        }
        let mut m = StreamMatch::new(b"ab", b"");
        m.feed(b"xa");
        m.feed(b"b");
        assert!(m.found());
        m.reset();
        assert!(!m.found());
        assert!(StreamMatch::new(b"", b"").found());
    }
}
