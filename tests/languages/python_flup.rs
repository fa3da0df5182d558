//! flup 1.0.3 beside fcgi_runtime (bindings/python; issue 23, items 6 and 8):
//!
//! - `same_app_behind_nginx_on_flup_and_on_the_shim`: one WSGI application
//!   (`tests/languages/python_flup/apps/hello_app.py`, `app`) served by
//!   `tests/languages/python_flup/apps/serve.py` with `flup.server.fcgi.WSGIServer` and then with
//!   `fcgi_runtime.flup.server.fcgi.WSGIServer` (the import is the only difference), behind
//!   nginx: the same answers (environ, a 1 MiB POST by SHA-256, flup's 500 page), and the shim
//!   process runs on the project's library; both stop on SIGTERM with run() returning False.
//! - `throughput_vs_flup` (ignored: a measurement, not a verdict): the same hello on flup and on
//!   fcgi_runtime, threads 1 and 4 and 2 worker processes, fcgi-bench -c 1/4/16 with kept
//!   connections and with one connection per request, median of 3; prints the markdown table of
//!   bindings/python/README.md's "Throughput".
//!
//! The interpreter must import flup (`target/py-venv`, made by `make py-venv`, which `make test`
//! runs first): `FCGI_TEST_PYTHON`, else target/py-venv/bin/python, else python3. Without one
//! the tests are skipped with the reason printed, except under `CI=true`, where they fail.

use crate::harness;
use crate::harness::{show, tcp_ready, wait_for, wait_lib_mapped, Fixture};
use crate::python_wsgi::server::PythonEnv;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const APPS: &str = "tests/languages/python_flup/apps";

