//! The thread-by-connection matrix: hello at every (threads, connections) point of the plan,
//! with keep-alive (M) and with one connection per request (MN, fcgi-bench --no-keep), every
//! variant and peer alternated in each round.

use crate::app::{Variant, ALL};
use crate::load::{quote, Load};
use crate::measure::{alternate, progress, Ctx, Results};
use crate::report::Row;
use crate::scenarios::HELLO_EXPECT;

pub struct Point {
    pub threads: u32,
    pub conns: u32,
    pub results: Results,
}

pub struct Matrix {
    /// "M" or "MN".
    pub id: &'static str,
    pub keep: bool,
    pub rounds: u32,
    pub secs: f64,
    pub points: Vec<Point>,
    /// The fcgi-bench command of one point, with THREADS and CONNS for the point's values.
    pub command: String,
}

impl Point {
    fn rps(&self, v: Variant) -> Option<f64> {
        self.results[v.index()].as_ref().map(|s| s.rps)
    }

    /// `v` served every connection and failed no request.
    pub fn clean(&self, v: Variant) -> bool {
        self.results[v.index()]
            .as_ref()
            .is_some_and(|s| s.never_served == 0.0 && s.errors == 0.0)
    }

    /// `v`'s req/s over libfcgi's.
    pub fn ratio(&self, v: Variant) -> Option<f64> {
        match (self.rps(v), self.rps(Variant::Debian)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    }

    /// The target for fcgi-runtime `v` at this point: at least libfcgi's req/s with
    /// every connection served.
    pub fn met(&self, v: Variant) -> bool {
        self.clean(v) && self.ratio(v).is_some_and(|r| r >= 1.0)
    }

    /// Whether `v` is ahead of the peer `p`; None when either was not run.
    fn ahead_of(&self, v: Variant, p: Variant) -> Option<bool> {
        Some(self.rps(v)? > self.rps(p)?)
    }
}

/// Runs the matrix with (`keep`) or without keep-alive.
pub fn run(ctx: &Ctx, keep: bool) -> Result<Matrix, String> {
    let p = ctx.plan;
    let id = if keep { "M" } else { "MN" };
    let conns = if keep {
        &p.matrix_conns
    } else {
        &p.matrix_conns_nokeep
    };
    let variants = ctx.with_peers("hello")?;
    let load = |c| Load {
        keep,
        expect: Some(HELLO_EXPECT),
        ..Load::timed(c, p.matrix_secs, p.warmup)
    };
    let mut points = Vec::new();
    for &t in &p.matrix_threads {
        for &c in conns {
            progress(&format!(
                "{id}: hello, {t} threads, {c} connections{}",
                if keep { "" } else { ", no keep-alive" }
            ));
            let results = alternate(ctx, &variants, t, "hello", &load(c), p.matrix_rounds)?;
            points.push(Point {
                threads: t,
                conns: c,
                results,
            });
        }
    }
    Ok(Matrix {
        id,
        keep,
        rounds: p.matrix_rounds,
        secs: p.matrix_secs,
        points,
        command: format!(
            "APP 127.0.0.1:PORT THREADS hello; fcgi-bench -c CONNS {} 127.0.0.1:PORT",
            quote(&load(0).args()[2..])
        ),
    })
}

/// The matrix's line in the results table: at how many points each fcgi-runtime variant met
/// the target, the misses and the peers it trails in the details.
pub fn summary_row(m: &Matrix) -> Row {
    let n = m.points.len();
    let mut shown: [String; ALL.len()] = Default::default();
    let mut details: [String; ALL.len()] = Default::default();
    for v in [Variant::Native, Variant::Ours] {
        let met = m.points.iter().filter(|pt| pt.met(v)).count();
        shown[v.index()] = format!("{met} of {n} points");
        let misses: Vec<String> = m
            .points
            .iter()
            .filter(|pt| !pt.met(v))
            .map(|pt| {
                format!(
                    "{}/{}: {}{}",
                    pt.threads,
                    pt.conns,
                    pt.ratio(v).map_or("-".into(), |r| format!("{r:.2}x")),
                    if pt.clean(v) {
                        ""
                    } else {
                        " (not every connection served)"
                    }
                )
            })
            .collect();
        let mut d = if misses.is_empty() {
            "every point met".to_string()
        } else {
            format!("below target at threads/connections {}", misses.join(", "))
        };
        for p in crate::app::PEERS {
            let cmp: Vec<bool> = m.points.iter().filter_map(|pt| pt.ahead_of(v, p)).collect();
            if !cmp.is_empty() {
                d += &format!(
                    "; ahead of {} at {} of {} points",
                    p.column(),
                    cmp.iter().filter(|&&a| a).count(),
                    cmp.len()
                );
            }
        }
        details[v.index()] = d;
    }
    shown[Variant::Debian.index()] = "-".into();
    Row {
        id: m.id.into(),
        title: format!(
            "hello, threads {} by {} connections{}",
            list(m.points.iter().map(|p| p.threads)),
            list(m.points.iter().map(|p| p.conns)),
            if m.keep {
                ", keep-alive"
            } else {
                ", one connection per request"
            }
        ),
        metric: format!("points at >= 1.0x libfcgi, median of {}", m.rounds),
        values: Default::default(),
        shown,
        details,
        target: "every point >= 1.0x libfcgi, every connection served".into(),
        verdict: (n > 0).then(|| {
            m.points
                .iter()
                .all(|p| p.met(Variant::Native) && p.met(Variant::Ours))
        }),
        not_measured: None,
        command: m.command.clone(),
    }
}

/// "1,2,4" from the distinct values in order of appearance.
fn list(it: impl Iterator<Item = u32>) -> String {
    let mut v: Vec<u32> = Vec::new();
    for x in it {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}
