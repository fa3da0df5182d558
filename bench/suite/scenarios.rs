//! The scenarios S1-S9 and the connection sweep behind the chart. Each measurement starts a
//! fresh application; throughput scenarios run every variant once per round, in an order that
//! rotates from round to round, and keep the median.

use crate::app::{App, Env, Variant, Wrapper, VARIANTS};
use crate::load::{bench, hold_idle, BenchResult, Load};
use crate::procfs;
use crate::report::{Row, SweepPoint};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long and how often.
pub struct Plan {
    pub rounds: u32,
    pub secs: f64,
    pub warmup: f64,
    pub upload: u64,
    pub idle_conns: u32,
    pub sweep: Vec<u32>,
    /// Fail when fcgi-runtime (native or libfcgi API) fails a request or leaves a connection
    /// unserved in a throughput run (the smoke run in make test).
    pub strict: bool,
}

pub struct Ctx<'a> {
    pub env: &'a Env,
    pub plan: &'a Plan,
}

fn median(mut v: Vec<f64>) -> f64 {
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

fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// Runs `load` against all three variants, `rounds` times, alternating.
fn pairwise(
    ctx: &Ctx,
    threads: u32,
    mode: &str,
    load: &Load,
    rounds: u32,
) -> Result<[Summary; 3], String> {
    let mut results: [Vec<BenchResult>; 3] = Default::default();
    for round in 0..rounds {
        for k in 0..3 {
            let i = (round as usize + k) % 3;
            let v = VARIANTS[i];
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
            if ctx.plan.strict && v != Variant::Debian && (r.errors > 0.0 || r.never_served > 0.0) {
                return Err(format!(
                    "{}: {} failed requests, {} connections never served",
                    v.name(),
                    r.errors,
                    r.never_served
                ));
            }
            results[i].push(r);
        }
    }
    Ok([
        summarize(&results[0]),
        summarize(&results[1]),
        summarize(&results[2]),
    ])
}

fn cmd_line(threads: u32, mode: &str, load: &Load) -> String {
    format!(
        "APP 127.0.0.1:PORT {threads} {mode}; fcgi-bench {} 127.0.0.1:PORT",
        load.shown_args()
    )
}

fn fmt_rps(s: &Summary) -> String {
    format!("{:.0} req/s", s.rps)
}

/// S1, S2, S3, S6, S7.
pub fn throughput(ctx: &Ctx, want: &dyn Fn(&str) -> bool) -> Result<Vec<Row>, String> {
    let p = ctx.plan;
    let mut rows = Vec::new();
    let hello = Some("Hello, world!");
    let specs: [(&str, &str, u32, &str, Load); 5] = [
        (
            "S1",
            "hello, 1 thread, 1 keep-alive connection",
            1,
            "hello",
            Load {
                expect: hello,
                ..Load::timed(1, p.secs, p.warmup)
            },
        ),
        (
            "S2",
            "hello, 4 threads, 64 keep-alive connections",
            4,
            "hello",
            Load {
                expect: hello,
                ..Load::timed(64, p.secs, p.warmup)
            },
        ),
        (
            "S3",
            "100 KiB responses, 4 threads, 4 connections",
            4,
            "big",
            Load {
                expect: Some("abcdefghijklmnopqrstuvwxyz"),
                ..Load::timed(4, p.secs, p.warmup)
            },
        ),
        (
            "S6",
            "hello, 4 threads, 1 connection, multiplexing depth 32",
            4,
            "hello",
            Load {
                depth: 32,
                expect: hello,
                ..Load::timed(1, p.secs, p.warmup)
            },
        ),
        (
            "S7",
            "hello, 4 threads, 16 connections, no keep-alive",
            4,
            "hello",
            Load {
                keep: false,
                expect: hello,
                ..Load::timed(16, p.secs, p.warmup)
            },
        ),
    ];
    for (id, title, threads, mode, load) in specs {
        if !want(id) {
            continue;
        }
        progress(&format!("{id}: {title}"));
        let s = pairwise(ctx, threads, mode, &load, p.rounds)?;
        let detail = |x: &Summary| {
            let mut d = format!("p50 {:.0} us, p99 {:.0} us", x.p50_us, x.p99_us);
            if mode == "big" {
                d += &format!(", {:.0} MB/s", x.mb_in);
            }
            if x.never_served > 0.0 {
                d += &format!(
                    ", **{:.0} of {} connections never served**",
                    x.never_served, load.conns
                );
            }
            if x.errors > 0.0 {
                d += &format!(", **{:.0} failed requests**", x.errors);
            }
            d
        };
        let (target, verdict) = match id {
            "S1" => (
                ">= 1.0x libfcgi",
                Some(s[0].rps >= s[2].rps && s[1].rps >= s[2].rps),
            ),
            "S2" => (
                "all 64 connections served, p99 < 10 ms",
                Some((0..2).all(|i| {
                    s[i].never_served == 0.0 && s[i].p99_us < 10_000.0 && s[i].errors == 0.0
                })),
            ),
            "S3" => (
                ">= 2x libfcgi",
                Some(s[0].rps >= 2.0 * s[2].rps && s[1].rps >= 2.0 * s[2].rps),
            ),
            "S6" => (
                "every request answered (libfcgi cannot multiplex)",
                Some(s[0].errors == 0.0 && s[1].errors == 0.0),
            ),
            _ => ("(no target)", None),
        };
        rows.push(Row {
            id: id.into(),
            title: title.into(),
            metric: format!("req/s, median of {}", p.rounds),
            values: [Some(s[0].rps), Some(s[1].rps), Some(s[2].rps)],
            shown: [fmt_rps(&s[0]), fmt_rps(&s[1]), fmt_rps(&s[2])],
            details: [detail(&s[0]), detail(&s[1]), detail(&s[2])],
            target: target.into(),
            verdict,
            command: cmd_line(threads, mode, &load),
        });
    }
    Ok(rows)
}

/// The chart's data: req/s and p99 against the number of connections, 4 threads.
pub fn sweep(ctx: &Ctx) -> Result<Vec<SweepPoint>, String> {
    let p = ctx.plan;
    let mut pts = Vec::new();
    progress("sweep: hello, 4 threads, 1..64 keep-alive connections");
    for &c in &p.sweep {
        let load = Load {
            expect: Some("Hello, world!"),
            ..Load::timed(c, p.secs, p.warmup)
        };
        let s = pairwise(ctx, 4, "hello", &load, 1)?;
        for (i, v) in VARIANTS.iter().enumerate() {
            pts.push(SweepPoint {
                variant: *v,
                conns: c,
                rps: s[i].rps,
                p99_us: s[i].p99_us,
                never_served: s[i].never_served as u32,
            });
        }
    }
    Ok(pts)
}

/// S4: one upload of `plan.upload` bytes to an application that reads and counts it.
pub fn upload(ctx: &Ctx) -> Result<Row, String> {
    let size = ctx.plan.upload;
    progress(&format!(
        "S4: one {} MiB upload, peak RSS growth",
        size >> 20
    ));
    let warm = Load {
        body: 64 << 10,
        expect_stdin_length: true,
        ..Load::counted(1, 20)
    };
    let big = Load {
        body: size,
        expect_stdin_length: true,
        timeout: 120.0,
        ..Load::counted(1, 1)
    };
    let mut values = [None; 3];
    let mut shown: [String; 3] = Default::default();
    let mut details: [String; 3] = Default::default();
    for (i, v) in VARIANTS.iter().enumerate() {
        let app = App::start(ctx.env, *v, 1, "drain", 0, &Wrapper::None)?;
        bench(ctx.env, &app.addr(), &warm)?;
        let rss0 = procfs::rss_kib(app.pid());
        let t0 = Instant::now();
        let r = bench(ctx.env, &app.addr(), &big)?;
        let secs = t0.elapsed().as_secs_f64();
        let hwm = procfs::hwm_kib(app.pid());
        let growth = hwm.saturating_sub(rss0);
        progress(&format!(
            "  {:<6} RSS {rss0} KiB -> peak {hwm} KiB, errors {}",
            v.name(),
            r.errors
        ));
        values[i] = Some(growth as f64);
        shown[i] = format!("{growth} KiB");
        details[i] = format!(
            "RSS {rss0} KiB before, peak {hwm} KiB; {:.0} MB/s{}",
            size as f64 / secs / 1e6,
            if r.errors > 0.0 {
                ", **upload failed**"
            } else {
                ""
            }
        );
    }
    let ok = (0..2).all(|i| values[i].is_some_and(|g| g < 4096.0));
    Ok(Row {
        id: "S4".into(),
        title: format!("one {} MiB upload, 1 thread", size >> 20),
        metric: "peak RSS growth".into(),
        values,
        shown,
        details,
        target: "< 4 MiB".into(),
        verdict: Some(ok),
        command: cmd_line(1, "drain", &big),
    })
}

/// S5: many idle keep-alive connections, each served once.
pub fn idle(ctx: &Ctx) -> Result<Row, String> {
    let n = ctx.plan.idle_conns;
    progress(&format!("S5: {n} idle keep-alive connections"));
    let mut values = [None; 3];
    let mut shown: [String; 3] = Default::default();
    let mut details: [String; 3] = Default::default();
    let mut ok = true;
    for (i, v) in VARIANTS.iter().enumerate() {
        let app = App::start(ctx.env, *v, 4, "hello", 0, &Wrapper::None)?;
        drop(hold_idle(&app.addr(), 1, Duration::from_secs(2)));
        std::thread::sleep(Duration::from_millis(200));
        let (rss0, thr0) = (procfs::rss_kib(app.pid()), procfs::threads(app.pid()));
        let held = hold_idle(&app.addr(), n, Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(200));
        let (rss1, thr1) = (procfs::rss_kib(app.pid()), procfs::threads(app.pid()));
        let per = (rss1.saturating_sub(rss0)) as f64 / held.len().max(1) as f64;
        progress(&format!(
            "  {:<6} held {} of {n}: RSS {rss0} -> {rss1} KiB, threads {thr0} -> {thr1}",
            v.name(),
            held.len()
        ));
        let held_n = held.len() as u32;
        drop(held);
        values[i] = Some(per);
        shown[i] = format!("{per:.1} KiB/conn");
        details[i] = format!(
            "{}held {held_n} of {n}; RSS {rss0} -> {rss1} KiB; threads {thr0} -> {thr1}",
            if held_n < n { "**" } else { "" }
        ) + if held_n < n {
            " (the next request got no answer within 2 s)**"
        } else {
            ""
        };
        if i < 2 {
            ok &= held_n == n && per < 16.0 && thr1 <= thr0 + 2;
        }
    }
    Ok(Row {
        id: "S5".into(),
        title: format!("{n} idle keep-alive connections, 4 threads"),
        metric: "RSS per held connection".into(),
        values,
        shown,
        details,
        target: "< 16 KiB each, no thread each".into(),
        verdict: Some(ok),
        command: format!(
            "APP 127.0.0.1:PORT 4 hello; the runner opens {n} connections, one KEEP_CONN request each, and holds them"
        ),
    })
}

/// Runs the application under `wrap` twice, for `small` and `large` requests of `load`, and
/// returns what `read` extracted from each run.
fn two_runs<T>(
    ctx: &Ctx,
    v: Variant,
    threads: u32,
    load: &dyn Fn(u64) -> Load,
    wrap: &dyn Fn(u64) -> Wrapper,
    read: &dyn Fn(&Wrapper) -> Result<T, String>,
    counts: (u64, u64),
) -> Result<(T, T), String> {
    let mut out = Vec::new();
    for n in [counts.0, counts.1] {
        let w = wrap(n);
        let app = App::start(ctx.env, v, threads, "hello", n, &w)?;
        let r = bench(ctx.env, &app.addr(), &load(n))?;
        if r.errors > 0.0 || r.requests < n as f64 {
            return Err(format!(
                "{}: {} errors in a counted run",
                v.name(),
                r.errors
            ));
        }
        app.wait_exit(Duration::from_secs(120))?;
        out.push(read(&w)?);
    }
    let b = out.pop().unwrap();
    let a = out.pop().unwrap();
    Ok((a, b))
}

/// S8: instructions per request under callgrind, and heap allocations per request.
pub fn cpu(ctx: &Ctx) -> Result<Vec<Row>, String> {
    progress("S8: instructions per request (callgrind), hello, 1 thread, 1 connection");
    let counts = (1000u64, 3000u64);
    let per = (counts.1 - counts.0) as f64;
    let load = |n| Load {
        expect: Some("Hello, world!"),
        ..Load::counted(1, n)
    };
    let mut ir = [None; 3];
    let mut allocs = [None; 3];
    for (i, v) in VARIANTS.iter().enumerate() {
        let log = |n: u64| {
            Wrapper::Callgrind(ctx.env.work.join(format!("callgrind-{}-{n}.log", v.name())))
        };
        let (a, b) = two_runs(
            ctx,
            *v,
            1,
            &load,
            &log,
            &|w| match w {
                Wrapper::Callgrind(f) => collected(f),
                _ => unreachable!(),
            },
            counts,
        )?;
        ir[i] = Some((b - a) as f64 / per);
        let mc =
            |n: u64| Wrapper::MallocCount(ctx.env.work.join(format!("malloc-{}-{n}", v.name())));
        let (a, b) = two_runs(
            ctx,
            *v,
            1,
            &load,
            &mc,
            &|w| match w {
                Wrapper::MallocCount(f) => std::fs::read_to_string(f)
                    .map_err(|e| e.to_string())
                    .and_then(|s| s.trim().parse::<u64>().map_err(|e| e.to_string())),
                _ => unreachable!(),
            },
            counts,
        )?;
        allocs[i] = Some((b as f64 - a as f64) / per);
        progress(&format!(
            "  {:<6} {:.0} instructions/request, {:.2} allocations/request",
            v.name(),
            ir[i].unwrap(),
            allocs[i].unwrap()
        ));
    }
    let shown = |a: [Option<f64>; 3], f: &dyn Fn(f64) -> String| a.map(|x| x.map_or("-".into(), f));
    let cmd = format!(
        "valgrind --tool=callgrind APP 127.0.0.1:PORT 1 hello N (exits after N); fcgi-bench -c 1 -n N; \
         N = {} and {}, difference / {per}",
        counts.0, counts.1
    );
    Ok(vec![
        Row {
            id: "S8".into(),
            title: "hello, 1 thread, 1 connection, under callgrind".into(),
            metric: "instructions per request".into(),
            values: ir,
            shown: shown(ir, &|x| format!("{x:.0}")),
            details: Default::default(),
            target: "<= 0.5x libfcgi".into(),
            verdict: match (ir[0], ir[1], ir[2]) {
                (Some(n), Some(o), Some(d)) => Some(n <= 0.5 * d && o <= 0.5 * d),
                _ => None,
            },
            command: cmd,
        },
        Row {
            id: "S8a".into(),
            title: "hello, 1 thread, 1 connection, warm".into(),
            metric: "heap allocations per request".into(),
            values: allocs,
            shown: shown(allocs, &|x| format!("{x:.2}")),
            details: Default::default(),
            target: "0 once warm".into(),
            verdict: match (allocs[0], allocs[1]) {
                (Some(n), Some(o)) => Some(n < 0.01 && o < 0.01),
                _ => None,
            },
            command: format!(
                "LD_PRELOAD=target/bench/malloc_count.so (bench/apps/malloc_count.c) APP ... N; \
                 N = {} and {}, difference / {per}",
                counts.0, counts.1
            ),
        },
    ])
}

/// The `Collected : N` line of a callgrind log.
fn collected(log: &std::path::Path) -> Result<u64, String> {
    let s = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    s.lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no 'Collected' line in {}", log.display()))
}

/// Calls per system call name in an `strace -c` summary.
fn strace_counts(path: &std::path::Path) -> Result<BTreeMap<String, u64>, String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut m = BTreeMap::new();
    for l in s.lines() {
        let t: Vec<&str> = l.split_whitespace().collect();
        if t.len() >= 5 && t[0].parse::<f64>().is_ok() && t[t.len() - 1] != "total" {
            if let Ok(calls) = t[3].parse::<u64>() {
                m.insert(t[t.len() - 1].to_string(), calls);
            }
        }
    }
    Ok(m)
}