/// The interpreter's path if `python` imports flup's servers and fcgi_runtime's package
/// dependencies (the standard library).
fn imports_flup(python: &str) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import flup.server.fcgi, flup.server.fcgi_fork, wsgiref.validate",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python with flup 1.0.3 (see the module's comment), or None (skipped, printed).
fn flup_python() -> Option<String> {
    let candidates: Vec<String> = match std::env::var("FCGI_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => vec![p],
        _ => vec![
            root()
                .join("target/py-venv/bin/python")
                .display()
                .to_string(),
            "python3".to_string(),
        ],
    };
    if let Some(py) = candidates.iter().find(|p| imports_flup(p)) {
        return Some(py.clone());
    }
    let reason =
        format!("no Python among {candidates:?} imports flup 1.0.3 (make py-venv installs it)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}; make test runs make py-venv, so this fails instead of skipping");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

/// `python serve.py IMPL MODULE APP KWARGS` (see apps/serve.py), with PYTHONPATH and the
/// project's library.
fn serve_cmd(py: &str, imp: &str, module: &str, app: &str, kwargs: &str) -> Command {
    let mut cmd = Command::new(py);
    cmd.arg(root().join(APPS).join("serve.py"))
        .args([imp, module, app, kwargs]);
    python_env(&mut cmd);
    cmd
}

fn python_env(cmd: &mut Command) {
    cmd.python_env(&[Path::new(APPS)]);
}

/// nginx: PATH_INFO and SCRIPT_NAME split the way a flup deployment behind nginx sets them
/// (flup derives PATH_INFO from REQUEST_URI minus SCRIPT_NAME; fcgi_runtime takes the whole
/// path when PATH_INFO is absent: with these two params both see the same). No kept upstream
/// connections: flup's run() returns only once every connection's thread has ended.
const LOCATIONS: &str = r#"
        location / {
            @PARAMS@
            fastcgi_param SCRIPT_NAME "";
            fastcgi_param PATH_INFO $fastcgi_script_name;
            fastcgi_param HTTP_X_TEST "from nginx";
            fastcgi_pass app;
        }"#;

/// What one implementation answered, for the comparison.
struct Answers {
    env: String,
    post: String,
    boom: (u16, String),
    missing: u16,
}

fn answers_of(py: &str, imp: &str) -> Answers {
    let mut fx = Fixture::new(&format!("pyflup-{imp}"));
    let port = fx.start_on_free_port(
        "app",
        "Address already in use",
        |port| {
            let kwargs = format!(
                r#"{{"bindAddress": ["127.0.0.1", {port}], "environ": {{"APP_BASE": "base"}}, "maxThreads": 4}}"#
            );
            serve_cmd(py, imp, "fcgi", "app", &kwargs)
        },
        |_, port| tcp_ready(port),
    );
    let pid = fx.pid("app");
    if imp == "shim" {
        fx.check(wait_lib_mapped(pid), || {
            format!("the shim (pid {pid}) never mapped a libfcgi")
        });
        fx.check(harness::runs_project_lib(pid), || {
            format!("the shim (pid {pid}) does not run on the project's library")
        });
    }
    fx.start_nginx(
        &format!("    upstream app {{\n        server 127.0.0.1:{port};\n    }}\n"),
        LOCATIONS,
    );
    let r = fx.get("/env?x=1");
    fx.check(r.status == 200, || {
        format!("{imp} GET /env: {} {}", r.status, show(&r.body))
    });
    let env = r.text();
    let upload = fx.path("upload.bin");
    std::fs::write(&upload, harness::body(1 << 20, 0xf1_0b)).expect("write the upload");
    let want = harness::sha256_file(&upload);
    let r = fx.curl(
        &["--data-binary", &format!("@{}", upload.display())],
        "/post",
    );
    fx.check(r.status == 200 && r.text().contains(&want), || {
        format!("{imp} POST /post: {} {} (want {want})", r.status, r.text())
    });
    let post = r.text();
    let r = fx.get("/boom");
    let boom = (r.status, r.text());
    let missing = fx.get("/nowhere").status;
    // One SIGTERM (a second one makes fcgi_runtime exit at once).
    // SAFETY: kill(2) on the pid of a child this fixture started and has not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let st = fx.wait_exit("app");
    fx.check(st.success(), || {
        format!("{imp} exited with {st} after SIGTERM")
    });
    let out = std::fs::read_to_string(fx.path("app.out")).unwrap_or_default();
    fx.check(out.contains("run returned False"), || {
        format!("{imp}: run() did not return False after SIGTERM; stdout: {out:?}")
    });
    Answers {
        env,
        post,
        boom,
        missing,
    }
}

#[test]
fn same_app_behind_nginx_on_flup_and_on_the_shim() {
    let Some(py) = flup_python() else { return };
    let flup = answers_of(&py, "flup");
    let shim = answers_of(&py, "shim");
    // The environ the application sees: flup's values, including the environ argument and
    // wsgi.multithread/multiprocess/run_once.
    assert_eq!(
        shim.env, flup.env,
        "environ differs (left: fcgi_runtime.flup, right: flup)"
    );
    for line in [
        "PATH_INFO=/env",
        "SCRIPT_NAME=",
        "QUERY_STRING=x=1",
        "HTTP_X_TEST=from nginx",
        "APP_BASE=base",
        "wsgi.multithread=True",
        "wsgi.multiprocess=False",
        "wsgi.run_once=False",
    ] {
        assert!(
            shim.env.lines().any(|l| l == line),
            "no {line:?} in the shim's environ:\n{}",
            shim.env
        );
    }
    assert_eq!(shim.post, flup.post, "the POST's answer differs");
    assert_eq!(shim.missing, 404);
    assert_eq!(flup.missing, 404);
    // An exception: flup's own 500 page, the same bytes.
    assert_eq!(shim.boom.0, 500);
    assert_eq!(shim.boom, flup.boom, "the error page differs");
    assert!(
        shim.boom.1.contains("Unhandled Exception"),
        "{}",
        shim.boom.1
    );
}

// ---------------------------------------------------------------------------------------------
// Throughput
// ---------------------------------------------------------------------------------------------

/// One server of the comparison: how it is started, and whether it runs yet.
struct Bench {
    label: &'static str,
    /// `flup`/`shim` with serve.py's module and kwargs, or `cli` with fcgi_runtime's arguments.
    how: (&'static str, &'static str, &'static str),
}

const CONNS: [&str; 3] = ["1", "4", "16"];

/// fcgi-bench's requests per second and errors for `conns` connections, kept alive or (with
/// `keep` false) one connection per request.
fn rate(addr: &str, conns: &str, keep: bool) -> (f64, u64) {
    let mut cmd = Command::new(harness::tool("fcgi-bench"));
    cmd.args([
        "-c", conns, "-d", "5", "--warmup", "1", "--expect", "Hello", "--json",
    ]);
    if !keep {
        cmd.arg("--no-keep");
    }
    let out = cmd
        .args([addr, "/hello"])
        .stdin(Stdio::null())
        .output()
        .expect("run fcgi-bench");
    let text = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<serde_json::Value>(text.trim()) {
        Ok(v) => (
            v["requests_per_s"].as_f64().unwrap_or(0.0),
            v["errors"].as_u64().unwrap_or(0),
        ),
        Err(_) => {
            eprintln!(
                "fcgi-bench -c {conns} {addr}: no JSON: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            (0.0, 1)
        }
    }
}

fn start_bench(py: &str, b: &Bench, port: u16) -> Child {
    let (kind, a, c) = b.how;
    let mut cmd = if kind == "cli" {
        let mut cmd = Command::new(py);
        cmd.args(["-m", "fcgi_runtime", "hello_app:hello", "--bind"])
            .arg(format!("127.0.0.1:{port}"))
            .args(a.split_whitespace());
        python_env(&mut cmd);
        cmd
    } else {
        let kwargs = c.replace("PORT", &port.to_string());
        serve_cmd(py, kind, a, "hello", &kwargs)
    };
    // A process group of its own: the pre-forked children go with it (kill_group).
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the server")
}

/// SIGKILL to the server's process group (its pre-forked children too), then reaps it.
fn kill_group(child: &mut Child) {
    // SAFETY: killpg(2) on the process group of a child this test started (process_group(0)
    // made its pid the group id) and has not reaped.
    unsafe {
        libc::killpg(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Not a verdict: requests per second of the same hello (hello_app.py's `hello`, the code of
/// plain_app.py's) on flup 1.0.3 and on fcgi_runtime, same machine, same run, fcgi-bench
/// on the socket (no web server), connections kept alive (as nginx with `fastcgi_keep_conn
/// on`) and one per request (`--no-keep`, nginx's default), median of 3 runs of 5 s per
/// cell (the errors of the 3 runs summed beside it); prints the
/// markdown table of bindings/python/README.md. A row whose server does not start (fcgi_runtime's
/// `--workers` before the workers' merge) is printed as not run. Run with
/// `cargo test --release --test languages -- --ignored --nocapture python_flup::throughput_vs_flup`.
#[test]
#[ignore]
fn throughput_vs_flup() {
    let Some(py) = flup_python() else { return };
    harness::raise_nofile();
    let benches = [
        Bench {
            label: "flup 1.0.3 `fcgi`, multithreaded=False",
            how: (
                "flup",
                "fcgi",
                r#"{"bindAddress": ["127.0.0.1", PORT], "multithreaded": false}"#,
            ),
        },
        Bench {
            label: "fcgi_runtime `--threads 1`",
            how: ("cli", "--threads 1", ""),
        },
        Bench {
            label: "fcgi_runtime.flup `fcgi`, multithreaded=False",
            how: (
                "shim",
                "fcgi",
                r#"{"bindAddress": ["127.0.0.1", PORT], "multithreaded": false}"#,
            ),
        },
        Bench {
            label: "flup 1.0.3 `fcgi`, maxThreads=4",
            how: (
                "flup",
                "fcgi",
                r#"{"bindAddress": ["127.0.0.1", PORT], "maxThreads": 4}"#,
            ),
        },
        Bench {
            label: "fcgi_runtime `--threads 4`",
            how: ("cli", "--threads 4", ""),
        },
        Bench {
            label: "fcgi_runtime.flup `fcgi`, maxThreads=4",
            how: (
                "shim",
                "fcgi",
                r#"{"bindAddress": ["127.0.0.1", PORT], "maxThreads": 4}"#,
            ),
        },
        Bench {
            label: "flup 1.0.3 `fcgi_fork`, maxChildren=2, minSpare=maxSpare=2",
            how: (
                "flup",
                "fcgi_fork",
                r#"{"bindAddress": ["127.0.0.1", PORT], "maxChildren": 2, "minSpare": 2, "maxSpare": 2}"#,
            ),
        },
        Bench {
            label: "fcgi_runtime `--workers 2 --threads 1`",
            how: ("cli", "--workers 2 --threads 1", ""),
        },
        Bench {
            label: "fcgi_runtime.flup `fcgi_fork`, maxChildren=2, minSpare=maxSpare=2",
            how: (
                "shim",
                "fcgi_fork",
                r#"{"bindAddress": ["127.0.0.1", PORT], "maxChildren": 2, "minSpare": 2, "maxSpare": 2}"#,
            ),
        },
    ];
    let mut rows = Vec::new();
    for b in &benches {
        let port = harness::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = start_bench(&py, b, port);
        let ready = wait_for(|| tcp_ready(port) || child.try_wait().ok().flatten().is_some());
        if !ready || child.try_wait().ok().flatten().is_some() {
            println!("== {}: did not start (not run)", b.label);
            rows.push(format!(
                "| {} |{}",
                b.label,
                " not run |".repeat(2 * CONNS.len())
            ));
            kill_group(&mut child);
            continue;
        }
        let mut cells = Vec::new();
        for (keep, conns) in [true, false]
            .into_iter()
            .flat_map(|k| CONNS.into_iter().map(move |c| (k, c)))
        {
            let mut runs: Vec<(f64, u64)> = (0..3).map(|_| rate(&addr, conns, keep)).collect();
            runs.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("a number"));
            let (median, _) = runs[1];
            let errors: u64 = runs.iter().map(|r| r.1).sum();
            println!(
                "== {}: fcgi-bench -c {conns}{} -d 5 --warmup 1: median {median:.0} req/s \
                 (runs {:.0?}, errors {errors})",
                b.label,
                if keep { "" } else { " --no-keep" },
                runs.iter().map(|r| r.0).collect::<Vec<_>>()
            );
            cells.push(if errors > 0 {
                format!("{median:.0} ({errors} errors)")
            } else {
                format!("{median:.0}")
            });
        }
        rows.push(format!("| {} | {} |", b.label, cells.join(" | ")));
        kill_group(&mut child);
    }
    println!(
        "\n| server | kept `-c 1` | kept `-c 4` | kept `-c 16` | `--no-keep -c 1` | \
         `--no-keep -c 4` | `--no-keep -c 16` |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        println!("{r}");
    }
}
