//! The benchmark suite: `make bench` (or `cargo bench --bench suite -- [OPTIONS]`).
//!
//! Builds bench/apps/ with the system's cc (and the peers in bench/peers/ on first use), runs
//! scenarios S1-S9, the thread-by-connection matrices, the application's CPU per request behind
//! nginx (N, NN) and a connection sweep against the native API, the libfcgi API on
//! fcgi-runtime, the same binary on Debian's libfcgi and the peers (tokio-fastcgi, Go's
//! net/http/fcgi), then PHP's stock php-fpm against the one relinked on fcgi-runtime (P*, with
//! `make php`'s builds), and writes BENCHMARKS.md and bench/chart.svg. Not a test: nothing here
//! passes or fails on timing.
#![deny(clippy::undocumented_unsafe_blocks)]

mod app;
mod behind_nginx;
mod chart;
mod load;
mod matrix;
mod measure;
mod nginx;
mod peers;
mod php;
mod procfs;
mod report;
mod scenarios;
mod splice;
mod syscalls;
mod wrk;

use app::{Variant, PEERS};
use measure::{Ctx, Plan};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo bench --bench suite -- [OPTIONS]

  --rounds N      rounds per throughput scenario (default 5)
  --secs S        seconds per throughput run (default 3)
  --only LIST     comma-separated subset of S1,S2,S3,S3a,S3b,S3c,S4,S5,S6,S7,S8,S9,S9m,S9c,
                  S9p,M,MN,N,NN,P1,P1c,P3,P3c,PN1,PNN1,PN3,PNN3,sweep; an entry ending in * selects every id it begins
                  (S3* = S3,S3a,S3b,S3c; S9* = the four system-call counts; N* = N,NN)
                  S3: 100 KiB in one write; S3a/S3b/S3c: a printf header, then 64 KiB,
                  8 KiB or 100-byte pieces; M: threads by keep-alive connections;
                  MN: threads by connections, one connection per request;
                  N/NN: the application's CPU per request behind nginx (wrk load, --secs
                  rounded to whole seconds), upstream keep-alive on/off; they need
                  nginx-light and wrk, and are reported as not measured without them;
                  PHP (P* = all eight; stock php-fpm against relinked, make php first):
                  P1/P1c hello.php direct (fcgi-bench) with keep-alive / a connection per
                  request, P3/P3c the same with a 100 KiB response, PN1/PNN1 and PN3/PNN3
                  behind nginx (wrk), upstream keep-alive / a connection per request
  --matrix-threads LIST   threads of M and MN (default 1,2,4,8)
  --matrix-conns LIST     connections of M and MN (default 1,2,4,16,64 for M,
                          1,4,16,64 for MN)
  --matrix-secs S         seconds per run of a matrix point (default 2)
  --matrix-rounds N       alternated rounds per matrix point (default 3)
  --peers LIST    peers run beside the C programs in the hello, S3 and matrix scenarios:
                  tokio,go (default) or none; built on first use
  --quick         1 round of 1 s (matrix too), a 64 MiB upload, 1,000 idle connections,
                  4 sweep points, matrix threads 1,4 by connections 1,4,64
  --strict        fail if fcgi-runtime fails a request or leaves a connection unserved
                  in a throughput scenario, if a peer cannot be built, or if N/NN cannot
                  run (nginx or wrk missing) (used by make bench-smoke)
  --out FILE      where to write the report (default BENCHMARKS.md for a full run,
                  target/bench/BENCHMARKS.partial.md otherwise); the chart goes next to a
                  full run's report as bench/chart.svg
  --into FILE     put this run's own sections into the report FILE (BENCHMARKS.md), each
                  replacing the section of the same title or, if new, going before
                  Reproduce, with a line naming this run; the rest of FILE stays. For
                  runs whose scenarios have sections of their own (P*, S9*, M, MN): the
                  Results table needs a full run
  -h, --help      this text";

/// A comma-separated list of numbers.
fn numbers(name: &str, v: &str) -> Result<Vec<u32>, String> {
    v.split(',')
        .map(|x| match x.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{name}: a comma-separated list of positive numbers"
            )),
        })
        .collect()
}

