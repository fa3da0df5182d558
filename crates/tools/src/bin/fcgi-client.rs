//! `fcgi-client`: send one FastCGI request (or GET_VALUES) and print the answer, like libfcgi's
//! `cgi-fcgi -connect`. See `fcgi-client -h`.
//!
//! Exit status: 0 when END_REQUEST says REQUEST_COMPLETE, 1 on connection or protocol errors,
//! 2 on usage errors, 3 when the protocol status is not REQUEST_COMPLETE.
//!
//! It speaks to every real application: a response whose STDOUT ends at END_REQUEST without
//! the empty STDOUT record (PHP's FastCGI layer never sends it) is accepted and reported as a
//! conformance note on stderr; `--strict` makes it a protocol error.

use fcgi_runtime_tools::client::{Client, Request};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::UNIX_EPOCH;

const USAGE: &str = "\
usage: fcgi-client [OPTIONS] ADDRESS [SCRIPT_URI]

ADDRESS is PORT, :PORT, HOST:PORT, [IPV6]:PORT or a Unix socket path.
SCRIPT_URI (default /) gives SCRIPT_NAME and REQUEST_URI; a ?query part gives QUERY_STRING.

options:
  -p NAME=VALUE     add or override a parameter (repeatable)
  -m METHOD         REQUEST_METHOD (default GET, or POST when a body is given)
  -d DATA           request body
  -f FILE           request body from FILE (- for standard input)
  -q QUERY          QUERY_STRING
  --role ROLE       responder (default), authorizer or filter
  --data-file FILE  the DATA stream of the filter role
  --keep            set FCGI_KEEP_CONN
  -n N              send the request N times over one kept connection
  --get-values      query FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS and print them
  -i                print '# app_status=N protocol_status=N' to stderr per response
  --strict          a response whose STDOUT ends at END_REQUEST without the empty STDOUT
                    record (PHP's layer never sends it) is a protocol error, not a note
  -h, --help        this help

exit status: 0 request complete, 1 connection/protocol error, 2 usage error,
3 protocol status not REQUEST_COMPLETE";

/// Where the request body comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    Data(String),
    File(PathBuf),
    Stdin,
}

/// Parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Options {
    address: String,
    uri: String,
    params: Vec<(String, String)>,
    method: Option<String>,
    body: Option<Body>,
    query: Option<String>,
    role: u16,
    data_file: Option<PathBuf>,
    keep: bool,
    count: u32,
    get_values: bool,
    info: bool,
    strict: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    Run(Options),
}

/// Parses the arguments after the program name.
fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut it = args.into_iter();
    let mut positional = Vec::new();
    let mut o = Options {
        address: String::new(),
        uri: "/".to_string(),
        params: Vec::new(),
        method: None,
        body: None,
        query: None,
        role: 1,
        data_file: None,
        keep: false,
        count: 1,
        get_values: false,
        info: false,
        strict: false,
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
            "-p" => {
                let v = value("-p")?;
                let (n, val) = v
                    .split_once('=')
                    .ok_or_else(|| format!("-p expects NAME=VALUE, got '{v}'"))?;
                if n.is_empty() {
                    return Err(format!("-p expects NAME=VALUE, got '{v}'"));
                }
                o.params.push((n.to_string(), val.to_string()));
            }
            "-m" => o.method = Some(value("-m")?),
            "-d" | "-f" => {
                if o.body.is_some() {
                    return Err("only one of -d and -f may be given, once".to_string());
                }
                let v = value(&arg)?;
                o.body = Some(match (arg.as_str(), v.as_str()) {
                    ("-d", _) => Body::Data(v),
                    (_, "-") => Body::Stdin,
                    _ => Body::File(PathBuf::from(v)),
                });
            }
            "-q" => o.query = Some(value("-q")?),
            "--role" => {
                o.role = match value("--role")?.to_ascii_lowercase().as_str() {
                    "responder" => 1,
                    "authorizer" => 2,
                    "filter" => 3,
                    r => return Err(format!("unknown role '{r}'")),
                }
            }
            "--data-file" => o.data_file = Some(PathBuf::from(value("--data-file")?)),
            "--keep" => o.keep = true,
            "-n" => {
                let v = value("-n")?;
                o.count = v
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| format!("-n expects a positive number, got '{v}'"))?;
            }
            "--get-values" => o.get_values = true,
            "-i" => o.info = true,
            "--strict" => o.strict = true,
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
    if o.data_file.is_some() && o.role != 3 {
        return Err("--data-file needs --role filter".to_string());
    }
    Ok(Command::Run(o))
}

