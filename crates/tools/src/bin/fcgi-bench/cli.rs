//! The command line: options, their parsing and the usage text.

pub(crate) const USAGE: &str = "\
usage: fcgi-bench [OPTIONS] ADDRESS [SCRIPT_URI]
       fcgi-bench soak [OPTIONS] ADDRESS     a mixed load that fails on any error or on
                                             server memory growth (fcgi-bench soak -h)

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
  --retry-reused        when a reused keep-alive connection closes before any byte of the
                        pending responses, send those requests once more on a new
                        connection and count them as retried, not as errors (as nginx and
                        HAProxy do; for servers that close idle kept connections, such as a
                        recycled or reloaded pool worker)
  --warmup SECONDS      run this long first without recording (needs -d)
  --timeout SECONDS     read/write timeout per connection (default 10)
  --app-status N        expected appStatus of END_REQUEST (default 0)
  --expect SUBSTRING    every response's STDOUT must contain SUBSTRING
  --expect-stdin-length every STDOUT must contain the line STDIN_LENGTH=<BYTES> (c-examples/echo)
  --strict              a response whose STDOUT ends at END_REQUEST without the empty STDOUT
                        record is a protocol error (default: accepted and counted as a
                        conformance note, stdout_unterminated)
  --json                print the results as one JSON object instead of text
  -h, --help            this help

Every response is verified: protocol status REQUEST_COMPLETE, the expected appStatus, and the
--expect checks. STDOUT should end with its empty record; PHP's FastCGI layer never sends it
(web servers take END_REQUEST as the end), so a response without it is counted as a note, and
an error only with --strict. Latency runs from writing BEGIN_REQUEST to reading END_REQUEST.
MB/s count FastCGI record bytes (1 MB = 10^6 bytes).

exit status: 0 no errors, 1 a request failed verification or a connection errored, 2 usage error";

/// Parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Options {
    pub(crate) address: String,
    pub(crate) uri: String,
    pub(crate) connections: usize,
    pub(crate) depth: u16,
    pub(crate) body: u64,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) duration: Option<f64>,
    pub(crate) count: Option<u64>,
    pub(crate) keep: bool,
    pub(crate) retry_reused: bool,
    pub(crate) warmup: f64,
    pub(crate) timeout: f64,
    pub(crate) app_status: u32,
    pub(crate) expect: Option<String>,
    pub(crate) expect_stdin_length: bool,
    pub(crate) strict: bool,
    pub(crate) json: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Command {
    Help,
    Run(Options),
}

pub(crate) fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{name} expects a number, got '{v}'"))
}

pub(crate) fn parse_secs(name: &str, v: &str) -> Result<f64, String> {
    let s: f64 = parse_num(name, v)?;
    if !(0.0..=1e9).contains(&s) {
        return Err(format!("{name} expects seconds, got '{v}'"));
    }
    Ok(s)
}

/// A byte count with an optional k, M or G suffix (powers of 1024).
pub(crate) fn parse_size(name: &str, v: &str) -> Result<u64, String> {
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
pub(crate) fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
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
        retry_reused: false,
        warmup: 0.0,
        timeout: 10.0,
        app_status: 0,
        expect: None,
        expect_stdin_length: false,
        strict: false,
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
            "--retry-reused" => o.retry_reused = true,
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
            "--strict" => o.strict = true,
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
