//! The library's log: one function, replaceable by the application (`fcgi_set_logger`).
//! Peers' misbehaviour is reported here, never by a crash.

use parking_lot::RwLock;
use std::fmt;
use std::io::Write;

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

/// Logs a message.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
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
        None if level >= Level::Notice => {
            let line = format!("fcgi-runtime: {args}\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        None => {}
    }
}

/// `log!(Warning, "fmt", args..)`
#[macro_export]
macro_rules! fcgi_log {
    ($level:ident, $($arg:tt)*) => {
        $crate::log::log($crate::log::Level::$level, format_args!($($arg)*))
    };
}
