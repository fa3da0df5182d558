//! The hooks of fcgi_init_request as PHP-FPM's worker uses them: `on_accept` says "accepting"
//! (idle) and `on_read` "reading headers" in the scoreboard, and FPM's ondemand manager forks a
//! child for a waiting connection only when no child is idle. The runtime (its standby thread)
//! is therefore started before `on_accept` is first called: a fresh child that said "accepting"
//! while it was still starting looked idle to the manager, which then forked no child for the
//! next connection (PHP's FPM test proc-idle-timeout.phpt; docs/sapi.md). fpm_worker counts its
//! threads at its first `on_accept` (one thread before the runtime starts).

use super::worker::{body, Worker};

/// The value of `name: N` in fpm_worker's `hooks` answer.
fn field(text: &str, name: &str) -> i64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name:?} in {text:?}"))
}

#[test]
fn the_runtime_is_up_before_on_accept_and_each_hook_runs_once_per_request() {
    let w = Worker::start(&[], &[]);
    let first = body(&w.ask("hooks", "").expect("first request"));
    let tasks = field(&first, "tasks at first on_accept");
    assert!(
        tasks >= 2,
        "at the first on_accept the process had {tasks} thread(s): the runtime's standby \
         thread was not started yet\n{first}"
    );
    assert_eq!(field(&first, "on_accept calls"), 1, "{first}");
    assert_eq!(field(&first, "on_read calls"), 1, "{first}");

    let second = body(&w.ask("hooks", "").expect("second request"));
    assert_eq!(field(&second, "on_accept calls"), 2, "{second}");
    assert_eq!(field(&second, "on_read calls"), 2, "{second}");
}
