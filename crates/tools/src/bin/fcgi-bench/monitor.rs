//! Samples a server process's resident memory and open descriptors once a second, and judges
//! growth after the warm-up.

use std::time::{Duration, Instant};

/// One sample: seconds since the start, VmRSS in KiB, open descriptors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub(crate) t: f64,
    pub(crate) rss_kib: u64,
    pub(crate) fds: u64,
}

/// Reads VmRSS and the fd count of `pid`; `None` once the process is gone.
pub(crate) fn sample(pid: u32, t: f64) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample { t, rss_kib, fds })
}

/// Samples every second until `stop` says so; returns the samples (or why sampling failed).
pub(crate) fn run(pid: u32, t0: Instant, stop: &dyn Fn() -> bool) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    let mut next = t0;
    loop {
        let now = Instant::now();
        if now >= next {
            let t = now.duration_since(t0).as_secs_f64();
            match sample(pid, t) {
                Some(s) => out.push(s),
                None => return Err(format!("server process {pid} is gone (at {t:.1} s)")),
            }
            next += Duration::from_secs(1);
        }
        if stop() {
            return Ok(out);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// min, max, first, last of one measure over samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub(crate) struct Summary {
    pub(crate) min: u64,
    pub(crate) max: u64,
    pub(crate) first: u64,
    pub(crate) last: u64,
}

pub(crate) fn summary(samples: &[Sample], f: fn(&Sample) -> u64) -> Summary {
    let v: Vec<u64> = samples.iter().map(f).collect();
    Summary {
        min: v.iter().copied().min().unwrap_or(0),
        max: v.iter().copied().max().unwrap_or(0),
        first: v.first().copied().unwrap_or(0),
        last: v.last().copied().unwrap_or(0),
    }
}

/// The bounds the samples after the warm-up must keep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bounds {
    pub(crate) warmup: f64,
    /// Largest allowed VmRSS above the first sample after the warm-up, KiB.
    pub(crate) rss_growth_kib: u64,
    /// Largest allowed rise of the last third's lowest VmRSS over the first third's highest, KiB.
    pub(crate) rss_trend_kib: u64,
    /// Largest allowed descriptor count above the first sample after the warm-up.
    pub(crate) fd_growth: u64,
}

/// Judges the samples; returns the verdicts that failed (empty: within bounds), and the
/// post-warm-up baseline sample.
pub(crate) fn judge(samples: &[Sample], b: &Bounds) -> (Vec<String>, Option<Sample>) {
    let after: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.t >= b.warmup)
        .collect();
    let Some(&base) = after.first() else {
        return (vec!["no memory sample after the warm-up".to_string()], None);
    };
    let mut bad = Vec::new();
    if let Some(s) = after
        .iter()
        .find(|s| s.rss_kib > base.rss_kib + b.rss_growth_kib)
    {
        bad.push(format!(
            "RSS grew to {} KiB at {:.0} s, more than {} KiB above the {} KiB after the warm-up",
            s.rss_kib, s.t, b.rss_growth_kib, base.rss_kib
        ));
    }
    if after.len() >= 6 {
        let third = after.len() / 3;
        let early_max = after[..third].iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let late_min = after[after.len() - third..]
            .iter()
            .map(|s| s.rss_kib)
            .min()
            .unwrap_or(0);
        if late_min > early_max + b.rss_trend_kib {
            bad.push(format!(
                "RSS keeps rising: the last third of the samples never went below {late_min} KiB, \
                 the first third never above {early_max} KiB (trend bound {} KiB)",
                b.rss_trend_kib
            ));
        }
    }
    if let Some(s) = after.iter().find(|s| s.fds > base.fds + b.fd_growth) {
        bad.push(format!(
            "open descriptors grew to {} at {:.0} s, more than {} above the {} after the warm-up",
            s.fds, s.t, b.fd_growth, base.fds
        ));
    }
    (bad, Some(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(rss: &[u64]) -> Vec<Sample> {
        rss.iter()
            .enumerate()
            .map(|(i, &r)| Sample {
                t: i as f64,
                rss_kib: r,
                fds: 10,
            })
            .collect()
    }

    #[test]
    fn growth_and_trend() {
        let b = Bounds {
            warmup: 2.0,
            rss_growth_kib: 4096,
            rss_trend_kib: 1024,
            fd_growth: 8,
        };
        // Warm-up growth does not count; noise within bounds passes.
        let ok = series(&[100, 5000, 9000, 9500, 9100, 9800, 9000, 9600, 9200]);
        assert!(judge(&ok, &b).0.is_empty());
        // A jump beyond the bound fails.
        let jump = series(&[100, 9000, 9000, 9000, 14000, 9000, 9000]);
        assert_eq!(judge(&jump, &b).0.len(), 1);
        // A steady climb under the jump bound fails as a trend.
        let climb = series(&[0, 0, 9000, 9500, 10000, 10500, 11000, 11500, 12000, 12500]);
        let (bad, base) = judge(&climb, &b);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].contains("keeps rising"));
        assert_eq!(base.map(|s| s.rss_kib), Some(9000));
        // Descriptors.
        let mut fds = series(&[0, 0, 9000, 9000, 9000]);
        fds[4].fds = 30;
        assert!(judge(&fds, &b).0[0].contains("descriptors"));
        assert!(!judge(&series(&[1, 2]), &b).0.is_empty());
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id(), 0.0).expect("own /proc entry");
        assert!(s.rss_kib > 0 && s.fds >= 3);
        let sum = summary(&series(&[5, 3, 9, 4]), |s| s.rss_kib);
        assert_eq!((sum.min, sum.max, sum.first, sum.last), (3, 9, 5, 4));
    }
}
