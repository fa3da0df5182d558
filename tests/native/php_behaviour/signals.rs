//! Every thread the library starts blocks every signal, so a signal sent to the process reaches
//! only the application's threads (PHP's FPM test bug77023-pm-dynamic-blocking-sigquit failed
//! on this). fpm_worker's one thread blocks SIGTERM with sigprocmask only after its first
//! accept, so the library's standby thread, started by that accept, was created while SIGTERM
//! was unblocked: it inherits nothing that would protect it. SIGTERM is at its default action,
//! so if that thread took the signal the process would die.

use super::worker::{body, Worker};

/// The signals a thread's "SigBlk" mask shows as blocked, from /proc/<pid>/task/<tid>/status.
fn blocked(pid: u32, tid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
        .unwrap_or_else(|e| panic!("thread {tid} of {pid}: {e}"));
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .expect("a SigBlk line")
        .trim();
    u64::from_str_radix(hex, 16).expect("a hex mask")
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

#[test]
fn a_signal_the_application_blocks_stays_pending_instead_of_reaching_a_library_thread() {
    let mut w = Worker::start(&[], &[]);
    let r = w.ask("block_sigterm", "").expect("first request");
    assert_eq!(body(&r), "SIGTERM blocked\n");

    // Every thread but the application's (the main thread, tid = pid) blocks every signal a
    // mask can hold: 1 to 31 but SIGKILL and SIGSTOP.
    let pid = w.pid();
    let tids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task list")
        .map(|e| e.expect("task").file_name().to_string_lossy().into_owned())
        .collect();
    let library: Vec<&String> = tids.iter().filter(|t| **t != pid.to_string()).collect();
    assert!(
        !library.is_empty(),
        "the standby thread exists after a request"
    );
    let every = (1..32)
        .filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP)
        .fold(0u64, |m, s| m | bit(s));
    for tid in &library {
        let m = blocked(pid, tid);
        assert_eq!(m & every, every, "thread {tid} blocks only {m:#x}");
    }
    assert_ne!(blocked(pid, &pid.to_string()) & bit(libc::SIGTERM), 0);

    // SAFETY: kill(2) on the worker's pid.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let r = w
        .ask("sigpending", "")
        .unwrap_or_else(|e| panic!("no answer after SIGTERM ({e}): a thread took it"));
    assert_eq!(body(&r), "SIGTERM pending: yes\n");
    assert!(w.is_running());
}
