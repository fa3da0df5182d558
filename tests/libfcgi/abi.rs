//! The libfcgi ABI of the project's library and the compatibility headers in `include/`, checked
//! with the real compiler and binutils against Debian's libfcgi (package libfcgi-dev: the headers
//! in /usr/include and /usr/lib/x86_64-linux-gnu/libfcgi.so.0):
//!
//! - `tests/libfcgi/abi/layout.c`, built against Debian's headers and against the project's, prints the
//!   same sizes, offsets and field types of every structure and the same constant values;
//! - the headers define the same macros (`cc -dM -E`) and their prototypes agree with Debian's
//!   (Debian's declarations repeated after the project's headers compile, as C and as C++);
//! - the headers compile cleanly alone and together, as C99 and as C++;
//! - the library exports every symbol of Debian's with the same kind, `_fcgi_sF` as a 48-byte
//!   object reached through the GOT, under the SONAME libfcgi.so.0;
//! - an executable holding a copy relocation of `_fcgi_sF` shares it with the library;
//! - `make install` / `make uninstall` with DESTDIR, and programs built with pkg-config.
//!
//! Compilers: `$CC` (default `cc`) and `$CXX` (default `c++`); tools: nm, readelf, make,
//! pkg-config.

use crate::harness;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Debian's libfcgi, the reference.
const SYSTEM_LIB: &str = "/usr/lib/x86_64-linux-gnu/libfcgi.so.0";
/// Debian's headers declaring libfcgi's functions.
const SYSTEM_DECL_HEADERS: [&str; 3] = [
    "/usr/include/fcgiapp.h",
    "/usr/include/fcgi_stdio.h",
    "/usr/include/fcgios.h",
];
/// The compatibility headers, in an order that works for libfcgi's too.
const COMPAT_HEADERS: [&str; 6] = [
    "fcgi_config.h",
    "fcgimisc.h",
    "fastcgi.h",
    "fcgios.h",
    "fcgiapp.h",
    "fcgi_stdio.h",
];

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn include_dir() -> PathBuf {
    manifest().join("include")
}

fn abi_src(name: &str) -> PathBuf {
    manifest().join("tests/libfcgi/abi").join(name)
}