/// The parameters to send: CGI defaults, then the `-p` overrides (in place when they replace a
/// default, appended otherwise). `body_len` is the body size when there is a body; `data` is
/// (length, mtime) of the filter DATA.
fn build_params(
    o: &Options,
    body_len: Option<usize>,
    data: Option<(usize, u64)>,
) -> Vec<(String, String)> {
    let (path, uri_query) = match o.uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (o.uri.as_str(), None),
    };
    let query = o.query.as_deref().or(uri_query).unwrap_or("");
    let method = match (&o.method, body_len) {
        (Some(m), _) => m.clone(),
        (None, Some(_)) => "POST".to_string(),
        (None, None) => "GET".to_string(),
    };
    let request_uri = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let authorizer = o.role == 2;
    let mut p: Vec<(String, String)> = Vec::new();
    let mut add = |n: &str, v: String| p.push((n.to_string(), v));
    add("GATEWAY_INTERFACE", "CGI/1.1".into());
    add("SERVER_SOFTWARE", "fcgi-client".into());
    add("SERVER_PROTOCOL", "HTTP/1.1".into());
    add("SERVER_NAME", "localhost".into());
    add("SERVER_PORT", "80".into());
    add("REMOTE_ADDR", "127.0.0.1".into());
    add("REQUEST_METHOD", method);
    if !authorizer {
        // §6.3: an Authorizer gets no SCRIPT_NAME or CONTENT_LENGTH.
        add("SCRIPT_NAME", path.to_string());
    }
    add("REQUEST_URI", request_uri);
    add("QUERY_STRING", query.to_string());
    if let (Some(n), false) = (body_len, authorizer) {
        add("CONTENT_LENGTH", n.to_string());
    }
    if let Some((len, mtime)) = data {
        add("FCGI_DATA_LENGTH", len.to_string());
        add("FCGI_DATA_LAST_MOD", mtime.to_string());
    }
    for (n, v) in &o.params {
        match p.iter_mut().find(|(pn, _)| pn == n) {
            Some(slot) => slot.1 = v.clone(),
            None => p.push((n.clone(), v.clone())),
        }
    }
    p
}

/// An error with the exit status it maps to.
struct Failure(u8, String);

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure(1, e.to_string())
    }
}

fn read_body(b: &Body) -> Result<Vec<u8>, Failure> {
    match b {
        Body::Data(s) => Ok(s.clone().into_bytes()),
        Body::Stdin => {
            let mut v = Vec::new();
            io::stdin().read_to_end(&mut v)?;
            Ok(v)
        }
        Body::File(p) => {
            std::fs::read(p).map_err(|e| Failure(1, format!("cannot read {}: {e}", p.display())))
        }
    }
}

