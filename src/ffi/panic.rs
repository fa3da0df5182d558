//! The panic boundary used by every exported function.
//!
//! [`guard`] runs an export's body and, if it panics, logs the panic and returns the value its
//! return type gives for "failed" ([`OnPanic`]): -1 for a C `int` (the error value of nearly
//! every `fcgi_*` and `FCGX_*` function, and `EOF` for the stdio face), NULL for a pointer,
//! nothing for `void`. The few functions whose `int` means something else on failure (a yes/no
//! answer, a count, libfcgi's `-9999` from `FCGX_Accept`) use [`guard_or`] and say why there.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// What an exported function returns when its body panicked: the C convention for failure of
/// its return type.
pub trait OnPanic {
    /// The failure value.
    fn on_panic() -> Self;
}

impl OnPanic for () {
    fn on_panic() {}
}

/// `int`: -1, the error return of the C faces (and `EOF`).
impl OnPanic for i32 {
    fn on_panic() -> i32 {
        -1
    }
}

/// `long` and `long long` (counts and limits that are -1 on error).
impl OnPanic for i64 {
    fn on_panic() -> i64 {
        -1
    }
}

/// `ssize_t`-like returns: -1.
impl OnPanic for isize {
    fn on_panic() -> isize {
        -1
    }
}

/// `size_t`: 0 items (what `fread`/`fwrite` return on error).
impl OnPanic for usize {
    fn on_panic() -> usize {
        0
    }
}

impl<T> OnPanic for *mut T {
    fn on_panic() -> *mut T {
        std::ptr::null_mut()
    }
}

impl<T> OnPanic for *const T {
    fn on_panic() -> *const T {
        std::ptr::null()
    }
}

/// Runs `f`; if it panics, logs the panic and returns the failure value of `T` instead of
/// unwinding into C.
#[inline]
pub fn guard<T: OnPanic>(name: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            log_panic(name, p.as_ref());
            T::on_panic()
        }
    }
}

/// [`guard`] for a function whose failure value is not its type's (a yes/no `int` that fails
/// to "no", a count that fails to 0): the caller names it.
#[inline]
pub fn guard_or<T>(name: &str, failed: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            log_panic(name, p.as_ref());
            failed
        }
    }
}

#[cold]
fn log_panic(name: &str, p: &(dyn std::any::Any + Send)) {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    // The logger itself may be what panicked: never let a second panic escape.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        fcgi_runtime::fcgi_log!(Alert, "internal error in {name}: {msg}")
    }));
}

#[cfg(test)]
mod tests {
    use super::{guard, guard_or};

    #[test]
    fn a_panic_returns_the_failure_value_of_the_return_type() {
        assert_eq!(guard("t", || -> i32 { panic!("boom") }), -1);
        assert_eq!(guard("t", || 5), 5);
        assert!(guard("t", || -> *mut u8 { panic!("boom") }).is_null());
        assert_eq!(guard("t", || -> usize { panic!("boom") }), 0);
        guard("t", || -> () { panic!("boom") });
    }

    #[test]
    fn guard_or_returns_the_named_value() {
        assert_eq!(guard_or("t", 0, || -> i32 { panic!("boom") }), 0);
        assert_eq!(guard_or("t", 0, || 7), 7);
    }
}
