//! The scenarios S1-S8 (S9 is in syscalls.rs, the matrix in matrix.rs) and the connection
//! sweep behind the chart. Each measurement starts a fresh application; throughput scenarios
//! run every variant once per round, in an order that rotates from round to round, and keep the
//! median (measure.rs).

use crate::app::{App, Variant, Wrapper, ALL, VARIANTS};
use crate::chart::SweepPoint;
use crate::load::{bench, hold_idle, Load};
use crate::measure::{alternate, progress, two_runs, Ctx, Summary};
use crate::procfs;
use crate::report::Row;
use std::time::{Duration, Instant};

/// The substring every 100 KiB response contains (bench/apps/*.c, the peers' big mode).
pub const BIG_EXPECT: &str = "abcdefghijklmnopqrstuvwxyz";
pub const HELLO_EXPECT: &str = "Hello, world!";

fn cmd_line(threads: u32, mode: &str, load: &Load) -> String {
    format!(
        "APP 127.0.0.1:PORT {threads} {mode}; fcgi-bench {} 127.0.0.1:PORT",
        load.shown_args()
    )
}

fn fmt_rps(s: &Summary) -> String {
    format!("{:.0} req/s", s.rps)
}

/// One throughput scenario: its id, title, threads, MODE of the application, the load, and
/// whether the peers run it too (they know hello and big only).
struct Spec {
    id: &'static str,
    title: &'static str,
    threads: u32,
    mode: &'static str,
    load: Load,
    peers: bool,
}

/// The write patterns of a 100 KiB response, all at 4 threads and 4 keep-alive connections:
/// (id, MODE of bench/apps/*.c, title). Every pattern sends the same body.
const PATTERNS: [(&str, &str, &str); 4] = [
    (
        "S3",
        "big",
        "100 KiB responses in one write, 4 threads, 4 connections",
    ),
    (
        "S3a",
        "pieces64k",
        "100 KiB responses, printf header + 64 KiB pieces, 4 threads, 4 connections",
    ),
    (
        "S3b",
        "pieces8k",
        "100 KiB responses, printf header + 8 KiB pieces (as fcgiwrap), 4 threads, 4 connections",
    ),
    (
        "S3c",
        "pieces100",
        "100 KiB responses, printf header + 100-byte printf pieces, 4 threads, 4 connections",
    ),
];

fn specs(ctx: &Ctx) -> Vec<Spec> {
    let p = ctx.plan;
    let hello = |conns| Load {
        expect: Some(HELLO_EXPECT),
        ..Load::timed(conns, p.secs, p.warmup)
    };
    let mut v = vec![
        Spec {
            id: "S1",
            title: "hello, 1 thread, 1 keep-alive connection",
            threads: 1,
            mode: "hello",
            load: hello(1),
            peers: true,
        },
        Spec {
            id: "S2",
            title: "hello, 4 threads, 64 keep-alive connections",
            threads: 4,
            mode: "hello",
            load: hello(64),
            peers: true,
        },
    ];
    for (id, mode, title) in PATTERNS {
        v.push(Spec {
            id,
            title,
            threads: 4,
            mode,
            load: Load {
                expect: Some(BIG_EXPECT),
                ..Load::timed(4, p.secs, p.warmup)
            },
            // The peers have the one-write mode only.
            peers: mode == "big",
        });
    }
    v.push(Spec {
        id: "S6",
        title: "hello, 4 threads, 1 connection, multiplexing depth 32",
        threads: 4,
        mode: "hello",
        load: Load {
            depth: 32,
            ..hello(1)
        },
        peers: true,
    });
    v.push(Spec {
        id: "S7",
        title: "hello, 4 threads, 16 connections, no keep-alive",
        threads: 4,
        mode: "hello",
        load: Load {
            keep: false,
            ..hello(16)
        },
        peers: true,
    });
    v
}

