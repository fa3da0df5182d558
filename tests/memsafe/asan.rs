//! AddressSanitizer and UndefinedBehaviorSanitizer over the C boundary: the C examples and the
//! libfcgi-API test programs (tests/memsafe/programs.rs `PROGRAMS`) compiled with
//! `-fsanitize=address,undefined -fno-omit-frame-pointer` against the project's libfcgi.so,
//! serving real requests and stopped through SIGTERM, with leak detection on. Asserted: a clean
//! exit and no sanitizer report on stderr. The Rust library itself is not instrumented here
//! (see README: Memory safety).

use crate::programs::{compile, drive, start, work_dir};
use std::process::Command;
use std::time::Duration;

const FLAGS: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=all",
];

/// Requests per program.
const N: usize = 40;

/// Whether the compiler can build and link a sanitized program here (libasan installed).
/// Probed once per test binary.
fn sanitizers_work() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(probe)
}

fn probe() -> bool {
    let dir = work_dir("asan-probe");
    let src = dir.join("probe.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").expect("write probe");
    let ok = Command::new("cc")
        .args(FLAGS)
        .arg("-o")
        .arg(dir.join("probe"))
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cc cannot build with {FLAGS:?} (gcc's libasan/libubsan); CI requires it"
        );
        eprintln!("SKIPPED: cc cannot build with {FLAGS:?}");
    }
    ok
}

fn asan(name: &str) {
    if !sanitizers_work() {
        return;
    }
    let p = crate::programs::program(name);
    let dir = work_dir(&format!("asan-{name}"));
    let exe = compile(&p, &dir, FLAGS);
    let err = dir.join(format!("{name}.err"));
    let env = [
        (
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=97:halt_on_error=1",
        ),
        ("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
    ];
    let s = start(&p, &[exe.display().to_string()], &env, &err);
    drive(&s, &p, N);
    let st = s.terminate(Duration::from_secs(60));
    let text = std::fs::read_to_string(&err).unwrap_or_default();
    for marker in ["AddressSanitizer", "LeakSanitizer", "runtime error:"] {
        assert!(!text.contains(marker), "{name}: sanitizer report:\n{text}");
    }
    assert!(st.success(), "{name}: exit status {st}:\n{text}");
}

crate::program_tests!(asan);
