//! `fcgi-bench`: a FastCGI load generator that talks to an application directly (no web server
//! in the way). See `fcgi-bench -h`.
//!
//! One OS thread per connection does blocking I/O with a read timeout and keeps up to DEPTH
//! request ids in flight, writing the next request for an id as soon as its END_REQUEST arrives.
//! Requests are encoded once per id; responses are parsed from one reusable buffer per
//! connection. Requests whose encoding is large are written by a helper thread per connection so
//! that an application answering before it consumed its input cannot deadlock the exchange.
//!
//! Exit status: 0 no errors, 1 any request failed verification or any connection errored,
//! 2 usage error.

use fcgi::client::{encode_begin_and_params, encode_request, Request};
use fcgi::protocol::record::{
    push_record, push_stream_end, rtype, Header, HEADER_LEN, MAX_ALIGNED_CONTENT_LEN, VERSION_1,
};
use fcgi::runtime::addr::{self, ClientStream};
use std::io::{self, IsTerminal, Read, Write};
use std::net::Shutdown;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: fcgi-bench [OPTIONS] ADDRESS [SCRIPT_URI]

ADDRESS is PORT, :PORT, HOST:PORT, [IPV6]:PORT or a Unix socket path.
SCRIPT_URI (default /) gives SCRIPT_NAME, REQUEST_URI and SCRIPT_FILENAME; a ?query part gives
QUERY_STRING. An nginx-like set of ~25 PARAMS is sent with every request.

options:
  -c N                  connections (default 1)
  -m DEPTH              request ids in flight per connection, 1..=65535 (default 1)
  -b BYTES              request body size (STDIN), suffixes k, M, G (1024-based); POST when > 0
  -p NAME=VALUE         add or override a parameter (repeatable)
  -d SECONDS            run for this long (default 10 unless -n is given)
  -n COUNT              stop after COUNT requests in total (with -d: whichever comes first)
  --no-keep             a new connection per request, FCGI_KEEP_CONN unset (needs -m 1)
  --warmup SECONDS      run this long first without recording (needs -d)
  --timeout SECONDS     read/write timeout per connection (default 10)
  --app-status N        expected appStatus of END_REQUEST (default 0)
  --expect SUBSTRING    every response's STDOUT must contain SUBSTRING
  --expect-stdin-length every STDOUT must contain the line STDIN_LENGTH=<BYTES> (c-examples/echo)
  --json                print the results as one JSON object instead of text
  -h, --help            this help

Every response is verified: protocol status REQUEST_COMPLETE, the expected appStatus, STDOUT
ended by its empty record, and the --expect checks. Latency runs from writing BEGIN_REQUEST to
reading END_REQUEST. MB/s count FastCGI record bytes (1 MB = 10^6 bytes).

exit status: 0 no errors, 1 a request failed verification or a connection errored, 2 usage error";

// ---------------------------------------------------------------------------------------------
// Command line

/// Parsed command line.
#[derive(Clone, Debug, PartialEq)]
struct Options {
    address: String,
    uri: String,
    connections: usize,
    depth: u16,
    body: u64,
    params: Vec<(String, String)>,
    duration: Option<f64>,
    count: Option<u64>,
    keep: bool,
    warmup: f64,
    timeout: f64,
    app_status: u32,
    expect: Option<String>,
    expect_stdin_length: bool,
    json: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Help,
    Run(Options),
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{name} expects a number, got '{v}'"))
}

fn parse_secs(name: &str, v: &str) -> Result<f64, String> {
    let s: f64 = parse_num(name, v)?;
    if !(0.0..=1e9).contains(&s) {
        return Err(format!("{name} expects seconds, got '{v}'"));
    }
    Ok(s)
}

