//! FPM's directives, one by one: their names (case-insensitive, as FPM compares them), value
//! syntax (time units, booleans, integers), the checks FPM makes, and what each becomes here:
//! a library pool setting (`Settings::set`), something the pool's supervisor applies before it
//! runs (listen, user, chroot, env, ...), a warning (PHP-only, or without effect), or an error.
//! docs/fcgi-spawn.md has the table.

use super::ini::{self, Loc};
use super::{Global, Listen, Note, Options, PoolSpec};
use crate::privs;
use fcgi_runtime::pool::{Mode, Settings};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// FPM's listen.backlog default on Linux.
pub const DEFAULT_BACKLOG: i32 = 511;

/// Directives of PHP's own (php.ini values, PHP's script checks): warned about and ignored.
const PHP_ONLY_ARRAYS: &[&str] = &["php_value", "php_admin_value", "php_flag", "php_admin_flag"];
const PHP_ONLY: &[&str] = &[
    "security.limit_extensions",
    "request_slowlog_trace_depth",
    "request_terminate_timeout_track_finished",
];

/// The value of a time directive in milliseconds: a whole number with FPM's units `s`
/// (default), `m`, `h`, `d`, or `ms` (ours).
pub fn time_ms(v: &str) -> Result<u64, String> {
    let v = v.trim();
    if v.is_empty() {
        return Err("invalid time value".to_string());
    }
    let (num, unit) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1)
    } else {
        match v.as_bytes()[v.len() - 1] {
            b's' => (&v[..v.len() - 1], 1000),
            b'm' => (&v[..v.len() - 1], 60_000),
            b'h' => (&v[..v.len() - 1], 3_600_000),
            b'd' => (&v[..v.len() - 1], 86_400_000),
            b'0'..=b'9' => (v, 1000),
            _ => return Err("unknown suffix used in time value".to_string()),
        }
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{v}' is not a time (a whole number of s, m, h, d or ms; no unit: seconds)"
        ));
    }
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("'{v}' is too long a time"))
}

/// An integer as FPM reads one (an optional `-`, then digits).
pub fn integer(v: &str) -> Result<i64, String> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a valid number (greater or equal than zero)".to_string());
    }
    v.parse::<i64>()
        .map_err(|_| "is not a valid number (too large)".to_string())
}

fn unsigned(v: &str) -> Result<u64, String> {
    let n = integer(v)?;
    u64::try_from(n).map_err(|_| "must be greater or equal than zero".to_string())
}

/// A boolean: the INI layer turned yes/on/true into `1` and no/off/false/none into nothing;
/// quoted words and 0 are taken too.
pub fn boolean(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" => Ok(true),
        "" | "0" | "no" | "off" | "false" | "none" => Ok(false),
        _ => Err("invalid boolean value".to_string()),
    }
}

/// rlimit_core: a size or `unlimited` (RLIM_INFINITY).
fn rlimit(v: &str) -> Result<u64, String> {
    if v.eq_ignore_ascii_case("unlimited") {
        return Ok(libc::RLIM_INFINITY);
    }
    unsigned(v).map_err(|_| "must be greater than zero or 'unlimited'".to_string())
}

fn priority(v: &str, who: &str) -> Result<i32, String> {
    let n = integer(v)?;
    if !(-19..=20).contains(&n) {
        return Err(format!(
            "{who}process.priority must be included into [-19,20]"
        ));
    }
    Ok(n as i32)
}

/// Substitutes `$pool` with the pool's name (FPM does it in every string value of a pool).
fn pool_name(v: &str, pool: Option<&str>) -> Result<String, String> {
    if !v.contains("$pool") {
        return Ok(v.to_string());
    }
    match pool {
        Some(name) => Ok(v.replace("$pool", name)),
        None => Err("Can't use '$pool' when the pool is not defined".to_string()),
    }
}

