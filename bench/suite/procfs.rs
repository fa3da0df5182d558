//! What /proc and the system say: a process's memory, threads and CPU time, the machine.

use std::process::Command;

/// A field of /proc/PID/status in kB (VmRSS, VmHWM) or a count (Threads).
pub fn status_field(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS").unwrap_or(0)
}

pub fn hwm_kib(pid: u32) -> u64 {
    status_field(pid, "VmHWM").unwrap_or(0)
}

pub fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads").unwrap_or(0)
}

/// User plus system CPU time of every thread of a process, living or ended, in seconds
/// (utime and stime of /proc/PID/stat, counted in clock ticks).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in brackets may hold spaces: the fields start after its last ')'.
    // There the state is field 3 of proc(5), so utime (14) and stime (15) are at 11 and 12.
    let f: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf takes no pointers.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

fn command_line(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let s = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&s)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// Name and value rows describing the machine and the software measured.
pub fn machine() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or("unknown".into(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1048576.0)
        });
    let libfcgi = command_line(
        "sh",
        &[
            "-c",
            "dpkg-query -W -f '${Package} ${Version}' \
             $(dpkg -S /usr/lib/x86_64-linux-gnu/libfcgi.so.0 | cut -d: -f1)",
        ],
    );
    vec![
        (
            "CPU".into(),
            format!("{model}, {cpus} logical CPUs available"),
        ),
        ("Memory".into(), mem),
        ("Kernel".into(), command_line("uname", &["-sr"])),
        ("OS".into(), os_release()),
        ("Rust".into(), command_line("rustc", &["--version"])),
        ("C compiler".into(), command_line("cc", &["--version"])),
        ("libfcgi".into(), libfcgi),
        ("valgrind".into(), command_line("valgrind", &["--version"])),
        ("strace".into(), command_line("strace", &["-V"])),
        ("nginx".into(), command_line("/usr/sbin/nginx", &["-v"])),
        ("wrk".into(), command_line("wrk", &["-v"])),
    ]
}

fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("PRETTY_NAME="))
                .map(|l| l["PRETTY_NAME=".len()..].trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Raises the open-file limit to its hard maximum (S5 holds 10,000 connections on each side);
/// children inherit it. Returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a live rlimit that getrlimit fills in and setrlimit reads.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
    r.rlim_cur
}