/// A byte count with an optional k, M or G suffix (powers of 1024).
fn parse_size(name: &str, v: &str) -> Result<u64, String> {
    let (digits, mul) = match v.char_indices().last() {
        Some((i, 'k' | 'K')) => (&v[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&v[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{name} expects a size, got '{v}'"))?;
    n.checked_mul(mul)
        .ok_or_else(|| format!("{name}: '{v}' is too large"))
}

/// Parses the arguments after the program name.
fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut it = args.into_iter();
    let mut positional = Vec::new();
    let mut o = Options {
        address: String::new(),
        uri: "/".to_string(),
        connections: 1,
        depth: 1,
        body: 0,
        params: Vec::new(),
        duration: None,
        count: None,
        keep: true,
        warmup: 0.0,
        timeout: 10.0,
        app_status: 0,
        expect: None,
        expect_stdin_length: false,
        json: false,
    };
    let mut only_positional = false;
    while let Some(arg) = it.next() {
        if only_positional || !arg.starts_with('-') || arg == "-" {
            positional.push(arg);
            continue;
        }
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--" => only_positional = true,
            "-h" | "--help" => return Ok(Command::Help),
            "-c" => {
                let v = value("-c")?;
                o.connections = parse_num("-c", &v)?;
                if o.connections == 0 || o.connections > 100_000 {
                    return Err(format!("-c expects 1..=100000, got '{v}'"));
                }
            }
            "-m" => {
                let v = value("-m")?;
                o.depth = parse_num("-m", &v)?;
                if o.depth == 0 {
                    return Err("-m expects 1..=65535".to_string());
                }
            }
            "-b" => o.body = parse_size("-b", &value("-b")?)?,
            "-p" => {
                let v = value("-p")?;
                match v.split_once('=') {
                    Some((n, val)) if !n.is_empty() => {
                        o.params.push((n.to_string(), val.to_string()))
                    }
                    _ => return Err(format!("-p expects NAME=VALUE, got '{v}'")),
                }
            }
            "-d" => o.duration = Some(parse_secs("-d", &value("-d")?)?),
            "-n" => {
                let v = value("-n")?;
                let n: u64 = parse_num("-n", &v)?;
                if n == 0 {
                    return Err("-n expects a positive number".to_string());
                }
                o.count = Some(n);
            }
            "--no-keep" => o.keep = false,
            "--warmup" => o.warmup = parse_secs("--warmup", &value("--warmup")?)?,
            "--timeout" => {
                o.timeout = parse_secs("--timeout", &value("--timeout")?)?;
                if o.timeout < 0.001 {
                    return Err("--timeout must be at least 0.001".to_string());
                }
            }
            "--app-status" => o.app_status = parse_num("--app-status", &value("--app-status")?)?,
            "--expect" => o.expect = Some(value("--expect")?),
            "--expect-stdin-length" => o.expect_stdin_length = true,
            "--json" => o.json = true,
            _ => return Err(format!("unknown option '{arg}'")),
        }
    }
    let mut positional = positional.into_iter();
    o.address = positional.next().ok_or("missing ADDRESS")?;
    if let Some(uri) = positional.next() {
        o.uri = uri;
    }
    if let Some(extra) = positional.next() {
        return Err(format!("unexpected argument '{extra}'"));
    }
    if !o.keep && o.depth > 1 {
        return Err("--no-keep needs -m 1 (the application closes after one request)".into());
    }
    if o.warmup > 0.0 && o.duration.is_none() {
        return Err("--warmup needs -d".to_string());
    }
    if o.duration.is_none() && o.count.is_none() {
        o.duration = Some(10.0);
    }
    Ok(Command::Run(o))
}

/// The PARAMS of every request: what nginx's fastcgi_params sends for this URI, then the `-p`
/// overrides (in place when they replace one, appended otherwise).
fn build_params(o: &Options) -> Vec<(String, String)> {
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

// ---------------------------------------------------------------------------------------------
// Requests, encoded once per id

/// Above this encoded size a request's body is written as repeated STDIN chunks (bounded memory)
/// and connections use a writer thread.
const INLINE_LIMIT: u64 = 256 * 1024;

/// The bytes of one request: `head`, then `chunk` `nchunks` times, then `tail`.
struct Encoded {
    head: Vec<u8>,
    chunk: Vec<u8>,
    nchunks: u64,
    tail: Vec<u8>,
}

impl Encoded {
    fn len(&self) -> u64 {
        self.head.len() as u64 + self.chunk.len() as u64 * self.nchunks + self.tail.len() as u64
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.head)?;
        for _ in 0..self.nchunks {
            w.write_all(&self.chunk)?;
        }
        w.write_all(&self.tail)
    }
}

/// A deterministic body pattern.
fn body_byte(i: u64) -> u8 {
    b'a' + (i % 26) as u8
}

fn encode(o: &Options, params: &[(String, String)], id: u16) -> Encoded {
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
    let mut head = Vec::new();
    encode_begin_and_params(&req, &mut head);
    let full = MAX_ALIGNED_CONTENT_LEN as u64;
    let data: Vec<u8> = (0..full).map(body_byte).collect();
    let mut chunk = Vec::new();
    push_record(&mut chunk, rtype::STDIN, id, &data);
    let rem = (o.body % full) as usize;
    let mut tail = Vec::new();
    if rem > 0 {
        push_record(&mut tail, rtype::STDIN, id, &data[..rem]);
    }
    push_stream_end(&mut tail, rtype::STDIN, id);
    Encoded {
        head,
        chunk,
        nchunks: o.body / full,
        tail,
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Kinds of errors, counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Connect,
    Timeout,
    Closed,
    Io,
    Protocol,
    ProtocolStatus,
    AppStatus,
    Expect,
    StdinLength,
}

const NKINDS: usize = 9;
const KIND_NAMES: [&str; NKINDS] = [
    "connect",
    "timeout",
    "closed",
    "io",
    "protocol",
    "protocol_status",
    "app_status",
    "expect",
    "stdin_length",
];

fn io_kind(e: &io::Error) -> Kind {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Kind::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => Kind::Closed,
        _ => Kind::Io,
    }
}

/// A log-linear histogram of microseconds: exact below 64, then 32 sub-buckets per power of two
/// (under 3.2 % error), in bounded memory whatever the run length.
#[derive(Clone, Debug)]
struct Hist {
    counts: Vec<u64>,
    n: u64,
    sum: u64,
    min: u64,
    max: u64,
}

impl Hist {
    const BUCKETS: usize = 64 + 58 * 32;

    fn new() -> Hist {
        Hist {
            counts: vec![0; Hist::BUCKETS],
            n: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 64 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize;
        let sub = ((v >> (e - 5)) & 31) as usize;
        64 + (e - 6) * 32 + sub
    }

    /// The middle of bucket `i`.
    fn value_of(i: usize) -> u64 {
        if i < 64 {
            return i as u64;
        }
        let j = i - 64;
        let e = j / 32 + 6;
        let sub = (j % 32) as u64;
        let width = 1u64 << (e - 5);
        ((32 + sub) << (e - 5)) + width / 2
    }

    fn record(&mut self, us: u64) {
        self.counts[Hist::index(us)] += 1;
        self.n += 1;
        self.sum = self.sum.saturating_add(us);
        self.min = self.min.min(us);
        self.max = self.max.max(us);
    }

    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.sum = self.sum.saturating_add(o.sum);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// The value at quantile `q` (0..=1); 0 when empty.
    fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Hist::value_of(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    fn mean(&self) -> u64 {
        self.sum.checked_div(self.n).unwrap_or(0)
    }
}

/// What one worker (or, merged, the whole run) measured.
#[derive(Clone, Debug)]
struct Stats {
    hist: Hist,
    ok: u64,
    failed: u64,
    errors: [u64; NKINDS],
    bytes_in: u64,
    bytes_out: u64,
    /// Responses received over the whole run, warm-up included.
    served: u64,
    never_served: u64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            hist: Hist::new(),
            ok: 0,
            failed: 0,
            errors: [0; NKINDS],
            bytes_in: 0,
            bytes_out: 0,
            served: 0,
            never_served: 0,
        }
    }

    fn merge(&mut self, o: &Stats) {
        self.hist.merge(&o.hist);
        self.ok += o.ok;
        self.failed += o.failed;
        for (a, b) in self.errors.iter_mut().zip(&o.errors) {
            *a += b;
        }
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.served += o.served;
        self.never_served += o.never_served + u64::from(o.served == 0);
    }

    fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }
}

// ---------------------------------------------------------------------------------------------
// Workers

/// What all workers share.
struct Shared {
    o: Options,
    /// Indexed by request id (0 unused).
    reqs: Vec<Arc<Encoded>>,
    threaded_writes: bool,
    timeout: Duration,
    issued: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    measure_start: Instant,
    deadline: Option<Instant>,
    stdin_line: Vec<u8>,
}

impl Shared {
    /// Takes the permission to send one more request.
    fn may_issue(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        match self.o.count {
            Some(n) => self.issued.fetch_add(1, Ordering::Relaxed) < n,
            None => true,
        }
    }

    fn error(&self, stats: &mut Stats, k: Kind) {
        stats.errors[k as usize] += 1;
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// One request id's state on a connection.
struct Slot {
    active: bool,
    start: Instant,
    stdout_closed: bool,
    bytes_in: u64,
    out: Vec<u8>,
}

/// A connection: the stream, a reusable read buffer, the id slots and an optional writer thread.
struct Conn<'a> {
    sh: &'a Shared,
    stream: ClientStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    slots: Vec<Slot>,
    inflight: usize,
    writer: Option<(mpsc::Sender<u16>, std::thread::JoinHandle<()>)>,
    collect: bool,
}

const READ_BUF: usize = 128 * 1024;

impl<'a> Conn<'a> {
    fn open(sh: &'a Shared) -> io::Result<Conn<'a>> {
        let stream = addr::connect(&sh.o.address)?;
        stream.set_read_timeout(Some(sh.timeout))?;
        stream.set_write_timeout(Some(sh.timeout))?;
        let writer = if sh.threaded_writes {
            let mut w = stream.try_clone()?;
            let reqs = sh.reqs.clone();
            let (tx, rx) = mpsc::channel::<u16>();
            let h = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    for id in rx {
                        if reqs[id as usize].write_to(&mut w).is_err() {
                            let _ = w.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                })?;
            Some((tx, h))
        } else {
            None
        };
        let depth = sh.reqs.len() - 1;
        let now = Instant::now();
        Ok(Conn {
            sh,
            stream,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            slots: (0..=depth)
                .map(|_| Slot {
                    active: false,
                    start: now,
                    stdout_closed: false,
                    bytes_in: 0,
                    out: Vec::new(),
                })
                .collect(),
            inflight: 0,
            writer,
            collect: sh.o.expect.is_some() || sh.o.expect_stdin_length,
        })
    }

    /// Sends the request for `id`.
    fn send(&mut self, id: u16, stats: &mut Stats) -> Result<(), Kind> {
        let now = Instant::now();
        let s = &mut self.slots[id as usize];
        s.active = true;
        s.start = now;
        s.stdout_closed = false;
        s.bytes_in = 0;
        s.out.clear();
        self.inflight += 1;
        let req = &self.sh.reqs[id as usize];
        if now >= self.sh.measure_start {
            stats.bytes_out += req.len();
        }
        match &self.writer {
            Some((tx, _)) => tx.send(id).map_err(|_| Kind::Closed),
            None => req.write_to(&mut self.stream).map_err(|e| io_kind(&e)),
        }
    }

    /// Makes at least `need` bytes available from `self.start`.
    fn fill(&mut self, need: usize) -> Result<(), Kind> {
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
                Ok(0) => return Err(Kind::Closed),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_kind(&e)),
            }
        }
        Ok(())
    }

    /// Reads records until some request ends; returns its id.
    fn next_end(&mut self, stats: &mut Stats) -> Result<u16, Kind> {
        loop {
            self.fill(HEADER_LEN)?;
            let hb: &[u8; HEADER_LEN] = self.buf[self.start..self.start + HEADER_LEN]
                .try_into()
                .expect("8 bytes");
            let h = Header::parse(hb);
            if h.version != VERSION_1 {
                return Err(Kind::Protocol);
            }
            let clen = h.content_len as usize;
            let total = HEADER_LEN + clen + h.padding_len as usize;
            self.fill(total)?;
            let c0 = self.start + HEADER_LEN;
            self.start += total;
            let id = h.request_id as usize;
            if id == 0 || id >= self.slots.len() || !self.slots[id].active {
                return Err(Kind::Protocol);
            }
            let content = &self.buf[c0..c0 + clen];
            let slot = &mut self.slots[id];
            slot.bytes_in += total as u64;
            match h.rtype {
                rtype::STDOUT => {
                    if slot.stdout_closed {
                        return Err(Kind::Protocol);
                    }
                    if clen == 0 {
                        slot.stdout_closed = true;
                    } else if self.collect {
                        slot.out.extend_from_slice(content);
                    }
                }
                rtype::STDERR => {}
                rtype::END_REQUEST => {
                    if clen != 8 {
                        return Err(Kind::Protocol);
                    }
                    let app = u32::from_be_bytes([content[0], content[1], content[2], content[3]]);
                    let proto = content[4];
                    let verdict = if proto != 0 {
                        Some(Kind::ProtocolStatus)
                    } else if !slot.stdout_closed {
                        Some(Kind::Protocol)
                    } else if app != self.sh.o.app_status {
                        Some(Kind::AppStatus)
                    } else {
                        self.verify_output(id)
                    };
                    self.complete(id, verdict, stats);
                    return Ok(id as u16);
                }
                _ => return Err(Kind::Protocol),
            }
        }
    }

    fn verify_output(&self, id: usize) -> Option<Kind> {
        let out = &self.slots[id].out;
        if let Some(e) = &self.sh.o.expect {
            if !contains(out, e.as_bytes()) {
                return Some(Kind::Expect);
            }
        }
        if self.sh.o.expect_stdin_length {
            let line = &self.sh.stdin_line;
            // The line must start the output or follow a newline.
            let ok = out.starts_with(&line[1..]) || contains(out, line);
            if !ok {
                return Some(Kind::StdinLength);
            }
        }
        None
    }

    fn complete(&mut self, id: usize, verdict: Option<Kind>, stats: &mut Stats) {
        let now = Instant::now();
        let slot = &mut self.slots[id];
        slot.active = false;
        self.inflight -= 1;
        stats.served += 1;
        self.sh.done.fetch_add(1, Ordering::Relaxed);
        if slot.start >= self.sh.measure_start {
            stats.bytes_in += slot.bytes_in;
            stats
                .hist
                .record(now.duration_since(slot.start).as_micros() as u64);
            match verdict {
                None => stats.ok += 1,
                Some(k) => {
                    stats.failed += 1;
                    self.sh.error(stats, k);
                }
            }
        }
    }

    fn close(mut self) {
        if let Some((tx, h)) = self.writer.take() {
            let _ = self.stream.shutdown(Shutdown::Both);
            drop(tx);
            let _ = h.join();
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A keep-alive worker: one connection, up to DEPTH ids in flight, ids reused as they end.
fn run_keep(sh: &Shared) -> Stats {
    let mut stats = Stats::new();
    let mut conn = match Conn::open(sh) {
        Ok(c) => c,
        Err(_) => {
            sh.error(&mut stats, Kind::Connect);
            return stats;
        }
    };
    let depth = sh.reqs.len() - 1;
    let mut result = Ok(());
    for id in 1..=depth as u16 {
        if !sh.may_issue() {
            break;
        }
        result = conn.send(id, &mut stats);
        if result.is_err() {
            break;
        }
    }
    while result.is_ok() && conn.inflight > 0 {
        result = conn
            .next_end(&mut stats)
            .and_then(|id| match sh.may_issue() {
                true => conn.send(id, &mut stats),
                false => Ok(()),
            });
    }
    if let Err(k) = result {
        sh.error(&mut stats, k);
    }
    conn.close();
    stats
}

/// A no-keep worker: a new connection per request.
fn run_no_keep(sh: &Shared) -> Stats {
    let mut stats = Stats::new();
    while sh.may_issue() {
        let mut conn = match Conn::open(sh) {
            Ok(c) => c,
            Err(_) => {
                sh.error(&mut stats, Kind::Connect);
                continue;
            }
        };
        let r = conn
            .send(1, &mut stats)
            .and_then(|_| conn.next_end(&mut stats));
        if let Err(k) = r {
            sh.error(&mut stats, k);
        }
        conn.close();
    }
    stats
}

// ---------------------------------------------------------------------------------------------
// Running and reporting

/// The progress line on stderr, every 500 ms once the run lasted a second.
fn progress(sh: &Shared, t0: Instant, finished: &AtomicBool) {
    let mut printed = false;
    let mut last = (t0, 0u64);
    let mut next = t0 + Duration::from_secs(1);
    while !finished.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if now < next {
            continue;
        }
        next = now + Duration::from_millis(500);
        let done = sh.done.load(Ordering::Relaxed);
        let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, done);
        eprint!(
            "\r[{:6.1} s] {done} requests, {rate:.0} req/s, {} errors   ",
            now.duration_since(t0).as_secs_f64(),
            sh.errors.load(Ordering::Relaxed)
        );
        printed = true;
    }
    if printed {
        eprint!("\r{:72}\r", "");
    }
}

/// Runs the benchmark; returns the merged statistics and the measured time.
fn run(o: &Options) -> (Stats, f64) {
    let params = build_params(o);
    let reqs: Vec<Arc<Encoded>> = std::iter::once(Arc::new(Encoded {
        head: Vec::new(),
        chunk: Vec::new(),
        nchunks: 0,
        tail: Vec::new(),
    }))
    .chain((1..=o.depth).map(|id| Arc::new(encode(o, &params, id))))
    .collect();
    let req_len = reqs[1].len();
    let threaded_writes =
        req_len > INLINE_LIMIT || (o.depth > 1 && req_len * u64::from(o.depth) > 64 * 1024);
    let t0 = Instant::now();
    let measure_start = t0 + Duration::from_secs_f64(o.warmup);
    let sh = Shared {
        o: o.clone(),
        reqs,
        threaded_writes,
        timeout: Duration::from_secs_f64(o.timeout),
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        measure_start,
        deadline: o
            .duration
            .map(|d| measure_start + Duration::from_secs_f64(d)),
        stdin_line: format!("\nSTDIN_LENGTH={}\n", o.body).into_bytes(),
    };
    let finished = AtomicBool::new(false);
    let show_progress = io::stderr().is_terminal();
    let mut total = Stats::new();
    let end = std::thread::scope(|s| {
        let sh = &sh;
        let p = show_progress.then(|| s.spawn(|| progress(sh, t0, &finished)));
        let workers: Vec<_> = (0..o.connections)
            .map(|_| {
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || match sh.o.keep {
                        true => run_keep(sh),
                        false => run_no_keep(sh),
                    })
            })
            .collect();
        for w in workers {
            match w.map(|h| h.join()) {
                Ok(Ok(st)) => total.merge(&st),
                _ => {
                    let mut st = Stats::new();
                    sh.error(&mut st, Kind::Io);
                    total.merge(&st);
                }
            }
        }
        let end = Instant::now();
        finished.store(true, Ordering::Relaxed);
        if let Some(p) = p {
            let _ = p.join();
        }
        end
    });
    let elapsed = end.saturating_duration_since(measure_start).as_secs_f64();
    (total, elapsed)
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A float as JSON (never NaN or infinite here, but be safe).
fn json_f(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "0".to_string()
    }
}

