//! The Python package as a user installs it, with nothing else of the project around: `make
//! wheel`'s `dist/fcgi_runtime-*.whl`, and `make sdist`'s `dist/fcgi_runtime-*.tar.gz` (which
//! pip builds with cargo), each installed into a fresh virtual environment (`python3 -m venv`)
//! in a temporary directory. The server then runs with a cleared environment (no PYTHONPATH, no
//! FCGI_RUNTIME_LIB, no LD_LIBRARY_PATH; PATH=/usr/bin:/bin) from a directory holding only a
//! tiny WSGI application, as `VENV/bin/python -m fcgi_runtime` and as the console script
//! `VENV/bin/fcgi-runtime-wsgi`; fcgi-client queries it, and the application answers with the
//! library it loaded (`fcgi_runtime.load_library().path`), which must be the copy inside the
//! environment's site-packages, the only libfcgi the process maps.
//!
//! Skipped, with the reason printed, when the wheel or the sdist is not built (`make wheel`,
//! `make sdist`; `make test` builds both) or python3 cannot create a virtual environment
//! (python3-venv); under `CI=true` each of these fails instead. The sdist test also needs
//! cargo, the one running the tests (CARGO), and the package registry for pip's build
//! backend (setuptools); it builds in `target/sdist-build` (CARGO_TARGET_DIR), so a rerun is
//! incremental. Both tests print how long each step took.

use crate::harness::{self, tcp_ready, Fixture};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The PATH of every command run in the cleared environment.
const MIN_PATH: &str = "/usr/bin:/bin";
/// The bound of one step (venv, pip install, a cold cargo build of the library on a slow
/// machine): a hung step fails the test instead of hanging it.
const STEP_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The application: the library it runs on, where the package was imported from, the
/// interpreter's prefix, which of the variables that could point elsewhere are set, and
/// whether the installed package has its subpackages (the flup shim) and `py.typed`.
const APP: &str = r#"import importlib.util
import os
import sys

import fcgi_runtime


def app(environ, start_response):
    lines = [
        "lib=" + fcgi_runtime.load_library().path,
        "package=" + os.path.dirname(os.path.abspath(fcgi_runtime.__file__)),
        "prefix=" + sys.prefix,
        "set=" + ",".join(
            k for k in ("PYTHONPATH", "FCGI_RUNTIME_LIB", "LD_LIBRARY_PATH") if k in os.environ
        ),
        "path=" + environ.get("PATH_INFO", ""),
        "shim=" + ("yes" if importlib.util.find_spec("fcgi_runtime.flup.server.fcgi") else "no"),
        "typed=" + str(os.path.exists(os.path.join(os.path.dirname(fcgi_runtime.__file__), "py.typed"))),
    ]
    body = ("\n".join(lines) + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"#;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Skips the test (None, the reason printed), or fails it under `CI=true`.
fn missing<T>(reason: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}; CI builds and installs it, so this fails instead of skipping");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

/// The newest `dist/fcgi_runtime-*SUFFIX` (make TARGET writes it).
fn dist_file(suffix: &str, target: &str) -> Option<PathBuf> {
    let dist = root().join("dist");
    let newest = std::fs::read_dir(&dist)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("fcgi_runtime-") && name.ends_with(suffix)
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max();
    match newest {
        Some((_, path)) => Some(path),
        None => missing(&format!(
            "no {}/fcgi_runtime-*{suffix}: run `make {target}`",
            dist.display()
        )),
    }
}

/// python3 on PATH=/usr/bin:/bin (FCGI_TEST_PYTHON if set), if it can create a virtual
/// environment with pip.
fn venv_python() -> Option<String> {
    let py = std::env::var("FCGI_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import ensurepip, venv"])
        .env_clear()
        .env("PATH", MIN_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(py)
    } else {
        missing(&format!(
            "{py} (PATH={MIN_PATH}) cannot create a virtual environment with pip \
             (apt-get install python3-venv)"
        ))
    }
}

