//! The panic boundary used by every exported function.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; if it panics, logs the panic and returns `default` instead of unwinding into C.
#[inline]
pub fn guard<T>(name: &str, default: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            // The logger itself may be what panicked: never let a second panic escape.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                fcgi_runtime::fcgi_log!(Alert, "internal error in {name}: {msg}")
            }));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn panic_becomes_default() {
        assert_eq!(super::guard("t", -1, || panic!("boom")), -1);
        assert_eq!(super::guard("t", -1, || 5), 5);
    }
}
