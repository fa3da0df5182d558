//! The command line: spawn-fcgi's options (same letters, same meanings), the pool's settings as
//! long options, then `--` and the program with its arguments.

use std::ffi::OsString;
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: fcgi-spawn [options] [--] program [args...]

Runs a FastCGI program under the fcgi-runtime pool: the program's workers are forked and
supervised (replaced when they exit, recycled, reloaded on SIGHUP); each one gets the
listening socket on fd 0, as spawn-fcgi gives it.

spawn-fcgi's options:
  -a ADDR        IPv4/IPv6 address to bind with -p (default 0.0.0.0)
  -p PORT        TCP port to bind
  -s PATH        Unix socket to bind (a stale socket file is removed; a live one refused)
  -M MODE        Unix socket mode, octal (default 0660 as far as the umask allows)
  -b BACKLOG     listen backlog (default 1024)
  -F N           number of workers: the pool's max_children (default: one per CPU,
                 or PHP_FCGI_CHILDREN from fcgi-spawn's own environment)
  -C N           set PHP_FCGI_CHILDREN=N in the program's environment
  -n             no fork, no pool: exec the program with the socket on fd 0
  -P FILE        pid file (the supervisor's pid; with -n the program's, the same process)
  -d DIR         chdir to DIR before starting the program
  -v, --version  show the version
  -h, -?, --help this help
 (root only; ignored with a warning otherwise)
  -c DIR         chroot to DIR (the pool reads /proc: mount it inside)
  -S             create the socket before the chroot (default: inside it)
  -u USER        user to run as (name or uid)
  -g GROUP       group to run as (default: the primary group of -u's user)
  -U USER        Unix socket owner (default: -u's user)
  -G GROUP       Unix socket group (default: -U's primary group, else -g's)

Without -p and -s the socket is inherited: LISTEN_FDS/LISTEN_PID (systemd), else fd 0.

pool options (docs/pool-design.md):
  --pm static|dynamic|ondemand         process manager (default static)
  --max-children N                     the same as -F
  --start-servers N, --min-spare N, --max-spare N
  --idle-timeout-ms N                  ondemand: drain a worker idle this long
  --max-requests N                     recycle a worker after N requests
  --max-memory BYTES                   recycle a worker above this RSS (K, M, G suffixes)
  --graceful-timeout-ms N              drain and graceful stop limit before SIGKILL
  --name NAME                          pool name (status page, logs)
  --status-path /PATH                  answer the status page at this SCRIPT_NAME
  --slowlog FILE                       slow-request log (default: stderr)
  --slowlog-timeout-ms N               log requests running longer than this
  --request-terminate-timeout-ms N     kill a worker whose request runs longer than this
  --reuseport                          SO_REUSEPORT on the TCP socket
  --set NAME=VALUE                     any pool setting (repeatable)

signals: SIGTERM/SIGINT fast stop, SIGQUIT graceful stop, SIGHUP/SIGUSR2 reload (the
program is exec'd again), SIGUSR1 reopen the slow log.

exit status: 0 after a clean stop, 1 on a startup error, 2 on a usage or settings error;
with -n, the program's.";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Box<Options>),
    Help,
    Version,
}

/// The parsed options.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub addr: Option<String>,
    pub port: Option<u16>,
    pub unix: Option<String>,
    pub mode: Option<u32>,
    pub backlog: Option<i32>,
    pub sock_user: Option<String>,
    pub sock_group: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub php_children: Option<u32>,
    pub nofork: bool,
    pub pid_file: Option<PathBuf>,
    pub chroot: Option<PathBuf>,
    pub sock_before_chroot: bool,
    pub chdir: Option<PathBuf>,
    /// Pool settings (name, value), in command-line order.
    pub settings: Vec<(String, String)>,
    /// The program and its arguments.
    pub program: Vec<OsString>,
}

/// Long options that take a value, and the pool setting each one sets.
const LONG_SETTINGS: &[(&str, &str)] = &[
    ("pm", "pm"),
    ("max-children", "max_children"),
    ("start-servers", "start_servers"),
    ("min-spare", "min_spare_servers"),
    ("max-spare", "max_spare_servers"),
    ("idle-timeout-ms", "process_idle_timeout_ms"),
    ("max-requests", "max_requests"),
    ("max-memory", "max_memory"),
    ("graceful-timeout-ms", "graceful_timeout_ms"),
    ("name", "name"),
    ("status-path", "status_path"),
    ("slowlog", "slowlog"),
    ("slowlog-timeout-ms", "slowlog_timeout_ms"),
    (
        "request-terminate-timeout-ms",
        "request_terminate_timeout_ms",
    ),
];

/// Short options that take a value (getopt's "a:p:s:..."); the others are flags.
const SHORT_WITH_VALUE: &str = "apsMbUGugCFPcd";
const SHORT_FLAGS: &str = "nSvh?";

/// `12`, `64K`, `512M`, `2G` (powers of 1024) in bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("--max-memory: bad suffix in '{s}' (K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("--max-memory: '{s}' is not a byte count"))
}

