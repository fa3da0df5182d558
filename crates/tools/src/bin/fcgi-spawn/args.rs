//! The command line (clap): spawn-fcgi's options (same letters, same meanings), the pool's
//! settings as long options, then `--` and the program with its arguments.

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser};
use std::ffi::OsString;
use std::path::PathBuf;

const ABOUT: &str = "\
Runs a FastCGI program under the fcgi-runtime pool: the program's workers are forked and
supervised (replaced when they exit, recycled, reloaded on SIGHUP); each one gets the
listening socket on fd 0, as spawn-fcgi gives it.";

const AFTER_HELP: &str = "\
Without -p and -s the socket is inherited: LISTEN_FDS/LISTEN_PID (systemd), else fd 0.
-p without -a listens on 127.0.0.1 only.

With --config, fcgi-spawn runs every pool of a pool file in PHP-FPM's format
(fcgi-spawn.conf(5)): no program and no socket or pool option on the command line.

signals: SIGTERM/SIGINT fast stop, SIGQUIT graceful stop, SIGHUP/SIGUSR2 reload (the
program is exec'd again; with --config the file is read again first), SIGUSR1 reopen the logs.

exit status: 0 after a clean stop, 1 on a startup error (with --config: a file refused, by -t
too), 2 on a usage or settings error; with -n, the program's.";

/// The command line as clap reads it; [`parse`] turns it into [`Options`].
#[derive(Parser, Debug)]
#[command(
    name = "fcgi-spawn",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (fcgi-runtime) - spawns and supervises FastCGI programs"
    ),
    about = "Runs any FastCGI program under the fcgi-runtime pool, with spawn-fcgi's command line",
    long_about = ABOUT,
    before_help = ABOUT,
    override_usage = "fcgi-spawn [options] [--] program [args...]\n       \
                      fcgi-spawn [-t] [-R] [-P FILE] --config FILE",
    help_template = crate::cli::HELP_TEMPLATE_PARAGRAPH,
    after_help = AFTER_HELP,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten, next_help_heading = "spawn-fcgi's options")]
    spawn: SpawnArgs,
    #[command(
        flatten,
        next_help_heading = "root only (ignored with a warning otherwise)"
    )]
    root: RootArgs,
    #[command(flatten, next_help_heading = "pool options (docs/pool-design.md)")]
    pool: PoolArgs,
    #[command(flatten, next_help_heading = "pool files (PHP-FPM's format)")]
    conf: ConfArgs,
    /// the FastCGI program and its arguments (the first operand starts them: what follows is
    /// the program's, options included)
    #[arg(value_name = "program", trailing_var_arg = true,
          value_parser = clap::value_parser!(OsString))]
    program: Vec<OsString>,
}

/// spawn-fcgi's options that anyone may use.
#[derive(Args, Debug)]
struct SpawnArgs {
    /// IPv4/IPv6 address to bind with -p (default 127.0.0.1; 0.0.0.0 for every address)
    #[arg(short = 'a', value_name = "ADDR")]
    addr: Option<String>,
    /// TCP port to bind
    #[arg(short = 'p', value_name = "PORT", value_parser = parse_port)]
    port: Option<u16>,
    /// Unix socket to bind (a stale socket file is removed; a live one refused)
    #[arg(short = 's', value_name = "PATH")]
    unix: Option<String>,
    /// Unix socket mode, octal (default 0660 as far as the umask allows)
    #[arg(short = 'M', value_name = "MODE", value_parser = parse_mode)]
    mode: Option<u32>,
    /// listen backlog (default 1024)
    #[arg(short = 'b', value_name = "BACKLOG", value_parser = parse_backlog)]
    backlog: Option<i32>,
    /// number of workers: the pool's max_children (default: one per CPU, or PHP_FCGI_CHILDREN
    /// from fcgi-spawn's own environment)
    #[arg(short = 'F', long = "max-children", value_name = "N", action = ArgAction::Append)]
    max_children: Vec<String>,
    /// set PHP_FCGI_CHILDREN=N in the program's environment
    #[arg(short = 'C', value_name = "N", value_parser = number::<u32>)]
    php_children: Option<u32>,
    /// no fork, no pool: exec the program with the socket on fd 0
    #[arg(short = 'n')]
    nofork: bool,
    /// pid file (the supervisor's pid; with -n the program's, the same process)
    #[arg(short = 'P', value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// chdir to DIR before starting the program
    #[arg(short = 'd', value_name = "DIR")]
    chdir: Option<PathBuf>,
    /// show the version
    #[arg(short = 'v', long, action = ArgAction::Version)]
    version: Option<bool>,
    #[arg(long, value_name = "DIR", hide = true, exclusive = true,
          help = crate::cli::GENERATE_MAN_HELP)]
    generate_man: Option<PathBuf>,
    /// this help (also -?)
    #[arg(short = 'h', long, short_alias = '?', action = ArgAction::HelpShort)]
    help: Option<bool>,
}

