//! P1, P1c, P3, P3c, PN1, PNN1, PN3, PNN3: PHP itself. The stock php-fpm of `make php`
//! (target/php-stock/, PHP's own FastCGI layer) against the php-fpm relinked on fcgi-runtime
//! (target/php/, docs/sapi.md section 5), on the same two scripts: hello.php (a line) and
//! big.php (a 100 KiB body, one echo). Each is measured directly by fcgi-bench (P1, P3, with
//! keep-alive; P1c, P3c, a connection per request) and behind nginx loaded by wrk (PN1, PN3 with
//! the upstream connections kept alive; PNN1, PNN3 with one per request).
//!
//! Both builds run the same configuration: `pm = static` with WORKERS processes, and WORKERS
//! client connections (an FPM worker keeps the connection it accepted while the client keeps
//! it open, so more kept connections than workers would leave some unserved with either build).
//! Each run starts a fresh php-fpm (and nginx), warms it up, then counts the requests of a timed
//! run and the CPU time of FPM's master and workers over it. The builds alternate as in
//! measure.rs; medians over the plan's rounds. Without target/php or target/php-stock the rows
//! say "not measured" (`make php` builds them).

use crate::app::{free_port, Env};
use crate::load::{bench, Load};
use crate::measure::{median, progress, Ctx};
use crate::nginx::{self, Nginx};
use crate::procfs;
use crate::scenarios::{BIG_EXPECT, HELLO_EXPECT};
use crate::wrk::{self, Wrk};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// FPM's workers (`pm.max_children`) and the client connections of every scenario.
const WORKERS: u32 = 4;

const HELLO_PHP: &str = "<?php\necho \"Hello, world!\\n\";\n";
/// 102,400 bytes of the alphabet, repeated, in one echo.
const BIG_PHP: &str = "<?php\nheader('Content-Type: application/octet-stream');\n\
                       echo substr(str_repeat('abcdefghijklmnopqrstuvwxyz', 3939), 0, 102400);\n";

/// The two builds, in the order of the report's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    Stock,
    Relinked,
}

pub const BUILDS: [Build; 2] = [Build::Stock, Build::Relinked];

impl Build {
    pub fn name(self) -> &'static str {
        match self {
            Build::Stock => "stock",
            Build::Relinked => "relinked",
        }
    }

    /// The `make php` prefix.
    fn prefix(self, root: &Path) -> PathBuf {
        root.join(match self {
            Build::Stock => "target/php-stock",
            Build::Relinked => "target/php",
        })
    }
}

/// How a scenario loads php-fpm.
#[derive(Clone, Copy)]
enum Via {
    /// fcgi-bench straight to php-fpm; keep-alive or a connection per request.
    Direct { keep: bool },
    /// wrk to nginx to php-fpm; upstream keep-alive or a connection per request.
    Nginx { keep: bool },
}

/// (id, script, what the response contains, how, title).
const SPECS: [(&str, &str, &str, Via, &str); 8] = [
    (
        "P1",
        "hello.php",
        HELLO_EXPECT,
        Via::Direct { keep: true },
        "PHP hello.php, direct, 4 keep-alive connections",
    ),
    (
        "P1c",
        "hello.php",
        HELLO_EXPECT,
        Via::Direct { keep: false },
        "PHP hello.php, direct, 4 connections, a connection per request",
    ),
    (
        "P3",
        "big.php",
        BIG_EXPECT,
        Via::Direct { keep: true },
        "PHP 100 KiB response, direct, 4 keep-alive connections",
    ),
    (
        "P3c",
        "big.php",
        BIG_EXPECT,
        Via::Direct { keep: false },
        "PHP 100 KiB response, direct, 4 connections, a connection per request",
    ),
    (
        "PN1",
        "hello.php",
        HELLO_EXPECT,
        Via::Nginx { keep: true },
        "PHP hello.php behind nginx, upstream keep-alive, 4 HTTP connections",
    ),
    (
        "PNN1",
        "hello.php",
        HELLO_EXPECT,
        Via::Nginx { keep: false },
        "PHP hello.php behind nginx, a connection per request, 4 HTTP connections",
    ),
    (
        "PN3",
        "big.php",
        BIG_EXPECT,
        Via::Nginx { keep: true },
        "PHP 100 KiB response behind nginx, upstream keep-alive, 4 HTTP connections",
    ),
    (
        "PNN3",
        "big.php",
        BIG_EXPECT,
        Via::Nginx { keep: false },
        "PHP 100 KiB response behind nginx, a connection per request, 4 HTTP connections",
    ),
];

