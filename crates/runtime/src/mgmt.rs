//! Management variables set by the application (`fcgi_set_mgmt_var`) for GET_VALUES. The three
//! names of the specification are not stored here: they report the limits actually enforced,
//! and setting them sets those limits.

use super::config::{self, Limit};
use fcgi_runtime_protocol::record::mgmt;
use parking_lot::Mutex;

static VARS: Mutex<Vec<(Vec<u8>, Vec<u8>)>> = Mutex::new(Vec::new());

/// Defines a variable; the first definition of a name wins (as in PHP). Returns false when a
/// value for one of the specification's names is not a valid limit.
pub fn set(name: &[u8], value: &[u8]) -> bool {
    let limit = match name {
        n if n == mgmt::MAX_CONNS => Some(Limit::MaxConns),
        n if n == mgmt::MAX_REQS => Some(Limit::MaxReqs),
        n if n == mgmt::MPXS_CONNS => Some(Limit::MpxsConns),
        _ => None,
    };
    if let Some(l) = limit {
        let v = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        return v.is_some_and(|v| config::set(l, v).is_ok());
    }
    let mut vars = VARS.lock();
    if !vars.iter().any(|(n, _)| n == name) {
        vars.push((name.to_vec(), value.to_vec()));
    }
    true
}

/// Appends the value of an application-defined variable; false when unknown.
pub fn lookup(name: &[u8], out: &mut Vec<u8>) -> bool {
    match VARS.lock().iter().find(|(n, _)| n == name) {
        Some((_, v)) => {
            out.extend_from_slice(v);
            true
        }
        None => false,
    }
}

/// Forgets every application-defined variable.
pub fn clear() {
    VARS.lock().clear();
}