/// spawn-fcgi's options for root.
#[derive(Args, Debug)]
struct RootArgs {
    /// chroot to DIR (the pool reads /proc: mount it inside)
    #[arg(short = 'c', value_name = "DIR")]
    chroot: Option<PathBuf>,
    /// create the socket before the chroot (default: inside it)
    #[arg(short = 'S')]
    sock_before_chroot: bool,
    /// user to run as (name or uid)
    #[arg(short = 'u', value_name = "USER")]
    user: Option<String>,
    /// group to run as (default: the primary group of -u's user)
    #[arg(short = 'g', value_name = "GROUP")]
    group: Option<String>,
    /// Unix socket owner (default: -u's user)
    #[arg(short = 'U', value_name = "USER")]
    sock_user: Option<String>,
    /// Unix socket group (default: -U's primary group, else -g's)
    #[arg(short = 'G', value_name = "GROUP")]
    sock_group: Option<String>,
}

/// The pool's settings (docs/pool-design.md); each may be repeated, the last one wins.
#[derive(Args, Debug)]
struct PoolArgs {
    /// process manager: static (default), dynamic or ondemand
    #[arg(long, value_name = "static|dynamic|ondemand", action = ArgAction::Append)]
    pm: Vec<String>,
    /// dynamic: workers started at first
    #[arg(long, value_name = "N", action = ArgAction::Append)]
    start_servers: Vec<String>,
    /// dynamic: fewest idle workers
    #[arg(long, value_name = "N", action = ArgAction::Append)]
    min_spare: Vec<String>,
    /// dynamic: most idle workers
    #[arg(long, value_name = "N", action = ArgAction::Append)]
    max_spare: Vec<String>,
    /// ondemand: drain a worker idle this long
    #[arg(long, value_name = "N", action = ArgAction::Append)]
    idle_timeout_ms: Vec<String>,
    /// recycle a worker after N requests
    #[arg(long, value_name = "N", action = ArgAction::Append)]
    max_requests: Vec<String>,
    /// recycle a worker above this RSS (K, M, G suffixes)
    #[arg(long, value_name = "BYTES", action = ArgAction::Append, value_parser = parse_bytes)]
    max_memory: Vec<u64>,
    /// drain and graceful stop limit before SIGKILL
    #[arg(long, value_name = "N", action = ArgAction::Append)]
    graceful_timeout_ms: Vec<String>,
    /// pool name (status page, logs)
    #[arg(long, value_name = "NAME", action = ArgAction::Append)]
    name: Vec<String>,
    /// answer the status page at this SCRIPT_NAME
    #[arg(long, value_name = "/PATH", action = ArgAction::Append)]
    status_path: Vec<String>,
    /// slow-request log (default: stderr)
    #[arg(long, value_name = "FILE", action = ArgAction::Append)]
    slowlog: Vec<String>,
    /// log requests running longer than this
    #[arg(long, value_name = "N", action = ArgAction::Append)]
    slowlog_timeout_ms: Vec<String>,
    /// kill a worker whose request runs longer than this
    #[arg(long, value_name = "N", action = ArgAction::Append)]
    request_terminate_timeout_ms: Vec<String>,
    /// SO_REUSEPORT on the TCP socket
    #[arg(long, action = ArgAction::Append, num_args = 0, default_missing_value = "1")]
    reuseport: Vec<String>,
    /// any pool setting (repeatable)
    #[arg(long, value_name = "NAME=VALUE", action = ArgAction::Append, value_parser = parse_set)]
    set: Vec<(String, String)>,
}

/// Pool files: FPM's format, several pools under one master.
#[derive(Args, Debug)]
struct ConfArgs {
    /// run the pools of FILE, a pool file in PHP-FPM's format (fcgi-spawn.conf(5)), instead of
    /// one program
    #[arg(short = 'y', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// test the pool file and exit: 0 if it is valid, 1 with the reason otherwise
    #[arg(short = 't', long = "test")]
    test: bool,
    /// let pools run as root (no `user`, or `user = root`), as php-fpm's -R
    #[arg(short = 'R', long = "allow-to-run-as-root")]
    allow_root: bool,
}

