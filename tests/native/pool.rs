//! The pre-fork pool of the library (docs/pool-design.md), through c-examples/pool.c: real
//! processes, real sockets, bounded waits. Nothing here passes or fails on timing: waits are
//! polls with generous deadlines, and the load runs count requests and errors.
//!
//! - a worker crashed mid-request is replaced, and the pool keeps serving;
//! - recycling after max_requests under load (fcgi-bench): zero errors, many worker pids;
//! - reload (SIGHUP) under continuous load: zero errors, old workers gone, new ones serving;
//! - graceful stop (SIGQUIT) lets held requests finish, then the parent exits 0; fast stop
//!   (SIGTERM) exits promptly;
//! - on-demand: no worker before the first connection, one after, reaped when idle;
//! - dynamic: spare workers follow busy ones, within max_children;
//! - systemd socket activation (LISTEN_FDS, LISTEN_PID);
//! - PHP_FCGI_CHILDREN=3 gives 3 workers.

use crate::harness;
use crate::pool_fixture::*;
use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn crashed_worker_is_replaced() {
    let p = Pool::start("crash", &["max_children=2"], &[]);
    let before = p.wait_workers(2);
    assert!(
        p.get("crash=1").is_err(),
        "a request that aborts its worker cannot be answered"
    );
    let after = {
        let mut now = BTreeSet::new();
        p.wait_for(
            || {
                now = p.workers();
                now.len() == 2 && now != before
            },
            "the crashed worker's replacement",
        );
        now
    };
    let new: Vec<_> = after.difference(&before).collect();
    assert_eq!(new.len(), 1, "one worker replaced: {before:?} -> {after:?}");
    assert!(p.log().contains("killed by signal 6"), "{}", p.log());
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let pid = p.get("").unwrap_or_else(|e| panic!("after the crash: {e}"));
        assert!(
            after.contains(&pid),
            "answered by {pid}, not a worker of {after:?}"
        );
        seen.insert(pid);
    }
    // The replacement serves too (each new connection goes to an idle worker).
    p.wait_for(
        || p.get("").is_ok_and(|pid| *new[0] == pid),
        "an answer from the replacement",
    );
}

#[test]
fn recycle_after_max_requests_under_load() {
    let p = Pool::start("recycle", &["max_children=4", "max_requests=50"], &[]);
    p.wait_workers(4);
    let json = run_bench(&p.addr, &["-c", "8", "-n", "6000", "--timeout", "20"]);
    assert_eq!(json_num(&json, "requests"), 6000, "{json}");
    assert_eq!(json_num(&json, "errors"), 0, "{json}\n{}", p.log());
    let ended = p.ended_pids();
    // 6000 requests at 50 per worker: about 120 recycled workers.
    assert!(
        ended.len() >= 20,
        "only {} workers recycled: {ended:?}\n{}",
        ended.len(),
        p.log()
    );
    assert!(
        !p.log().contains("replacing it"),
        "a recycled worker was taken for a crash:\n{}",
        p.log()
    );
    eprintln!(
        "recycle: 6000 requests, 0 errors, {} retried, {} workers recycled",
        json_num(&json, "retried"),
        ended.len()
    );
    p.wait_workers(4);
}

#[test]
fn reload_under_load_loses_nothing() {
    let p = Pool::start("reload", &["max_children=3"], &[]);
    let first = p.wait_workers(3);
    let addr = p.addr.clone();
    let load =
        std::thread::spawn(move || run_bench(&addr, &["-c", "8", "-d", "5", "--timeout", "20"]));
    // Reload three times while the load runs (the pauses only spread the reloads).
    let mut generations = vec![first.clone()];
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1000));
        p.signal(libc::SIGHUP);
        let prev = generations.last().expect("one").clone();
        let mut now = BTreeSet::new();
        p.wait_for(
            || {
                now = p.workers();
                now.len() == 3 && now.is_disjoint(&prev)
            },
            "a new generation of workers, the old one gone",
        );
        generations.push(now);
    }
    let json = load.join().expect("load thread");
    let n = json_num(&json, "requests");
    assert!(n > 1000, "too little load to prove anything: {json}");
    assert_eq!(json_num(&json, "errors"), 0, "{json}\n{}", p.log());
    let last = generations.last().expect("one");
    let pid = p.get("").expect("a request after the reloads");
    assert!(
        last.contains(&pid),
        "{pid} is not of the last generation {last:?}"
    );
    for g in &generations[..3] {
        for old in g {
            assert!(!p.workers().contains(old), "old worker {old} still running");
        }
    }
    eprintln!(
        "reload: {n} requests, 0 errors, {} retried, 3 reloads",
        json_num(&json, "retried")
    );
}

/// Sends `n` requests that wait at gate `gate`, each on its own connection and thread, and
/// waits until every one is in a worker.

#[test]
fn graceful_stop_finishes_requests_in_flight() {
    let mut p = Pool::start("quit", &["max_children=2"], &[]);
    let workers = p.wait_workers(2);
    let gate = p.gate("go");
    let held = hold_requests(&p, &gate, 2);
    p.signal(libc::SIGQUIT);
    // The parent waits for its workers, which wait for the gate.
    p.wait_for(|| p.log().contains("graceful stop"), "the graceful stop");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        p.child.try_wait().expect("try_wait").is_none(),
        "the pool exited with requests in flight:\n{}",
        p.log()
    );
    File::create(&gate).expect("open the gate");
    for h in held {
        let pid = h
            .join()
            .expect("client thread")
            .expect("held request answered");
        assert!(workers.contains(&pid));
    }
    assert_eq!(p.wait_exit(), Some(0), "{}", p.log());
    for w in &workers {
        assert!(
            !Path::new(&format!("/proc/{w}")).exists(),
            "worker {w} left behind"
        );
    }
}