/// One results row of the PHP table.
pub struct PhpRow {
    pub id: String,
    pub title: String,
    pub metric: String,
    /// Median req/s, indexed like `BUILDS`; None where no run counted.
    pub rps: [Option<f64>; 2],
    /// What the cell shows ("1234 req/s", "failed", "not measured").
    pub shown: [String; 2],
    pub details: [String; 2],
    pub command: String,
    /// Why the scenario was not measured, or None.
    pub not_measured: Option<String>,
}

/// One timed run that counted.
struct Run {
    rps: f64,
    /// µs of CPU of FPM's master and workers per request.
    fpm_us: f64,
    /// fcgi-bench's latency percentiles (direct runs only).
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    /// nginx's own CPU per request (nginx runs only).
    nginx_us: Option<f64>,
}

/// The scenarios of this family that `want` selects, one row each.
pub fn run(ctx: &Ctx, want: &dyn Fn(&str) -> bool) -> Result<Vec<PhpRow>, String> {
    let selected: Vec<_> = SPECS.iter().filter(|s| want(s.0)).collect();
    if selected.is_empty() {
        return Ok(Vec::new());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = ctx.env.work.join("php");
    let www = work.join("www");
    let missing = missing(root).or_else(|| {
        std::fs::create_dir_all(&www)
            .and_then(|()| std::fs::write(www.join("hello.php"), HELLO_PHP))
            .and_then(|()| std::fs::write(www.join("big.php"), BIG_PHP))
            .err()
            .map(|e| format!("{}: {e}", www.display()))
    });
    let mut rows = Vec::new();
    for &&(id, script, expect, via, title) in &selected {
        progress(&format!("{id}: {title}"));
        let why = missing.clone().or_else(|| match via {
            Via::Nginx { .. } => nginx::missing().or_else(wrk::missing),
            Via::Direct { .. } => None,
        });
        let runs = match why {
            Some(why) if ctx.plan.strict => return Err(format!("{id} not measured: {why}")),
            Some(why) => {
                progress(&format!("  not measured: {why}"));
                Err(why)
            }
            None => Ok(measure(ctx, root, &work, &www.join(script), expect, via)?),
        };
        rows.push(row(ctx, id, title, script, expect, via, runs));
    }
    Ok(rows)
}

/// Why the PHP builds cannot run, or None.
fn missing(root: &Path) -> Option<String> {
    BUILDS
        .iter()
        .map(|b| b.prefix(root).join("sbin/php-fpm"))
        .find(|p| !p.exists())
        .map(|p| format!("{} not found (make php builds it)", p.display()))
}

/// Every build's runs that counted, and the reasons of those that failed.
type Runs = [(Vec<Run>, Vec<String>); 2];

fn measure(
    ctx: &Ctx,
    root: &Path,
    work: &Path,
    script: &Path,
    expect: &str,
    via: Via,
) -> Result<Runs, String> {
    let mut runs: Runs = Default::default();
    for round in 0..ctx.plan.rounds {
        for k in 0..BUILDS.len() {
            let b = BUILDS[(round as usize + k) % BUILDS.len()];
            let (ok, failed) = &mut runs[b as usize];
            match one(ctx, root, work, b, script, expect, via)? {
                Ok(r) => {
                    progress(&format!(
                        "  round {} {:<8} {:>8.0} req/s  {:>6.1} us FPM CPU/request",
                        round + 1,
                        b.name(),
                        r.rps,
                        r.fpm_us
                    ));
                    ok.push(r);
                }
                Err(why) => {
                    progress(&format!(
                        "  round {} {:<8} failed: {why}",
                        round + 1,
                        b.name()
                    ));
                    failed.push(why);
                }
            }
        }
    }
    Ok(runs)
}

/// One run of build `b`: Err when php-fpm or nginx cannot start (the suite stops), Ok(Err) when
/// a response was wrong or missing (the run does not count).
fn one(
    ctx: &Ctx,
    root: &Path,
    work: &Path,
    b: Build,
    script: &Path,
    expect: &str,
    via: Via,
) -> Result<Result<Run, String>, String> {
    let fpm = Fpm::start(ctx.env, root, &work.join(format!("fpm-{}", b.name())), b)?;
    let secs = ctx.plan.secs;
    let warmup = ctx.plan.warmup.max(0.5);
    match via {
        Via::Direct { keep } => {
            let load = direct_load(keep, secs, expect, script);
            let warm = direct_load(keep, warmup, expect, script);
            let r = bench(ctx.env, &fpm.addr(), &warm)?;
            if r.errors > 0.0 || r.never_served > 0.0 {
                return Ok(Err(format!(
                    "warm-up: {} failed requests ({}), {} connections never served",
                    r.errors, r.error_kinds, r.never_served
                )));
            }
            let cpu0 = fpm.cpu_secs();
            let r = bench(ctx.env, &fpm.addr(), &load)?;
            let cpu1 = fpm.cpu_secs();
            if r.errors > 0.0 || r.never_served > 0.0 || r.requests == 0.0 {
                return Ok(Err(format!(
                    "{} of {} requests failed ({}), {} connections never served",
                    r.errors, r.requests, r.error_kinds, r.never_served
                )));
            }
            Ok(Ok(Run {
                rps: r.rps,
                fpm_us: (cpu1 - cpu0) * 1e6 / r.requests,
                p50_us: Some(r.p50_us),
                p99_us: Some(r.p99_us),
                nginx_us: None,
            }))
        }
        Via::Nginx { keep } => {
            let extra = format!(
                "            fastcgi_param SCRIPT_FILENAME {};\n",
                script.display()
            );
            let nginx = Nginx::start_with(
                &work.join(format!("nginx-{}", b.name())),
                &fpm.addr(),
                keep,
                &extra,
            )?;
            if let Err(e) = nginx.check(expect) {
                return Ok(Err(e));
            }
            let load = Wrk {
                threads: 1,
                conns: WORKERS,
                secs: (secs.round() as u32).max(1),
            };
            let warm = Wrk {
                secs: 1,
                ..load.clone()
            };
            if let Some(why) = wrk::run(&warm, &nginx.url(), expect)?.failure() {
                return Ok(Err(format!("warm-up: {why}")));
            }
            // The warm-up's last requests finish before the clock starts.
            std::thread::sleep(Duration::from_millis(100));
            let (cpu0, ng0) = (fpm.cpu_secs(), procfs::cpu_secs(nginx.pid()).unwrap_or(0.0));
            let r = wrk::run(&load, &nginx.url(), expect)?;
            let (cpu1, ng1) = (fpm.cpu_secs(), procfs::cpu_secs(nginx.pid()).unwrap_or(0.0));
            if let Some(why) = r.failure() {
                return Ok(Err(nginx.failure(why)));
            }
            let per = |s: f64| s * 1e6 / r.requests as f64;
            Ok(Ok(Run {
                rps: r.rps(),
                fpm_us: per(cpu1 - cpu0),
                p50_us: None,
                p99_us: None,
                nginx_us: Some(per(ng1 - ng0)),
            }))
        }
    }
}

/// fcgi-bench's load for a direct run of `secs` seconds.
/// PHP runs the script SCRIPT_FILENAME names (fcgi-bench's own is under /var/www/html).
fn direct_load(keep: bool, secs: f64, expect: &str, script: &Path) -> Load {
    let name = script.file_name().unwrap_or_default().to_string_lossy();
    Load {
        keep,
        params: vec![format!("SCRIPT_FILENAME={}", script.display())],
        uri: Some(format!("/{name}")),
        expect: Some(if expect == HELLO_EXPECT {
            HELLO_EXPECT
        } else {
            BIG_EXPECT
        }),
        ..Load::timed(WORKERS, secs, 0.0)
    }
}

/// The results row: median req/s per build, or why the scenario was not measured.
fn row(
    ctx: &Ctx,
    id: &str,
    title: &str,
    script: &str,
    expect: &str,
    via: Via,
    runs: Result<Runs, String>,
) -> PhpRow {
    let rounds = ctx.plan.rounds;
    let mut rps = [None; 2];
    let mut shown: [String; 2] = Default::default();
    let mut details: [String; 2] = Default::default();
    let not_measured = match runs {
        Err(why) => {
            shown = ["not measured".into(), "not measured".into()];
            Some(why)
        }
        Ok(runs) => {
            for b in BUILDS {
                let (ok, failed) = &runs[b as usize];
                let m = |f: &dyn Fn(&Run) -> Option<f64>| {
                    let v: Vec<f64> = ok.iter().filter_map(f).collect();
                    (!v.is_empty()).then(|| median(v))
                };
                let mut d = Vec::new();
                if let Some(r) = m(&|r| Some(r.rps)) {
                    rps[b as usize] = Some(r);
                    shown[b as usize] = format!("{r:.0} req/s");
                    if let Some(cpu) = m(&|r| Some(r.fpm_us)) {
                        d.push(format!("FPM's CPU {cpu:.1} µs per request"));
                    }
                    if let (Some(p50), Some(p99)) = (m(&|r| r.p50_us), m(&|r| r.p99_us)) {
                        d.push(format!("p50 {p50:.0} us, p99 {p99:.0} us"));
                    }
                    if let Some(ng) = m(&|r| r.nginx_us) {
                        d.push(format!("nginx's own CPU {ng:.1} µs per request"));
                    }
                } else {
                    shown[b as usize] = "failed".into();
                }
                if let Some(first) = failed.first() {
                    d.push(format!(
                        "**{} of {rounds} runs failed** (not counted), the first: {first}",
                        failed.len()
                    ));
                }
                details[b as usize] = d.join("; ");
            }
            None
        }
    };
    let fpm = format!(
        "PREFIX/sbin/php-fpm -n -F -y CONF (PREFIX = target/php-stock or target/php; CONF: pm \
         = static, pm.max_children = {WORKERS}, listen = 127.0.0.1:PORT)"
    );
    let load = match via {
        Via::Direct { keep } => format!(
            "fcgi-bench {} 127.0.0.1:PORT /{script}",
            direct_load(keep, ctx.plan.secs, expect, &Path::new("WWW").join(script)).shown_args()
        ),
        Via::Nginx { keep } => {
            let flat = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
            let (upstream, pass) = nginx::upstream_config("127.0.0.1:PORT", keep);
            let wrk = Wrk {
                threads: 1,
                conns: WORKERS,
                secs: (ctx.plan.secs.round() as u32).max(1),
            };
            format!(
                "nginx (worker_processes 1; {}location / {{ fastcgi_param SCRIPT_FILENAME \
                 WWW/{script}; {} }}); {}",
                if upstream.is_empty() {
                    String::new()
                } else {
                    flat(upstream) + " "
                },
                flat(pass),
                wrk.shown("http://127.0.0.1:HTTP/", expect)
            )
        }
    };
    PhpRow {
        id: id.into(),
        title: title.into(),
        metric: format!("req/s, median of {rounds}"),
        rps,
        shown,
        details,
        command: format!(
            "{fpm}; {load} (WWW = target/bench/php/www; a warm-up run first; FPM's CPU = \
             utime+stime of its master and workers in /proc/PID/stat after minus before the \
             timed run, divided by its requests)"
        ),
        not_measured,
    }
}

/// A php-fpm of one build, in the foreground, its files in a directory of its own.
struct Fpm {
    child: Child,
    port: u16,
}

impl Fpm {
    /// Starts build `b` on a free port with its configuration and log in `dir` (emptied
    /// first) and waits until its workers are ready; checks which libfcgi a worker loaded.
    fn start(env: &Env, root: &Path, dir: &Path, b: Build) -> Result<Fpm, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let log = dir.join("php-fpm.log");
        let conf = dir.join("php-fpm.conf");
        let port = free_port();
        std::fs::write(
            &conf,
            format!(
                "; written by the benchmark suite (bench/suite/php.rs)\n\
                 [global]\nerror_log = {log}\npid = {pid}\ndaemonize = no\n\n\
                 [www]\nlisten = 127.0.0.1:{port}\npm = static\npm.max_children = {WORKERS}\n",
                log = log.display(),
                pid = dir.join("php-fpm.pid").display(),
            ),
        )
        .map_err(|e| format!("{}: {e}", conf.display()))?;
        let prog = b.prefix(root).join("sbin/php-fpm");
        let mut cmd = Command::new(&prog);
        cmd.args(["-n", "-F", "-y"]).arg(&conf);
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.arg("--allow-to-run-as-root");
        }
        match b {
            Build::Relinked => cmd.env("LD_LIBRARY_PATH", &env.release),
            Build::Stock => cmd.env_remove("LD_LIBRARY_PATH"),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", prog.display()))?;
        let mut fpm = Fpm { child, port };
        let t0 = Instant::now();
        loop {
            let ready = std::fs::read_to_string(&log)
                .is_ok_and(|t| t.contains("ready to handle connections"));
            if ready && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(st)) = fpm.child.try_wait() {
                return Err(format!(
                    "{} php-fpm exited before it was ready ({st}); its log: {}",
                    b.name(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(format!("{} php-fpm not ready within 30 s", b.name()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        fpm.check_library(env, b)?;
        Ok(fpm)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The master's live children (its workers), from /proc/*/stat.
    fn workers(&self) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // After the command name: state, then the parent's pid.
                stat.rfind(')')
                    .and_then(|at| stat[at + 1..].split_whitespace().nth(1)?.parse().ok())
                    == Some(self.pid())
            })
            .collect()
    }

    /// CPU seconds of the master and its workers.
    fn cpu_secs(&self) -> f64 {
        std::iter::once(self.pid())
            .chain(self.workers())
            .filter_map(procfs::cpu_secs)
            .sum()
    }

    /// The relinked workers run on target/release/libfcgi.so, the stock ones on no libfcgi.
    fn check_library(&self, env: &Env, b: Build) -> Result<(), String> {
        let workers = self.workers();
        let Some(&worker) = workers.first() else {
            return Err(format!("{} php-fpm has no worker", b.name()));
        };
        let maps = std::fs::read_to_string(format!("/proc/{worker}/maps"))
            .map_err(|e| format!("/proc/{worker}/maps: {e}"))?;
        let ours = env.release.join("libfcgi.so");
        let ours = ours.canonicalize().unwrap_or(ours);
        let ok = match b {
            Build::Relinked => maps.contains(&*ours.to_string_lossy()),
            Build::Stock => !maps.contains("libfcgi"),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} php-fpm's worker {worker} loaded the wrong library (want {})",
                b.name(),
                match b {
                    Build::Relinked => ours.display().to_string(),
                    Build::Stock => "none".into(),
                }
            ))
        }
    }
}

impl Drop for Fpm {
    /// SIGTERM (FPM's master stops its workers and exits), then SIGKILL to the master and the
    /// workers after five seconds.
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill(2) to the php-fpm this runner started.
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for w in self.workers() {
            // SAFETY: kill(2) to a worker of the php-fpm this runner started.
            unsafe { libc::kill(w as i32, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