/// Runs one step to its end (bounded by [`STEP_TIMEOUT`]), its output in `LABEL.log` in the
/// fixture directory; fails the test with that output if it fails. Returns its stdout and
/// stderr, and prints how long it took.
fn step(fx: &Fixture, label: &str, cmd: &mut Command) -> String {
    let log = fx.path(&format!("{label}.log"));
    let file = std::fs::File::create(&log).expect("create the step's log");
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup the log"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| fx.fail(&format!("{label}: cannot start {cmd:?}: {e}")));
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if started.elapsed() < STEP_TIMEOUT => {
                thread::sleep(Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                fx.fail(&format!(
                    "{label}: {cmd:?} did not end within {STEP_TIMEOUT:?}"
                ));
            }
        }
    };
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    fx.check(status.success(), || {
        format!("{label}: {cmd:?} failed ({status}):\n{out}")
    });
    eprintln!("{label}: {:.1} s", started.elapsed().as_secs_f64());
    out
}

/// A command with the cleared environment: PATH=/usr/bin:/bin, nothing else.
fn bare(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().env("PATH", MIN_PATH);
    cmd
}

/// A fresh virtual environment `NAME` in the fixture directory; returns its directory.
fn new_venv(fx: &Fixture, python: &str, name: &str) -> PathBuf {
    let venv = fx.path(name);
    step(
        fx,
        &format!("{name}-create"),
        bare(Path::new(python)).args(["-m", "venv"]).arg(&venv),
    );
    venv
}

/// The environment's site-packages where its package lives (platlib: the wheel is not pure).
fn site_packages(fx: &Fixture, venv: &Path) -> PathBuf {
    let out = step(
        fx,
        "site-packages",
        bare(&venv.join("bin/python")).args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['platlib'])",
        ]),
    );
    let dir = PathBuf::from(out.trim());
    dir.canonicalize()
        .unwrap_or_else(|e| fx.fail(&format!("site-packages {}: {e}", dir.display())))
}

/// The lines `name=value` of an answer.
fn value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
}

