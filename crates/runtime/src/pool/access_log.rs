//! The access log (FPM's `access.log` / `access.format`): one line per request, written by the
//! worker's runtime when the request ends, with one O_APPEND write(2) (`slowlog::AppendLog`,
//! reopened at the first line after a SIGUSR1).
//!
//! The format is compiled once (`compile`) into items. What a request's params give (method,
//! URI, ...) is rendered when the request begins, into a [`Pending`] line with holes for what
//! only its end knows (duration, status, response headers, CPU, memory, end time), filled in
//! by [`Pending::finish`].
//!
//! FPM's letters, with their meanings here:
//! `%%`; `%C` CPU used by the request's thread, % of its duration (`{total}`, `{user}`,
//! `{system}`); `%d` duration (`{seconds}` default, `{milli}`/`{miliseconds}`/`{milliseconds}`,
//! `{micro}`/`{microseconds}`); `%{NAME}e` a FastCGI param; `%f` SCRIPT_FILENAME; `%l`
//! CONTENT_LENGTH; `%m` method; `%M` the process's peak RSS (FPM: PHP's peak memory;
//! `{bytes}`, `{kilo}`/`{kilobytes}`, `{mega}`/`{megabytes}`); `%n` pool name; `%{NAME}o` a
//! response header; `%p` pid; `%P` the parent's pid; `%q` query string; `%Q` `?` when there is
//! a query; `%r` SCRIPT_NAME (else REQUEST_URI without its query); `%R` REMOTE_ADDR (FPM: the
//! web server's address); `%s` response status; `%t` the start, `%T` the end, local time
//! (strftime `{FORMAT}`, default `%d/%b/%Y:%H:%M:%S %z`); `%u` REMOTE_USER.

use super::slowlog::AppendLog;
use crate::sys;
use fcgi_runtime_protocol::ParamStore;
use std::ffi::CString;

static LOG: AppendLog = AppendLog::new("access log");

