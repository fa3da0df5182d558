//! The benchmark suite: `make bench` (or `cargo bench --bench suite -- [OPTIONS]`).
//!
//! Builds bench/apps/ with the system's cc, runs scenarios S1-S9 and a connection sweep against
//! the native API, the libfcgi API on fcgi-runtime and the same binary on Debian's libfcgi, and
//! writes BENCHMARKS.md and bench/chart.svg. Not a test: nothing here passes or fails on timing.

mod app;
mod load;
mod procfs;
mod report;
mod scenarios;

use scenarios::{Ctx, Plan};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo bench --bench suite -- [OPTIONS]

  --rounds N      rounds per throughput scenario (default 5)
  --secs S        seconds per throughput run (default 3)
  --only LIST     comma-separated subset of S1,S2,S3,S4,S5,S6,S7,S8,S9,sweep
  --quick         1 round of 1 s, a 64 MiB upload, 1,000 idle connections, 4 sweep points
  --strict        fail if fcgi-runtime fails a request or leaves a connection unserved
                  in a throughput scenario (used by make bench-smoke)
  --out FILE      where to write the report (default BENCHMARKS.md for a full run,
                  target/bench/BENCHMARKS.partial.md otherwise); the chart goes next to a
                  full run's report as bench/chart.svg
  -h, --help      this text";

struct Args {
    plan: Plan,
    only: Option<Vec<String>>,
    out: Option<PathBuf>,
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
            strict: false,
        },
        only: None,
        out: None,
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => a.plan.rounds = val()?.parse().map_err(|_| "--rounds: a number")?,
            "--secs" => a.plan.secs = val()?.parse().map_err(|_| "--secs: a number")?,
            "--only" => a.only = Some(val()?.split(',').map(|s| s.trim().to_uppercase()).collect()),
            "--strict" => a.plan.strict = true,
            "--out" => a.out = Some(PathBuf::from(val()?)),
            "--quick" => {
                a.quick = true;
                a.plan.rounds = 1;
                a.plan.secs = 1.0;
                a.plan.warmup = 0.2;
                a.plan.upload = 64 << 20;
                a.plan.idle_conns = 1000;
                a.plan.sweep = vec![1, 4, 16, 64];
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            // cargo bench passes --bench to the runner.
            "--bench" => {}
            _ => return Err(format!("unknown option {arg}\n\n{USAGE}")),
        }
    }
    if a.plan.rounds == 0 || a.plan.secs <= 0.0 {
        return Err("--rounds and --secs must be positive".into());
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
    let env = app::Env::prepare(root, Path::new(env!("CARGO_BIN_EXE_fcgi-bench")))?;
    let nofile = procfs::raise_nofile();
    let mut plan_idle = args.plan.idle_conns;
    // Each side holds one descriptor per connection, plus a margin.
    if u64::from(plan_idle) + 64 > nofile {
        plan_idle = nofile.saturating_sub(64) as u32;
        eprintln!("[bench] open-file limit {nofile}: S5 holds {plan_idle} connections");
    }
    let plan = Plan {
        idle_conns: plan_idle,
        sweep: args.plan.sweep.clone(),
        ..args.plan
    };
    let ctx = Ctx {
        env: &env,
        plan: &plan,
    };
    let want = |s: &str| args.only.as_ref().is_none_or(|l| l.iter().any(|x| x == s));
    let mut rows = Vec::new();
    if ["S1", "S2", "S3", "S6", "S7"].iter().any(|s| want(s)) {
        let mut t = scenarios::throughput(&ctx, &want)?;
        rows.append(&mut t);
    }
    if want("S4") {
        rows.push(scenarios::upload(&ctx)?);
    }
    if want("S5") {
        rows.push(scenarios::idle(&ctx)?);
    }
    if want("S8") {
        rows.append(&mut scenarios::cpu(&ctx)?);
    }
    if want("S9") {
        rows.append(&mut scenarios::syscalls(&ctx)?);
    }
    rows.sort_by_key(|r| (r.id[1..2].to_string(), r.id.len()));
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
        std::fs::write(&chart_file, report::svg(&sweep)).map_err(|e| e.to_string())?;
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
    let machine = procfs::machine();
    let md = report::markdown(&report::Doc {
        machine: &machine,
        rows: &rows,
        sweep: &sweep,
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
    if !sweep.is_empty() {
        eprintln!("[bench] wrote {}", chart_file.display());
    }
    Ok(())
}
