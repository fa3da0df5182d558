//! Pool files: PHP-FPM's configuration format (docs/fcgi-spawn.md, "Pool files";
//! man/fcgi-spawn.conf.5). [`load`] reads a file (and its includes) into a [`Config`]: the
//! `[global]` settings and one [`PoolConf`] per pool section, each with the library's pool
//! [`Settings`] already set and validated, so that `-t` finds every error a start would.
//!
//! Errors carry `[FILE:LINE]` as FPM's do; warnings (PHP-only directives, FPM directives that
//! have no effect here) are collected for the caller to print.

pub mod directives;
pub mod ini;

use crate::privs;
use fcgi_runtime::pool::Settings;
use ini::{Item, Loc};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// How the file is read: as root (user, group and listen.owner resolved and required), and
/// whether pools may run as root (`-R`, FPM's `--allow-to-run-as-root`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub is_root: bool,
    pub allow_root: bool,
}

/// What a pool listens on. A bare port (`listen = 9000`) is every address, IPv6 and IPv4
/// (`[::]:9000`, dual-stack), as in FPM.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(sa) => write!(f, "{sa}"),
            Listen::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The `[global]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Global {
    pub pid: Option<PathBuf>,
    /// None: stderr.
    pub error_log: Option<PathBuf>,
    pub log_level: Option<fcgi_runtime::log::Level>,
    pub process_control_timeout_ms: Option<u64>,
    pub rlimit_files: Option<u64>,
    pub rlimit_core: Option<u64>,
    pub priority: Option<i32>,
    pub process_max: Option<u64>,
}

/// Everything about a pool that decides how its supervisor runs: two pools that compare
/// equal need no restart on reload.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolSpec {
    pub name: String,
    pub listen: Listen,
    /// The socket's backlog (FPM's default 511; -1: the system's maximum).
    pub backlog: i32,
    /// listen.owner, listen.group (root only), resolved.
    pub sock_owner: (Option<u32>, Option<u32>),
    /// listen.mode (default 0660).
    pub sock_mode: u32,
    /// listen.allowed_clients, for FCGI_WEB_SERVER_ADDRS (TCP only).
    pub allowed_clients: Option<String>,
    /// user and group, resolved (root only; `None`: no privilege drop).
    pub run_as: Option<privs::Ids>,
    pub chroot: Option<PathBuf>,
    pub chdir: Option<PathBuf>,
    pub clear_env: bool,
    /// env[NAME] = value, in file order, `$NAME` values already taken from fcgi-spawn's
    /// environment.
    pub env: Vec<(String, String)>,
    pub rlimit_files: Option<u64>,
    pub rlimit_core: Option<u64>,
    pub priority: Option<i32>,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The library's pool settings (validated).
    pub settings: Settings,
}

/// A message for the log (not an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    Notice(String),
    Warning(String),
}

/// A pool file, read.
#[derive(Clone, Debug)]
pub struct Config {
    pub global: Global,
    /// The pools, in the order their sections first appear.
    pub pools: Vec<PoolSpec>,
    /// The notes of [`load`] (the unit tests' view; the program gets them from
    /// [`load_noting`]).
    #[cfg(test)]
    pub notes: Vec<Note>,
}

/// One pool's lines, gathered before they are applied (global directives may follow them).
struct Section {
    name: String,
    at: Loc,
    entries: Vec<(Loc, String, Option<String>, String)>,
}

/// Reads and checks a pool file. The error is the first problem found, with `[FILE:LINE]`
/// where a line is at fault.
#[cfg(test)]
pub fn load(path: &Path, opts: Options) -> Result<Config, String> {
    let mut notes = Vec::new();
    let mut c = load_noting(path, opts, &mut notes)?;
    c.notes = notes;
    Ok(c)
}

/// [`load`], with the notes (warnings, notices) in `notes`, those found before an error too;
/// the config's own `notes` stay empty.
pub fn load_noting(path: &Path, opts: Options, notes: &mut Vec<Note>) -> Result<Config, String> {
    let (lines, include_warnings) = ini::read(path)?;
    notes.extend(include_warnings.into_iter().map(Note::Warning));
    let mut global_entries = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    // None: the global section (also before any header, as in FPM).
    let mut current: Option<usize> = None;
    for line in lines {
        match line.item {
            Item::Section(name) => {
                if name.eq_ignore_ascii_case("global") {
                    current = None;
                } else if let Some(i) = sections
                    .iter()
                    .position(|s| s.name.eq_ignore_ascii_case(&name))
                {
                    // A section named again continues the pool (FPM brings it back).
                    current = Some(i);
                } else {
                    sections.push(Section {
                        name,
                        at: line.loc,
                        entries: Vec::new(),
                    });
                    current = Some(sections.len() - 1);
                }
            }
            Item::Entry { name, key, raw } => match current {
                None => global_entries.push((line.loc, name, key, raw)),
                Some(i) => sections[i].entries.push((line.loc, name, key, raw)),
            },
        }
    }
    let mut global = Global::default();
    for (loc, name, key, raw) in &global_entries {
        directives::global(&mut global, loc, name, key.as_deref(), raw, notes)?;
    }
    if sections.is_empty() {
        return Err(format!(
            "[{}] No pool defined. at least one pool section must be specified in config file",
            path.display()
        ));
    }
    let mut pools: Vec<PoolSpec> = Vec::new();
    for s in &sections {
        let spec = directives::pool(&global, &s.name, &s.at, &s.entries, opts, notes)?;
        if let Some(other) = pools.iter().find(|p| p.listen == spec.listen) {
            return Err(format!(
                "{} [pool {}] unable to set listen address as it's already used in another \
                 pool '{}'",
                s.at, spec.name, other.name
            ));
        }
        pools.push(spec);
    }
    if let Some(max) = global.process_max.filter(|&m| m > 0) {
        let total: u64 = pools.iter().map(|p| p.settings.max_children as u64).sum();
        if total > max {
            return Err(format!(
                "[{}] process.max ({max}) is below the pools' pm.max_children together \
                 ({total})",
                path.display()
            ));
        }
    }
    Ok(Config {
        global,
        pools,
        #[cfg(test)]
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
