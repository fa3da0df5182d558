//! How a throughput figure is taken: the plan (how long, how often), the variants a scenario
//! runs, and alternated rounds of fcgi-bench runs reduced to medians. Each run starts a fresh
//! application.

use crate::app::{App, Env, Variant, Wrapper, ALL, VARIANTS};
use crate::load::{bench, BenchResult, Load};

/// How long and how often.
#[derive(Clone)]
pub struct Plan {
    pub rounds: u32,
    pub secs: f64,
    pub warmup: f64,
    pub upload: u64,
    pub idle_conns: u32,
    pub sweep: Vec<u32>,
    /// The thread-by-connection matrix: threads, keep-alive connections, connections without
    /// keep-alive, and its own seconds per run and rounds (it has many points).
    pub matrix_threads: Vec<u32>,
    pub matrix_conns: Vec<u32>,
    pub matrix_conns_nokeep: Vec<u32>,
    pub matrix_secs: f64,
    pub matrix_rounds: u32,
    /// The peers to run beside the C programs (tokio, go).
    pub peers: Vec<Variant>,
    /// Fail when fcgi-runtime (native or libfcgi API) fails a request or leaves a connection
    /// unserved in a throughput run (the smoke run in make test), or when a peer cannot be built.
    pub strict: bool,
}

pub struct Ctx<'a> {
    pub env: &'a Env,
    pub plan: &'a Plan,
}

impl Ctx<'_> {
    /// The three C variants, then each peer of the plan that answers `mode` and builds (built
    /// on first use). A peer that does not build is left out; the report names it
    /// (Peers::failures).
    pub fn with_peers(&self, mode: &str) -> Result<Vec<Variant>, String> {
        let mut v = VARIANTS.to_vec();
        for &p in self.plan.peers.iter().filter(|p| p.supports(mode)) {
            match self.env.peers.binary(p) {
                Ok(_) => v.push(p),
                Err(e) if self.plan.strict => return Err(format!("{} peer: {e}", p.column())),
                Err(_) => {}
            }
        }
        Ok(v)
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians over rounds of one variant's fcgi-bench results.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mb_in: f64,
    /// The worst round.
    pub never_served: f64,
    pub errors: f64,
}

fn summarize(rs: &[BenchResult]) -> Summary {
    let m = |f: fn(&BenchResult) -> f64| median(rs.iter().map(f).collect());
    Summary {
        rps: m(|r| r.rps),
        p50_us: m(|r| r.p50_us),
        p99_us: m(|r| r.p99_us),
        mb_in: m(|r| r.mb_in),
        never_served: rs.iter().map(|r| r.never_served).fold(0.0, f64::max),
        errors: rs.iter().map(|r| r.errors).sum(),
    }
}

/// One summary per variant, indexed like `ALL` (`Variant::index`); None where not measured.
pub type Results = [Option<Summary>; ALL.len()];

pub fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// Runs `load` against each of `variants`, `rounds` times, the order rotating every round.
pub fn alternate(
    ctx: &Ctx,
    variants: &[Variant],
    threads: u32,
    mode: &str,
    load: &Load,
    rounds: u32,
) -> Result<Results, String> {
    let mut results: [Vec<BenchResult>; ALL.len()] = Default::default();
    let n = variants.len();
    for round in 0..rounds {
        for k in 0..n {
            let v = variants[(round as usize + k) % n];
            let app = App::start(ctx.env, v, threads, mode, 0, &Wrapper::None)?;
            let r = bench(ctx.env, &app.addr(), load)?;
            drop(app);
            progress(&format!(
                "  round {} {:<6} {:>10.0} req/s  p99 {:>7.0} us  unserved {}  errors {}",
                round + 1,
                v.name(),
                r.rps,
                r.p99_us,
                r.never_served,
                r.errors
            ));
            if ctx.plan.strict && v.is_ours() && (r.errors > 0.0 || r.never_served > 0.0) {
                return Err(format!(
                    "{}: {} failed requests, {} connections never served",
                    v.name(),
                    r.errors,
                    r.never_served
                ));
            }
            results[v.index()].push(r);
        }
    }
    Ok(results.map(|rs| (!rs.is_empty()).then(|| summarize(&rs))))
}

/// Runs `v` in MODE under `wrap` twice, exiting after `counts.0` and then `counts.1` requests
/// of `load`, and returns what `read` extracted from each run (the difference is per request,
/// free of start-up and exit).
pub fn two_runs<T>(
    ctx: &Ctx,
    v: Variant,
    (threads, mode): (u32, &str),
    load: &dyn Fn(u64) -> Load,
    wrap: &dyn Fn(u64) -> Wrapper,
    read: &dyn Fn(&Wrapper) -> Result<T, String>,
    counts: (u64, u64),
) -> Result<(T, T), String> {
    let mut out = Vec::new();
    for n in [counts.0, counts.1] {
        let w = wrap(n);
        let app = App::start(ctx.env, v, threads, mode, n, &w)?;
        let r = bench(ctx.env, &app.addr(), &load(n))?;
        if r.errors > 0.0 || r.requests < n as f64 {
            return Err(format!(
                "{}: {} errors in a counted run",
                v.name(),
                r.errors
            ));
        }
        app.wait_exit(std::time::Duration::from_secs(120))?;
        out.push(read(&w)?);
    }
    let b = out.pop().unwrap();
    let a = out.pop().unwrap();
    Ok((a, b))
}