/// A path: relative ones are taken from `base` (the pool's prefix, else the directory of the
/// file the line is in).
fn path(v: &str, base: &Path) -> PathBuf {
    let p = Path::new(v);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn entry_error(loc: &Loc, name: &str, msg: impl std::fmt::Display) -> String {
    format!("{loc} unable to parse value for entry '{name}': {msg}")
}

/// A directive of the `[global]` section.
pub fn global(
    g: &mut Global,
    loc: &Loc,
    name: &str,
    key: Option<&str>,
    raw: &str,
    notes: &mut Vec<Note>,
) -> Result<(), String> {
    if key.is_some() {
        return Err(format!("{loc} Array are not allowed in the global section"));
    }
    let lname = name.to_ascii_lowercase();
    let err = |m: String| entry_error(loc, &lname, m);
    let text = || -> Result<String, String> {
        let v = ini::value(raw).map_err(err)?;
        pool_name(&v, None).map_err(err)
    };
    let ignored = |notes: &mut Vec<Note>, why: &str| {
        notes.push(Note::Warning(format!(
            "{loc} '{lname}' has no effect in fcgi-spawn: ignored ({why})"
        )));
    };
    match lname.as_str() {
        "pid" => {
            let v = text()?;
            g.pid = (!v.is_empty()).then(|| path(&v, &loc.dir()));
        }
        "error_log" => {
            let v = text()?;
            if v.eq_ignore_ascii_case("syslog") {
                notes.push(Note::Warning(format!(
                    "{loc} error_log = syslog is not supported: the log stays on stderr \
                     (journald reads it under systemd)"
                )));
                g.error_log = None;
            } else if v.is_empty() {
                g.error_log = None;
            } else {
                g.error_log = Some(path(&v, &loc.dir()));
            }
        }
        "log_level" => {
            let v = text()?;
            let v = if v.eq_ignore_ascii_case("warn") {
                "warning".to_string()
            } else {
                v
            };
            let mut s = Settings::from_env();
            s.set("log_level", &v)
                .map_err(|_| err("invalid value for 'log_level'".to_string()))?;
            g.log_level = s.log_level;
        }
        "process_control_timeout" => {
            g.process_control_timeout_ms = Some(time_ms(&text()?).map_err(err)?)
        }
        "rlimit_files" => g.rlimit_files = Some(unsigned(&text()?).map_err(err)?),
        "rlimit_core" => g.rlimit_core = Some(rlimit(&text()?).map_err(err)?),
        "process.priority" => g.priority = Some(priority(&text()?, "").map_err(err)?),
        "process.max" => g.process_max = Some(unsigned(&text()?).map_err(err)?),
        "daemonize" => {
            if boolean(&text()?).map_err(err)? {
                notes.push(Note::Notice(format!(
                    "{loc} daemonize = yes: fcgi-spawn stays in the foreground (a service \
                     manager runs it)"
                )));
            }
        }
        "syslog.ident" | "syslog.facility" => {
            text()?;
            ignored(notes, "no syslog: the log goes to stderr or error_log");
        }
        "log_buffering" | "log_limit" => {
            text()?;
            ignored(notes, "each log line is one write of its own");
        }
        "emergency_restart_threshold" | "emergency_restart_interval" => {
            text()?;
            ignored(
                notes,
                "workers that die are restarted with a back-off instead",
            );
        }
        "events.mechanism" => {
            text()?;
            ignored(notes, "the supervisors use poll(2)");
        }
        "systemd_interval" => {
            text()?;
            ignored(notes, "STATUS= is sent when the pools' state changes");
        }
        _ => return Err(format!("{loc} unknown entry '{name}'")),
    }
    Ok(())
}

/// Builds one pool from its section's entries (in file order) and the global settings.
pub fn pool(
    g: &Global,
    name: &str,
    at: &Loc,
    entries: &[(Loc, String, Option<String>, String)],
    opts: Options,
    notes: &mut Vec<Note>,
) -> Result<PoolSpec, String> {
    let pname = format!("[pool {name}]");
    let mut s = Settings::from_env();
    // A pool file says what it wants: nothing from PHP_FCGI_* (FPM's defaults instead).
    s.max_requests = 0;
    s.set("name", name).map_err(|e| format!("{at} {e}"))?;
    if let Some(ms) = g.process_control_timeout_ms {
        s.graceful_timeout = std::time::Duration::from_millis(ms);
    }
    s.log_level = g.log_level;

    // The prefix first: relative paths of the pool's other directives are taken from it,
    // wherever it stands in the section.
    let mut prefix: Option<PathBuf> = None;
    for (loc, n, key, raw) in entries {
        if n.eq_ignore_ascii_case("prefix") && key.is_none() {
            let v = ini::value(raw).map_err(|e| entry_error(loc, "prefix", e))?;
            let v = pool_name(&v, Some(name)).map_err(|e| entry_error(loc, "prefix", e))?;
            let p = path(&v, &loc.dir());
            if !p.is_dir() {
                return Err(format!(
                    "{loc} {pname} the prefix '{}' does not exist or is not a directory",
                    p.display()
                ));
            }
            prefix = Some(p);
        }
    }

    let mut listen: Option<(Listen, bool, Loc)> = None;
    let mut backlog = DEFAULT_BACKLOG;
    let mut sock_user: Option<(String, Loc)> = None;
    let mut sock_group: Option<(String, Loc)> = None;
    let mut sock_mode = 0o660;
    let mut allowed: Option<(String, Loc)> = None;
    let mut user: Option<(String, Loc)> = None;
    let mut group: Option<(String, Loc)> = None;
    let mut chroot: Option<(PathBuf, Loc)> = None;
    let mut chdir: Option<(PathBuf, Loc)> = None;
    let mut clear_env = true;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut rlimit_files = None;
    let mut rlimit_core = None;
    let mut prio = None;
    let mut command: Option<(Vec<String>, Loc)> = None;
    let mut pm_seen = false;
    let mut max_children_seen = false;
    let mut idle_timeout_zero: Option<Loc> = None;
    let mut php_only: Vec<String> = Vec::new();
    let mut status_listen_set = false;

    for (loc, n, key, raw) in entries {
        let lname = n.to_ascii_lowercase();
        let err = |m: String| entry_error(loc, &lname, m);
        let text = || -> Result<String, String> {
            let v = ini::value(raw).map_err(err)?;
            pool_name(&v, Some(name)).map_err(err)
        };
        let base = || prefix.clone().unwrap_or_else(|| loc.dir());
        let set = |s: &mut Settings, setting: &str, v: &str| -> Result<(), String> {
            s.set(setting, v).map_err(err)
        };
        if let Some(k) = key {
            // Arrays: names compared exactly, as FPM does.
            if k.is_empty() {
                return Err(format!("{loc} You must provide a key for field '{n}'"));
            }
            match n.as_str() {
                "env" => {
                    let v = text()?;
                    if v.is_empty() {
                        return Err(format!("{loc} empty value"));
                    }
                    // `$NAME`: fcgi-spawn's own environment, as FPM's master reads it.
                    let v = match v.strip_prefix('$') {
                        Some(var) => std::env::var(var).unwrap_or_default(),
                        None => v,
                    };
                    if k.contains(['=', '\0']) || v.contains('\0') {
                        return Err(format!("{loc} env[{k}]: '=' or NUL in the name"));
                    }
                    env.retain(|(e, _)| e != k);
                    env.push((k.clone(), v));
                }
                a if PHP_ONLY_ARRAYS.contains(&a) => {
                    php_only.push(format!("{n}[{k}] {loc}"));
                }
                "access.suppress_path" => notes.push(Note::Warning(format!(
                    "{loc} 'access.suppress_path[]' is not supported: ignored (every request \
                     is logged)"
                ))),
                _ => return Err(format!("{loc} unknown directive '{n}'")),
            }
            continue;
        }
        if PHP_ONLY.contains(&lname.as_str()) {
            php_only.push(format!("{lname} {loc}"));
            continue;
        }
        match lname.as_str() {
            "prefix" => {}
            "user" => user = Some((text()?, loc.clone())),
            "group" => group = Some((text()?, loc.clone())),
            "listen" => {
                let v = text()?;
                let (l, any) = parse_listen(&v, &base()).map_err(err)?;
                listen = Some((l, any, loc.clone()));
            }
            "listen.backlog" => {
                let n = integer(&text()?).map_err(err)?;
                backlog = i32::try_from(n.max(-1)).map_err(|_| err("too large".into()))?;
            }
            "listen.owner" => {
                sock_user = Some((text()?, loc.clone())).filter(|(v, _)| !v.is_empty())
            }
            "listen.group" => {
                sock_group = Some((text()?, loc.clone())).filter(|(v, _)| !v.is_empty())
            }
            "listen.mode" => {
                let v = text()?;
                if !v.is_empty() {
                    sock_mode = fcgi_runtime::sockperm::parse_mode(&v).map_err(err)?;
                }
            }
            "listen.allowed_clients" => {
                let v = text()?;
                if !v.trim().is_empty() {
                    let (_, bad) = fcgi_runtime::acl::AllowList::parse(&v);
                    if let Some(b) = bad.first() {
                        return Err(err(format!("Wrong IP address '{b}'")));
                    }
                    allowed = Some((v, loc.clone()));
                } else {
                    allowed = None;
                }
            }
            "listen.acl_users" | "listen.acl_groups" | "apparmor_hat" => {
                return Err(format!(
                    "{loc} '{lname}' is not supported by fcgi-spawn (use listen.owner, \
                     listen.group and listen.mode)"
                ))
            }
            "process.priority" => prio = Some(priority(&text()?, "").map_err(err)?),
            "process.dumpable" => {
                boolean(&text()?).map_err(err)?;
                notes.push(Note::Notice(format!(
                    "{loc} 'process.dumpable' has no effect: the kernel sets the flag again \
                     when a worker execs its program"
                )));
            }
            "pm" => {
                let v = text()?.to_ascii_lowercase();
                set(&mut s, "pm", &v).map_err(|_| {
                    err("invalid process manager (static, dynamic or ondemand)".into())
                })?;
                pm_seen = true;
            }
            "pm.max_children" => {
                set(
                    &mut s,
                    "max_children",
                    &unsigned(&text()?).map_err(err)?.to_string(),
                )?;
                max_children_seen = true;
            }
            "pm.start_servers" => {
                let n = unsigned(&text()?).map_err(err)?;
                if n == 0 {
                    s.start_servers = None;
                } else {
                    set(&mut s, "start_servers", &n.to_string())?;
                }
            }
            "pm.min_spare_servers" => set(
                &mut s,
                "min_spare_servers",
                &unsigned(&text()?).map_err(err)?.to_string(),
            )?,
            "pm.max_spare_servers" => {
                let n = unsigned(&text()?).map_err(err)?;
                if n == 0 {
                    return Err(format!(
                        "{loc} {pname} pm.max_spare_servers({n}) must be a positive value"
                    ));
                }
                set(&mut s, "max_spare_servers", &n.to_string())?
            }
            "pm.max_spawn_rate" => {
                if unsigned(&text()?).map_err(err)? == 0 {
                    return Err(format!(
                        "{loc} {pname} pm.max_spawn_rate must be a positive value"
                    ));
                }
                notes.push(Note::Warning(format!(
                    "{loc} 'pm.max_spawn_rate' is not supported: ignored (the pool doubles its \
                     spawns each round, up to 32)"
                )));
            }
            "pm.process_idle_timeout" => {
                let ms = time_ms(&text()?).map_err(err)?;
                idle_timeout_zero = (ms == 0).then(|| loc.clone());
                set(&mut s, "process_idle_timeout_ms", &ms.to_string())?;
            }
            "pm.max_requests" => set(
                &mut s,
                "max_requests",
                &unsigned(&text()?).map_err(err)?.to_string(),
            )?,
            "pm.status_path" => {
                let v = text()?;
                check_uri_path(&v, "status path", &pname, loc)?;
                set(&mut s, "status_path", &v)?;
            }
            "pm.status_listen" => {
                let v = text()?;
                let v = if v.is_empty() {
                    v
                } else {
                    match parse_listen(&v, &base()).map_err(err)?.0 {
                        Listen::Tcp(sa) if sa.ip().is_unspecified() => {
                            format!("[::]:{}", sa.port())
                        }
                        Listen::Tcp(sa) => sa.to_string(),
                        Listen::Unix(p) => p.to_string_lossy().into_owned(),
                    }
                };
                status_listen_set = !v.is_empty();
                set(&mut s, "status_listen", &v)?;
            }
            "ping.path" => {
                let v = text()?;
                check_uri_path(&v, "ping path", &pname, loc)?;
                if !v.is_empty() && v.len() < 2 {
                    return Err(format!(
                        "{loc} {pname} the ping path '{v}' is not long enough"
                    ));
                }
                set(&mut s, "ping_path", &v)?;
            }
            "ping.response" => {
                let v = text()?;
                if v.is_empty() {
                    return Err(format!(
                        "{loc} {pname} the ping response page '' is not long enough"
                    ));
                }
                set(&mut s, "ping_response", &v)?;
            }
            "access.log" => {
                let v = text()?;
                let v = if v.is_empty() {
                    v
                } else {
                    path(&v, &base()).to_string_lossy().into_owned()
                };
                set(&mut s, "access_log", &v)?;
            }
            "access.format" => set(&mut s, "access_format", &text()?)?,
            "slowlog" => {
                let v = text()?;
                let v = if v.is_empty() {
                    v
                } else {
                    path(&v, &base()).to_string_lossy().into_owned()
                };
                set(&mut s, "slowlog", &v)?;
            }
            "request_slowlog_timeout" => {
                let ms = time_ms(&text()?).map_err(err)?;
                set(&mut s, "slowlog_timeout_ms", &ms.to_string())?;
            }
            "request_terminate_timeout" => {
                let ms = time_ms(&text()?).map_err(err)?;
                set(&mut s, "request_terminate_timeout_ms", &ms.to_string())?;
            }
            "rlimit_files" => rlimit_files = Some(unsigned(&text()?).map_err(err)?),
            "rlimit_core" => rlimit_core = Some(rlimit(&text()?).map_err(err)?),
            "chroot" => {
                let v = text()?;
                chroot = if v.is_empty() {
                    None
                } else {
                    // FPM: '$prefix' at the start stands for the pool's prefix.
                    let p = match v.strip_prefix("$prefix") {
                        Some(rest) => {
                            let base = base();
                            let rest = rest.trim_start_matches('/');
                            if rest.is_empty() {
                                base
                            } else {
                                base.join(rest)
                            }
                        }
                        None => PathBuf::from(&v),
                    };
                    if !p.is_absolute() {
                        return Err(format!(
                            "{loc} {pname} the chroot path '{}' must start with a '/'",
                            p.display()
                        ));
                    }
                    Some((p, loc.clone()))
                };
            }
            "chdir" => {
                let v = text()?;
                chdir = (!v.is_empty()).then(|| (path(&v, &base()), loc.clone()));
            }
            "catch_workers_output" => {
                let b = boolean(&text()?).map_err(err)?;
                set(&mut s, "catch_workers_output", if b { "1" } else { "0" })?;
            }
            "decorate_workers_output" => {
                let b = boolean(&text()?).map_err(err)?;
                set(&mut s, "decorate_workers_output", if b { "1" } else { "0" })?;
            }
            "clear_env" => clear_env = boolean(&text()?).map_err(err)?,
            // Ours (not FPM's).
            "command" => {
                let words = ini::words(raw).map_err(err)?;
                let words = words
                    .iter()
                    .map(|w| pool_name(w, Some(name)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?;
                if words.is_empty() {
                    return Err(err("no program".into()));
                }
                if words.iter().any(|w| w.contains('\0')) {
                    return Err(err("NUL in the command".into()));
                }
                command = Some((words, loc.clone()));
            }
            "pm.max_requests_jitter" => set(
                &mut s,
                "max_requests_jitter",
                &unsigned(&text()?).map_err(err)?.to_string(),
            )?,
            "pm.max_lifetime" => set(
                &mut s,
                "max_lifetime_ms",
                &time_ms(&text()?).map_err(err)?.to_string(),
            )?,
            "pm.max_lifetime_jitter" => set(
                &mut s,
                "max_lifetime_jitter_ms",
                &time_ms(&text()?).map_err(err)?.to_string(),
            )?,
            "pm.drain_delay" => set(
                &mut s,
                "drain_delay_ms",
                &time_ms(&text()?).map_err(err)?.to_string(),
            )?,
            "pm.max_memory" => {
                let bytes = crate::args::parse_bytes(&text()?).map_err(err)?;
                set(&mut s, "max_memory", &bytes.to_string())?
            }
            _ => return Err(format!("{loc} unknown entry '{n}'")),
        }
    }

    if !php_only.is_empty() {
        notes.push(Note::Warning(format!(
            "{pname} PHP-only directives ignored (fcgi-spawn runs no PHP): {}",
            php_only.join(", ")
        )));
    }

    // What FPM checks once the section is read (fpm_conf_process_all_pools), in its order.
    if let Some((u, loc)) = &user {
        if !opts.is_root {
            notes.push(Note::Notice(format!(
                "{loc} {pname} 'user' directive is ignored when fcgi-spawn is not running as root"
            )));
        } else if u.is_empty() {
            return Err(format!("{loc} {pname} user is empty"));
        }
    } else if opts.is_root && !opts.allow_root {
        return Err(format!("{at} {pname} user has not been defined"));
    }
    if let (Some((_, loc)), false) = (&group, opts.is_root) {
        notes.push(Note::Notice(format!(
            "{loc} {pname} 'group' directive is ignored when fcgi-spawn is not running as root"
        )));
    }
    let Some((listen, any_address, listen_loc)) = listen else {
        return Err(format!("{at} {pname} no listen address have been defined!"));
    };
    if !pm_seen {
        return Err(format!(
            "{at} {pname} the process manager is missing (static, dynamic or ondemand)"
        ));
    }
    if !max_children_seen {
        return Err(format!(
            "{at} {pname} pm.max_children must be a positive value"
        ));
    }
    if s.mode == Mode::Dynamic {
        if s.min_spare == 0 {
            return Err(format!(
                "{at} {pname} pm.min_spare_servers({}) must be a positive value",
                s.min_spare
            ));
        }
        if s.min_spare > s.max_children || s.max_spare > s.max_children {
            return Err(format!(
                "{at} {pname} pm.min_spare_servers({}) and pm.max_spare_servers({}) cannot be \
                 greater than pm.max_children({})",
                s.min_spare, s.max_spare, s.max_children
            ));
        }
        if s.max_spare < s.min_spare {
            return Err(format!(
                "{at} {pname} pm.max_spare_servers({}) must not be less than \
                 pm.min_spare_servers({})",
                s.max_spare, s.min_spare
            ));
        }
        let st = s.start_servers();
        if st < s.min_spare || st > s.max_spare {
            return Err(format!(
                "{at} {pname} pm.start_servers({st}) must not be less than \
                 pm.min_spare_servers({}) and not greater than pm.max_spare_servers({})",
                s.min_spare, s.max_spare
            ));
        }
    }
    if s.mode == Mode::OnDemand {
        if let Some(loc) = idle_timeout_zero {
            return Err(format!(
                "{loc} {pname} pm.process_idle_timeout(0s) must be greater than 0s"
            ));
        }
    }
    if !s.status_path.is_empty() && !status_listen_set && s.status_path.len() < 2 {
        return Err(format!(
            "{at} {pname} the status path '{}' is not long enough",
            s.status_path
        ));
    }
    if !s.slowlog_timeout.is_zero()
        && !s.terminate_timeout.is_zero()
        && s.slowlog_timeout > s.terminate_timeout
    {
        return Err(format!(
            "{at} {pname} 'request_slowlog_timeout' ({} ms) can't be greater than \
             'request_terminate_timeout' ({} ms)",
            s.slowlog_timeout.as_millis(),
            s.terminate_timeout.as_millis()
        ));
    }
    s.validate().map_err(|e| format!("{at} {pname} {e}"))?;
    if let Some((dir, loc)) = &chroot {
        if !dir.is_dir() {
            return Err(format!(
                "{loc} {pname} the chroot path '{}' does not exist or is not a directory",
                dir.display()
            ));
        }
    }
    if let Some((dir, loc)) = &chdir {
        let seen = match &chroot {
            Some((root, _)) => root.join(dir.strip_prefix("/").unwrap_or(dir)),
            None => dir.clone(),
        };
        if !seen.is_dir() {
            return Err(format!(
                "{loc} {pname} the chdir path '{}' does not exist or is not a directory",
                seen.display()
            ));
        }
    }
    let Some((command, command_loc)) = command else {
        return Err(format!(
            "{at} {pname} no 'command': give the program the pool runs (command = PROGRAM \
             ARGS...)"
        ));
    };
    if chroot.is_none() {
        let cwd = chdir.as_ref().map(|(d, _)| d.clone());
        if let Err(e) = find_program(&command[0], cwd.as_deref()) {
            return Err(format!("{command_loc} {pname} command: {e}"));
        }
    }

    // Privileges (root only), resolved now so that -t reports unknown users.
    let run_as = if opts.is_root {
        let (u, g) = (
            user.as_ref().map(|u| u.0.as_str()),
            group.as_ref().map(|g| g.0.as_str()),
        );
        match resolve_run_as(u, g, opts.allow_root) {
            Ok(ids) => ids,
            Err(e) => {
                let loc = user.as_ref().or(group.as_ref()).map(|u| &u.1).unwrap_or(at);
                return Err(format!("{loc} {pname} {e}"));
            }
        }
    } else {
        None
    };
    let sock_owner = if opts.is_root {
        let is_root_name = |s: &str| s == "root" || s == "0";
        // FPM: the owner's primary group unless listen.group says otherwise.
        let (uid, mut gid) = match &sock_user {
            Some((u, _)) if is_root_name(u) => (Some(0), Some(0)),
            Some((u, loc)) => {
                let ids = privs::resolve(Some(u), None)
                    .map_err(|e| format!("{loc} {pname} listen.owner: {e}"))?;
                (ids.uid, ids.gid)
            }
            None => (None, None),
        };
        match &sock_group {
            Some((g, _)) if is_root_name(g) => gid = Some(0),
            Some((g, loc)) => {
                gid = privs::resolve(None, Some(g))
                    .map_err(|e| format!("{loc} {pname} listen.group: {e}"))?
                    .gid
            }
            None => {}
        }
        (uid, gid)
    } else {
        for (what, v) in [("listen.owner", &sock_user), ("listen.group", &sock_group)] {
            if let Some((_, loc)) = v {
                notes.push(Note::Notice(format!(
                    "{loc} {pname} '{what}' is ignored when fcgi-spawn is not running as root"
                )));
            }
        }
        (None, None)
    };
    let allowed_clients = match (&listen, allowed) {
        (Listen::Unix(_), Some((_, loc))) => {
            notes.push(Note::Warning(format!(
                "{loc} {pname} listen.allowed_clients applies to TCP sockets only: ignored"
            )));
            None
        }
        (_, a) => a.map(|a| a.0),
    };
    if let Listen::Tcp(sa) = &listen {
        if !is_loopback(sa.ip()) && allowed_clients.is_none() {
            notes.push(Note::Warning(format!(
                "{listen_loc} {pname} listening on {}{} with no listen.allowed_clients: any \
                 host that reaches the port can send requests",
                if any_address {
                    "every address, port "
                } else {
                    ""
                },
                if any_address {
                    sa.port().to_string()
                } else {
                    sa.to_string()
                }
            )));
        }
    }
    Ok(PoolSpec {
        name: name.to_string(),
        listen,
        backlog,
        sock_owner,
        sock_mode,
        allowed_clients,
        run_as,
        chroot: chroot.map(|c| c.0),
        chdir: chdir.map(|c| c.0),
        clear_env,
        env,
        rlimit_files,
        rlimit_core,
        priority: prio,
        command,
        settings: s,
    })
}

/// FPM's check of pm.status_path and ping.path: a leading `/`, then `[alphanum]/_-.~`.
fn check_uri_path(v: &str, what: &str, pname: &str, loc: &Loc) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if !v.starts_with('/') {
        return Err(format!(
            "{loc} {pname} the {what} '{v}' must start with a '/'"
        ));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
    {
        return Err(format!(
            "{loc} {pname} the {what} '{v}' must contain only the following characters \
             '[alphanum]/_-.~'"
        ));
    }
    Ok(())
}

pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// FPM's listen forms: `port` (every address: `[::]`, dual-stack), `ip:port`, `[ipv6]:port`,
/// `host:port`, or a Unix socket path (relative ones from `base`). Returns whether it was a
/// bare port.
pub fn parse_listen(v: &str, base: &Path) -> Result<(Listen, bool), String> {
    if v.is_empty() {
        return Err("empty address".to_string());
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        let port =
            fcgi_runtime::addr::parse_port(v).ok_or_else(|| format!("invalid port '{v}'"))?;
        return Ok((
            Listen::Tcp(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)),
            true,
        ));
    }
    if v.contains(':') && !v.starts_with('/') {
        return match fcgi_runtime::addr::parse_listen(v).map_err(|e| e.to_string())? {
            fcgi_runtime::addr::ListenAddr::Tcp(sa) => Ok((Listen::Tcp(sa), false)),
            fcgi_runtime::addr::ListenAddr::Unix(_) => {
                Err(format!("'{v}' is not ADDRESS:PORT (a port is 1 to 65535)"))
            }
        };
    }
    let p = path(v, base);
    if p.as_os_str().len() >= fcgi_runtime::sys::SUN_PATH_LEN {
        return Err(format!(
            "the Unix socket path '{}' is too long",
            p.display()
        ));
    }
    Ok((Listen::Unix(p), false))
}

/// The user and group a pool runs as (as root): `None` for no privilege drop (no user and
/// `-R`, or root with `-R`).
fn resolve_run_as(
    user: Option<&str>,
    group: Option<&str>,
    allow_root: bool,
) -> Result<Option<privs::Ids>, String> {
    let is_root_name = |s: &str| s == "root" || s == "0";
    if user.is_none() || user.is_some_and(is_root_name) {
        if !allow_root {
            return Err("please specify user and group other than root".to_string());
        }
        return match group {
            Some(g) if !is_root_name(g) => privs::resolve(None, Some(g)).map(Some),
            _ => Ok(None),
        };
    }
    if group.is_some_and(is_root_name) && !allow_root {
        return Err("please specify user and group other than root".to_string());
    }
    privs::resolve(user, group.filter(|g| !is_root_name(g))).map(Some)
}

/// Where the program is: a name without `/` is looked up in PATH, else taken from `cwd` (the
/// pool's chdir) or as it stands. The file must be executable.
pub fn find_program(prog: &str, cwd: Option<&Path>) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if prog.contains('/') {
        let p = match cwd {
            Some(d) if !Path::new(prog).is_absolute() => d.join(prog),
            _ => PathBuf::from(prog),
        };
        return if executable(&p) {
            Ok(PathBuf::from(prog))
        } else {
            Err(format!("'{}' is not an executable file", p.display()))
        };
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    path.split(':')
        .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(prog))
        .find(|p| executable(p))
        .ok_or_else(|| format!("'{prog}' not found in PATH ({path})"))
}