/// Runs the command; `unterminated` counts the responses whose STDOUT ended at END_REQUEST
/// without its empty record (accepted unless --strict).
fn run(o: &Options, unterminated: &mut u32) -> Result<u8, Failure> {
    if o.get_values {
        let mut c = Client::connect(&o.address)
            .map_err(|e| Failure(1, format!("cannot connect to {}: {e}", o.address)))?;
        let names = ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"];
        let mut out = io::stdout().lock();
        for (n, v) in c.get_values(&names)? {
            writeln!(out, "{n}={v}")?;
        }
        return Ok(0);
    }
    let body = o.body.as_ref().map(read_body).transpose()?;
    let data = match &o.data_file {
        Some(p) => {
            let bytes = std::fs::read(p)
                .map_err(|e| Failure(1, format!("cannot read {}: {e}", p.display())))?;
            let mtime = std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            Some((bytes, mtime))
        }
        None if o.role == 3 => Some((Vec::new(), 0)),
        None => None,
    };
    let params = build_params(
        o,
        body.as_ref().map(Vec::len),
        data.as_ref().map(|(b, m)| (b.len(), *m)),
    );
    let mut req = Request::new(1).role(o.role);
    for (n, v) in params {
        req = req.param(n, v);
    }
    req.stdin = body.unwrap_or_default();
    req.data = data.map(|(b, _)| b).unwrap_or_default();
    let mut c = Client::connect(&o.address)
        .map_err(|e| Failure(1, format!("cannot connect to {}: {e}", o.address)))?;
    c.set_strict(o.strict);
    for i in 0..o.count {
        req.keep_conn = i + 1 < o.count || o.keep;
        let r = c.request(&req)?;
        *unterminated += u32::from(r.stdout_unterminated);
        io::stdout().write_all(&r.stdout)?;
        io::stdout().flush()?;
        io::stderr().write_all(&r.stderr)?;
        if o.info {
            eprintln!(
                "# app_status={} protocol_status={}",
                r.app_status, r.protocol_status
            );
        }
        if r.protocol_status != 0 {
            return Err(Failure(
                3,
                format!(
                    "request not complete: protocol status {}",
                    r.protocol_status
                ),
            ));
        }
    }
    Ok(0)
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run(o)) => {
            let mut unterminated = 0;
            let result = run(&o, &mut unterminated);
            if unterminated > 0 {
                eprintln!(
                    "fcgi-client: note: {unterminated} of {} responses ended STDOUT at \
                     END_REQUEST without the empty STDOUT record (FastCGI 1.0 §5.3; PHP's \
                     FastCGI layer never sends it); accepted, --strict makes it an error",
                    o.count
                );
            }
            match result {
                Ok(code) => ExitCode::from(code),
                Err(Failure(code, msg)) => {
                    eprintln!("fcgi-client: {msg}");
                    ExitCode::from(code)
                }
            }
        }
        Err(msg) => {
            eprintln!("fcgi-client: {msg}\n\n{USAGE}");
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

    fn get<'a>(p: &'a [(String, String)], n: &str) -> Option<&'a str> {
        p.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str())
    }

    #[test]
    fn minimal() {
        let o = opts(&["127.0.0.1:9000"]);
        assert_eq!(o.address, "127.0.0.1:9000");
        assert_eq!(
            (o.uri.as_str(), o.role, o.count, o.keep),
            ("/", 1, 1, false)
        );
        let p = build_params(&o, None, None);
        assert_eq!(get(&p, "REQUEST_METHOD"), Some("GET"));
        assert_eq!(get(&p, "SCRIPT_NAME"), Some("/"));
        assert_eq!(get(&p, "REQUEST_URI"), Some("/"));
        assert_eq!(get(&p, "QUERY_STRING"), Some(""));
        assert_eq!(get(&p, "GATEWAY_INTERFACE"), Some("CGI/1.1"));
        assert_eq!(get(&p, "SERVER_PROTOCOL"), Some("HTTP/1.1"));
        assert_eq!(get(&p, "SERVER_SOFTWARE"), Some("fcgi-client"));
        assert_eq!(get(&p, "REMOTE_ADDR"), Some("127.0.0.1"));
        assert_eq!(get(&p, "SERVER_NAME"), Some("localhost"));
        assert_eq!(get(&p, "SERVER_PORT"), Some("80"));
        assert_eq!(get(&p, "CONTENT_LENGTH"), None);
    }

    #[test]
    fn all_options() {
        let o = opts(&[
            "-p",
            "A=1",
            "-m",
            "PUT",
            "-d",
            "hello",
            "-q",
            "x=1",
            "--keep",
            "-n",
            "3",
            "-i",
            "/tmp/s.sock",
            "/index.php",
        ]);
        assert_eq!(o.params, [("A".to_string(), "1".to_string())]);
        assert_eq!(o.method.as_deref(), Some("PUT"));
        assert_eq!(o.body, Some(Body::Data("hello".into())));
        assert!(o.keep && o.info);
        assert_eq!(o.count, 3);
        assert_eq!(
            (o.address.as_str(), o.uri.as_str()),
            ("/tmp/s.sock", "/index.php")
        );
        let p = build_params(&o, Some(5), None);
        assert_eq!(get(&p, "REQUEST_METHOD"), Some("PUT"));
        assert_eq!(get(&p, "CONTENT_LENGTH"), Some("5"));
        assert_eq!(get(&p, "REQUEST_URI"), Some("/index.php?x=1"));
        assert_eq!(get(&p, "A"), Some("1"));
    }

    #[test]
    fn body_implies_post_and_overrides_in_place() {
        let o = opts(&["-f", "-", "-p", "REQUEST_METHOD=PATCH", "-p", "B=", "9000"]);
        assert_eq!(o.body, Some(Body::Stdin));
        let p = build_params(&o, Some(0), None);
        let methods: Vec<_> = p.iter().filter(|(n, _)| n == "REQUEST_METHOD").collect();
        assert_eq!(methods.len(), 1);
        assert_eq!(get(&p, "REQUEST_METHOD"), Some("PATCH"));
        assert_eq!(get(&p, "B"), Some(""));
        assert_eq!(p.last().unwrap().0, "B");
        let o = opts(&["-f", "body.txt", "9000"]);
        assert_eq!(o.body, Some(Body::File("body.txt".into())));
        assert_eq!(
            get(&build_params(&o, Some(3), None), "REQUEST_METHOD"),
            Some("POST")
        );
    }

    #[test]
    fn uri_query() {
        let o = opts(&["9000", "/a/b.php?x=1&y=2"]);
        let p = build_params(&o, None, None);
        assert_eq!(get(&p, "SCRIPT_NAME"), Some("/a/b.php"));
        assert_eq!(get(&p, "QUERY_STRING"), Some("x=1&y=2"));
        assert_eq!(get(&p, "REQUEST_URI"), Some("/a/b.php?x=1&y=2"));
        let o = opts(&["-q", "z=3", "9000", "/a?x=1"]);
        let p = build_params(&o, None, None);
        assert_eq!(get(&p, "QUERY_STRING"), Some("z=3"));
        assert_eq!(get(&p, "REQUEST_URI"), Some("/a?z=3"));
    }

    #[test]
    fn roles() {
        assert_eq!(opts(&["--role", "Authorizer", "1"]).role, 2);
        let o = opts(&["--role", "filter", "--data-file", "d.txt", "1"]);
        assert_eq!((o.role, o.data_file.clone()), (3, Some("d.txt".into())));
        let p = build_params(&o, None, Some((10, 1234)));
        assert_eq!(get(&p, "FCGI_DATA_LENGTH"), Some("10"));
        assert_eq!(get(&p, "FCGI_DATA_LAST_MOD"), Some("1234"));
        let a = opts(&["--role", "authorizer", "-d", "x", "1"]);
        let p = build_params(&a, Some(1), None);
        assert_eq!(get(&p, "SCRIPT_NAME"), None);
        assert_eq!(get(&p, "CONTENT_LENGTH"), None);
        assert!(parse(&["--role", "boss", "1"]).is_err());
        assert!(parse(&["--data-file", "d", "1"]).is_err());
    }

    #[test]
    fn misc_flags() {
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
        assert_eq!(parse(&["1", "--help"]), Ok(Command::Help));
        assert!(opts(&["--get-values", "[::1]:9000"]).get_values);
        assert!(!opts(&["9000"]).strict);
        assert!(opts(&["--strict", "9000"]).strict);
        assert_eq!(opts(&["--", "-weird-path"]).address, "-weird-path");
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["-p"],
            &["-p", "NOEQUALS", "1"],
            &["-p", "=v", "1"],
            &["-n", "0", "1"],
            &["-n", "x", "1"],
            &["-d", "a", "-f", "b", "1"],
            &["-x", "1"],
            &["1", "/", "extra"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
