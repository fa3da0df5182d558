//! The library's log: one function, replaceable by the application (`fcgi_set_logger`).
//! Peers' misbehaviour is reported here, never by a crash.

use parking_lot::RwLock;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

/// Log levels, with PHP's values (FCGI_DEBUG .. FCGI_ALERT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum Level {
    Debug = 1,
    Notice = 2,
    Warning = 3,
    Error = 4,
    Alert = 5,
}

/// A log sink. It must not call back into the library.
pub type Logger = Box<dyn Fn(Level, &str) + Send + Sync>;

/// The application's logger, and whether it may be called from the library's own threads.
static LOGGER: RwLock<Option<(Logger, bool)>> = RwLock::new(None);

/// Replaces the logger; `None` restores the default (stderr, debug messages dropped). A logger
/// that is not `any_thread` is called from the application's threads only; the library's own
/// threads write their lines as the default logger does (PHP's `fcgi_log` hook: PHP-FPM's
/// writes the line to the last request's STDERR and may longjmp out of the worker).
pub fn set_logger(logger: Option<Logger>, any_thread: bool) {
    *LOGGER.write() = logger.map(|l| (l, any_thread));
}

thread_local! {
    /// Set on the library's own threads (the standby): see [`set_logger`].
    static LIBRARY_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as one of the library's own (see `LIBRARY_THREAD`).
pub fn mark_library_thread() {
    LIBRARY_THREAD.with(|t| t.set(true));
}

/// The threshold `set_threshold` or `FCGI_RUNTIME_LOG_LEVEL` chose (a `Level` as i32); 0: not
/// read yet, -1: none (the default logger drops debug messages, a custom one gets everything).
static THRESHOLD: AtomicI32 = AtomicI32::new(0);

/// The environment variable that carries a pool's `log_level` to the programs it execs (and
/// that sets the threshold of any program on the library).
pub const LEVEL_ENV: &str = "FCGI_RUNTIME_LOG_LEVEL";

impl Level {
    /// FPM's name for the level, as its log lines show it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Notice => "NOTICE",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Alert => "ALERT",
        }
    }

    /// The sd-daemon priority (`<N>` line prefix: syslog's debug 7, notice 5, warning 4,
    /// err 3, alert 1).
    pub fn priority(self) -> u8 {
        match self {
            Level::Debug => 7,
            Level::Notice => 5,
            Level::Warning => 4,
            Level::Error => 3,
            Level::Alert => 1,
        }
    }

    /// The level named `s` (debug, notice, warning, error, alert; any case).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "notice" => Level::Notice,
            "warning" => Level::Warning,
            "error" => Level::Error,
            "alert" => Level::Alert,
            _ => return None,
        })
    }

    fn from_i32(v: i32) -> Option<Level> {
        Some(match v {
            1 => Level::Debug,
            2 => Level::Notice,
            3 => Level::Warning,
            4 => Level::Error,
            5 => Level::Alert,
            _ => return None,
        })
    }
}

/// Sets the threshold: messages below `level` are dropped, for the default logger and a
/// custom one alike (a pool's `log_level`).
pub fn set_threshold(level: Level) {
    THRESHOLD.store(level as i32, Ordering::Relaxed);
}

/// The threshold, `None` when none was set (from `FCGI_RUNTIME_LOG_LEVEL` at the first call).
pub fn threshold() -> Option<Level> {
    let mut t = THRESHOLD.load(Ordering::Relaxed);
    if t == 0 {
        t = std::env::var(LEVEL_ENV)
            .ok()
            .and_then(|v| Level::parse(&v))
            .map_or(-1, |l| l as i32);
        // A set_threshold meanwhile wins.
        let _ = THRESHOLD.compare_exchange(0, t, Ordering::Relaxed, Ordering::Relaxed);
        t = THRESHOLD.load(Ordering::Relaxed);
    }
    Level::from_i32(t)
}

/// Whether stderr is the journal's stream: 0 not checked yet, 1 no, 2 yes.
static JOURNAL: AtomicU8 = AtomicU8::new(0);

/// stderr is the stream systemd's journal reads (`JOURNAL_STREAM=<dev>:<ino>` names what fd 2
/// is), so lines carry `<N>` priority prefixes instead of level names.
fn stderr_is_journal() -> bool {
    match JOURNAL.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let yes = std::env::var("JOURNAL_STREAM")
                .ok()
                .and_then(|v| {
                    let (d, i) = v.trim().split_once(':')?;
                    Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
                })
                .is_some_and(|want| crate::sys::dev_ino(2).is_ok_and(|got| got == want));
            JOURNAL.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
    }
}

/// Forgets what stderr was (after it was redirected: a worker whose output the pool catches).
pub fn stderr_changed() {
    JOURNAL.store(0, Ordering::Relaxed);
}

/// The default logger's line for `text`: `fcgi-runtime: LEVEL: text`, or `<N>fcgi-runtime:
/// text` when stderr is the journal.
pub fn format_line(level: Level, text: &dyn fmt::Display) -> String {
    if stderr_is_journal() {
        format!("<{}>fcgi-runtime: {text}\n", level.priority())
    } else {
        format!("fcgi-runtime: {}: {text}\n", level.name())
    }
}

/// Logs a message.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    let threshold = threshold();
    if threshold.is_some_and(|t| level < t) {
        return;
    }
    let guard = LOGGER.read();
    let custom = guard
        .as_ref()
        .filter(|(_, any)| *any || !LIBRARY_THREAD.with(|t| t.get()))
        .map(|(f, _)| f);
    match custom {
        Some(f) => f(level, &args.to_string()),
        // One write(2) per line, so lines of other writers to the same stderr (the
        // application's own) never land inside ours; and no panic when stderr is broken,
        // as eprintln! would.
        None if threshold.is_some() || level >= Level::Notice => {
            let line = format_line(level, &args);
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        None => {}
    }
}

/// Writes `line` (a worker's output line, which carries no level of ours) as it is: to a
/// custom logger at notice level, else to stderr in one write, with `<N>` (notice) before it
/// when stderr is the journal.
pub fn raw_line(line: &[u8]) {
    let guard = LOGGER.read();
    if let Some((f, _)) = guard.as_ref() {
        f(Level::Notice, &String::from_utf8_lossy(line));
        return;
    }
    let mut out = Vec::with_capacity(line.len() + 4);
    if stderr_is_journal() {
        out.extend_from_slice(b"<5>");
    }
    out.extend_from_slice(line);
    out.push(b'\n');
    let _ = std::io::stderr().write_all(&out);
}

/// `log!(Warning, "fmt", args..)`
#[macro_export]
macro_rules! fcgi_log {
    ($level:ident, $($arg:tt)*) => {
        $crate::log::log($crate::log::Level::$level, format_args!($($arg)*))
    };
}
