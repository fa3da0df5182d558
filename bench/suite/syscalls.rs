//! S9: system calls per request, counted by `strace -f -c` over two runs that exit after 1,000
//! and 3,000 requests (the difference divided by 2,000), for the C programs.

use crate::app::{Variant, Wrapper, ALL, VARIANTS};
use crate::load::Load;
use crate::measure::{progress, two_runs, Ctx};
use crate::report::Row;
use crate::scenarios::{BIG_EXPECT, HELLO_EXPECT};
use std::collections::BTreeMap;

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

/// One variant's system calls per request in one S9 scenario. `futex` and `sched_yield` are
/// always there (0 when strace saw none).
#[derive(Clone, Debug, Default)]
pub struct Calls {
    pub total: f64,
    pub read: f64,
    pub write: f64,
    pub poll: f64,
    pub futex: f64,
    pub sched_yield: f64,
    /// Every call seen at least 0.01 times per request, most frequent first.
    pub each: Vec<(String, f64)>,
}

/// One S9 scenario for the system-call table.
pub struct SyscallRow {
    pub id: String,
    pub title: String,
    /// Indexed like `ALL`; None where the variant was not run, with the reason in the row's
    /// details.
    pub calls: [Option<Calls>; ALL.len()],
}

/// (id, title, threads, MODE, connections, multiplexing depth).
type Spec = (&'static str, &'static str, u32, &'static str, u32, u32);

const SPECS: [Spec; 4] = [
    (
        "S9",
        "as S1: 1 thread, 1 connection, one request at a time",
        1,
        "hello",
        1,
        1,
    ),
    (
        "S9m",
        "as S6: 4 threads, 1 connection, multiplexing depth 32",
        4,
        "hello",
        1,
        32,
    ),
    (
        "S9c",
        "hello, 4 threads, 4 keep-alive connections",
        4,
        "hello",
        4,
        1,
    ),
    (
        "S9p",
        "as S3a: 100 KiB, printf header + 64 KiB pieces, 4 threads, 4 connections",
        4,
        "pieces64k",
        4,
        1,
    ),
];

fn per_request(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>, per: f64) -> Calls {
    let d = |names: &[&str]| {
        names
            .iter()
            .map(|n| {
                b.get(*n).copied().unwrap_or(0) as f64 - a.get(*n).copied().unwrap_or(0) as f64
            })
            .sum::<f64>()
            / per
    };
    let mut each: Vec<(String, f64)> = b
        .iter()
        .map(|(k, &vb)| {
            (
                k.clone(),
                (vb as f64 - a.get(k).copied().unwrap_or(0) as f64) / per,
            )
        })
        .filter(|(_, x)| *x >= 0.01)
        .collect();
    each.sort_by(|x, y| y.1.partial_cmp(&x.1).unwrap());
    Calls {
        total: (b.values().sum::<u64>() as f64 - a.values().sum::<u64>() as f64) / per,
        read: d(&READS),
        write: d(&WRITES),
        poll: d(&POLLS),
        futex: d(&["futex"]),
        sched_yield: d(&["sched_yield"]),
        each,
    }
}

/// The scenarios of the S9 family that `want` selects: one results row and one system-call
/// table row each.
pub fn syscalls(
    ctx: &Ctx,
    want: &dyn Fn(&str) -> bool,
) -> Result<(Vec<Row>, Vec<SyscallRow>), String> {
    let counts = (1000u64, 3000u64);
    let per = (counts.1 - counts.0) as f64;
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for (id, title, threads, mode, conns, depth) in SPECS {
        if !want(id) {
            continue;
        }
        progress(&format!(
            "{id}: system calls per request (strace -f -c), {title}"
        ));
        let expect = if mode == "hello" {
            HELLO_EXPECT
        } else {
            BIG_EXPECT
        };
        let load = move |n| Load {
            depth,
            expect: Some(expect),
            ..Load::counted(conns, n)
        };
        let mut calls: [Option<Calls>; ALL.len()] = Default::default();
        let mut details: [String; ALL.len()] = Default::default();
        for v in VARIANTS {
            let i = v.index();
            if depth > 1 && v == Variant::Debian {
                details[i] = "libfcgi refuses a second request id on a connection (S6)".into();
                continue;
            }
            let w = |n: u64| {
                Wrapper::Strace(ctx.env.work.join(format!("strace-{id}-{}-{n}", v.name())))
            };
            let (a, b) = two_runs(
                ctx,
                v,
                (threads, mode),
                &load,
                &w,
                &|w| match w {
                    Wrapper::Strace(f) => strace_counts(f),
                    _ => unreachable!(),
                },
                counts,
            )?;
            let c = per_request(&a, &b, per);
            details[i] = format!(
                "read {:.2}, write {:.2}, poll {:.2}, futex {:.2}, sched_yield {:.2}; {}",
                c.read,
                c.write,
                c.poll,
                c.futex,
                c.sched_yield,
                c.each
                    .iter()
                    .map(|(k, x)| format!("{k} {x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            progress(&format!(
                "  {:<6} {:.2} per request: {}",
                v.name(),
                c.total,
                details[i]
            ));
            calls[i] = Some(c);
        }
        let total = |v: Variant| calls[v.index()].as_ref().map(|c| c.total);
        let rw = |v: Variant| {
            calls[v.index()]
                .as_ref()
                .is_some_and(|c| c.read < 1.0 && c.write < 1.0)
        };
        let (target, verdict) = match id {
            "S9" => (
                "<= 2 per request (libfcgi's count)",
                Some(
                    [Variant::Native, Variant::Ours]
                        .iter()
                        .all(|&v| total(v).is_some_and(|t| t <= 2.005)),
                ),
            ),
            "S9m" => (
                "< 1 read and < 1 write per request",
                Some(rw(Variant::Native) && rw(Variant::Ours)),
            ),
            _ => ("(reported)", None),
        };
        let values = ALL.map(total);
        rows.push(Row {
            id: id.into(),
            title: title.into(),
            metric: "system calls per request".into(),
            values,
            shown: ALL.map(|v| match (v.is_peer(), total(v)) {
                (true, _) => String::new(),
                (false, Some(t)) => format!("{t:.2}"),
                (false, None) => "n/a".into(),
            }),
            details,
            target: target.into(),
            verdict,
            not_measured: None,
            command: format!(
                "strace -f -c -o FILE APP 127.0.0.1:PORT {threads} {mode} N; fcgi-bench -c {conns}{} -n N; \
                 N = {} and {}, difference / {per}",
                if depth > 1 { format!(" -m {depth}") } else { String::new() },
                counts.0,
                counts.1
            ),
        });
        table.push(SyscallRow {
            id: id.into(),
            title: title.into(),
            calls,
        });
    }
    Ok((rows, table))
}