/// The pool settings the long options (and -F) set: clap's id of the option, the setting.
const SETTINGS: &[(&str, &str)] = &[
    ("max_children", "max_children"),
    ("pm", "pm"),
    ("start_servers", "start_servers"),
    ("min_spare", "min_spare_servers"),
    ("max_spare", "max_spare_servers"),
    ("idle_timeout_ms", "process_idle_timeout_ms"),
    ("max_requests", "max_requests"),
    ("max_memory", "max_memory"),
    ("graceful_timeout_ms", "graceful_timeout_ms"),
    ("name", "name"),
    ("status_path", "status_path"),
    ("slowlog", "slowlog"),
    ("slowlog_timeout_ms", "slowlog_timeout_ms"),
    (
        "request_terminate_timeout_ms",
        "request_terminate_timeout_ms",
    ),
    ("reuseport", "reuseport"),
    ("set", ""),
];

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
    /// `--generate-man DIR` (nothing else is set then).
    pub generate_man: Option<PathBuf>,
    /// `--config FILE`: a pool file.
    pub config: Option<PathBuf>,
    /// `-t`: test the pool file.
    pub test: bool,
    /// `-R`: pools may run as root.
    pub allow_root: bool,
}

/// `12`, `64K`, `512M`, `2G` (powers of 1024) in bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("bad suffix in '{s}' (K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("'{s}' is not a byte count"))
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse::<T>()
        .map_err(|_| format!("'{v}' is not a valid number"))
}

fn parse_port(v: &str) -> Result<u16, String> {
    match number::<u16>(v)? {
        0 => Err("port 0 is not a port".to_string()),
        p => Ok(p),
    }
}

fn parse_backlog(v: &str) -> Result<i32, String> {
    match number::<i32>(v)? {
        b if b < 1 => Err("the backlog must be at least 1".to_string()),
        b => Ok(b),
    }
}

fn parse_mode(v: &str) -> Result<u32, String> {
    fcgi_runtime::sockperm::parse_mode(v)
}

fn parse_set(v: &str) -> Result<(String, String), String> {
    let (n, val) = v
        .split_once('=')
        .ok_or_else(|| format!("wants NAME=VALUE, not '{v}'"))?;
    Ok((n.trim().to_string(), val.to_string()))
}

/// The pool settings of the command line, in the order given.
fn settings_in_order(m: &ArgMatches) -> Vec<(String, String)> {
    let mut all: Vec<(usize, String, String)> = Vec::new();
    for &(id, setting) in SETTINGS {
        if m.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let raw: Vec<String> = m
            .get_raw(id)
            .into_iter()
            .flatten()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let indices = m.indices_of(id).into_iter().flatten();
        for (i, v) in indices.zip(raw) {
            let (name, value) = match (id, setting) {
                ("set", _) => parse_set(&v).expect("checked by clap"),
                ("max_memory", _) => (
                    setting.to_string(),
                    parse_bytes(&v).expect("checked").to_string(),
                ),
                ("reuseport", _) => (setting.to_string(), "1".to_string()),
                _ => (setting.to_string(), v),
            };
            all.push((i, name, value));
        }
    }
    all.sort_by_key(|(i, _, _)| *i);
    all.into_iter().map(|(_, n, v)| (n, v)).collect()
}

/// Parses the command line (the program name first). `Err` carries clap's error (help and
/// version requests included) or the message of a check of fcgi-spawn's own.
pub fn parse(args: Vec<OsString>) -> Result<Options, Result<clap::Error, String>> {
    let mut cmd = Cli::command();
    let m = cmd.try_get_matches_from_mut(args).map_err(Ok)?;
    let c = Cli::from_arg_matches(&m).map_err(|e| Ok(e.format(&mut cmd)))?;
    let o = Options {
        addr: c.spawn.addr,
        port: c.spawn.port,
        unix: c.spawn.unix,
        mode: c.spawn.mode,
        backlog: c.spawn.backlog,
        sock_user: c.root.sock_user,
        sock_group: c.root.sock_group,
        user: c.root.user,
        group: c.root.group,
        php_children: c.spawn.php_children,
        nofork: c.spawn.nofork,
        pid_file: c.spawn.pid_file,
        chroot: c.root.chroot,
        sock_before_chroot: c.root.sock_before_chroot,
        chdir: c.spawn.chdir,
        settings: settings_in_order(&m),
        program: c.program,
        generate_man: c.spawn.generate_man,
        config: c.conf.config,
        test: c.conf.test,
        allow_root: c.conf.allow_root,
    };
    if o.generate_man.is_some() {
        return Ok(o);
    }
    let _ = (c.pool, c.spawn.max_children, c.spawn.version, c.spawn.help);
    check(o).map_err(Err)
}