fn report_json(o: &Options, st: &Stats, secs: f64) -> String {
    let h = &st.hist;
    let kinds: Vec<String> = KIND_NAMES
        .iter()
        .zip(&st.errors)
        .map(|(n, c)| format!("{}:{c}", json_str(n)))
        .collect();
    format!(
        concat!(
            "{{\"address\":{},\"uri\":{},\"connections\":{},\"depth\":{},\"keep_alive\":{},",
            "\"body_bytes\":{},\"elapsed_s\":{},\"requests\":{},\"ok\":{},\"errors\":{},",
            "\"requests_per_s\":{},\"bytes_out\":{},\"bytes_in\":{},\"mb_per_s_out\":{},",
            "\"mb_per_s_in\":{},\"latency_us\":{{\"min\":{},\"p50\":{},\"p90\":{},\"p99\":{},",
            "\"max\":{},\"mean\":{}}},\"error_kinds\":{{{}}},\"connections_never_served\":{}}}"
        ),
        json_str(&o.address),
        json_str(&o.uri),
        o.connections,
        o.depth,
        o.keep,
        o.body,
        json_f(secs),
        st.ok + st.failed,
        st.ok,
        st.error_total(),
        json_f(rate(st.ok + st.failed, secs)),
        st.bytes_out,
        st.bytes_in,
        json_f(rate(st.bytes_out, secs) / 1e6),
        json_f(rate(st.bytes_in, secs) / 1e6),
        if h.n == 0 { 0 } else { h.min },
        h.quantile(0.5),
        h.quantile(0.9),
        h.quantile(0.99),
        h.max,
        h.mean(),
        kinds.join(","),
        st.never_served,
    )
}

