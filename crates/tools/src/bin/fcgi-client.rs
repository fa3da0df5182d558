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

#[path = "common/cli.rs"]
mod cli;

use clap::{ArgAction, Parser, ValueEnum};

const AFTER_HELP: &str = "\
ADDRESS is PORT, :PORT, HOST:PORT, [IPV6]:PORT or a Unix socket path.
SCRIPT_URI (default /) gives SCRIPT_NAME and REQUEST_URI; a ?query part gives QUERY_STRING.

exit status: 0 request complete, 1 connection/protocol error, 2 usage error,
3 protocol status not REQUEST_COMPLETE";

/// The command line, as clap reads it (see [`Options`] for what the program uses).
#[derive(Parser, Debug)]
#[command(
    name = "fcgi-client",
    about = "Send one FastCGI request (or GET_VALUES) and print the answer, like libfcgi's \
             cgi-fcgi -connect",
    override_usage = "fcgi-client [OPTIONS] ADDRESS [SCRIPT_URI]",
    help_template = cli::HELP_TEMPLATE,
    after_help = AFTER_HELP,
    disable_help_flag = true
)]
pub struct Cli {
    /// add or override a parameter (repeatable)
    #[arg(short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// REQUEST_METHOD (default GET, or POST when a body is given)
    #[arg(short = 'm', value_name = "METHOD")]
    method: Option<String>,
    /// request body
    #[arg(short = 'd', value_name = "DATA", conflicts_with = "file")]
    data: Option<String>,
    /// request body from FILE (- for standard input)
    #[arg(short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// QUERY_STRING
    #[arg(short = 'q', value_name = "QUERY")]
    query: Option<String>,
    /// responder (default), authorizer or filter
    #[arg(
        long,
        value_name = "ROLE",
        value_enum,
        ignore_case = true,
        default_value = "responder",
        hide_default_value = true,
        hide_possible_values = true
    )]
    role: RoleArg,
    /// the DATA stream of the filter role
    #[arg(long, value_name = "FILE")]
    data_file: Option<PathBuf>,
    /// set FCGI_KEEP_CONN
    #[arg(long)]
    keep: bool,
    /// send the request N times over one kept connection
    #[arg(short = 'n', value_name = "N", default_value_t = 1, hide_default_value = true,
          value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// query FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS and print them
    #[arg(long)]
    get_values: bool,
    /// print '# app_status=N protocol_status=N' to stderr per response
    #[arg(short = 'i')]
    info: bool,
    /// a response whose STDOUT ends at END_REQUEST without the empty STDOUT record (PHP's layer
    /// never sends it) is a protocol error, not a note
    #[arg(long)]
    strict: bool,
    /// this help
    #[arg(short = 'h', long, action = ArgAction::Help)]
    help: Option<bool>,
    #[arg(long, value_name = "DIR", hide = true, exclusive = true, help = cli::GENERATE_MAN_HELP)]
    generate_man: Option<PathBuf>,
    /// PORT, :PORT, HOST:PORT, [IPV6]:PORT or a Unix socket path
    #[arg(value_name = "ADDRESS", required = true)]
    address: Option<String>,
    /// gives SCRIPT_NAME and REQUEST_URI; a ?query part gives QUERY_STRING
    #[arg(
        value_name = "SCRIPT_URI",
        default_value = "/",
        hide_default_value = true
    )]
    uri: String,
}

/// The roles of `--role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RoleArg {
    Responder,
    Authorizer,
    Filter,
}

/// `-p`'s NAME=VALUE, with a non-empty NAME.
fn parse_param(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((n, val)) if !n.is_empty() => Ok((n.to_string(), val.to_string())),
        _ => Err("expects NAME=VALUE".to_string()),
    }
}

/// Where the request body comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    Data(String),
    File(PathBuf),
    Stdin,
}

/// What the program does, from the command line.
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

impl Options {
    /// The options of a parsed command line; `Err` for `--data-file` without `--role filter`.
    fn from_cli(c: Cli) -> Result<Options, String> {
        let role = match c.role {
            RoleArg::Responder => 1,
            RoleArg::Authorizer => 2,
            RoleArg::Filter => 3,
        };
        if c.data_file.is_some() && role != 3 {
            return Err("--data-file needs --role filter".to_string());
        }
        let body = match (c.data, c.file) {
            (Some(d), _) => Some(Body::Data(d)),
            (None, Some(f)) if f.as_os_str() == "-" => Some(Body::Stdin),
            (None, Some(f)) => Some(Body::File(f)),
            (None, None) => None,
        };
        Ok(Options {
            address: c.address.unwrap_or_default(),
            uri: c.uri,
            params: c.params,
            method: c.method,
            body,
            query: c.query,
            role,
            data_file: c.data_file,
            keep: c.keep,
            count: c.count,
            get_values: c.get_values,
            info: c.info,
            strict: c.strict,
        })
    }
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
    let c: Cli = cli::parse_or_exit("fcgi-client", std::env::args_os());
    if let Some(dir) = &c.generate_man {
        cli::generate_man("fcgi-client", <Cli as clap::CommandFactory>::command(), dir);
    }
    let o = Options::from_cli(c).unwrap_or_else(|e| {
        cli::usage_error(
            "fcgi-client",
            &mut <Cli as clap::CommandFactory>::command(),
            &e,
        )
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The options of `args`, or the error's message (a clap error's kind for help).
    fn parse(args: &[&str]) -> Result<Options, String> {
        let argv = std::iter::once("fcgi-client").chain(args.iter().copied());
        match cli::try_parse::<Cli>(argv.map(Into::into)) {
            Ok(c) => Options::from_cli(c),
            Err(e) => Err(format!("{:?}: {}", e.kind(), cli::message(&e))),
        }
    }

    fn opts(args: &[&str]) -> Options {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn is_help(r: Result<Options, String>) -> bool {
        r.is_err_and(|e| e.starts_with("DisplayHelp"))
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
        assert!(is_help(parse(&["-h"])));
        assert!(is_help(parse(&["1", "--help"])));
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
            &["-d", "a", "-d", "b", "1"],
            &["-f", "a", "-f", "b", "1"],
        ] {
            let r = parse(bad);
            assert!(r.is_err() && !is_help(r), "{bad:?}");
        }
    }
}