/// A line longer than this is cut (FPM: 1024).
const MAX_LINE: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cpu {
    Total,
    User,
    System,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Lit(Vec<u8>),
    Cpu(Cpu),
    /// Duration divided by this many microseconds, with 3 decimals (1 for `micro`: none).
    Duration(u64),
    /// A param; `-` when absent or empty if the flag is set (else nothing, as FPM's `%q`, `%u`).
    Param(&'static [u8], bool),
    Env(Vec<u8>),
    Memory(u64),
    /// CONTENT_LENGTH as a number (0 when absent).
    ContentLength,
    Pool,
    OutHeader(Vec<u8>),
    Pid,
    Ppid,
    QMark,
    Uri,
    Status,
    /// `%t` (start) or `%T` (end), with the strftime format.
    Time(bool, CString),
}

impl Item {
    /// Rendered only when the request ends.
    fn at_end(&self) -> bool {
        matches!(
            self,
            Item::Cpu(_)
                | Item::Duration(_)
                | Item::Memory(_)
                | Item::OutHeader(_)
                | Item::Status
                | Item::Time(true, _)
        )
    }
}

/// A compiled `access_format`.
#[derive(Debug)]
pub struct Format {
    items: Vec<Item>,
    /// The response's header block is needed (`%s`, `%{...}o`).
    pub needs_head: bool,
    needs_cpu: bool,
}

/// Compiles `fmt`; `Err` names the first bad letter or modifier.
pub fn compile(fmt: &str) -> Result<Format, String> {
    let b = fmt.as_bytes();
    let mut items: Vec<Item> = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            lit.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        let mut arg: Option<String> = None;
        if b.get(i) == Some(&b'{') {
            let close = b[i..]
                .iter()
                .position(|&c| c == b'}')
                .ok_or("access_format: missing closing brace")?;
            arg = Some(String::from_utf8_lossy(&b[i + 1..i + close]).into_owned());
            i += close + 1;
        }
        let Some(&letter) = b.get(i) else {
            return Err("access_format: ends with a lone %".into());
        };
        i += 1;
        let bad_arg = |what: &str| {
            format!(
                "access_format: %{}{} takes {what}",
                arg.as_deref()
                    .map(|a| format!("{{{a}}}"))
                    .unwrap_or_default(),
                letter as char
            )
        };
        let item = match (letter, arg.as_deref()) {
            (b'%', None) => {
                lit.push(b'%');
                continue;
            }
            (b'C', a) => Item::Cpu(match a.map(str::to_ascii_lowercase).as_deref() {
                None | Some("total") => Cpu::Total,
                Some("user") => Cpu::User,
                Some("system") => Cpu::System,
                _ => return Err(bad_arg("total, user or system")),
            }),
            (b'd', a) => Item::Duration(match a.map(str::to_ascii_lowercase).as_deref() {
                None | Some("seconds") => 1_000_000,
                Some("milli" | "mili" | "miliseconds" | "milliseconds") => 1000,
                Some("micro" | "microseconds") => 1,
                _ => return Err(bad_arg("seconds, milli or micro")),
            }),
            (b'e', Some(a)) if !a.is_empty() => Item::Env(a.as_bytes().to_vec()),
            (b'f', None) => Item::Param(b"SCRIPT_FILENAME", true),
            (b'l', None) => Item::ContentLength,
            (b'm', None) => Item::Param(b"REQUEST_METHOD", true),
            (b'M', a) => Item::Memory(match a.map(str::to_ascii_lowercase).as_deref() {
                None | Some("bytes") => 1,
                Some("kilo" | "kilobytes") => 1024,
                Some("mega" | "megabytes") => 1024 * 1024,
                _ => return Err(bad_arg("bytes, kilo or mega")),
            }),
            (b'n', None) => Item::Pool,
            (b'o', Some(a)) if !a.is_empty() => Item::OutHeader(a.as_bytes().to_vec()),
            (b'p', None) => Item::Pid,
            (b'P', None) => Item::Ppid,
            (b'q', None) => Item::Param(b"QUERY_STRING", false),
            (b'Q', None) => Item::QMark,
            (b'r', None) => Item::Uri,
            (b'R', None) => Item::Param(b"REMOTE_ADDR", true),
            (b's', None) => Item::Status,
            (b't' | b'T', a) => {
                let f = a.unwrap_or("%d/%b/%Y:%H:%M:%S %z");
                let f = CString::new(f).map_err(|_| bad_arg("no NUL"))?;
                Item::Time(letter == b'T', f)
            }
            (b'u', None) => Item::Param(b"REMOTE_USER", false),
            (b'e' | b'o', _) => return Err(bad_arg("a name in braces")),
            (b'%' | b'f' | b'l' | b'm' | b'n' | b'p' | b'P' | b'q' | b'Q', Some(_))
            | (b'r' | b'R' | b's' | b'u', Some(_)) => return Err(bad_arg("no braces")),
            _ => {
                return Err(format!(
                    "access_format: unknown letter %{}",
                    String::from_utf8_lossy(&[letter])
                ))
            }
        };
        if !lit.is_empty() {
            items.push(Item::Lit(std::mem::take(&mut lit)));
        }
        items.push(item);
    }
    if !lit.is_empty() {
        items.push(Item::Lit(lit));
    }
    let needs_head = items
        .iter()
        .any(|i| matches!(i, Item::Status | Item::OutHeader(_)));
    let needs_cpu = items.iter().any(|i| matches!(i, Item::Cpu(_)));
    Ok(Format {
        items,
        needs_head,
        needs_cpu,
    })
}

/// Opens the access log of this process (the format compiled first: a bad one is an error).
pub fn configure(path: &str, format: &str) -> Result<Option<Format>, String> {
    if path.is_empty() {
        return Ok(None);
    }
    let f = compile(format)?;
    LOG.configure(path)?;
    Ok(Some(f))
}

