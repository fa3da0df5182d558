//! The soak's connection: a writer thread (so uploads never deadlock against responses), a
//! record reader, and the checker of echoed responses (c-examples/soak-echo.c, lf-echo.c).

use fcgi_runtime::addr::{self, ClientStream};
use fcgi_runtime_protocol::record::{
    push_abort_request, push_stream, push_stream_end, rtype, Header, HEADER_LEN,
    MAX_ALIGNED_CONTENT_LEN, VERSION_1,
};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the writer thread sends, in order.
pub(crate) enum Out {
    Raw(Vec<u8>),
    /// `pattern[off..off + len]` as STDIN records of `id`, then the empty record if `end`.
    Stdin {
        id: u16,
        off: usize,
        len: usize,
        end: bool,
    },
}

/// One record read from the server.
pub(crate) struct Rec {
    pub(crate) rtype: u8,
    pub(crate) id: u16,
    pub(crate) content: Vec<u8>,
}

/// A connection with its writer thread.
pub(crate) struct SConn {
    stream: ClientStream,
    tx: Option<mpsc::Sender<Out>>,
    writer: Option<JoinHandle<()>>,
    write_err: Arc<Mutex<Option<String>>>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl SConn {
    pub(crate) fn open(
        address: &str,
        timeout: Duration,
        pattern: Arc<Vec<u8>>,
    ) -> io::Result<SConn> {
        let stream = addr::connect(address)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut w = stream.try_clone()?;
        let write_err = Arc::new(Mutex::new(None));
        let err = write_err.clone();
        let (tx, rx) = mpsc::channel::<Out>();
        let writer = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut scratch = Vec::with_capacity(MAX_ALIGNED_CONTENT_LEN + 16);
                for msg in rx {
                    let r = match msg {
                        Out::Raw(b) => w.write_all(&b),
                        Out::Stdin { id, off, len, end } => {
                            write_stdin(&mut w, &mut scratch, id, &pattern[off..off + len], end)
                        }
                    };
                    if let Err(e) = r {
                        *err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                        let _ = w.shutdown(Shutdown::Both);
                        return;
                    }
                }
            })?;
        Ok(SConn {
            stream,
            tx: Some(tx),
            writer: Some(writer),
            write_err,
            buf: vec![0; 128 * 1024],
            start: 0,
            end: 0,
        })
    }

    pub(crate) fn send(&self, o: Out) {
        // A dead writer already recorded why; the reader then sees the closed socket.
        if let Some(tx) = &self.tx {
            let _ = tx.send(o);
        }
    }

    pub(crate) fn abort(&self, id: u16) {
        let mut b = Vec::with_capacity(16);
        push_abort_request(&mut b, id);
        self.send(Out::Raw(b));
    }

    /// The writer's error, if it failed.
    pub(crate) fn write_error(&self) -> Option<String> {
        self.write_err
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn fill(&mut self, need: usize) -> io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        while self.end - self.start < need {
            if self.start + need > self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) if self.start == self.end => return Ok(false),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// The next record; `None` on a clean end of stream between records.
    pub(crate) fn read(&mut self) -> io::Result<Option<Rec>> {
        if !self.fill(HEADER_LEN)? {
            return Ok(None);
        }
        let hb: [u8; HEADER_LEN] = self.buf[self.start..self.start + HEADER_LEN]
            .try_into()
            .expect("8 bytes");
        let h = Header::parse(&hb);
        if h.version != VERSION_1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("record version {}", h.version),
            ));
        }
        let total = HEADER_LEN + h.content_len as usize + h.padding_len as usize;
        if !self.fill(total)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let c0 = self.start + HEADER_LEN;
        let content = self.buf[c0..c0 + h.content_len as usize].to_vec();
        self.start += total;
        Ok(Some(Rec {
            rtype: h.rtype,
            id: h.request_id,
            content,
        }))
    }

    pub(crate) fn close(mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        drop(self.tx.take());
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

fn write_stdin(
    w: &mut ClientStream,
    scratch: &mut Vec<u8>,
    id: u16,
    data: &[u8],
    end: bool,
) -> io::Result<()> {
    for piece in data.chunks(MAX_ALIGNED_CONTENT_LEN) {
        scratch.clear();
        push_stream(scratch, rtype::STDIN, id, piece);
        w.write_all(scratch)?;
    }
    if end {
        scratch.clear();
        push_stream_end(scratch, rtype::STDIN, id);
        w.write_all(scratch)?;
    }
    Ok(())
}

/// 64-bit FNV-1a, continued from `h`.
pub(crate) fn fnv1a64(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_LINE: &[u8] = b"\nSTDIN_FNV1A64=";
/// The FNV line: newline, name, 16 hex digits, newline.
const FNV_LINE_LEN: usize = FNV_LINE.len() + 17;
const MAX_HEAD: usize = 1 << 20;

/// What one request's STDOUT must be.
pub(crate) struct Expect {
    pub(crate) token: String,
    pub(crate) len: usize,
    pub(crate) fnv: u64,
}

/// STDOUT of one request, checked as it arrives: the head (up to the FNV line) is kept, the
/// echoed body after it is only counted and hashed.
pub(crate) struct Check {
    head: Vec<u8>,
    in_body: bool,
    echoed: usize,
    echoed_fnv: u64,
}

impl Check {
    pub(crate) fn new() -> Check {
        Check {
            head: Vec::new(),
            in_body: false,
            echoed: 0,
            echoed_fnv: FNV_OFFSET,
        }
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.in_body {
            self.echoed += data.len();
            self.echoed_fnv = fnv1a64(self.echoed_fnv, data);
            return;
        }
        if self.head.len() >= MAX_HEAD {
            return;
        }
        let from = self.head.len().saturating_sub(FNV_LINE_LEN);
        self.head.extend_from_slice(data);
        let Some(p) = find(&self.head[from..], FNV_LINE).map(|p| p + from) else {
            return;
        };
        if self.head.len() < p + FNV_LINE_LEN {
            return;
        }
        let rest = self.head.split_off(p + FNV_LINE_LEN);
        self.in_body = true;
        self.feed(&rest);
    }

    /// Why the output is not the expected echo, if it is not.
    pub(crate) fn verify(&self, e: &Expect) -> Result<(), String> {
        if !self.in_body {
            return Err(format!(
                "no STDIN_FNV1A64 line in {} bytes of STDOUT",
                self.head.len()
            ));
        }
        let h = &self.head;
        if !h.starts_with(b"Content-Type: text/plain\r\n\r\n") {
            return Err("STDOUT does not start with its Content-Type header".into());
        }
        let want_id = format!("\nSOAK_ID={}\n", e.token);
        if find(h, want_id.as_bytes()).is_none() {
            return Err(format!("the response is not for SOAK_ID={}", e.token));
        }
        let want_len = format!("\nSTDIN_LENGTH={}\n", e.len);
        if find(h, want_len.as_bytes()).is_none() {
            return Err(format!("STDIN_LENGTH is not {}", e.len));
        }
        let want_fnv = format!("\nSTDIN_FNV1A64={:016x}\n", e.fnv);
        if !h.ends_with(want_fnv.as_bytes()) {
            return Err(format!("STDIN_FNV1A64 is not {:016x}", e.fnv));
        }
        if self.echoed != e.len || self.echoed_fnv != e.fnv {
            return Err(format!(
                "echoed body: {} bytes (FNV {:016x}), sent {} (FNV {:016x})",
                self.echoed, self.echoed_fnv, e.len, e.fnv
            ));
        }
        Ok(())
    }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_accepts_the_echo_in_any_pieces() {
        let body: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let fnv = fnv1a64(FNV_OFFSET, &body);
        let mut out =
            b"Content-Type: text/plain\r\n\r\nFCGI_ROLE=RESPONDER\nSOAK_ID=3-9\n".to_vec();
        out.extend_from_slice(format!("STDIN_LENGTH=5000\nSTDIN_FNV1A64={fnv:016x}\n").as_bytes());
        out.extend_from_slice(&body);
        let e = Expect {
            token: "3-9".into(),
            len: 5000,
            fnv,
        };
        for piece in [1, 7, 64, 4096, out.len()] {
            let mut c = Check::new();
            out.chunks(piece).for_each(|p| c.feed(p));
            assert_eq!(c.verify(&e), Ok(()), "piece {piece}");
            // One byte short, another request's id, another length: all refused.
            let mut c = Check::new();
            c.feed(&out[..out.len() - 1]);
            assert!(c.verify(&e).is_err());
            let mut c = Check::new();
            out.chunks(piece).for_each(|p| c.feed(p));
            let other = Expect {
                token: "3-90".into(),
                len: 5000,
                fnv,
            };
            assert!(c.verify(&other).is_err());
        }
    }
}
