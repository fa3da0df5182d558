//! What the fcgi-spawn test files share: the tools' paths, the libfcgi test program, temporary
//! directories and small readers of /proc and the status page's JSON.

use crate::harness;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub fn spawn_exe() -> PathBuf {
    harness::tool("fcgi-spawn")
}

pub fn bench_exe() -> PathBuf {
    let b = spawn_exe().with_file_name("fcgi-bench");
    assert!(b.exists(), "{} missing: cargo builds it", b.display());
    b
}

/// tests/harness/web/lf_webapp.c compiled once against Debian's headers and `-lfcgi` (the
/// program is an unmodified libfcgi program; which library it runs on is chosen at run time).
pub fn lf_webapp() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            harness::require("/usr/include/fcgiapp.h", "libfcgi-dev");
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let dir = spawn_exe()
                .parent()
                .expect("target/<profile>")
                .join("fcgi-spawn-tests");
            fs::create_dir_all(&dir).expect("build dir");
            let out = dir.join("lf_webapp");
            let tmp = dir.join(format!("lf_webapp.tmp{}", std::process::id()));
            let res = Command::new("cc")
                .args(["-O2", "-Wall", "-Wextra", "-Werror", "-I"])
                .arg(root.join("tests/harness/web"))
                .arg(root.join("tests/harness/web/lf_webapp.c"))
                .arg("-o")
                .arg(&tmp)
                .args(["-lfcgi", "-lpthread"])
                .stdin(Stdio::null())
                .output()
                .expect("run cc");
            assert!(
                res.status.success(),
                "cc lf_webapp.c -lfcgi failed:\n{}",
                String::from_utf8_lossy(&res.stderr)
            );
            fs::rename(&tmp, &out).expect("rename");
            out
        })
        .clone()
}

/// A fresh directory, mode 0777: reachable by the users `-u` and pool files switch to.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "fcgi-spawn-{tag}-{}-{}",
        std::process::id(),
        harness::unique()
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("create temp dir");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).expect("chmod temp dir");
    d
}

/// The environment of process `pid` (/proc/PID/environ), empty when it is gone.
pub fn environ(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// The first number after `"key":` in the status page's JSON.
pub fn json_num(json: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("{key} missing in {json}"));
    json[at + pat.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}
