//! Every exported function of libfcgi.so called with NULL pointers, negative and huge lengths,
//! invalid descriptors, zeroed libfcgi structs, request objects that never accepted, and
//! double finish/free, then on a real accepted request: tests/memsafe/ffi_args.c, which
//! asserts the documented return values (docs/native-api.md, docs/libfcgi-compat.md). Run
//! plainly, under AddressSanitizer + UBSan and under valgrind memcheck. The list of exports it
//! covers must equal `nm -D --defined-only` of the library: a new export fails this test until
//! the program calls it.

use crate::programs::{have_tool, lib_dir, root, work_dir};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn build(dir: &Path, flags: &[&str]) -> std::path::PathBuf {
    let out = dir.join("ffi_args");
    let lib = lib_dir();
    let res = Command::new("cc")
        .args(["-g", "-O1", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root().join("include"))
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(root().join("tests/memsafe/ffi_args.c"))
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lfcgi", "-lpthread"])
        .output()
        .expect("run cc");
    assert!(
        res.status.success(),
        "cc ffi_args.c failed:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

/// Runs `argv` in `dir` (stdin /dev/null: not a FastCGI process), the socket in `dir`.
fn run(dir: &Path, argv: &[String], env: &[(&str, &str)]) -> (Output, String) {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .arg(dir.join("s.sock"))
        .current_dir(dir)
        .env("LD_LIBRARY_PATH", lib_dir())
        .env_remove("FCGI_WEB_SERVER_ADDRS")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run ffi_args");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

#[track_caller]
fn assert_clean(out: &Output, err: &str) {
    let fails: Vec<&str> = err.lines().filter(|l| l.starts_with("FAIL ")).collect();
    let last_call = err.lines().rev().find(|l| l.starts_with("call "));
    assert!(
        out.status.success() && fails.is_empty() && err.contains("failures=0"),
        "ffi_args: {} (last {last_call:?})\n{}\n--- stderr ---\n{err}",
        out.status,
        fails.join("\n")
    );
}

/// The functions libfcgi.so exports.
fn exports() -> BTreeSet<String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib_dir().join("libfcgi.so"))
        .output()
        .expect("run nm (binutils)");
    assert!(out.status.success(), "nm failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[1] == "T").then(|| f[2].to_string())
        })
        .collect()
}

#[test]
fn every_export_survives_invalid_arguments() {
    let dir = work_dir("ffi-args");
    let exe = build(&dir, &[]);
    let (out, err) = run(&dir, &[exe.display().to_string()], &[]);
    assert_clean(&out, &err);
    let covered: BTreeSet<String> = err
        .lines()
        .filter_map(|l| l.strip_prefix("covered "))
        .map(str::to_string)
        .collect();
    let exported = exports();
    assert!(exported.len() > 100, "too few exports: {exported:?}");
    let missing: Vec<_> = exported.difference(&covered).collect();
    let unknown: Vec<_> = covered.difference(&exported).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "tests/memsafe/ffi_args.c must call every export: not called {missing:?}; \
         called but not exported {unknown:?}"
    );
}

#[test]
fn invalid_arguments_under_asan() {
    let dir = work_dir("ffi-args-asan");
    let probe = Command::new("cc")
        .args(["-fsanitize=address,undefined", "-x", "c", "-o"])
        .arg(dir.join("probe"))
        .arg("-")
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"int main(void){return 0;}")?;
            c.wait()
        });
    if !probe.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cc cannot build with -fsanitize=address,undefined; CI requires it"
        );
        eprintln!("SKIPPED: no libasan/libubsan");
        return;
    }
    let exe = build(
        &dir,
        &[
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
        ],
    );
    let (out, err) = run(
        &dir,
        &[exe.display().to_string()],
        &[
            ("ASAN_OPTIONS", "detect_leaks=1:exitcode=97"),
            ("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
        ],
    );
    for marker in ["AddressSanitizer", "LeakSanitizer", "runtime error:"] {
        assert!(!err.contains(marker), "sanitizer report:\n{err}");
    }
    assert_clean(&out, &err);
}

#[test]
fn invalid_arguments_under_valgrind() {
    if !have_tool("valgrind", "valgrind") {
        return;
    }
    let dir = work_dir("ffi-args-valgrind");
    let exe = build(&dir, &[]);
    let argv: Vec<String> = [
        "valgrind",
        "-q",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
        "--track-origins=yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([exe.display().to_string()])
    .collect();
    let (out, err) = run(&dir, &argv, &[]);
    assert_ne!(out.status.code(), Some(99), "memcheck errors:\n{err}");
    assert_clean(&out, &err);
}