fn report_text(o: &Options, st: &Stats, secs: f64) -> String {
    let h = &st.hist;
    let n = st.ok + st.failed;
    let errs: Vec<String> = KIND_NAMES
        .iter()
        .zip(&st.errors)
        .filter(|(_, &c)| c > 0)
        .map(|(k, c)| format!("{k} {c}"))
        .collect();
    let mut s = format!(
        "fcgi-bench {} {}: {} connections, depth {}, {}, body {} bytes\n",
        o.address,
        o.uri,
        o.connections,
        o.depth,
        if o.keep {
            "keep-alive"
        } else {
            "no keep-alive"
        },
        o.body
    );
    s += &format!(
        "  requests  {n} in {secs:.3} s: {:.1} req/s, ok {}, {} errors\n",
        rate(n, secs),
        st.ok,
        st.error_total()
    );
    s += &format!(
        "  transfer  out {:.2} MB/s ({} bytes), in {:.2} MB/s ({} bytes)\n",
        rate(st.bytes_out, secs) / 1e6,
        st.bytes_out,
        rate(st.bytes_in, secs) / 1e6,
        st.bytes_in
    );
    s += &format!(
        "  latency   min {} us, p50 {} us, p90 {} us, p99 {} us, max {} us, mean {} us\n",
        if h.n == 0 { 0 } else { h.min },
        h.quantile(0.5),
        h.quantile(0.9),
        h.quantile(0.99),
        h.max,
        h.mean()
    );
    s += &format!(
        "  connections never served: {} of {}\n",
        st.never_served, o.connections
    );
    s += &format!(
        "  errors    {}",
        if errs.is_empty() {
            "none".to_string()
        } else {
            errs.join(", ")
        }
    );
    s
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run(o)) => {
            let (st, secs) = run(&o);
            let out = if o.json {
                report_json(&o, &st, secs)
            } else {
                report_text(&o, &st, secs)
            };
            println!("{out}");
            ExitCode::from(u8::from(st.error_total() > 0))
        }
        Err(msg) => {
            eprintln!("fcgi-bench: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    fn opts(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Command::Run(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_options() {
        let o = opts(&["9000"]);
        assert_eq!((o.connections, o.depth, o.keep), (1, 1, true));
        assert_eq!((o.duration, o.count), (Some(10.0), None));
        let o = opts(&[
            "-c", "8", "-m", "4", "-b", "2k", "-n", "100", "-p", "A=1", "--json", "/s", "/x?y=1",
        ]);
        assert_eq!((o.connections, o.depth, o.body), (8, 4, 2048));
        assert_eq!((o.duration, o.count), (None, Some(100)));
        let p = build_params(&o);
        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("REQUEST_METHOD"), Some("POST"));
        assert_eq!(get("CONTENT_LENGTH"), Some("2048"));
        assert_eq!(get("QUERY_STRING"), Some("y=1"));
        assert_eq!(get("SCRIPT_FILENAME"), Some("/var/www/html/x"));
        assert_eq!(get("A"), Some("1"));
        assert!(p.len() >= 22);
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["-c", "0", "1"],
            &["-m", "0", "1"],
            &["-m", "70000", "1"],
            &["--no-keep", "-m", "2", "1"],
            &["--warmup", "1", "-n", "5", "1"],
            &["-b", "1x", "1"],
            &["-p", "=v", "1"],
            &["-d", "-1", "1"],
            &["--bogus", "1"],
            &["1", "/", "extra"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
    }

    #[test]
    fn histogram() {
        let mut h = Hist::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.04, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.04, "{p99}");
        assert_eq!(h.max, 10_000);
        assert_eq!(h.quantile(0.0), 1);
        for v in [0, 63, 64, 65, 1000, u32::MAX as u64, u64::MAX] {
            assert!(Hist::index(v) < Hist::BUCKETS);
        }
    }

    #[test]
    fn large_bodies_are_chunked() {
        let mut o = opts(&["-b", "1M", "1"]);
        let e = encode(&o, &build_params(&o), 3);
        assert!(e.nchunks > 0 && e.chunk.len() < 70_000);
        let mut all = Vec::new();
        e.write_to(&mut all).unwrap();
        assert_eq!(all.len() as u64, e.len());
        o.body = 1000;
        let small = encode(&o, &build_params(&o), 3);
        assert_eq!(small.nchunks, 0);
    }
}