#[test]
fn fast_stop_exits_promptly() {
    let mut p = Pool::start("term", &["max_children=2"], &[]);
    let workers = p.wait_workers(2);
    p.get("").expect("a request");
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), Some(0), "{}", p.log());
    for w in &workers {
        p.wait_for(
            || {
                !Path::new(&format!("/proc/{w}/stat")).exists()
                    || !harness::live_children_of(p.pid()).contains(w)
            },
            "the workers to exit",
        );
    }
}

#[test]
fn ondemand_spawns_on_first_connection_and_reaps_idle_workers() {
    let p = Pool::start(
        "ondemand",
        &[
            "pm=ondemand",
            "max_children=3",
            "process_idle_timeout_ms=500",
        ],
        &[],
    );
    // The parent's loop runs every 100 ms: a worker would have appeared by now if any were
    // started without a connection (not a timing pass/fail: it can only hide a failure).
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        p.workers().is_empty(),
        "workers before any connection: {:?}",
        p.workers()
    );
    let pid = p.get("").expect("first request");
    let w = p.workers();
    assert!(w.contains(&pid) && w.len() == 1, "{pid} among {w:?}");
    p.wait_workers(0);
    assert!(
        p.log().contains("idle for process_idle_timeout_ms"),
        "{}",
        p.log()
    );
    // And again.
    let pid2 = p.get("").expect("request after the reap");
    assert_ne!(pid, pid2);
}

#[test]
fn dynamic_keeps_spare_workers_within_max_children() {
    let p = Pool::start(
        "dynamic",
        &[
            "pm=dynamic",
            "max_children=4",
            "start_servers=1",
            "min_spare_servers=1",
            "max_spare_servers=2",
        ],
        &[],
    );
    p.wait_workers(1);
    let gate = p.gate("go");
    let mut held = Vec::new();
    // Each held request makes one worker busy; the parent adds a spare one for it.
    for busy in 1..=3 {
        held.extend(hold_requests(&p, &gate, 1));
        p.wait_workers(busy + 1);
    }
    // All four busy: no fifth worker (max_children), and the parent says so.
    held.extend(hold_requests(&p, &gate, 1));
    p.wait_for(
        || p.log().contains("reached max_children"),
        "max_children reached",
    );
    assert_eq!(p.workers().len(), 4);
    File::create(&gate).expect("open the gate");
    for h in held {
        h.join().expect("client").expect("held request answered");
    }
    // Four idle workers, at most two spare: two are drained.
    p.wait_workers(2);
    assert!(p.log().contains("above max_spare_servers"), "{}", p.log());
}

#[test]
fn systemd_socket_activation() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let fd = l.as_raw_fd();
    // LISTEN_PID must be the pool's own pid: a shell sets it to its $$ and execs the pool in
    // the same process (setenv after fork in this multi-threaded test would not be safe).
    let mut cmd = pool_cmd();
    let exe = harness::example("pool");
    cmd = {
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c")
            .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
            .arg(&exe)
            .arg("max_children=2");
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        sh.stdin(Stdio::null()).stdout(Stdio::null());
        sh
    };
    // SAFETY: dup2/fcntl are async-signal-safe; the listener's fd becomes fd 3 (without
    // close-on-exec) in the child only.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let p = Pool::spawn("listenfds", cmd, addr);
    drop(l);
    let workers = p.wait_workers(2);
    for _ in 0..10 {
        let pid = p.get("").expect("a request on the socket systemd passed");
        assert!(workers.contains(&pid));
    }
}

#[test]
fn max_memory_recycles_a_worker() {
    // Any worker is above 1 MB resident: the parent drains it within its once-a-second check
    // and starts another; requests keep succeeding throughout.
    let p = Pool::start("memory", &["max_children=1", "max_memory=1000000"], &[]);
    let first = p.wait_workers(1);
    p.wait_for(
        || p.log().contains("(max_memory 1000000); recycling it"),
        "a max_memory recycle",
    );
    p.wait_for(
        || p.get("").is_ok_and(|pid| !first.contains(&pid)),
        "an answer from the replacement",
    );
    assert!(!p.log().contains("replacing it"), "{}", p.log());
}

#[test]
fn inherited_fd0_socket() {
    // spawn-fcgi's and web servers' way: the listening socket on fd 0, no FCGI_ADDR.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let mut cmd = pool_cmd();
    cmd.arg("max_children=2")
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(l)));
    let p = Pool::spawn("fd0", cmd, addr);
    let workers = p.wait_workers(2);
    let pid = p.get("").expect("a request on fd 0's socket");
    assert!(workers.contains(&pid));
}

#[test]
fn reuseport_lets_another_socket_bind_the_address() {
    let p = Pool::start("reuseport", &["reuseport=1", "max_children=1"], &[]);
    p.wait_workers(1);
    let port: u16 = p
        .addr
        .rsplit(':')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("port");
    // A second socket with SO_REUSEPORT binds the same address only if the pool's has it too.
    // SAFETY: plain socket calls on a descriptor this test owns; sockaddr_in is filled in.
    let bound = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_port = port.to_be();
        sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let r = libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        libc::close(fd);
        r == 0
    };
    assert!(bound, "the pool's socket has no SO_REUSEPORT");
    p.get("").expect("the pool still serves");
}

#[test]
fn php_fcgi_children_sets_the_worker_count() {
    let p = Pool::start("children", &[], &[("PHP_FCGI_CHILDREN", "3")]);
    let workers = p.wait_workers(3);
    for _ in 0..10 {
        let pid = p.get("").expect("request");
        assert!(workers.contains(&pid));
    }
    assert_eq!(p.workers(), workers);
}
