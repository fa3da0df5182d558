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
use clap::{ArgAction, Parser};
use measure::{Ctx, Plan};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const ONLY_HELP: &str = "\
comma-separated subset of S1,S2,S3,S3a,S3b,S3c,S4,S5,S6,S7,S8,S9,S9m,S9c,S9p,M,MN,N,NN,P1,P1c,
P3,P3c,PN1,PNN1,PN3,PNN3,sweep; an entry ending in * selects every id it begins
(S3* = S3,S3a,S3b,S3c; S9* = the four system-call counts; N* = N,NN)
S3: 100 KiB in one write; S3a/S3b/S3c: a printf header, then 64 KiB, 8 KiB or 100-byte pieces;
M: threads by keep-alive connections; MN: threads by connections, one connection per request;
N/NN: the application's CPU per request behind nginx (wrk load, --secs rounded to whole
seconds), upstream keep-alive on/off; they need nginx-light and wrk, and are reported as not
measured without them;
PHP (P* = all eight; stock php-fpm against relinked, make php first): P1/P1c hello.php direct
(fcgi-bench) with keep-alive / a connection per request, P3/P3c the same with a 100 KiB
response, PN1/PNN1 and PN3/PNN3 behind nginx (wrk), upstream keep-alive / a connection per
request";

/// The command line (`cargo bench --bench suite -- [OPTIONS]`).
#[derive(Parser, Debug)]
#[command(
    name = "suite",
    about = "The benchmark suite: make bench (or cargo bench --bench suite -- [OPTIONS])",
    override_usage = "cargo bench --bench suite -- [OPTIONS]",
    help_template = "usage: {usage}\n\n{all-args}",
    disable_help_flag = true,
    next_line_help = true
)]
struct Cli {
    /// rounds per throughput scenario (default 5)
    #[arg(long, value_name = "N")]
    rounds: Option<u32>,
    /// seconds per throughput run (default 3)
    #[arg(long, value_name = "S")]
    secs: Option<f64>,
    #[arg(long, value_name = "LIST", value_delimiter = ',', help = ONLY_HELP)]
    only: Option<Vec<String>>,
    /// threads of M and MN (default 1,2,4,8)
    #[arg(long, value_name = "LIST", value_parser = numbers)]
    matrix_threads: Option<Numbers>,
    /// connections of M and MN (default 1,2,4,16,64 for M, 1,4,16,64 for MN)
    #[arg(long, value_name = "LIST", value_parser = numbers)]
    matrix_conns: Option<Numbers>,
    /// seconds per run of a matrix point (default 2)
    #[arg(long, value_name = "S")]
    matrix_secs: Option<f64>,
    /// alternated rounds per matrix point (default 3)
    #[arg(long, value_name = "N")]
    matrix_rounds: Option<u32>,
    /// peers run beside the C programs in the hello, S3 and matrix scenarios:
    /// tokio,go,rust-async,rust-blocking (default) or none; built on first use (rust-async and
    /// rust-blocking: the safe Rust API's hello_async and hello examples, hello scenarios only)
    #[arg(long, value_name = "LIST", value_parser = peer_list)]
    peers: Option<Peers>,
    /// 1 round of 1 s (matrix too), a 64 MiB upload, 1,000 idle connections, 4 sweep points,
    /// matrix threads 1,4 by connections 1,4,64 (defaults: the other options win over them)
    #[arg(long)]
    quick: bool,
    /// fail if fcgi-runtime fails a request or leaves a connection unserved in a throughput
    /// scenario, if a peer cannot be built, or if N/NN cannot run (nginx or wrk missing) (used by
    /// make bench-smoke)
    #[arg(long)]
    strict: bool,
    /// where to write the report (default BENCHMARKS.md for a full run,
    /// target/bench/BENCHMARKS.partial.md otherwise); the chart goes next to a full run's report
    /// as bench/chart.svg
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// put this run's own sections into the report FILE (BENCHMARKS.md), each replacing the
    /// section of the same title or, if new, going before Reproduce, with a line naming this run;
    /// the rest of FILE stays. For runs whose scenarios have sections of their own (P*, S9*, M,
    /// MN): the Results table needs a full run
    #[arg(long, value_name = "FILE")]
    into: Option<PathBuf>,
    /// this text
    #[arg(short = 'h', long, action = ArgAction::Help)]
    help: Option<bool>,
    /// cargo bench passes --bench to the runner (ignored)
    #[arg(long, hide = true)]
    bench: bool,
}

/// A comma-separated list of positive numbers.
#[derive(Clone, Debug)]
struct Numbers(Vec<u32>);

fn numbers(v: &str) -> Result<Numbers, String> {
    v.split(',')
        .map(|x| match x.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("a comma-separated list of positive numbers".to_string()),
        })
        .collect::<Result<_, _>>()
        .map(Numbers)
}

/// tokio, go, rust-async, rust-blocking, or none.
#[derive(Clone, Debug)]
struct Peers(Vec<Variant>);

fn peer_list(v: &str) -> Result<Peers, String> {
    if v == "none" {
        return Ok(Peers(Vec::new()));
    }
    v.split(',')
        .map(|x| {
            PEERS
                .into_iter()
                .find(|p| p.name() == x.trim())
                .ok_or_else(|| {
                    format!("{x} is not one of tokio, go, rust-async, rust-blocking, none")
                })
        })
        .collect::<Result<_, _>>()
        .map(Peers)
}

struct Args {
    plan: Plan,
    only: Option<Vec<String>>,
    out: Option<PathBuf>,
    into: Option<PathBuf>,
    quick: bool,
}

/// The run's plan from the command line: the defaults (or --quick's), then the options given.
fn parse() -> Result<Args, String> {
    let c = Cli::parse();
    let mut plan = Plan {
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
        strict: c.strict,
    };
    if c.quick {
        plan.rounds = 1;
        plan.secs = 1.0;
        plan.warmup = 0.2;
        plan.upload = 64 << 20;
        plan.idle_conns = 1000;
        plan.sweep = vec![1, 4, 16, 64];
        plan.matrix_threads = vec![1, 4];
        plan.matrix_conns = vec![1, 4, 64];
        plan.matrix_conns_nokeep = vec![1, 4, 64];
        plan.matrix_secs = 1.0;
        plan.matrix_rounds = 1;
    }
    plan.rounds = c.rounds.unwrap_or(plan.rounds);
    plan.secs = c.secs.unwrap_or(plan.secs);
    plan.matrix_secs = c.matrix_secs.unwrap_or(plan.matrix_secs);
    plan.matrix_rounds = c.matrix_rounds.unwrap_or(plan.matrix_rounds);
    if let Some(Numbers(t)) = c.matrix_threads {
        plan.matrix_threads = t;
    }
    if let Some(Numbers(conns)) = c.matrix_conns {
        plan.matrix_conns_nokeep = conns.clone();
        plan.matrix_conns = conns;
    }
    if let Some(Peers(p)) = c.peers {
        plan.peers = p;
    }
    if plan.rounds == 0 || plan.secs <= 0.0 || plan.matrix_rounds == 0 || plan.matrix_secs <= 0.0 {
        return Err("--rounds, --secs, --matrix-rounds and --matrix-secs must be positive".into());
    }
    Ok(Args {
        plan,
        only: c
            .only
            .map(|l| l.iter().map(|s| s.trim().to_uppercase()).collect()),
        out: c.out,
        into: c.into,
        quick: c.quick,
    })
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
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