fn number<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse::<T>()
        .map_err(|_| format!("{opt}: '{v}' is not a valid number"))
}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<OsString>) -> Result<Parsed, String> {
    let mut o = Options::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str().map(str::to_string) else {
            // Not UTF-8: not an option of ours, so the program.
            o.program.push(arg);
            break;
        };
        if s == "--" {
            break;
        }
        if let Some(long) = s.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let value = |it: &mut std::vec::IntoIter<OsString>| -> Result<String, String> {
                if let Some(v) = inline.clone() {
                    return Ok(v);
                }
                it.next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| format!("--{name} wants a value"))
            };
            match name {
                "help" => return Ok(Parsed::Help),
                "version" => return Ok(Parsed::Version),
                "reuseport" => {
                    if inline.is_some() {
                        return Err("--reuseport takes no value".to_string());
                    }
                    o.settings.push(("reuseport".into(), "1".into()));
                }
                "set" => {
                    let v = value(&mut it)?;
                    let (n, val) = v
                        .split_once('=')
                        .ok_or_else(|| format!("--set wants NAME=VALUE, not '{v}'"))?;
                    o.settings.push((n.trim().to_string(), val.to_string()));
                }
                "max-memory" => {
                    let v = value(&mut it)?;
                    let n = parse_bytes(&v)?;
                    o.settings.push(("max_memory".into(), n.to_string()));
                }
                _ => match LONG_SETTINGS.iter().find(|(l, _)| *l == name) {
                    Some((_, setting)) => {
                        let v = value(&mut it)?;
                        o.settings.push((setting.to_string(), v));
                    }
                    None => return Err(format!("unknown option --{name}")),
                },
            }
            continue;
        }
        if s.len() < 2 || !s.starts_with('-') {
            // The first operand starts the program (POSIX getopt: options end there).
            o.program.push(arg);
            break;
        }
        // A cluster of short options: flags, then at most one option with a value, whose
        // value is the rest of the cluster or the next argument (getopt's rules).
        for (i, c) in s[1..].char_indices() {
            if SHORT_FLAGS.contains(c) {
                match c {
                    'n' => o.nofork = true,
                    'S' => o.sock_before_chroot = true,
                    'v' => return Ok(Parsed::Version),
                    _ => return Ok(Parsed::Help),
                }
                continue;
            }
            if !SHORT_WITH_VALUE.contains(c) {
                return Err(format!("unknown option -{c}"));
            }
            let rest = &s[1 + i + c.len_utf8()..];
            let v = if !rest.is_empty() {
                rest.to_string()
            } else {
                it.next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| format!("-{c} wants a value"))?
            };
            let opt = format!("-{c}");
            match c {
                'a' => o.addr = Some(v),
                'p' => {
                    let p: u16 = number(&opt, &v)?;
                    if p == 0 {
                        return Err("-p: port 0 is not a port".to_string());
                    }
                    o.port = Some(p);
                }
                's' => o.unix = Some(v),
                'M' => o.mode = Some(fcgi_runtime::sockperm::parse_mode(&v)?),
                'b' => {
                    let b: i32 = number(&opt, &v)?;
                    if b < 1 {
                        return Err("-b: the backlog must be at least 1".to_string());
                    }
                    o.backlog = Some(b);
                }
                'U' => o.sock_user = Some(v),
                'G' => o.sock_group = Some(v),
                'u' => o.user = Some(v),
                'g' => o.group = Some(v),
                'C' => o.php_children = Some(number(&opt, &v)?),
                'F' => o.settings.push(("max_children".into(), v)),
                'P' => o.pid_file = Some(PathBuf::from(v)),
                'c' => o.chroot = Some(PathBuf::from(v)),
                'd' => o.chdir = Some(PathBuf::from(v)),
                _ => unreachable!("listed in SHORT_WITH_VALUE"),
            }
            break;
        }
    }
    o.program.extend(it);
    if o.program.is_empty() {
        return Err("no FastCGI program given (fcgi-spawn [options] -- program [args])".into());
    }
    if o.port.is_some() && o.unix.is_some() {
        return Err("either a Unix socket (-s) or a TCP port (-p), not both".into());
    }
    if o.nofork {
        if let Some((name, _)) = o.settings.iter().find(|(n, _)| n != "max_children") {
            return Err(format!(
                "-n runs the program without the pool: pool setting {name} cannot apply"
            ));
        }
    }
    Ok(Parsed::Run(Box::new(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(OsString::from).collect())
    }

    fn run(args: &[&str]) -> Options {
        match p(args) {
            Ok(Parsed::Run(o)) => *o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn spawn_fcgi_options() {
        let o = run(&[
            "-a",
            "127.0.0.1",
            "-p9000",
            "-F",
            "3",
            "-C",
            "4",
            "-nP",
            "/run/x.pid",
            "--",
            "app",
            "-x",
        ]);
        assert_eq!(o.addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(o.port, Some(9000));
        assert_eq!(o.php_children, Some(4));
        assert!(o.nofork);
        assert_eq!(o.pid_file, Some(PathBuf::from("/run/x.pid")));
        assert_eq!(o.settings, vec![("max_children".into(), "3".into())]);
        assert_eq!(o.program, vec![OsString::from("app"), OsString::from("-x")]);
        let o = run(&["-s", "/tmp/s", "-M", "0600", "/usr/bin/app", "-p", "1"]);
        assert_eq!(o.mode, Some(0o600));
        assert_eq!(o.port, None, "options after the program are the program's");
        assert_eq!(o.program.len(), 3);
    }

    #[test]
    fn long_options() {
        let o = run(&[
            "--pm=dynamic",
            "--max-children",
            "8",
            "--max-memory",
            "64M",
            "--reuseport",
            "--set",
            "name=api",
            "--",
            "app",
        ]);
        assert_eq!(
            o.settings,
            vec![
                ("pm".into(), "dynamic".into()),
                ("max_children".into(), "8".into()),
                ("max_memory".into(), (64u64 << 20).to_string()),
                ("reuseport".into(), "1".into()),
                ("name".into(), "api".into()),
            ]
        );
        assert_eq!(p(&["--help"]), Ok(Parsed::Help));
        assert_eq!(p(&["-h"]), Ok(Parsed::Help));
        assert_eq!(p(&["--version"]), Ok(Parsed::Version));
    }

    #[test]
    fn errors() {
        assert!(p(&["-x", "--", "app"]).is_err());
        assert!(p(&["--frobnicate", "--", "app"]).is_err());
        assert!(p(&["-p", "9000"]).is_err(), "no program");
        assert!(p(&["-p", "9000", "-s", "/tmp/s", "app"]).is_err());
        assert!(p(&["-p", "x", "app"]).is_err());
        assert!(p(&["-M", "999", "app"]).is_err());
        assert!(p(&["--set", "novalue", "app"]).is_err());
        assert!(p(&["-n", "--max-requests", "5", "app"]).is_err());
        assert!(p(&["-p"]).is_err());
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("512k"), Ok(512 << 10));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("1T").is_err());
        assert!(parse_bytes("M").is_err());
    }
}