/// S1, S2, S3 (with S3a, S3b, S3c), S6, S7.
pub fn throughput(ctx: &Ctx, want: &dyn Fn(&str) -> bool) -> Result<Vec<Row>, String> {
    let p = ctx.plan;
    let mut rows = Vec::new();
    for Spec {
        id,
        title,
        threads,
        mode,
        load,
        peers,
    } in specs(ctx)
    {
        if !want(id) {
            continue;
        }
        progress(&format!("{id}: {title}"));
        let variants = if peers {
            ctx.with_peers(mode)?
        } else {
            VARIANTS.to_vec()
        };
        let s = alternate(ctx, &variants, threads, mode, &load, p.rounds)?;
        let detail = |x: &Summary| {
            let mut d = format!("p50 {:.0} us, p99 {:.0} us", x.p50_us, x.p99_us);
            if mode != "hello" {
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
        let rps = |v: Variant| s[v.index()].as_ref().map_or(f64::NAN, |x| x.rps);
        let (nat, ours, deb) = (
            rps(Variant::Native),
            rps(Variant::Ours),
            rps(Variant::Debian),
        );
        let ok = |i: usize| {
            s[i].as_ref()
                .is_some_and(|x| x.never_served == 0.0 && x.p99_us < 10_000.0 && x.errors == 0.0)
        };
        let (target, verdict) = match id {
            "S1" => (">= 1.0x libfcgi", Some(nat >= deb && ours >= deb)),
            "S2" => (
                "all 64 connections served, p99 < 10 ms",
                Some(ok(0) && ok(1)),
            ),
            "S3" | "S3a" | "S3b" | "S3c" => (
                ">= 1.5x libfcgi",
                Some(nat >= 1.5 * deb && ours >= 1.5 * deb),
            ),
            "S6" => (
                "every request answered (libfcgi cannot multiplex)",
                Some(
                    s[0].as_ref().is_some_and(|x| x.errors == 0.0)
                        && s[1].as_ref().is_some_and(|x| x.errors == 0.0),
                ),
            ),
            "S7" => (">= 1.0x libfcgi", Some(nat >= deb && ours >= deb)),
            _ => ("(no target)", None),
        };
        rows.push(Row {
            id: id.into(),
            title: title.into(),
            metric: format!("req/s, median of {}", p.rounds),
            values: s.clone().map(|x| x.map(|x| x.rps)),
            shown: s.clone().map(|x| x.map_or(String::new(), |x| fmt_rps(&x))),
            details: s.clone().map(|x| x.map_or(String::new(), |x| detail(&x))),
            target: target.into(),
            verdict,
            not_measured: None,
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
            expect: Some(HELLO_EXPECT),
            ..Load::timed(c, p.secs, p.warmup)
        };
        let s = alternate(ctx, &VARIANTS, 4, "hello", &load, 1)?;
        for v in VARIANTS {
            let x = s[v.index()].clone().unwrap_or_default();
            pts.push(SweepPoint {
                variant: v,
                conns: c,
                rps: x.rps,
                p99_us: x.p99_us,
                never_served: x.never_served as u32,
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
    let mut values = [None; ALL.len()];
    let mut shown: [String; ALL.len()] = Default::default();
    let mut details: [String; ALL.len()] = Default::default();
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
        not_measured: None,
        command: cmd_line(1, "drain", &big),
    })
}

/// S5: many idle keep-alive connections, each served once.
pub fn idle(ctx: &Ctx) -> Result<Row, String> {
    let n = ctx.plan.idle_conns;
    progress(&format!("S5: {n} idle keep-alive connections"));
    let mut values = [None; ALL.len()];
    let mut shown: [String; ALL.len()] = Default::default();
    let mut details: [String; ALL.len()] = Default::default();
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
        not_measured: None,
        command: format!(
            "APP 127.0.0.1:PORT 4 hello; the runner opens {n} connections, one KEEP_CONN request each, and holds them"
        ),
    })
}

/// S8: instructions per request under callgrind, and heap allocations per request.
pub fn cpu(ctx: &Ctx) -> Result<Vec<Row>, String> {
    progress("S8: instructions per request (callgrind), hello, 1 thread, 1 connection");
    let counts = (1000u64, 3000u64);
    let per = (counts.1 - counts.0) as f64;
    let load = |n| Load {
        expect: Some(HELLO_EXPECT),
        ..Load::counted(1, n)
    };
    let mut ir = [None; ALL.len()];
    let mut allocs = [None; ALL.len()];
    for (i, v) in VARIANTS.iter().enumerate() {
        let log = |n: u64| {
            Wrapper::Callgrind(ctx.env.work.join(format!("callgrind-{}-{n}.log", v.name())))
        };
        let (a, b) = two_runs(
            ctx,
            *v,
            (1, "hello"),
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
            (1, "hello"),
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
    let shown = |a: [Option<f64>; ALL.len()], f: &dyn Fn(f64) -> String| {
        let mut s = a.map(|x| x.map_or(String::new(), f));
        for v in VARIANTS {
            if s[v.index()].is_empty() {
                s[v.index()] = "-".into();
            }
        }
        s
    };
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
            not_measured: None,
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
            not_measured: None,
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