/// tokio,go or none.
fn peer_list(v: &str) -> Result<Vec<Variant>, String> {
    if v == "none" {
        return Ok(Vec::new());
    }
    v.split(',')
        .map(|x| {
            PEERS
                .into_iter()
                .find(|p| p.name() == x.trim())
                .ok_or_else(|| format!("--peers: {x} is not one of tokio, go, none"))
        })
        .collect()
}

struct Args {
    plan: Plan,
    only: Option<Vec<String>>,
    out: Option<PathBuf>,
    into: Option<PathBuf>,
    quick: bool,
}

fn parse() -> Result<Option<Args>, String> {
    let mut a = Args {
        plan: Plan {
            rounds: 5,
            secs: 3.0,
            warmup: 0.5,
            upload: 1 << 30,
            idle_conns: 10_000,
            sweep: vec![1, 2, 4, 8, 16, 32, 64],
            matrix_threads: vec![1, 2, 4, 8],
            matrix_conns: vec![1, 2, 4, 16, 64],
            matrix_conns_nokeep: vec![1, 4, 16, 64],
            matrix_secs: 2.0,
            matrix_rounds: 3,
            peers: PEERS.to_vec(),
            strict: false,
        },
        only: None,
        out: None,
        into: None,
        quick: false,
    };
    // --quick sets defaults: any other option wins over it, wherever it stands.
    if std::env::args().any(|a| a == "--quick") {
        a.quick = true;
        a.plan.rounds = 1;
        a.plan.secs = 1.0;
        a.plan.warmup = 0.2;
        a.plan.upload = 64 << 20;
        a.plan.idle_conns = 1000;
        a.plan.sweep = vec![1, 4, 16, 64];
        a.plan.matrix_threads = vec![1, 4];
        a.plan.matrix_conns = vec![1, 4, 64];
        a.plan.matrix_conns_nokeep = vec![1, 4, 64];
        a.plan.matrix_secs = 1.0;
        a.plan.matrix_rounds = 1;
    }
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => a.plan.rounds = val()?.parse().map_err(|_| "--rounds: a number")?,
            "--secs" => a.plan.secs = val()?.parse().map_err(|_| "--secs: a number")?,
            "--only" => a.only = Some(val()?.split(',').map(|s| s.trim().to_uppercase()).collect()),
            "--matrix-threads" => a.plan.matrix_threads = numbers(&arg, &val()?)?,
            "--matrix-conns" => {
                a.plan.matrix_conns = numbers(&arg, &val()?)?;
                a.plan.matrix_conns_nokeep = a.plan.matrix_conns.clone();
            }
            "--matrix-secs" => {
                a.plan.matrix_secs = val()?.parse().map_err(|_| "--matrix-secs: a number")?
            }
            "--matrix-rounds" => {
                a.plan.matrix_rounds = val()?.parse().map_err(|_| "--matrix-rounds: a number")?
            }
            "--peers" => a.plan.peers = peer_list(&val()?)?,
            "--strict" => a.plan.strict = true,
            "--out" => a.out = Some(PathBuf::from(val()?)),
            "--into" => a.into = Some(PathBuf::from(val()?)),
            "--quick" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            // cargo bench passes --bench to the runner.
            "--bench" => {}
            _ => return Err(format!("unknown option {arg}\n\n{USAGE}")),
        }
    }
    if a.plan.rounds == 0
        || a.plan.secs <= 0.0
        || a.plan.matrix_rounds == 0
        || a.plan.matrix_secs <= 0.0
    {
        return Err("--rounds, --secs, --matrix-rounds and --matrix-secs must be positive".into());
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // fcgi-bench belongs to the tools crate; `make bench` builds the workspace first.
    let fcgi_bench = root.join("target/release/fcgi-bench");
    if !fcgi_bench.exists() {
        return Err(format!(
            "{} is missing: run `make build` first",
            fcgi_bench.display()
        ));
    }
    let env = app::Env::prepare(root, &fcgi_bench)?;
    let nofile = procfs::raise_nofile();
    let mut plan_idle = args.plan.idle_conns;
    // Each side holds one descriptor per connection, plus a margin.
    if u64::from(plan_idle) + 64 > nofile {
        plan_idle = nofile.saturating_sub(64) as u32;
        eprintln!("[bench] open-file limit {nofile}: S5 holds {plan_idle} connections");
    }
    let plan = Plan {
        idle_conns: plan_idle,
        ..args.plan.clone()
    };
    let ctx = Ctx {
        env: &env,
        plan: &plan,
    };
    // --only's entries are upper-cased; an entry ending in * selects the ids it begins.
    let want = |id: &str| {
        let id = id.to_uppercase();
        args.only.as_ref().is_none_or(|l| {
            l.iter().any(|x| match x.strip_suffix('*') {
                Some(prefix) => id.starts_with(prefix),
                None => *x == id,
            })
        })
    };
    let mut rows = Vec::new();
    rows.append(&mut scenarios::throughput(&ctx, &want)?);
    if want("S4") {
        rows.push(scenarios::upload(&ctx)?);
    }
    if want("S5") {
        rows.push(scenarios::idle(&ctx)?);
    }
    if want("S8") {
        rows.append(&mut scenarios::cpu(&ctx)?);
    }
    let (mut s9, syscall_table) = syscalls::syscalls(&ctx, &want)?;
    rows.append(&mut s9);
    let mut matrices = Vec::new();
    for (id, keep) in [("M", true), ("MN", false)] {
        if want(id) {
            let m = matrix::run(&ctx, keep)?;
            rows.push(matrix::summary_row(&m));
            matrices.push(m);
        }
    }
    rows.append(&mut behind_nginx::run(&ctx, &want)?);
    let php_rows = php::run(&ctx, &want)?;
    // S1..S9 by number (S3 before S3a), then M, MN, N, NN.
    rows.sort_by_key(|r| {
        let digit = r.id[1..].chars().next().filter(char::is_ascii_digit);
        (digit.is_none(), digit, r.id.chars().next(), r.id.len())
    });
    let sweep = if want("SWEEP") {
        scenarios::sweep(&ctx)?
    } else {
        Vec::new()
    };
    let full = args.only.is_none() && !args.quick;
    let out = args.out.clone().unwrap_or_else(|| {
        if full {
            root.join("BENCHMARKS.md")
        } else {
            env.work.join("BENCHMARKS.partial.md")
        }
    });
    let chart_file =
        out.parent()
            .unwrap_or(root)
            .join(if full { "bench/chart.svg" } else { "chart.svg" });
    let chart_rel = chart_file
        .strip_prefix(out.parent().unwrap_or(root))
        .map(|p| p.to_string_lossy().to_string())
        .ok();
    if !sweep.is_empty() {
        std::fs::write(&chart_file, chart::svg(&sweep)).map_err(|e| e.to_string())?;
    }
    let mut invocation = String::from("make bench");
    let extra: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if !extra.is_empty() {
        invocation = format!("make bench BENCH_ARGS=\"{}\"", extra.join(" "));
    }
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let notes = std::fs::read_to_string(root.join("bench/notes.md")).unwrap_or_default();
    let mut machine = procfs::machine();
    if !plan.peers.is_empty() {
        machine.extend(peers::versions(root));
    }
    let peer_failures = env.peers.failures();
    let md = report::markdown(&report::Doc {
        machine: &machine,
        rows: &rows,
        syscalls: &syscall_table,
        matrices: &matrices,
        php: &php_rows,
        sweep: &sweep,
        peer_failures: &peer_failures,
        chart: if sweep.is_empty() {
            None
        } else {
            chart_rel.as_deref()
        },
        invocation: &invocation,
        date: &date,
        notes: &notes,
    });
    std::fs::write(&out, &md).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("[bench] wrote {}", out.display());
    if let Some(into) = &args.into {
        if !rows.is_empty() {
            return Err(format!(
                "--into: this run has rows of the Results table ({}), which only a full run \
                 writes",
                rows.iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let old = std::fs::read_to_string(into).map_err(|e| format!("{}: {e}", into.display()))?;
        let by = format!("This section: `{invocation}` on {date}.");
        let merged = splice::splice(&old, &md, &by)?;
        std::fs::write(into, merged).map_err(|e| format!("{}: {e}", into.display()))?;
        eprintln!("[bench] put this run's sections into {}", into.display());
    }
    if !sweep.is_empty() {
        eprintln!("[bench] wrote {}", chart_file.display());
    }
    Ok(())
}
