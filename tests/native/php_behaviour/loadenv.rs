//! fcgi_loadenv visits variables in the order of PHP's layer, which `$_SERVER` and
//! `getallheaders()` come out in (FPM's test getallheaders failed on this). PHP's
//! `fcgi_hash_set` puts a new name at the head of its list and gives an existing name its new
//! value in place; `fcgi_hash_del` leaves the entry in the list with no value (skipped), so a
//! name set again after its deletion is new; `fcgi_hash_apply` walks the list from the head.
//! `FCGI_ROLE` is set before any pair is read. So variables come newest first, and a repeated
//! name where it first arrived, with its last value. And a warm request allocates nothing
//! (the runtime's promise): fpm_worker counts its thread's allocations across 100 more calls.

use super::worker::{body, request, Worker};

/// fpm_worker's answer to a loadenv request with these PARAMS (after QUERY_STRING) and putenv
/// script: the variables in fcgi_loadenv's order, then the allocation count.
fn loadenv(w: &Worker, params: &[(&str, &str)], script: &str) -> Vec<String> {
    let mut req = request(1, "loadenv");
    for (n, v) in params {
        req = req.param(n, v);
    }
    let r = w
        .connect()
        .request(&req.stdin(script))
        .expect("loadenv request");
    body(&r).lines().map(str::to_string).collect()
}

/// A repeated name (A), received after QUERY_STRING and REQUEST_METHOD.
const PARAMS: &[(&str, &str)] = &[("A", "1"), ("B", "2"), ("C", "3"), ("A", "4"), ("D", "5")];

#[test]
fn params_come_last_received_first_a_repeated_name_at_its_first_arrival() {
    let w = Worker::start(&[], &[]);
    assert_eq!(
        loadenv(&w, PARAMS, ""),
        [
            "D=5",
            "C=3",
            "B=2",
            "A=4",
            "QUERY_STRING=loadenv",
            "REQUEST_METHOD=GET",
            "FCGI_ROLE=RESPONDER",
            "allocations: 0",
        ]
    );
}

/// As PHP's SAPIs change the environment before they load it (init_request_info puts
/// SCRIPT_FILENAME, PATH_INFO, ...): a new value keeps the place, a new name goes first, a
/// deleted one is gone, and one set again after its deletion is new.
#[test]
fn putenv_keeps_places_and_puts_new_names_first() {
    let w = Worker::start(&[], &[]);
    let script = "B=two\nNEW=n\nC\nA\nA=again\nNEWER=m\nD=five\n";
    assert_eq!(
        loadenv(&w, PARAMS, script),
        [
            "NEWER=m",
            "A=again",
            "NEW=n",
            "D=five",
            "B=two",
            "QUERY_STRING=loadenv",
            "REQUEST_METHOD=GET",
            "FCGI_ROLE=RESPONDER",
            "allocations: 0",
        ]
    );
}
