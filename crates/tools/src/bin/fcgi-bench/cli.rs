//! The command line (clap): the benchmark's options, the soak subcommand's, and their checks.

use crate::soak_work::KINDS;
use clap::{ArgAction, Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
ADDRESS is PORT, :PORT, HOST:PORT, [IPV6]:PORT or a Unix socket path.
SCRIPT_URI (default /) gives SCRIPT_NAME, REQUEST_URI and SCRIPT_FILENAME; a ?query part gives
QUERY_STRING. An nginx-like set of ~25 PARAMS is sent with every request.

Every response is verified: protocol status REQUEST_COMPLETE, the expected appStatus, and the
--expect checks. STDOUT should end with its empty record; PHP's FastCGI layer never sends it
(web servers take END_REQUEST as the end), so a response without it is counted as a note, and
an error only with --strict. Latency runs from writing BEGIN_REQUEST to reading END_REQUEST.
MB/s count FastCGI record bytes (1 MB = 10^6 bytes).

exit status: 0 no errors, 1 a request failed verification or a connection errored, 2 usage error";

/// The command line: a benchmark run, or `soak` and its options.
#[derive(Parser, Debug)]
#[command(
    name = "fcgi-bench",
    about = "A FastCGI load generator that talks to an application directly (no web server in \
             the way)",
    override_usage = "fcgi-bench [OPTIONS] ADDRESS [SCRIPT_URI]\n       \
                      fcgi-bench soak [OPTIONS] ADDRESS",
    help_template = crate::common_cli::HELP_TEMPLATE,
    after_help = AFTER_HELP,
    disable_help_flag = true,
    disable_help_subcommand = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Sub>,
    #[command(flatten)]
    pub(crate) bench: BenchArgs,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum Sub {
    /// a mixed load that fails on any error or on server memory growth (fcgi-bench soak -h)
    Soak(SoakArgs),
}

/// The benchmark's options.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// connections
    #[arg(short = 'c', value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// request ids in flight per connection, 1..=65535
    #[arg(short = 'm', value_name = "DEPTH", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..))]
    depth: u16,
    /// request body size (STDIN), suffixes k, M, G (1024-based); POST when > 0
    #[arg(short = 'b', value_name = "BYTES", value_parser = parse_size, default_value = "0",
          hide_default_value = true)]
    body: u64,
    /// add or override a parameter (repeatable)
    #[arg(short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// run for this long (default 10 unless -n is given)
    #[arg(short = 'd', value_name = "SECONDS", value_parser = parse_secs)]
    duration: Option<f64>,
    /// stop after COUNT requests in total (with -d: whichever comes first)
    #[arg(short = 'n', value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// a new connection per request, FCGI_KEEP_CONN unset (needs -m 1)
    #[arg(long)]
    no_keep: bool,
    /// when a reused keep-alive connection closes before any byte of the pending responses,
    /// send those requests once more on a new connection and count them as retried, not as
    /// errors (as nginx and HAProxy do; for servers that close idle kept connections, such as a
    /// recycled or reloaded pool worker)
    #[arg(long)]
    retry_reused: bool,
    /// run this long first without recording (needs -d)
    #[arg(long, value_name = "SECONDS", value_parser = parse_secs, default_value = "0",
          hide_default_value = true)]
    warmup: f64,
    /// read/write timeout per connection
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout, default_value = "10")]
    timeout: f64,
    /// expected appStatus of END_REQUEST
    #[arg(long, value_name = "N", default_value_t = 0)]
    app_status: u32,
    /// every response's STDOUT must contain SUBSTRING
    #[arg(long, value_name = "SUBSTRING")]
    expect: Option<String>,
    /// every STDOUT must contain the line STDIN_LENGTH=<BYTES> (c-examples/echo)
    #[arg(long)]
    expect_stdin_length: bool,
    /// a response whose STDOUT ends at END_REQUEST without the empty STDOUT record is a protocol
    /// error (default: accepted and counted as a conformance note, stdout_unterminated)
    #[arg(long)]
    strict: bool,
    /// print the results as one JSON object instead of text
    #[arg(long)]
    json: bool,
    /// this help
    #[arg(short = 'h', long, action = ArgAction::Help)]
    help: Option<bool>,
    #[arg(long, value_name = "DIR", hide = true, exclusive = true,
          help = crate::common_cli::GENERATE_MAN_HELP)]
    pub(crate) generate_man: Option<std::path::PathBuf>,
    /// PORT, :PORT, HOST:PORT, [IPV6]:PORT or a Unix socket path
    #[arg(value_name = "ADDRESS", required = true)]
    address: Option<String>,
    /// gives SCRIPT_NAME, REQUEST_URI and SCRIPT_FILENAME; a ?query part gives QUERY_STRING
    #[arg(
        value_name = "SCRIPT_URI",
        default_value = "/",
        hide_default_value = true
    )]
    uri: String,
}

