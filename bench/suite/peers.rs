//! The peers: other FastCGI libraries answering the same hello (and big) as bench/apps/*.c,
//! built from bench/peers/ on first use and kept under target/bench/peers/.
//!
//! - tokio-fastcgi 1.3 (bench/peers/tokio-hello, a Cargo package of its own): `cargo build
//!   --release --locked`, which fetches its crates from crates.io the first time;
//! - Go's net/http/fcgi (bench/peers/go-hello, the standard library only): `go build` with
//!   Debian's golang-go, GOCACHE and GOPATH under target/, GOPROXY=off.
//!
//! - fcgi-runtime's own safe Rust API: the `hello` and `hello_async` examples of the runtime
//!   package (`cargo build --release -p fcgi-runtime --features tokio --example ..`, into a
//!   target directory of their own, so the running `cargo bench` holds no lock on it).
//!
//! A peer that cannot be built (no network for crates.io, no `go`) is reported, not fatal,
//! unless the run is --strict.

use crate::app::Variant;
use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds one peer and returns its program.
type BuildFn = fn(&Peers) -> Result<PathBuf, String>;

pub struct Peers {
    root: PathBuf,
    dir: PathBuf,
    tokio: OnceCell<Result<PathBuf, String>>,
    go: OnceCell<Result<PathBuf, String>>,
    /// The directory holding both Rust API examples, and their programs.
    rust: OnceCell<Result<PathBuf, String>>,
    rust_async: OnceCell<PathBuf>,
    rust_blocking: OnceCell<PathBuf>,
}

/// Runs a build command; its output is kept in `log` and its tail goes in the error. `hint`
/// says where the tool comes from when it cannot be started.
fn build(cmd: &mut Command, log: &Path, hint: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| {
        format!(
            "cannot run {}: {e} ({hint})",
            cmd.get_program().to_string_lossy()
        )
    })?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::write(log, format!("{cmd:?}\n{output}"));
    if out.status.success() {
        return Ok(());
    }
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    Err(format!(
        "build failed ({}; log in {}): {tail}",
        out.status,
        log.display()
    ))
}

impl Peers {
    /// `root` is the repository, `work` target/bench.
    pub fn new(root: &Path, work: &Path) -> Peers {
        Peers {
            root: root.to_path_buf(),
            dir: work.join("peers"),
            tokio: OnceCell::new(),
            go: OnceCell::new(),
            rust: OnceCell::new(),
            rust_async: OnceCell::new(),
            rust_blocking: OnceCell::new(),
        }
    }

    /// The peer's program, built on the first call; the same answer (or error) afterwards.
    pub fn binary(&self, v: Variant) -> Result<&Path, String> {
        let (cell, make): (_, BuildFn) = match v {
            Variant::Tokio => (&self.tokio, Peers::build_tokio),
            Variant::Go => (&self.go, Peers::build_go),
            Variant::RustAsync | Variant::RustBlocking => {
                let dir = self.rust_examples()?;
                let (cell, name) = if v == Variant::RustAsync {
                    (&self.rust_async, "hello_async")
                } else {
                    (&self.rust_blocking, "hello")
                };
                return Ok(cell.get_or_init(|| dir.join(name)));
            }
            _ => return Err(format!("{} is not a peer", v.name())),
        };
        cell.get_or_init(|| {
            eprintln!("[bench] building the {} peer", v.column());
            let r = std::fs::create_dir_all(&self.dir)
                .map_err(|e| format!("{}: {e}", self.dir.display()))
                .and_then(|()| make(self));
            if let Err(e) = &r {
                eprintln!("[bench] {} peer not available: {e}", v.column());
            }
            r
        })
        .as_ref()
        .map(|p| p.as_path())
        .map_err(|e| e.clone())
    }

    /// Peers whose build was tried and failed, with the reason.
    pub fn failures(&self) -> Vec<(Variant, String)> {
        [
            (Variant::Tokio, &self.tokio),
            (Variant::Go, &self.go),
            (Variant::RustAsync, &self.rust),
        ]
        .into_iter()
        .filter_map(|(v, c)| match c.get() {
            Some(Err(e)) => Some((v, e.clone())),
            _ => None,
        })
        .collect()
    }

    fn build_tokio(&self) -> Result<PathBuf, String> {
        let target = self.dir.join("cargo");
        // cargo bench runs this program with CARGO set to the cargo that runs it.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        build(
            Command::new(cargo)
                .args([
                    "build",
                    "--release",
                    "--locked",
                    "--quiet",
                    "--manifest-path",
                ])
                .arg(self.root.join("bench/peers/tokio-hello/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target),
            &self.dir.join("tokio-hello.log"),
            "a Rust toolchain",
        )?;
        Ok(target.join("release/tokio-hello"))
    }

    /// Builds the Rust API's examples once; their directory.
    fn rust_examples(&self) -> Result<&Path, String> {
        self.rust
            .get_or_init(|| {
                eprintln!("[bench] building the Rust API examples (hello, hello_async)");
                let r = std::fs::create_dir_all(&self.dir)
                    .map_err(|e| format!("{}: {e}", self.dir.display()))
                    .and_then(|()| self.build_rust());
                if let Err(e) = &r {
                    eprintln!("[bench] Rust API examples not available: {e}");
                }
                r
            })
            .as_ref()
            .map(|p| p.as_path())
            .map_err(|e| e.clone())
    }

    fn build_rust(&self) -> Result<PathBuf, String> {
        let target = self.dir.join("rust");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        build(
            Command::new(cargo)
                .args(["build", "--release", "--quiet", "-p", "fcgi-runtime"])
                .args(["--features", "tokio", "--example", "hello", "--example"])
                .arg("hello_async")
                .arg("--manifest-path")
                .arg(self.root.join("Cargo.toml"))
                .arg("--target-dir")
                .arg(&target),
            &self.dir.join("rust-examples.log"),
            "a Rust toolchain",
        )?;
        Ok(target.join("release/examples"))
    }

    fn build_go(&self) -> Result<PathBuf, String> {
        let out = self.dir.join("go-hello");
        build(
            Command::new("go")
                .args(["build", "-o"])
                .arg(&out)
                .arg(".")
                .current_dir(self.root.join("bench/peers/go-hello"))
                .env("GOCACHE", self.dir.join("go-cache"))
                .env("GOPATH", self.dir.join("go-path"))
                .env("GOPROXY", "off")
                .env("GOTOOLCHAIN", "local")
                .env("GOFLAGS", ""),
            &self.dir.join("go-hello.log"),
            "apt-get install golang-go",
        )?;
        Ok(out)
    }
}

/// What the report's Machine table says about the peers: Go's version, and the tokio-fastcgi and
/// tokio versions that bench/peers/tokio-hello/Cargo.lock pins.
pub fn versions(root: &Path) -> Vec<(String, String)> {
    let lock = std::fs::read_to_string(root.join("bench/peers/tokio-hello/Cargo.lock"))
        .unwrap_or_default();
    let version = |name: &str| {
        let at = lock.find(&format!("name = \"{name}\"\nversion = \""))?;
        let rest = &lock[at..];
        let v = rest.split('"').nth(3)?;
        Some(format!("{name} {v}"))
    };
    let tokio: Vec<String> = ["tokio-fastcgi", "tokio"]
        .iter()
        .filter_map(|n| version(n))
        .collect();
    let go = Command::new("go")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "not installed".into());
    vec![
        ("tokio-fastcgi peer".into(), tokio.join(", ")),
        ("Go peer".into(), go),
    ]
}