/// The supervisor's check at start: the format compiles and the file opens (then closed: the
/// workers write, each opening it when it attaches).
pub fn check(path: &str, format: &str) -> Result<(), String> {
    configure(path, format)?;
    LOG.configure("")
}

/// A request's line as far as its beginning knows it.
pub struct Pending {
    line: Vec<u8>,
    /// Where the items only the end knows go: (offset in `line`, index of the item).
    holes: Vec<(usize, usize)>,
    start_us: u64,
    cpu: (u64, u64),
}

/// Appends `v`, `-` when empty, with control characters and `"` escaped (a request cannot
/// forge lines).
fn push_value(out: &mut Vec<u8>, v: &[u8]) {
    if v.is_empty() {
        out.push(b'-');
        return;
    }
    for &c in v {
        if c < 0x20 || c == 0x7f || c == b'"' || c == b'\\' {
            out.extend_from_slice(format!("\\x{c:02x}").as_bytes());
        } else {
            out.push(c);
        }
    }
}

impl Format {
    /// Renders what `params` give; `start_us` is the start on the monotonic clock.
    pub fn begin(&self, params: &ParamStore, pool: &[u8], start_us: u64) -> Pending {
        let mut line = Vec::with_capacity(256);
        let mut holes = Vec::new();
        let get = |n: &[u8]| params.get(n).unwrap_or(b"");
        for (k, item) in self.items.iter().enumerate() {
            if item.at_end() {
                holes.push((line.len(), k));
                continue;
            }
            match item {
                Item::Lit(l) => line.extend_from_slice(l),
                Item::Param(n, true) => push_value(&mut line, get(n)),
                Item::Param(n, false) if !get(n).is_empty() => push_value(&mut line, get(n)),
                Item::ContentLength => {
                    let n: u64 = std::str::from_utf8(get(b"CONTENT_LENGTH"))
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    line.extend_from_slice(n.to_string().as_bytes());
                }
                Item::Env(n) => push_value(&mut line, get(n)),
                Item::Pool => push_value(&mut line, pool),
                Item::Pid => line.extend_from_slice(sys::pid().to_string().as_bytes()),
                Item::Ppid => line.extend_from_slice(sys::parent_pid().to_string().as_bytes()),
                Item::QMark if !get(b"QUERY_STRING").is_empty() => line.push(b'?'),
                Item::Uri => {
                    let u = match params.get(b"SCRIPT_NAME").filter(|s| !s.is_empty()) {
                        Some(s) => s,
                        None => {
                            let u = get(b"REQUEST_URI");
                            &u[..u.iter().position(|&c| c == b'?').unwrap_or(u.len())]
                        }
                    };
                    push_value(&mut line, u);
                }
                Item::Time(_, f) => {
                    let now = super::scoreboard::unix_ms() / 1000;
                    line.extend_from_slice(&sys::strftime_local(f, now as i64));
                }
                _ => {}
            }
        }
        let cpu = if self.needs_cpu {
            let (u, s, _) = sys::cpu_and_peak_rss(libc::RUSAGE_THREAD);
            (u, s)
        } else {
            (0, 0)
        };
        Pending {
            line,
            holes,
            start_us,
            cpu,
        }
    }
}

