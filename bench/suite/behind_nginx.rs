//! N and NN: the application's CPU time per request behind nginx, with the upstream connections
//! kept alive (N: `keepalive 8`, `fastcgi_keep_conn on`) and with a connection per request
//! (NN: a plain `fastcgi_pass`). hello, 4 application threads; wrk drives nginx over HTTP
//! keep-alive. Each run starts a fresh application and a fresh nginx (nginx.rs), warms them up
//! for a second, then reads the application's utime+stime from /proc/PID/stat before and after
//! the timed wrk run and divides the difference by the responses wrk counted. Variants are
//! alternated as in measure.rs; medians over the plan's rounds.

use crate::app::{App, Variant, Wrapper, ALL, VARIANTS};
use crate::measure::{median, progress, Ctx};
use crate::nginx::{self, Nginx};
use crate::procfs;
use crate::report::Row;
use crate::scenarios::HELLO_EXPECT;
use crate::wrk::{self, Wrk};
use std::time::Duration;

const THREADS: u32 = 4;
const CONNS: u32 = 16;

/// (id, upstream connections kept alive, title).
const SPECS: [(&str, bool, &str); 2] = [
    (
        "N",
        true,
        "hello behind nginx, upstream keep-alive, 4 threads, 16 HTTP connections",
    ),
    (
        "NN",
        false,
        "hello behind nginx, a connection per request, 4 threads, 16 HTTP connections",
    ),
];

/// One timed run that counted.
struct Run {
    app_us: f64,
    nginx_us: f64,
    rps: f64,
}

/// The scenarios of this family that `want` selects, one results row each.
pub fn run(ctx: &Ctx, want: &dyn Fn(&str) -> bool) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (id, keep, title) in SPECS {
        if !want(id) {
            continue;
        }
        progress(&format!("{id}: application CPU per request, {title}"));
        let load = Wrk {
            threads: 1,
            conns: CONNS,
            secs: (ctx.plan.secs.round() as u32).max(1),
        };
        match nginx::missing().or_else(wrk::missing) {
            Some(why) if ctx.plan.strict => return Err(format!("{id} not measured: {why}")),
            Some(why) => {
                progress(&format!("  not measured: {why}"));
                rows.push(row(ctx, id, keep, title, &load, Err(why)));
            }
            None => {
                let runs = measure(ctx, id, keep, &load)?;
                rows.push(row(ctx, id, keep, title, &load, Ok(runs)));
            }
        }
    }
    Ok(rows)
}

/// Every variant's runs that counted, and the reasons of those that failed.
type Runs = [(Vec<Run>, Vec<String>); ALL.len()];

fn measure(ctx: &Ctx, id: &str, keep: bool, load: &Wrk) -> Result<Runs, String> {
    let mut runs: Runs = Default::default();
    let dir = ctx.env.work.join(format!("nginx-{id}"));
    let n = VARIANTS.len();
    for round in 0..ctx.plan.rounds {
        for k in 0..n {
            let v = VARIANTS[(round as usize + k) % n];
            let (ok, failed) = &mut runs[v.index()];
            match one(ctx, v, keep, &dir, load)? {
                Ok(r) => {
                    progress(&format!(
                        "  round {} {:<6} {:>6.1} us app CPU/request  {:>6.1} us nginx  {:>8.0} req/s",
                        round + 1,
                        v.name(),
                        r.app_us,
                        r.nginx_us,
                        r.rps
                    ));
                    ok.push(r);
                }
                Err(why) => {
                    progress(&format!(
                        "  round {} {:<6} failed: {why}",
                        round + 1,
                        v.name()
                    ));
                    if ctx.plan.strict && v.is_ours() {
                        return Err(format!("{id}, {}: {why}", v.name()));
                    }
                    failed.push(why);
                }
            }
        }
    }
    Ok(runs)
}