/// Starts `program ARGS app:app --bind 127.0.0.1:PORT` (cleared environment, from the
/// application's directory), queries it with fcgi-client, checks that it runs on `lib` (the
/// copy in site-packages) and nothing else, then stops it with SIGTERM.
fn serve_and_check(fx: &mut Fixture, label: &str, program: &Path, args: &[&str], venv: &Path) {
    let site = site_packages(fx, venv);
    let lib = site.join("fcgi_runtime/libfcgi.so");
    fx.check(lib.is_file(), || {
        format!("{label}: the install has no {}", lib.display())
    });
    let apps = fx.path("app");
    std::fs::create_dir_all(&apps).expect("mkdir app");
    std::fs::write(apps.join("wheel_app.py"), APP).expect("write the application");

    let started = Instant::now();
    let port = fx.start_on_free_port(
        label,
        "Address already in use",
        |port| {
            let mut cmd = bare(program);
            cmd.args(args)
                .args(["wheel_app:app", "--bind", &format!("127.0.0.1:{port}")])
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .current_dir(&apps);
            cmd
        },
        |_, port| tcp_ready(port),
    );
    let pid = fx.pid(label);
    let out = Command::new(harness::tool("fcgi-client"))
        .args([&format!("127.0.0.1:{port}"), "/wheel"])
        .stdin(Stdio::null())
        .output()
        .expect("run fcgi-client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    fx.check(out.status.success() && text.contains("200 OK"), || {
        format!(
            "{label}: fcgi-client: {} {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!(
        "{label}: served after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let canon = |p: &str| PathBuf::from(p).canonicalize().ok();
    fx.check(
        value(&text, "lib").and_then(canon) == Some(lib.clone()),
        || {
            format!(
                "{label}: the library loaded is not {}:\n{text}",
                lib.display()
            )
        },
    );
    fx.check(
        value(&text, "package").and_then(canon) == Some(site.join("fcgi_runtime")),
        || {
            format!(
                "{label}: the package was not imported from {}:\n{text}",
                site.display()
            )
        },
    );
    fx.check(value(&text, "set") == Some(""), || {
        format!("{label}: the server's environment is not cleared:\n{text}")
    });
    fx.check(value(&text, "path") == Some("/wheel"), || {
        format!("{label}: not the request sent:\n{text}")
    });
    fx.check(
        value(&text, "shim") == Some("yes") && value(&text, "typed") == Some("True"),
        || format!("{label}: fcgi_runtime.flup or py.typed is not installed:\n{text}"),
    );
    // The process maps that copy, and no other libfcgi.
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mapped: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("libfcgi"))
        .collect();
    let want = lib.to_string_lossy();
    fx.check(
        !mapped.is_empty() && mapped.iter().all(|p| *p == want),
        || format!("{label}: maps {mapped:?}, want only {want}"),
    );

    // SAFETY: kill(2) on the pid of a child this fixture started and has not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let st = fx.wait_exit(label);
    fx.check(st.success(), || {
        format!("{label}: exit status {st} after SIGTERM, want 0")
    });
}

/// Both ways to start the server: `python -m fcgi_runtime` and the console script.
fn serve_both_ways(fx: &mut Fixture, venv: &Path) {
    let python = venv.join("bin/python");
    serve_and_check(fx, "python-m", &python, &["-m", "fcgi_runtime"], venv);
    let script = venv.join("bin/fcgi-runtime-wsgi");
    fx.check(script.is_file(), || {
        format!("no console script {}", script.display())
    });
    serve_and_check(fx, "console-script", &script, &[], venv);
}

#[test]
fn wheel_installs_into_a_fresh_venv_and_serves_on_its_own_library() {
    let Some(wheel) = dist_file(".whl", "wheel") else {
        return;
    };
    let Some(python) = venv_python() else { return };
    let started = Instant::now();
    let mut fx = Fixture::new("pywheel");
    let venv = new_venv(&fx, &python, "venv");
    // --no-index: the wheel alone, nothing from a registry.
    step(
        &fx,
        "pip-install-wheel",
        bare(&venv.join("bin/pip"))
            .args(["install", "--no-index", "--no-cache-dir"])
            .args(["--disable-pip-version-check", "--no-input"])
            .arg(&wheel)
            .env("HOME", &fx.dir),
    );
    serve_both_ways(&mut fx, &venv);
    eprintln!(
        "wheel test ({}): {:.1} s",
        wheel.display(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn sdist_builds_the_library_with_cargo_and_serves_on_it() {
    let Some(sdist) = dist_file(".tar.gz", "sdist") else {
        return;
    };
    let Some(python) = venv_python() else { return };
    // The cargo running these tests; its directory on PATH finds rustc beside it (a toolchain)
    // or rustup's proxies.
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").into()));
    let cargo_dir = cargo.parent().expect("cargo's directory").to_path_buf();
    let started = Instant::now();
    let mut fx = Fixture::new("pysdist");
    let venv = new_venv(&fx, &python, "venv");
    let mut pip = bare(&venv.join("bin/pip"));
    // --no-cache-dir: pip would reuse a wheel it built from an sdist of the same name.
    pip.args(["install", "--no-cache-dir", "--disable-pip-version-check"])
        .args(["--no-input", "--verbose"])
        .arg(&sdist)
        .env("PATH", format!("{}:{MIN_PATH}", cargo_dir.display()))
        .env("CARGO", &cargo)
        .env("CARGO_TARGET_DIR", root().join("target/sdist-build"));
    // Where cargo and rustup keep their state (the crates already fetched), if not under HOME.
    for var in [
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "CARGO_NET_OFFLINE",
    ] {
        if let Some(v) = std::env::var_os(var) {
            pip.env(var, v);
        }
    }
    let out = step(&fx, "pip-install-sdist", &mut pip);
    fx.check(out.contains("cargo build --release --locked"), || {
        format!("pip did not build the library with cargo:\n{out}")
    });
    serve_both_ways(&mut fx, &venv);
    eprintln!(
        "sdist test ({}): {:.1} s",
        sdist.display(),
        started.elapsed().as_secs_f64()
    );
}