fn project_lib() -> PathBuf {
    harness::lib_dir().join("libfcgi.so")
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

fn cxx() -> String {
    std::env::var("CXX").unwrap_or_else(|_| "c++".into())
}

/// Panics unless Debian's libfcgi (the reference) is installed.
fn require_debian_libfcgi() {
    for p in SYSTEM_DECL_HEADERS.iter().chain(&[SYSTEM_LIB]) {
        assert!(
            Path::new(p).exists(),
            "{p} is missing: install Debian's libfcgi-dev, the reference these tests compare with"
        );
    }
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("fcgi-abi-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create temp dir");
        TempDir(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd` with stdin from /dev/null; panics (showing its output) unless it succeeds.
/// Returns stdout.
#[track_caller]
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `cmd`; returns whether it succeeded and its stderr.
fn try_run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---- Headers ------------------------------------------------------------------------------------

/// Builds and runs tests/libfcgi/abi/layout.c; `include` None means Debian's headers only.
fn layout_output(tmp: &TempDir, name: &str, include: Option<&Path>) -> Vec<String> {
    let exe = tmp.path(name);
    let mut c = Command::new(cc());
    c.args(["-std=gnu99", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(abi_src("layout.c"));
    if let Some(i) = include {
        c.arg("-I").arg(i);
    }
    run(&mut c);
    run(&mut Command::new(&exe))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn struct_layouts_and_constants_match_libfcgi() {
    require_debian_libfcgi();
    let tmp = TempDir::new("layout");
    let sys = layout_output(&tmp, "layout-debian", None);
    let prj = layout_output(&tmp, "layout-project", Some(&include_dir()));

    // Which headers each build read.
    assert_eq!(
        sys[0], "FCGI_RUNTIME_COMPAT 0",
        "Debian build found fcgi-runtime's headers"
    );
    assert_eq!(
        prj[0], "FCGI_RUNTIME_COMPAT 1",
        "project build found other headers"
    );

    let diff: Vec<String> = sys[1..]
        .iter()
        .zip(&prj[1..])
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("  libfcgi: {a}\n  project: {b}"))
        .collect();
    assert!(
        diff.is_empty() && sys.len() == prj.len(),
        "layouts differ ({} vs {} lines):\n{}",
        sys.len(),
        prj.len(),
        diff.join("\n")
    );

    // The reference values (§1.1 of the libfcgi reference), so a change on both sides shows too.
    for want in [
        "sizeof(FCGX_Stream) 72",
        "FCGX_Stream.data offset=64 size=8 type_ok=1",
        "sizeof(FCGX_Request) 80",
        "FCGX_Request.paramsPtr offset=40 size=8 type_ok=1",
        "FCGX_Request.detached offset=76 size=4 type_ok=1",
        "sizeof(FCGI_FILE) 16",
        "FCGI_FILE.fcgx_stream offset=8 size=8 type_ok=1",
        "_fcgi_sF_is_FCGI_FILE_array 1",
        "FILE_is_FCGI_FILE 1",
        "sizeof(FCGI_Header) 8",
        "FCGX_CALL_SEQ_ERROR -5",
        "FCGI_MAX_LENGTH 65535",
        "FCGI_UNKNOWN_TYPE 11",
    ] {
        assert!(prj.iter().any(|l| l == want), "missing: {want}\n{prj:#?}");
    }
    let wrong: Vec<&String> = prj
        .iter()
        .filter(|l| {
            l.ends_with("type_ok=0")
                || l.ends_with("_ok 0")
                || l.contains("_is_") && l.ends_with(" 0")
        })
        .collect();
    assert!(wrong.is_empty(), "type checks failed: {wrong:#?}");
}

/// `#define`s visible after including every compat header: name -> definition (parameters
/// included, whitespace collapsed).
fn defined_macros(tmp: &TempDir, include: Option<&Path>) -> BTreeMap<String, String> {
    // System headers the compat headers may pull in, first, so both sides see the same ones.
    let mut src = String::new();
    for h in [
        "errno.h",
        "stdarg.h",
        "stddef.h",
        "stdio.h",
        "sys/types.h",
        "sys/time.h",
    ] {
        src.push_str(&format!("#include <{h}>\n"));
    }
    for h in COMPAT_HEADERS {
        src.push_str(&format!("#include <{h}>\n"));
    }
    let file = tmp.path(if include.is_some() {
        "m-project.c"
    } else {
        "m-debian.c"
    });
    std::fs::write(&file, src).expect("write");
    let mut c = Command::new(cc());
    c.args(["-std=gnu99", "-dM", "-E"]).arg(&file);
    if let Some(i) = include {
        c.arg("-I").arg(i);
    }
    run(&mut c)
        .lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .map(|d| {
            let name_end = d.find(['(', ' ']).unwrap_or(d.len());
            let rest = d[name_end..]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            (d[..name_end].to_string(), rest)
        })
        .collect()
}

#[test]
fn macros_match_libfcgi() {
    require_debian_libfcgi();
    let tmp = TempDir::new("macros");
    let sys = defined_macros(&tmp, None);
    let prj = defined_macros(&tmp, Some(&include_dir()));

    // Spelled differently on purpose; layout.c checks that their values agree.
    // FCGI_MAX_LENGTH: spelled as fcgi.h spells it (65535, not 0xffff), so both headers can be
    // included together; FCGX_*: parenthesised; X_OK: spelled as glibc's <unistd.h>.
    let spelled_differently = [
        "FCGI_MAX_LENGTH",
        "FCGX_UNSUPPORTED_VERSION",
        "FCGX_PROTOCOL_ERROR",
        "FCGX_PARAMS_ERROR",
        "FCGX_CALL_SEQ_ERROR",
        "X_OK",
    ];
    // libtool's build directory (a configure leftover); the project's marker and the include
    // guard of its fcgi_config.h (libfcgi's has none).
    let only_libfcgi = ["LT_OBJDIR"];
    let only_project = ["FCGI_RUNTIME_COMPAT", "FCGI_RUNTIME_FCGI_CONFIG_H"];

    assert!(
        !sys.contains_key("FCGI_RUNTIME_COMPAT"),
        "Debian side read fcgi-runtime's headers"
    );
    assert_eq!(
        prj.get("FCGI_RUNTIME_COMPAT").map(String::as_str),
        Some("1")
    );
    // The stdio renaming is part of what is compared.
    assert_eq!(prj.get("printf").map(String::as_str), Some("FCGI_printf"));

    let mut problems = Vec::new();
    for (name, def) in &sys {
        match prj.get(name) {
            None if only_libfcgi.contains(&name.as_str()) => {}
            None => problems.push(format!("missing: #define {name}{def}")),
            Some(p) if p != def && !spelled_differently.contains(&name.as_str()) => {
                problems.push(format!("differs: {name}: libfcgi `{def}`, project `{p}`"))
            }
            Some(_) => {}
        }
    }
    for (name, def) in &prj {
        if !sys.contains_key(name) && !only_project.contains(&name.as_str()) {
            problems.push(format!("extra: #define {name}{def}"));
        }
    }
    assert!(
        problems.is_empty(),
        "macro differences:\n{}",
        problems.join("\n")
    );
}

/// Debian's declarations (`DLLAPI ...;`) from its headers, comments and preprocessor lines
/// removed, one per entry, whitespace collapsed.
fn debian_declarations() -> Vec<String> {
    let mut decls = Vec::new();
    for h in SYSTEM_DECL_HEADERS {
        let text = std::fs::read_to_string(h).unwrap_or_else(|e| panic!("read {h}: {e}"));
        let mut code = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("/*") {
            code.push_str(&rest[..start]);
            let end = rest[start..].find("*/").expect("unterminated comment") + start + 2;
            code.push(' ');
            rest = &rest[end..];
        }
        code.push_str(rest);
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        for stmt in code.split(';') {
            if let Some(i) = stmt.find("DLLAPI") {
                decls.push(stmt[i..].split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
    }
    decls
}

/// The declared name: the identifier before the first '(' or '['.
fn declared_name(decl: &str) -> String {
    let end = decl
        .find(['(', '['])
        .expect("a function or array declaration");
    let head = decl[..end].trim_end();
    let start = head
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    head[start..].to_string()
}

/// Defined dynamic symbols of a library: name -> nm kind letter.
fn dynamic_symbols(lib: &Path) -> BTreeMap<String, char> {
    run(Command::new("nm").args(["-D", "--defined-only"]).arg(lib))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [_, kind, name] => Some((name.to_string(), kind.chars().next()?)),
                _ => None,
            }
        })
        .collect()
}

/// Compiles `decls` after the project's headers, as C99 and as C++; returns the failures.
fn redeclare(tmp: &TempDir, tag: &str, decls: &[String]) -> Vec<String> {
    let mut includes = String::from("#include <fcgi.h>\n");
    for h in COMPAT_HEADERS {
        includes.push_str(&format!("#include <{h}>\n"));
    }
    let body: String = decls.iter().map(|d| format!("{d};\n")).collect();
    let c_src = tmp.path(&format!("{tag}.c"));
    std::fs::write(&c_src, format!("{includes}\n{body}")).expect("write");
    let cxx_src = tmp.path(&format!("{tag}.cc"));
    std::fs::write(&cxx_src, format!("{includes}\nextern \"C\" {{\n{body}}}\n")).expect("write");

    let mut failures = Vec::new();
    let (ok, err) = try_run(
        Command::new(cc())
            .args([
                "-std=c99",
                "-pedantic",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-fsyntax-only",
                "-I",
            ])
            .arg(include_dir())
            .arg(&c_src),
    );
    if !ok {
        failures.push(format!("C:\n{err}"));
    }
    let (ok, err) = try_run(
        Command::new(cxx())
            .args(["-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I"])
            .arg(include_dir())
            .arg(&cxx_src),
    );
    if !ok {
        failures.push(format!("C++:\n{err}"));
    }
    failures
}

#[test]
fn prototypes_match_libfcgi() {
    require_debian_libfcgi();
    let decls = debian_declarations();
    // The extraction found exactly the library's exports (89 in libfcgi 2.4.2).
    let names: BTreeSet<String> = decls.iter().map(|d| declared_name(d)).collect();
    let exported: BTreeSet<String> = dynamic_symbols(Path::new(SYSTEM_LIB)).into_keys().collect();
    assert_eq!(
        names, exported,
        "declarations found in Debian's headers vs its exports"
    );
    assert_eq!(
        decls.len(),
        exported.len(),
        "a name declared twice: {decls:#?}"
    );

    let tmp = TempDir::new("protos");
    let failures = redeclare(&tmp, "debian", &decls);
    assert!(
        failures.is_empty(),
        "Debian's declarations conflict with the project's headers:\n{}",
        failures.join("\n")
    );

    // Control: a conflicting declaration is caught, in both languages.
    let wrong = ["DLLAPI int FCGX_Accept_r(FCGX_Request *request, int extra)".to_string()];
    assert_eq!(
        redeclare(&tmp, "control", &wrong).len(),
        2,
        "a conflict went unnoticed"
    );
}

/// Compiles `src` (written to the temp file `name`) with `compiler` and `flags`
/// against the project's include/; panics with the diagnostics on failure.
fn compile_snippet(tmp: &TempDir, name: &str, compiler: &str, flags: &[&str], src: &str) {
    let file = tmp.path(name);
    std::fs::write(&file, src).expect("write");
    let out = tmp.path(&format!("{name}.o"));
    run(Command::new(compiler)
        .args(flags)
        .arg("-I")
        .arg(include_dir())
        .arg("-c")
        .arg("-o")
        .arg(&out)
        .arg(&file));
}

/// Each header alone (twice, for its guard), and all together with fcgi.h first and last.
fn header_snippets(main: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for h in std::iter::once("fcgi.h").chain(COMPAT_HEADERS) {
        v.push((
            h.replace('.', "_"),
            format!("#include <{h}>\n#include <{h}>\n{main}"),
        ));
    }
    let compat: String = COMPAT_HEADERS
        .iter()
        .map(|h| format!("#include <{h}>\n"))
        .collect();
    let check = "#ifndef FCGI_RUNTIME_COMPAT\n#error \"not the project headers\"\n#endif\n";
    v.push((
        "all_fcgi_h_first".into(),
        format!("#include <fcgi.h>\n{compat}{check}{main}"),
    ));
    v.push((
        "all_fcgi_h_last".into(),
        format!("{compat}#include <fcgi.h>\n{check}{main}"),
    ));
    v
}

#[test]
fn headers_compile_cleanly_as_c99() {
    let tmp = TempDir::new("c99");
    let flags = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"];
    for (name, src) in header_snippets("int main(void) { return 0; }\n") {
        compile_snippet(&tmp, &format!("{name}.c"), &cc(), &flags, &src);
    }
}

#[test]
fn headers_compile_cleanly_as_cxx() {
    let tmp = TempDir::new("cxx");
    let flags = ["-x", "c++", "-Wall", "-Wextra", "-Werror"];
    for (name, src) in header_snippets("int main() { return 0; }\n") {
        compile_snippet(&tmp, &format!("{name}.cc"), &cxx(), &flags, &src);
    }
    // fcgi_stdio.h renames stdio in C++ too, and C++ headers after it still compile.
    compile_snippet(
        &tmp,
        "stdio_use.cc",
        &cxx(),
        &flags,
        "#include <fcgi.h>\n#include <fcgiapp.h>\n#include <fcgi_stdio.h>\n#include <cstdio>\n\
         #include <string>\n\
         int main() { std::string s(\"x\"); FILE *f = stdout; return printf(\"%s\", s.c_str()) < 0 || f == 0; }\n",
    );
}

// ---- The library --------------------------------------------------------------------------------

#[test]
fn exports_every_libfcgi_symbol_with_the_same_kind() {
    require_debian_libfcgi();
    let want = dynamic_symbols(Path::new(SYSTEM_LIB));
    let have = dynamic_symbols(&project_lib());
    assert_eq!(want.len(), 89, "Debian's libfcgi 2.4.2 exports 89 symbols");
    let data = |k: char| matches!(k, 'B' | 'D');
    let problems: Vec<String> = want
        .iter()
        .filter_map(|(name, &kind)| match have.get(name) {
            None => Some(format!("{name}: not exported")),
            Some(&k) if k == kind || data(k) && data(kind) => None,
            Some(&k) => Some(format!("{name}: kind {k}, libfcgi has {kind}")),
        })
        .collect();
    assert!(
        problems.is_empty(),
        "{} of {} libfcgi symbols wrong in {}:\n{}",
        problems.len(),
        want.len(),
        project_lib().display(),
        problems.join("\n")
    );
}

#[test]
fn fcgi_sf_is_a_48_byte_data_object() {
    // nm: kind and size.
    let nm = run(Command::new("nm")
        .args(["-D", "-S", "--defined-only"])
        .arg(project_lib()));
    let line = nm
        .lines()
        .find(|l| l.ends_with(" _fcgi_sF"))
        .unwrap_or_else(|| panic!("_fcgi_sF not exported:\n{nm}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 4, "{line}");
    assert_eq!(
        u64::from_str_radix(f[1], 16).ok(),
        Some(48),
        "size of _fcgi_sF: {line}"
    );
    assert!(
        matches!(f[2], "B" | "D"),
        "_fcgi_sF is not a data object: {line}"
    );

    // readelf: an OBJECT, global, default visibility, 48 bytes.
    let syms = run(Command::new("readelf")
        .args(["-W", "--dyn-syms"])
        .arg(project_lib()));
    let line = syms
        .lines()
        .find(|l| l.ends_with(" _fcgi_sF"))
        .unwrap_or_else(|| panic!("_fcgi_sF not in the dynamic symbols:\n{syms}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    // Num: Value Size Type Bind Vis Ndx Name
    assert_eq!(&f[2..6], ["48", "OBJECT", "GLOBAL", "DEFAULT"], "{line}");
}

#[test]
fn soname_is_libfcgi_so_0() {
    let d = run(Command::new("readelf").arg("-d").arg(project_lib()));
    assert!(
        d.contains("Library soname: [libfcgi.so.0]"),
        "SONAME of {}:\n{d}",
        project_lib().display()
    );
}

/// The relocation types against `_fcgi_sF` in `file` (readelf -r).
fn fcgi_sf_relocations(file: &Path) -> Vec<String> {
    run(Command::new("readelf").arg("-rW").arg(file))
        .lines()
        .filter(|l| l.contains(" _fcgi_sF"))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect()
}

#[test]
fn library_reaches_fcgi_sf_through_the_got() {
    require_debian_libfcgi();
    // As Debian's does (and the parsing works).
    assert!(fcgi_sf_relocations(Path::new(SYSTEM_LIB)).contains(&"R_X86_64_GLOB_DAT".into()));
    let relocs = fcgi_sf_relocations(&project_lib());
    assert!(
        relocs.iter().any(|r| r == "R_X86_64_GLOB_DAT"),
        "no GOT entry (R_X86_64_GLOB_DAT) for _fcgi_sF in {}: {relocs:?}; the library must \
         reach it through the GOT so that an executable's copy relocation takes effect",
        project_lib().display()
    );
}

/// Runs tests/libfcgi/abi/copyreloc.c's program `exe` (stdin /dev/null: plain CGI) with
/// `LD_LIBRARY_PATH=ld_path` (None: unset); returns the path of the libfcgi it ran on.
fn run_copyreloc(exe: &Path, ld_path: Option<&Path>) -> PathBuf {
    let mut cmd = Command::new(exe);
    cmd.env_remove("LD_LIBRARY_PATH").env_remove("LD_PRELOAD");
    if let Some(p) = ld_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    let out = run(&mut cmd);
    let mut lines = out.lines();
    let lib = lines
        .next()
        .and_then(|l| l.strip_prefix("lib "))
        .unwrap_or_else(|| panic!("no library line:\n{out}"));
    let oks = lines.filter(|l| l.starts_with("ok ")).count();
    assert_eq!(oks, 2, "{}:\n{out}", exe.display());
    PathBuf::from(lib)
}

#[track_caller]
fn assert_copy_relocated(exe: &Path) {
    let r = fcgi_sf_relocations(exe);
    assert!(
        r.iter().any(|t| t == "R_X86_64_COPY"),
        "{} has no copy relocation of _fcgi_sF ({r:?}): the test proves nothing",
        exe.display()
    );
}

#[track_caller]
fn assert_in_dir(lib: &Path, dir: &Path) {
    let dir = dir.canonicalize().expect("canonicalize");
    assert_eq!(
        lib.canonicalize().ok().as_deref().and_then(Path::parent),
        Some(dir.as_path()),
        "ran on {} instead of a library in {}",
        lib.display(),
        dir.display()
    );
}

#[test]
fn copy_relocated_fcgi_sf_is_shared_with_the_library() {
    require_debian_libfcgi();
    let tmp = TempDir::new("copyreloc");
    let flags = ["-Wall", "-Wextra", "-Werror", "-o"];

    // Built against Debian's headers and library, as existing binaries are.
    let debian_exe = tmp.path("copyreloc-debian");
    run(Command::new(cc())
        .args(flags)
        .arg(&debian_exe)
        .arg(abi_src("copyreloc.c"))
        .arg("-lfcgi"));
    assert_copy_relocated(&debian_exe);
    // On Debian's library: the program itself is right.
    let lib = run_copyreloc(&debian_exe, None);
    assert!(
        lib.starts_with("/usr/lib/x86_64-linux-gnu/"),
        "baseline ran on {}",
        lib.display()
    );
    // The same unmodified binary on the project's library.
    let lib = run_copyreloc(&debian_exe, Some(harness::lib_dir()));
    assert_in_dir(&lib, harness::lib_dir());

    // Built against the project's headers and library.
    let project_exe = tmp.path("copyreloc-project");
    let libdir = harness::lib_dir();
    run(Command::new(cc())
        .args(flags)
        .arg(&project_exe)
        .arg("-I")
        .arg(include_dir())
        .arg(abi_src("copyreloc.c"))
        .arg(format!("-L{}", libdir.display()))
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .arg("-lfcgi"));
    assert_copy_relocated(&project_exe);
    let lib = run_copyreloc(&project_exe, None);
    assert_in_dir(&lib, libdir);
}

// ---- Installation -------------------------------------------------------------------------------

/// `make <target> DESTDIR=dest PREFIX=/usr` at the top of the repository, installing the
/// library this test run built (no cargo build). Variables from an enclosing make or the
/// environment are kept out.
fn make_at_root(target: &str, dest: &Path) -> String {
    make_at_root_with(
        target,
        &[format!("DESTDIR={}", dest.display()), "PREFIX=/usr".into()],
    )
}

/// `make <target> VARS...` at the top of the repository, as `make_at_root` runs it.
fn make_at_root_with(target: &str, vars: &[String]) -> String {
    let mut cmd = Command::new("make");
    for v in [
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
        "LIBDIR",
        "INCLUDEDIR",
        "PKGCONFIGDIR",
        "BUILDLIBDIR",
        "BUILDBINDIR",
        "PREFIX",
        "DESTDIR",
        "BINDIR",
        "MANDIR",
        "SYSCONFDIR",
        "SYSTEMDUNITDIR",
    ] {
        cmd.env_remove(v);
    }
    let tools = harness::tool("fcgi-spawn");
    run(cmd
        .arg("-C")
        .arg(manifest())
        .arg("--no-print-directory")
        .arg(target)
        .args(vars)
        .arg(format!("BUILDLIBDIR={}", harness::lib_dir().display()))
        .arg(format!(
            "BUILDBINDIR={}",
            tools.parent().expect("target/<profile>").display()
        )))
}

/// The tools, their man pages, the pool file's page and example (when the sources have them)
/// and the systemd units, as `make install DESTDIR=... PREFIX=/usr` places them.
fn installed_tool_files() -> BTreeSet<String> {
    let mut want: BTreeSet<String> = ["fcgi-spawn", "fcgi-client", "fcgi-bench"]
        .iter()
        .flat_map(|t| [format!("usr/bin/{t}"), format!("usr/share/man/man1/{t}.1")])
        .collect();
    want.insert("usr/share/man/man1/fcgi-bench-soak.1".into());
    for u in [
        "fcgi-spawn.service",
        "fcgi-spawn@.service",
        "fcgi-spawn@.socket",
    ] {
        want.insert(format!("usr/lib/systemd/system/{u}"));
    }
    if manifest().join("man/fcgi-spawn.conf.5").exists() {
        want.insert("usr/share/man/man5/fcgi-spawn.conf.5".into());
    }
    if manifest().join("etc/fcgi-spawn.conf").exists() {
        want.insert("etc/fcgi-spawn/fcgi-spawn.conf".into());
    }
    want
}

/// Checks the tools' part of an installation under `dest` (PREFIX=/usr): the programs run, the
/// man pages render with `man -l`, the units name the installed paths and pass
/// `systemd-analyze verify` (installed once more under a real prefix, where their programs
/// exist), and an existing pool file is never overwritten.
fn check_installed_tools(tmp: &TempDir, dest: &Path) {
    for t in ["fcgi-spawn", "fcgi-client", "fcgi-bench"] {
        let out = run(Command::new(dest.join("usr/bin").join(t)).arg("--help"));
        assert!(out.contains(&format!("usage: {t}")), "{t} --help: {out}");
    }
    for sect in ["man1", "man5"] {
        let dir = dest.join("usr/share/man").join(sect);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let page = e.path();
            let text = run(Command::new("man")
                .args(["-l", "-P", "cat"])
                .arg(&page)
                .env("MANWIDTH", "100"));
            let name = page.file_stem().unwrap().to_string_lossy().to_string();
            let name = name
                .rsplit_once('.')
                .map_or(name.as_str(), |(n, _)| n)
                .to_string();
            assert!(
                text.contains(&name) && text.lines().count() > 10,
                "{} renders as:\n{text}",
                page.display()
            );
        }
    }
    let unit = std::fs::read_to_string(dest.join("usr/lib/systemd/system/fcgi-spawn.service"))
        .expect("unit");
    assert!(
        unit.contains("ExecStart=/usr/bin/fcgi-spawn --config /etc/fcgi-spawn/fcgi-spawn.conf")
            && unit.contains("Type=notify")
            && unit.contains("KillSignal=SIGQUIT")
            && !unit.contains("/usr/local")
            && !unit.contains(&tmp.0.display().to_string()),
        "{unit}"
    );
    // The units as installed under a prefix whose programs exist: systemd-analyze checks them.
    let prefix = tmp.path("prefix");
    make_at_root_with("install", &[format!("PREFIX={}", prefix.display())]);
    let units = prefix.join("lib/systemd/system");
    for (link, template) in [
        ("fcgi-spawn@www.service", "fcgi-spawn@.service"),
        ("fcgi-spawn@www.socket", "fcgi-spawn@.socket"),
    ] {
        std::os::unix::fs::symlink(template, units.join(link)).expect("instance link");
    }
    run(Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(units.join("fcgi-spawn.service"))
        .arg(units.join("fcgi-spawn@www.service"))
        .arg(units.join("fcgi-spawn@www.socket")));
    let unit = std::fs::read_to_string(units.join("fcgi-spawn.service")).expect("unit");
    assert!(
        unit.contains(&format!("ExecStart={}/bin/fcgi-spawn", prefix.display())),
        "{unit}"
    );
    // A pool file the administrator changed survives install and uninstall.
    if manifest().join("etc/fcgi-spawn.conf").exists() {
        let conf = prefix.join("etc/fcgi-spawn/fcgi-spawn.conf");
        std::fs::write(&conf, "; mine\n").expect("write");
        make_at_root_with("install", &[format!("PREFIX={}", prefix.display())]);
        make_at_root_with("uninstall", &[format!("PREFIX={}", prefix.display())]);
        assert_eq!(
            std::fs::read_to_string(&conf).ok().as_deref(),
            Some("; mine\n")
        );
    }
}

/// Every non-directory under `root`, relative to it.
fn files_under(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                walk(&p, root, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                out.insert(rel.display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// pkg-config on the installed .pc files only.
fn pkg_config(pcdir: &Path, args: &[&str]) -> String {
    run(Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", pcdir)
        .env("PKG_CONFIG_LIBDIR", pcdir)
        .env_remove("PKG_CONFIG_SYSROOT_DIR")
        .args(args))
    .trim()
    .to_string()
}

#[test]
fn make_install_and_uninstall() {
    let tmp = TempDir::new("install");
    let dest = tmp.path("root");
    make_at_root("install", &dest);

    let v: Vec<&str> = env!("CARGO_PKG_VERSION").split('.').collect();
    let real = format!("libfcgi.so.0.{}.{}", v[1], v[2]);
    let headers = ["fcgi.h"].iter().chain(&COMPAT_HEADERS);
    let mut want: BTreeSet<String> = [
        format!("usr/lib/{real}"),
        "usr/lib/libfcgi.so.0".into(),
        "usr/lib/libfcgi.so".into(),
        "usr/lib/libfcgi.a".into(),
        "usr/lib/pkgconfig/fcgi.pc".into(),
        "usr/lib/pkgconfig/fcgi-runtime.pc".into(),
    ]
    .into();
    want.extend(headers.clone().map(|h| format!("usr/include/{h}")));
    want.extend(installed_tool_files());
    assert_eq!(files_under(&dest), want, "installed files");
    check_installed_tools(&tmp, &dest);

    // The library and its links.
    let lib = dest.join("usr/lib");
    assert_eq!(
        std::fs::read(lib.join(&real)).expect("read"),
        std::fs::read(project_lib()).expect("read"),
        "installed library differs from the built one"
    );
    for l in ["libfcgi.so.0", "libfcgi.so"] {
        assert_eq!(
            std::fs::read_link(lib.join(l)).ok(),
            Some(PathBuf::from(&real)),
            "{l} should link to {real}"
        );
    }
    for h in headers {
        assert_eq!(
            std::fs::read(dest.join("usr/include").join(h)).ok(),
            std::fs::read(include_dir().join(h)).ok(),
            "installed {h} differs"
        );
    }

    // The .pc files name the installation paths, not the staging directory.
    let pcdir = lib.join("pkgconfig");
    for pc in ["fcgi", "fcgi-runtime"] {
        for (var, val) in [
            ("prefix", "/usr"),
            ("libdir", "/usr/lib"),
            ("includedir", "/usr/include"),
        ] {
            assert_eq!(pkg_config(&pcdir, &[&format!("--variable={var}"), pc]), val);
        }
        let text = std::fs::read_to_string(pcdir.join(format!("{pc}.pc"))).expect("read .pc");
        assert!(
            !text.contains(&tmp.0.display().to_string()),
            "{pc}.pc names DESTDIR"
        );
    }
    assert_eq!(pkg_config(&pcdir, &["--modversion", "fcgi"]), "2.4.2");
    assert_eq!(
        pkg_config(&pcdir, &["--modversion", "fcgi-runtime"]),
        env!("CARGO_PKG_VERSION")
    );

    // A libfcgi program: cc app.c $(pkg-config --cflags --libs fcgi), relocated to DESTDIR.
    let flags = pkg_config(&pcdir, &["--define-prefix", "--cflags", "--libs", "fcgi"]);
    assert!(
        flags.contains(&format!("-I{}", dest.join("usr/include").display()))
            && flags.contains(&format!("-L{}", lib.display()))
            && flags.contains("-lfcgi"),
        "pkg-config flags: {flags}"
    );
    let exe = tmp.path("compat");
    run(Command::new(cc())
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(abi_src("installed_compat.c"))
        .args(flags.split_whitespace()));
    let d = run(Command::new("readelf").arg("-d").arg(&exe));
    assert!(d.contains("Shared library: [libfcgi.so.0]"), "NEEDED:\n{d}");
    let out = run(Command::new(&exe).env("LD_LIBRARY_PATH", &lib));
    let mut lines = out.lines();
    let ran_on = lines
        .next()
        .and_then(|l| l.strip_prefix("lib "))
        .expect("lib line");
    assert_in_dir(Path::new(ran_on), &lib);
    assert_eq!(lines.collect::<Vec<_>>(), ["installed 1 1"], "{out}");

    // A native-API program, dynamically and statically linked.
    let flags = pkg_config(
        &pcdir,
        &["--define-prefix", "--cflags", "--libs", "fcgi-runtime"],
    );
    let exe = tmp.path("native");
    run(Command::new(cc())
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(abi_src("installed_native.c"))
        .args(flags.split_whitespace()));
    let out = run(Command::new(&exe).env("LD_LIBRARY_PATH", &lib));
    let ran_on = out
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("lib "))
        .expect("lib line");
    assert_in_dir(Path::new(ran_on), &lib);
    assert!(out.contains("max_reqs "), "{out}");

    let flags = pkg_config(
        &pcdir,
        &[
            "--define-prefix",
            "--static",
            "--cflags",
            "--libs",
            "fcgi-runtime",
        ],
    );
    let exe = tmp.path("native-static");
    run(Command::new(cc())
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(abi_src("installed_native.c"))
        .args(
            flags
                .split_whitespace()
                .map(|f| if f == "-lfcgi" { "-l:libfcgi.a" } else { f }),
        ));
    let d = run(Command::new("readelf").arg("-d").arg(&exe));
    assert!(
        !d.contains("libfcgi"),
        "statically linked program needs libfcgi:\n{d}"
    );
    let out = run(&mut Command::new(&exe));
    assert!(out.starts_with("lib ?\nmax_reqs "), "{out}");

    // A header another package put there since is kept; everything else goes.
    let foreign = dest.join("usr/include/fastcgi.h");
    std::fs::write(&foreign, "/* from another package */\n").expect("write");
    make_at_root("uninstall", &dest);
    assert_eq!(
        files_under(&dest),
        BTreeSet::from(["usr/include/fastcgi.h".to_string()]),
        "left behind by make uninstall"
    );
    std::fs::remove_file(&foreign).expect("remove");
}