const READS: [&str; 5] = ["read", "readv", "recvfrom", "recvmsg", "recvmmsg"];
const WRITES: [&str; 5] = ["write", "writev", "sendto", "sendmsg", "sendmmsg"];
const POLLS: [&str; 6] = [
    "epoll_wait",
    "epoll_pwait",
    "poll",
    "ppoll",
    "select",
    "pselect6",
];

/// S9: system calls per request, sequential (as S1) and multiplexed (as S6).
pub fn syscalls(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let counts = (1000u64, 3000u64);
    let per = (counts.1 - counts.0) as f64;
    let mut rows = Vec::new();
    for (id, title, threads, depth) in [
        (
            "S9",
            "as S1: 1 thread, 1 connection, one request at a time",
            1u32,
            1u32,
        ),
        (
            "S9m",
            "as S6: 4 threads, 1 connection, multiplexing depth 32",
            4,
            32,
        ),
    ] {
        progress(&format!(
            "{id}: system calls per request (strace -f -c), {title}"
        ));
        let load = move |n| Load {
            depth,
            expect: Some("Hello, world!"),
            ..Load::counted(1, n)
        };
        let mut values = [None; 3];
        let mut shown: [String; 3] = Default::default();
        let mut details: [String; 3] = Default::default();
        let mut rw = [(0.0, 0.0); 3];
        for (i, v) in VARIANTS.iter().enumerate() {
            if depth > 1 && *v == Variant::Debian {
                shown[i] = "n/a".into();
                details[i] = "libfcgi refuses a second request id on a connection (S6)".into();
                continue;
            }
            let w = |n: u64| {
                Wrapper::Strace(ctx.env.work.join(format!("strace-{id}-{}-{n}", v.name())))
            };
            let (a, b) = two_runs(
                ctx,
                *v,
                threads,
                &load,
                &w,
                &|w| match w {
                    Wrapper::Strace(f) => strace_counts(f),
                    _ => unreachable!(),
                },
                counts,
            )?;
            let d = |names: &[&str]| {
                names
                    .iter()
                    .map(|n| {
                        b.get(*n).copied().unwrap_or(0) as f64
                            - a.get(*n).copied().unwrap_or(0) as f64
                    })
                    .sum::<f64>()
                    / per
            };
            let total = (b.values().sum::<u64>() as f64 - a.values().sum::<u64>() as f64) / per;
            let (r, wr, p) = (d(&READS), d(&WRITES), d(&POLLS));
            let futex = d(&["futex"]);
            rw[i] = (r, wr);
            values[i] = Some(total);
            shown[i] = format!("{total:.2}");
            let mut top: Vec<(String, f64)> = b
                .iter()
                .map(|(k, &vb)| {
                    (
                        k.clone(),
                        (vb as f64 - a.get(k).copied().unwrap_or(0) as f64) / per,
                    )
                })
                .filter(|(_, x)| *x >= 0.01)
                .collect();
            top.sort_by(|x, y| y.1.partial_cmp(&x.1).unwrap());
            details[i] = format!(
                "read {r:.2}, write {wr:.2}, poll {p:.2}, futex {futex:.2}; {}",
                top.iter()
                    .map(|(k, x)| format!("{k} {x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            progress(&format!(
                "  {:<6} {total:.2} per request: {}",
                v.name(),
                details[i]
            ));
        }
        let (target, verdict) = if depth > 1 {
            (
                "< 1 read and < 1 write per request",
                Some((0..2).all(|i| rw[i].0 < 1.0 && rw[i].1 < 1.0)),
            )
        } else {
            ("(reported)", None)
        };
        rows.push(Row {
            id: id.into(),
            title: title.into(),
            metric: "system calls per request".into(),
            values,
            shown,
            details,
            target: target.into(),
            verdict,
            command: format!(
                "strace -f -c -o FILE APP 127.0.0.1:PORT {threads} hello N; fcgi-bench -c 1{} -n N; \
                 N = {} and {}, difference / {per}",
                if depth > 1 { format!(" -m {depth}") } else { String::new() },
                counts.0,
                counts.1
            ),
        });
    }
    Ok(rows)
}