/// fcgi-spawn's own checks of a command line that clap accepted.
fn check(o: Options) -> Result<Options, String> {
    if o.config.is_some() {
        if !o.program.is_empty() {
            return Err(
                "--config runs the pools of the file: no program on the command line (each \
                 pool's `command` names its program)"
                    .into(),
            );
        }
        let given: Vec<&str> = [
            ("-a", o.addr.is_some()),
            ("-p", o.port.is_some()),
            ("-s", o.unix.is_some()),
            ("-M", o.mode.is_some()),
            ("-b", o.backlog.is_some()),
            ("-U", o.sock_user.is_some()),
            ("-G", o.sock_group.is_some()),
            ("-u", o.user.is_some()),
            ("-g", o.group.is_some()),
            ("-C", o.php_children.is_some()),
            ("-n", o.nofork),
            ("-c", o.chroot.is_some()),
            ("-S", o.sock_before_chroot),
            ("-d", o.chdir.is_some()),
            ("pool options", !o.settings.is_empty()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect();
        if !given.is_empty() {
            return Err(format!(
                "{} cannot be used with --config (the pool file says it)",
                given.join(", ")
            ));
        }
        return Ok(o);
    }
    if o.test {
        return Err("-t tests a pool file: fcgi-spawn -t --config FILE".into());
    }
    if o.allow_root {
        return Err("-R is for pool files: fcgi-spawn -R --config FILE".into());
    }
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
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options of `args`, or the error's message (with a clap error's kind first).
    fn p(args: &[&str]) -> Result<Options, String> {
        let argv = std::iter::once("fcgi-spawn").chain(args.iter().copied());
        parse(argv.map(OsString::from).collect()).map_err(|e| match e {
            Ok(e) => format!("{:?}: {}", e.kind(), crate::cli::message(&e)),
            Err(msg) => msg,
        })
    }

    fn run(args: &[&str]) -> Options {
        p(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn kind(args: &[&str]) -> String {
        p(args).map_or_else(
            |e| e.split(':').next().unwrap_or("").to_string(),
            |_| "Ok".into(),
        )
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
        for help in ["--help", "-h", "-?"] {
            assert_eq!(kind(&[help]), "DisplayHelp", "{help}");
        }
        assert_eq!(kind(&["--version"]), "DisplayVersion");
        assert_eq!(kind(&["-v"]), "DisplayVersion");
        // Repeated settings keep their order; the pool takes the last one.
        let o = run(&[
            "-F",
            "2",
            "--pm",
            "static",
            "--max-children",
            "3",
            "-F4",
            "app",
        ]);
        assert_eq!(
            o.settings,
            vec![
                ("max_children".into(), "2".into()),
                ("pm".into(), "static".into()),
                ("max_children".into(), "3".into()),
                ("max_children".into(), "4".into()),
            ]
        );
        // getopt: a repeated option's last value wins; -- ends the options.
        let o = run(&[
            "-a",
            "::1",
            "-a",
            "127.0.0.1",
            "-n",
            "-n",
            "--",
            "-app-",
            "-a",
        ]);
        assert_eq!(o.addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            o.program,
            vec![OsString::from("-app-"), OsString::from("-a")]
        );
    }

    #[test]
    fn pool_file_options() {
        let o = run(&["--config", "/etc/fcgi-spawn.conf"]);
        assert_eq!(o.config, Some(PathBuf::from("/etc/fcgi-spawn.conf")));
        assert!(!o.test);
        let o = run(&["-t", "-R", "-y", "x.conf", "-P", "/run/x.pid"]);
        assert!(o.test && o.allow_root);
        assert_eq!(o.config, Some(PathBuf::from("x.conf")));
        assert_eq!(o.pid_file, Some(PathBuf::from("/run/x.pid")));
        assert!(p(&["--config", "x.conf", "--", "app"]).is_err_and(|e| e.contains("no program")));
        assert!(p(&["--config", "x.conf", "-p", "9000"]).is_err_and(|e| e.contains("-p")));
        assert!(p(&["--config", "x.conf", "-F", "2"]).is_err_and(|e| e.contains("pool options")));
        assert!(p(&["-t", "app"]).is_err());
        assert!(p(&["-R", "app"]).is_err());
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
        assert!(p(&["--reuseport=1", "app"]).is_err());
        assert!(p(&["-b", "0", "app"]).is_err());
        assert!(p(&["-p", "0", "app"]).is_err());
        assert!(p(&["--max-memory", "1T", "app"]).is_err());
        assert!(p(&["-x", "--", "app"]).is_err_and(|e| e.contains("unknown option -x")));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("512k"), Ok(512 << 10));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("1T").is_err());
        assert!(parse_bytes("M").is_err());
    }
}