/// One run of `v`: Err when the application or nginx cannot start (the suite stops), Ok(Err)
/// when a response was wrong or missing (the run does not count).
fn one(
    ctx: &Ctx,
    v: Variant,
    keep: bool,
    dir: &std::path::Path,
    load: &Wrk,
) -> Result<Result<Run, String>, String> {
    let app = App::start(ctx.env, v, THREADS, "hello", 0, &Wrapper::None)?;
    let nginx = Nginx::start(dir, &app.addr(), keep)?;
    if let Err(e) = nginx.check(HELLO_EXPECT) {
        return Ok(Err(e));
    }
    let warm = Wrk {
        secs: 1,
        ..load.clone()
    };
    if let Some(why) = wrk::run(&warm, &nginx.url(), HELLO_EXPECT)?.failure() {
        return Ok(Err(format!("warm-up: {why}")));
    }
    // The warm-up's last requests finish before the clock starts.
    std::thread::sleep(Duration::from_millis(100));
    let cpu = || {
        procfs::cpu_secs(app.pid())
            .zip(procfs::cpu_secs(nginx.pid()))
            .ok_or("cannot read /proc/PID/stat of the application or nginx")
    };
    let (app0, nginx0) = cpu()?;
    let r = wrk::run(load, &nginx.url(), HELLO_EXPECT)?;
    let (app1, nginx1) = cpu()?;
    if let Some(why) = r.failure() {
        return Ok(Err(nginx.failure(why)));
    }
    let per = |s: f64| s * 1e6 / r.requests as f64;
    Ok(Ok(Run {
        app_us: per(app1 - app0),
        nginx_us: per(nginx1 - nginx0),
        rps: r.rps(),
    }))
}

/// The results row: µs of application CPU per request (lower is better), or why the scenario
/// was not measured.
fn row(
    ctx: &Ctx,
    id: &str,
    keep: bool,
    title: &str,
    load: &Wrk,
    runs: Result<Runs, String>,
) -> Row {
    let rounds = ctx.plan.rounds;
    let mut values = [None; ALL.len()];
    let mut shown: [String; ALL.len()] = Default::default();
    let mut details: [String; ALL.len()] = Default::default();
    let not_measured = match runs {
        Err(why) => {
            for v in VARIANTS {
                shown[v.index()] = "not measured".into();
            }
            Some(why)
        }
        Ok(runs) => {
            for v in VARIANTS {
                let (ok, failed) = &runs[v.index()];
                let m = |f: fn(&Run) -> f64| median(ok.iter().map(f).collect());
                let mut d = String::new();
                if !ok.is_empty() {
                    values[v.index()] = Some(m(|r| r.app_us));
                    shown[v.index()] = format!("{:.1} µs", m(|r| r.app_us));
                    d = format!(
                        "{:.0} req/s through nginx; nginx's own CPU {:.1} µs per request",
                        m(|r| r.rps),
                        m(|r| r.nginx_us)
                    );
                } else {
                    shown[v.index()] = "failed".into();
                }
                if let Some(first) = failed.first() {
                    if !d.is_empty() {
                        d += "; ";
                    }
                    d += &format!(
                        "**{} of {rounds} runs failed** (not counted), the first: {first}",
                        failed.len()
                    );
                }
                details[v.index()] = d;
            }
            None
        }
    };
    let (nat, ours, deb) = (
        values[Variant::Native.index()],
        values[Variant::Ours.index()],
        values[Variant::Debian.index()],
    );
    let verdict = match (nat, ours, deb) {
        (Some(n), Some(o), Some(d)) => Some(n <= d && o <= d),
        (_, _, Some(_)) => Some(false),
        _ => None,
    };
    let flat = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (upstream, pass) = nginx::upstream_config("127.0.0.1:PORT", keep);
    let (upstream, pass) = (flat(upstream), flat(pass));
    Row {
        id: id.into(),
        title: title.into(),
        metric: format!("µs of application CPU per request (lower is better), median of {rounds}"),
        values,
        shown,
        details,
        target: "<= 1.0x libfcgi (lower is better)".into(),
        verdict,
        command: format!(
            "APP 127.0.0.1:PORT {THREADS} hello; nginx -p DIR/ -c DIR/nginx.conf (DIR = \
             target/bench/nginx-{id}; worker_processes 1; {}location / {{ {pass} }}); {}; \
             application CPU = \
             utime+stime of /proc/PID/stat after minus before that wrk run (a 1 s wrk run \
             warms up first), divided by wrk's requests",
            if upstream.is_empty() {
                String::new()
            } else {
                upstream + " "
            },
            load.shown("http://127.0.0.1:HTTP/", HELLO_EXPECT),
        ),
        not_measured,
    }
}