impl Pending {
    /// Fills in the holes and writes the line: `head` is the start of the response (its
    /// header block, as far as it was kept), `now_us` the end on the monotonic clock.
    pub fn finish(self, f: &Format, head: &[u8], now_us: u64) {
        let us = now_us.saturating_sub(self.start_us);
        let mut out = Vec::with_capacity(self.line.len() + 64);
        let mut at = 0;
        let usage = if f.needs_cpu || f.items.iter().any(|i| matches!(i, Item::Memory(_))) {
            let who = if f.needs_cpu {
                libc::RUSAGE_THREAD
            } else {
                libc::RUSAGE_SELF
            };
            sys::cpu_and_peak_rss(who)
        } else {
            (0, 0, 0)
        };
        for &(off, k) in &self.holes {
            out.extend_from_slice(&self.line[at..off]);
            at = off;
            match &f.items[k] {
                Item::Duration(1) => out.extend_from_slice(us.to_string().as_bytes()),
                Item::Duration(d) => {
                    out.extend_from_slice(format!("{:.3}", us as f64 / *d as f64).as_bytes())
                }
                Item::Status => out.extend_from_slice(status_of(head).to_string().as_bytes()),
                Item::OutHeader(n) => push_value(&mut out, header_of(head, n).unwrap_or(b"")),
                Item::Memory(d) => out.extend_from_slice((usage.2 / d).to_string().as_bytes()),
                Item::Cpu(kind) => {
                    let (u, s) = (
                        usage.0.saturating_sub(self.cpu.0),
                        usage.1.saturating_sub(self.cpu.1),
                    );
                    let used = match kind {
                        Cpu::Total => u + s,
                        Cpu::User => u,
                        Cpu::System => s,
                    };
                    let pct = if us == 0 {
                        0.0
                    } else {
                        used as f64 * 100.0 / us as f64
                    };
                    out.extend_from_slice(format!("{pct:.2}").as_bytes());
                }
                Item::Time(_, fmt) => {
                    let now = super::scoreboard::unix_ms() / 1000;
                    out.extend_from_slice(&sys::strftime_local(fmt, now as i64));
                }
                _ => {}
            }
        }
        out.extend_from_slice(&self.line[at..]);
        out.truncate(MAX_LINE - 1);
        out.push(b'\n');
        LOG.write(&out);
    }
}

/// The response's status from its CGI header block: `Status:`, else 302 with `Location:`,
/// else 200.
pub fn status_of(head: &[u8]) -> u16 {
    if let Some(v) = header_of(head, b"Status") {
        let digits: Vec<u8> = v.iter().copied().take(3).collect();
        if let Some(n) = std::str::from_utf8(&digits)
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
        {
            return n;
        }
    }
    if header_of(head, b"Location").is_some() {
        return 302;
    }
    200
}

/// The value of header `name` (case-insensitive) in a CGI header block.
fn header_of<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    for line in head.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        if line[..colon].eq_ignore_ascii_case(name) {
            let v = &line[colon + 1..];
            let skip = v.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
            return Some(&v[skip..]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_fpm_formats() {
        let f = compile("%R - %u %t \"%m %r%Q%q\" %s %f %{mili}d %{kilo}M %C%%").unwrap();
        assert!(f.needs_head && f.needs_cpu);
        compile("%{REMOTE_PORT}e %{Content-Type}o %{%s}T %{micro}d %{user}C %n %p %P %l").unwrap();
        for bad in ["%x", "%{nope}d", "%e", "%{a}m", "%{abc", "abc%", "%{}o"] {
            assert!(compile(bad).is_err(), "{bad} compiled");
        }
    }

    #[test]
    fn status_and_headers() {
        assert_eq!(status_of(b"Content-Type: text/plain\r\n\r\nx"), 200);
        assert_eq!(status_of(b"status: 404 Not Found\r\n\r\n"), 404);
        assert_eq!(status_of(b"Location: /x\n\nStatus: 500\n"), 302);
        assert_eq!(
            header_of(b"A: 1\r\nX-Y:  two\r\n\r\n", b"x-y"),
            Some(&b"two"[..])
        );
    }

    #[test]
    fn renders_a_line() {
        let f = compile("%m %r%Q%q %s %{X-A}o %{micro}d %{Z}e \"%u\"").unwrap();
        let mut p = ParamStore::new();
        p.push(b"REQUEST_METHOD", b"GET");
        p.push(b"SCRIPT_NAME", b"/a b");
        p.push(b"QUERY_STRING", b"k=\"v\"");
        let pend = f.begin(&p, b"www", 1000);
        assert_eq!(pend.holes.len(), 3);
        let mut out = Vec::new();
        push_value(&mut out, b"a\nb");
        assert_eq!(out, b"a\\x0ab");
    }
}
