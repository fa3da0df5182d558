//! valgrind memcheck over the C boundary: every C example (native and libfcgi API, the C++
//! ones) and the libfcgi-API test programs (tests/libfcgi/compare/lf_app.c, tests/libfcgi/lifecycle/lf_life.c,
//! tests/libfcgi/stdio/stdio_app.c) run under
//! `valgrind --error-exitcode=99 --leak-check=full` on the project's libfcgi.so, serve real
//! requests (one connection each, then kept-alive), and stop through SIGTERM. Each program runs
//! twice, with N and 10*N requests. Asserted:
//! - no memcheck error (invalid read/write, uninitialised value, bad free): ERROR SUMMARY 0 and
//!   not the exit code 99;
//! - "definitely lost" and "indirectly lost" do not grow with the request count: the 10*N run
//!   loses no more than the N run (what is lost once per process, if anything, is allowed; a
//!   leak per request is not). Leaks are not counted as errors (`--errors-for-leak-kinds=none`)
//!   because "possibly lost" covers the stacks of the runtime's detached threads still running
//!   at exit; they are compared instead.
//!
//! No suppression file is used. Fails (does not skip) under CI=true when valgrind is missing.

use crate::programs::{compile, drive, have_tool, start, work_dir, Prog, PROGRAMS};
use std::path::Path;
use std::time::Duration;

/// Requests of the small run; the large one sends ten times as many.
const N: usize = 10;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Summary {
    errors: u64,
    definitely: u64,
    indirectly: u64,
}

/// The number before `unit` on the line of `log` containing `key` (commas removed).
fn number_after(log: &str, key: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains(key))?;
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().ok()
}

fn summary(log: &str) -> Summary {
    Summary {
        errors: number_after(log, "ERROR SUMMARY:").expect("no ERROR SUMMARY in the log"),
        // Absent when nothing of that kind was lost.
        definitely: number_after(log, "definitely lost:").unwrap_or(0),
        indirectly: number_after(log, "indirectly lost:").unwrap_or(0),
    }
}

fn run(p: &Prog, exe: &Path, dir: &Path, n: usize) -> (Summary, String) {
    let log = dir.join(format!("{}-{n}.vg", p.name));
    let argv: Vec<String> = [
        "valgrind",
        "--error-exitcode=99",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect",
        "--errors-for-leak-kinds=none",
        "--track-origins=yes",
        "--num-callers=30",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--log-file={}", log.display()),
        exe.display().to_string(),
    ])
    .collect();
    let s = start(p, &argv, &[], &dir.join(format!("{}-{n}.err", p.name)));
    drive(&s, p, n);
    let st = s.terminate(Duration::from_secs(120));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_ne!(st.code(), Some(99), "{}: memcheck errors:\n{text}", p.name);
    assert!(
        st.success(),
        "{}: exit status {st} after SIGTERM:\n{text}",
        p.name
    );
    (summary(&text), text)
}

fn memcheck(name: &str) {
    if !have_tool("valgrind", "valgrind") {
        return;
    }
    let p = crate::programs::program(name);
    let dir = work_dir(&format!("memcheck-{name}"));
    let exe = compile(&p, &dir, &[]);
    let (small, small_log) = run(&p, &exe, &dir, N);
    let (large, large_log) = run(&p, &exe, &dir, 10 * N);
    eprintln!(
        "{name}: {N} requests {small:?}; {} requests {large:?}",
        10 * N
    );
    assert_eq!(small.errors, 0, "{name}: memcheck errors:\n{small_log}");
    assert_eq!(large.errors, 0, "{name}: memcheck errors:\n{large_log}");
    assert!(
        large.definitely <= small.definitely && large.indirectly <= small.indirectly,
        "{name}: lost memory grows with the request count: {small:?} after {N} requests, \
         {large:?} after {}:\n{large_log}",
        10 * N
    );
}

#[test]
fn every_program_is_listed() {
    // A new C example must be added to PROGRAMS (and so to memcheck and ASan).
    let mut listed: Vec<&str> = PROGRAMS.iter().map(|p| p.src).collect();
    listed.sort();
    for e in std::fs::read_dir(crate::programs::root().join("c-examples")).expect("c-examples") {
        let name = e.expect("entry").file_name().to_string_lossy().into_owned();
        // prefork.c and pool.c fork workers: tests/native/runtime_behaviour.rs and tests/native/pool.rs run
        // them; memcheck and ASan follow the single-process examples.
        if (name.ends_with(".c") || name.ends_with(".cpp"))
            && name != "prefork.c"
            && name != "pool.c"
        {
            let src = format!("c-examples/{name}");
            assert!(listed.contains(&src.as_str()), "{src} is not in PROGRAMS");
        }
    }
}

#[test]
fn summary_parses_valgrind_output() {
    let log = "==1== ERROR SUMMARY: 3 errors from 2 contexts\n\
               ==1==    definitely lost: 1,024 bytes in 2 blocks\n\
               ==1==    indirectly lost: 0 bytes in 0 blocks\n";
    let s = summary(log);
    assert_eq!((s.errors, s.definitely, s.indirectly), (3, 1024, 0));
}

crate::program_tests!(memcheck);