const SOAK_ABOUT: &str = "\
A mixed load against an echoing application (c-examples/soak-echo, or lf-echo on the
project's libfcgi.so.0) for a given time; every response is verified (status, SOAK_ID, the
echoed length and FNV-1a of the upload). Worker kinds:
  keep     keep-alive connection, one request at a time, bodies of 0 to 100000 bytes
  nokeep   a connection per request, FCGI_KEEP_CONN unset: the server must close it
  mux      DEPTH request ids in flight on one connection; every tenth aborted at once
  upload   keep-alive uploads of 256 KiB to MAX_UPLOAD (and of MAX_UPLOAD and 0 bytes)
  abort    ABORT_REQUEST before the upload, during it and while the response streams, then a
           normal request: each must end with exactly one END_REQUEST
  idle     a request, then idle until the server closes the connection, then reconnect
           (needs the server's idle timeout, FCGI_RUNTIME_KEEPALIVE_TIMEOUT_MS, below --timeout)";

/// `fcgi-bench soak`'s options.
#[derive(Args, Debug)]
#[command(
    about = "a mixed load that fails on any error or on server memory growth",
    long_about = SOAK_ABOUT,
    before_help = SOAK_ABOUT,
    override_usage = "fcgi-bench soak [OPTIONS] ADDRESS",
    help_template = crate::common_cli::HELP_TEMPLATE_PARAGRAPH,
    after_help = "exit status: 0 every request verified and the server within bounds, 1 \
                  otherwise, 2 usage error",
    disable_help_flag = true
)]
pub(crate) struct SoakArgs {
    /// run time
    #[arg(long, value_name = "SECONDS", value_parser = parse_secs, default_value = "60")]
    pub(crate) secs: f64,
    /// comma-separated kinds (default keep,nokeep,mux,upload,abort)
    #[arg(long, value_name = "LIST", value_parser = parse_kinds)]
    pub(crate) kinds: Option<Kinds>,
    /// workers, given the kinds in turn (default: one per kind)
    #[arg(short = 'c', value_name = "N")]
    pub(crate) workers: Option<usize>,
    /// ids in flight on a mux connection
    #[arg(short = 'm', value_name = "DEPTH", default_value_t = 8)]
    pub(crate) depth: usize,
    /// largest upload, suffixes k, M
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "4M")]
    pub(crate) max_upload: u64,
    /// longest wait for any read or write
    #[arg(long, value_name = "SECONDS", value_parser = parse_secs, default_value = "30")]
    pub(crate) timeout: f64,
    /// sample VmRSS and open fds of PID every second and judge them
    #[arg(long = "server-pid", value_name = "PID")]
    pub(crate) pid: Option<u32>,
    /// samples before this are not judged (default: a quarter of --secs, <= 10)
    #[arg(long, value_name = "SECONDS", value_parser = parse_secs)]
    pub(crate) warmup: Option<f64>,
    /// fail when VmRSS rises more than this above its level after the warm-up
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "8M")]
    pub(crate) rss_growth: u64,
    /// fail when the last third of the samples stays this far above the first third's highest
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "2M")]
    pub(crate) rss_trend: u64,
    /// fail when open fds rise more than N above the level after the warm-up
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub(crate) fd_growth: u64,
    /// print one JSON object instead of text
    #[arg(long)]
    pub(crate) json: bool,
    /// this help
    #[arg(short = 'h', long, action = ArgAction::HelpShort)]
    help: Option<bool>,
    /// PORT, :PORT, HOST:PORT, [IPV6]:PORT or a Unix socket path
    #[arg(value_name = "ADDRESS")]
    pub(crate) address: String,
}

/// `--kinds`: worker kinds, in the order given.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Kinds(pub(crate) Vec<&'static str>);

fn parse_kinds(v: &str) -> Result<Kinds, String> {
    v.split(',')
        .map(|k| {
            KINDS
                .iter()
                .find(|&&n| n == k)
                .copied()
                .ok_or_else(|| format!("unknown kind '{k}' (kinds: {KINDS:?})"))
        })
        .collect::<Result<_, _>>()
        .map(Kinds)
}

/// Parsed command line of a benchmark run.
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

impl Options {
    /// The run's options; `Err` for combinations that cannot work.
    pub(crate) fn from_args(a: BenchArgs) -> Result<Options, String> {
        let keep = !a.no_keep;
        if !keep && a.depth > 1 {
            return Err("--no-keep needs -m 1 (the application closes after one request)".into());
        }
        if a.warmup > 0.0 && a.duration.is_none() {
            return Err("--warmup needs -d".to_string());
        }
        let duration = match (a.duration, a.count) {
            (None, None) => Some(10.0),
            (d, _) => d,
        };
        Ok(Options {
            address: a.address.unwrap_or_default(),
            uri: a.uri,
            connections: a.connections as usize,
            depth: a.depth,
            body: a.body,
            params: a.params,
            duration,
            count: a.count,
            keep,
            retry_reused: a.retry_reused,
            warmup: a.warmup,
            timeout: a.timeout,
            app_status: a.app_status,
            expect: a.expect,
            expect_stdin_length: a.expect_stdin_length,
            strict: a.strict,
            json: a.json,
        })
    }
}

/// `-p`'s NAME=VALUE, with a non-empty NAME.
fn parse_param(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((n, val)) if !n.is_empty() => Ok((n.to_string(), val.to_string())),
        _ => Err("expects NAME=VALUE".to_string()),
    }
}

/// Seconds, 0 to 10^9.
pub(crate) fn parse_secs(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(s) if (0.0..=1e9).contains(&s) => Ok(s),
        _ => Err("expects seconds".to_string()),
    }
}

/// Seconds, at least 0.001.
fn parse_timeout(v: &str) -> Result<f64, String> {
    let s = parse_secs(v)?;
    if s < 0.001 {
        return Err("must be at least 0.001".to_string());
    }
    Ok(s)
}

/// A byte count with an optional k, M or G suffix (powers of 1024).
pub(crate) fn parse_size(v: &str) -> Result<u64, String> {
    let (digits, mul) = match v.char_indices().last() {
        Some((i, 'k' | 'K')) => (&v[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&v[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    let n: u64 = digits.parse().map_err(|_| "expects a size".to_string())?;
    n.checked_mul(mul).ok_or_else(|| "too large".to_string())
}
