//! bench/chart.svg: requests/s and p99 latency against keep-alive connections at 4 threads (the
//! sweep), for the three C variants.

use crate::app::{Variant, VARIANTS};
use std::fmt::Write;

/// One point of the connection sweep.
pub struct SweepPoint {
    pub variant: Variant,
    pub conns: u32,
    pub rps: f64,
    pub p99_us: f64,
    pub never_served: u32,
}

const LABELS: [&str; 3] = [
    "native API (fcgi-runtime)",
    "libfcgi API on fcgi-runtime",
    "libfcgi API on Debian libfcgi 2.4.2",
];
const COLORS: [&str; 3] = ["#1f77b4", "#2ca02c", "#d62728"];

/// Two panels: requests/s (linear) and p99 latency (log) against connections (log2).
pub fn svg(points: &[SweepPoint]) -> String {
    let (w, h) = (960.0, 420.0);
    let (pw, ph) = (380.0, 290.0);
    let top = 50.0;
    let lefts = [80.0, 560.0];
    let mut conns: Vec<u32> = points.iter().map(|p| p.conns).collect();
    conns.sort_unstable();
    conns.dedup();
    let (cmin, cmax) = (
        *conns.first().unwrap_or(&1) as f64,
        *conns.last().unwrap_or(&64) as f64,
    );
    let xpos = |left: f64, c: f64| {
        let span = (cmax.log2() - cmin.log2()).max(1.0);
        left + (c.log2() - cmin.log2()) / span * pw
    };
    let rps_max = points.iter().map(|p| p.rps).fold(1.0, f64::max) * 1.1;
    let rps_step = nice_step(rps_max / 5.0);
    let rps_top = (rps_max / rps_step).ceil() * rps_step;
    let lat_lo = 10f64;
    let lat_hi = points
        .iter()
        .map(|p| p.p99_us)
        .fold(1000.0, f64::max)
        .log10()
        .ceil();
    let lat_hi = 10f64.powf(lat_hi);
    let yr = |v: f64| top + ph - v / rps_top * ph;
    let yl = |v: f64| {
        let v = v.max(lat_lo);
        top + ph - (v.log10() - lat_lo.log10()) / (lat_hi.log10() - lat_lo.log10()) * ph
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    for (k, title) in [
        "requests/s (higher is better)",
        "p99 latency, µs, log scale (lower is better)",
    ]
    .iter()
    .enumerate()
    {
        let left = lefts[k];
        let _ = writeln!(
            s,
            r#"<text x="{}" y="30" text-anchor="middle" font-size="14" font-weight="bold">{title}</text>"#,
            left + pw / 2.0
        );
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
        );
        for &c in &conns {
            let x = xpos(left, c as f64);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{c}</text>"##,
                top + ph,
                top + ph + 16.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">connections (4 application threads)</text>"#,
            left + pw / 2.0,
            top + ph + 34.0
        );
        if k == 0 {
            let mut v = 0.0;
            while v <= rps_top + 1e-9 {
                let y = yr(v);
                let _ = writeln!(
                    s,
                    r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                    left + pw,
                    left - 4.0,
                    y + 4.0,
                    short(v)
                );
                v += rps_step;
            }
        } else {
            let mut v = lat_lo;
            while v <= lat_hi * 1.001 {
                let y = yl(v);
                let _ = writeln!(
                    s,
                    r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                    left + pw,
                    left - 4.0,
                    y + 4.0,
                    short(v)
                );
                v *= 10.0;
            }
        }
        for (i, var) in VARIANTS.iter().enumerate() {
            let mut pts: Vec<&SweepPoint> = points.iter().filter(|p| p.variant == *var).collect();
            pts.sort_by_key(|p| p.conns);
            let coords: Vec<(f64, f64, &SweepPoint)> = pts
                .iter()
                .map(|p| {
                    let x = xpos(left, p.conns as f64);
                    let y = if k == 0 { yr(p.rps) } else { yl(p.p99_us) };
                    (x, y, *p)
                })
                .collect();
            let path: Vec<String> = coords
                .iter()
                .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                path.join(" "),
                COLORS[i]
            );
            for (x, y, p) in coords {
                let fill = if p.never_served > 0 {
                    "white"
                } else {
                    COLORS[i]
                };
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{fill}" stroke="{}" stroke-width="2"><title>{}: {} connections, {:.0} req/s, p99 {:.0} us, {} never served</title></circle>"#,
                    COLORS[i], LABELS[i], p.conns, p.rps, p.p99_us, p.never_served
                );
                if p.never_served > 0 && k == 0 {
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{}" font-size="10">{}/{}</text>"#,
                        x,
                        y - 9.0,
                        COLORS[i],
                        p.never_served,
                        p.conns
                    );
                }
            }
        }
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" font-size="11" fill="#555">hollow marker, n/N: n of the N connections were never served during the run</text>"##,
        lefts[0],
        top - 6.0
    );
    for (i, label) in LABELS.iter().enumerate() {
        let x = 80.0 + i as f64 * 290.0;
        let y = h - 18.0;
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{label}</text>"#,
            x + 24.0,
            COLORS[i],
            x + 30.0,
            y + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}
