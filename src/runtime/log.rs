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

static LOGGER: RwLock<Option<Logger>> = RwLock::new(None);

/// Replaces the logger; `None` restores the default (stderr, debug messages dropped).
pub fn set_logger(logger: Option<Logger>) {
    *LOGGER.write() = logger;
}

/// Logs a message.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    let guard = LOGGER.read();
    match guard.as_ref() {
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
        $crate::runtime::log::log($crate::runtime::log::Level::$level, format_args!($($arg)*))
    };
}
