//! PHP's INI syntax as PHP-FPM reads its configuration (fpm_conf.c): one line at a time (no
//! value spans lines), `[section]` headers, `name = value` and `name[key] = value` entries, `;`
//! comments, and `include = GLOB` (processed where it stands: the included files' lines
//! continue the current section, as in FPM). Values follow the INI scanner's normal mode:
//! `"double"` quotes (escapes `\"`, `\\`, `\$`; `${VAR}` expanded), `'single'` quotes (raw), bare
//! text (trimmed, `${VAR}` expanded), and the bare words yes/on/true (`1`) and
//! no/off/false/none/null (empty). The `command` directive's value is split into words like a
//! shell would ([`words`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Where a line comes from: the file (as it was opened) and the line number (from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub file: Rc<PathBuf>,
    pub line: usize,
}

impl Loc {
    /// The directory relative paths written on this line are taken from.
    pub fn dir(&self) -> PathBuf {
        match self.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}:{}]", self.file.display(), self.line)
    }
}

/// One meaningful line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `[name]`
    Section(String),
    /// `name = raw` or `name[key] = raw`; `raw` is the text after `=` without its comment,
    /// trimmed, not yet interpreted ([`value`], [`words`]).
    Entry {
        name: String,
        key: Option<String>,
        raw: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub loc: Loc,
    pub item: Item,
}

/// FPM refuses a sixth file nested in includes ("failed to include more than 5 files
/// recursively").
const MAX_DEPTH: usize = 5;

/// Reads `path` and, in place, every file its `include` lines name (globs relative to the
/// including file's directory). Returns the lines and the warnings (an include pattern that
/// matches nothing); the first error ends the read.
pub fn read(path: &Path) -> Result<(Vec<Line>, Vec<String>), String> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    read_into(path, 1, None, &mut out, &mut warnings)?;
    Ok((out, warnings))
}

fn read_into(
    path: &Path,
    depth: usize,
    from: Option<&Loc>,
    out: &mut Vec<Line>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "{} failed to include more than {MAX_DEPTH} files recursively",
            from.map(|l| l.to_string()).unwrap_or_default()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| match from {
        Some(l) => format!("{l} unable to include {}: {e}", path.display()),
        None => format!(
            "failed to open configuration file '{}': {e}",
            path.display()
        ),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "'{}' is not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let file = Rc::new(path.to_path_buf());
    for (i, raw_line) in text.split('\n').enumerate() {
        let loc = Loc {
            file: file.clone(),
            line: i + 1,
        };
        let Some(item) = parse_line(raw_line).map_err(|e| format!("{loc} {e}"))? else {
            continue;
        };
        if let Item::Entry { name, key, raw } = &item {
            // Exactly `include`, as FPM compares it (case-sensitive; `Include` is unknown).
            if name == "include" {
                if key.is_some() {
                    return Err(format!("{loc} 'include' takes no [key]"));
                }
                let pattern = value(raw).map_err(|e| format!("{loc} include: {e}"))?;
                include(&pattern, &loc, depth, out, warnings)?;
                continue;
            }
        }
        out.push(Line { loc, item });
    }
    Ok(())
}

/// `include = PATTERN`: glob(3) with GLOB_ERR | GLOB_MARK as FPM calls it (sorted; directories
/// skipped; nothing matching is a warning; an unreadable directory an error).
fn include(
    pattern: &str,
    loc: &Loc,
    depth: usize,
    out: &mut Vec<Line>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    if pattern.is_empty() {
        return Err(format!("{loc} include: empty pattern"));
    }
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        loc.dir().join(pattern)
    };
    match glob(&full) {
        Ok(paths) if paths.is_empty() => warnings.push(format!(
            "Nothing matches the include pattern '{}' from {} at line {}.",
            full.display(),
            loc.file.display(),
            loc.line
        )),
        Ok(paths) => {
            for p in paths {
                read_into(&p, depth + 1, Some(loc), out, warnings)?;
            }
        }
        Err(e) => {
            return Err(format!(
                "{loc} unable to globalize '{}': {e}",
                full.display()
            ))
        }
    }
    Ok(())
}

/// The files (not directories) matching `pattern`, sorted; empty when nothing matches.
fn glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    use std::ffi::{CStr, CString, OsStr};
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(pattern.as_os_str().as_bytes())
        .map_err(|_| "NUL in the pattern".to_string())?;
    // SAFETY: glob_t is a plain C struct; all-zero is its documented initial state.
    let mut g: libc::glob_t = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated pattern, no error callback, a glob_t this function owns and
    // frees below.
    let rc = unsafe { libc::glob(c.as_ptr(), libc::GLOB_ERR | libc::GLOB_MARK, None, &mut g) };
    let result = match rc {
        0 => {
            let mut paths = Vec::new();
            for i in 0..g.gl_pathc {
                // SAFETY: glob filled gl_pathv with gl_pathc NUL-terminated strings.
                let p = unsafe { CStr::from_ptr(*g.gl_pathv.add(i)) };
                let bytes = p.to_bytes();
                if bytes.is_empty() || bytes.ends_with(b"/") {
                    continue;
                }
                paths.push(PathBuf::from(OsStr::from_bytes(bytes)));
            }
            Ok(paths)
        }
        libc::GLOB_NOMATCH => Ok(Vec::new()),
        libc::GLOB_ABORTED => Err("a directory could not be read".to_string()),
        libc::GLOB_NOSPACE => Err("out of memory".to_string()),
        other => Err(format!("glob failed ({other})")),
    };
    if rc == 0 {
        // SAFETY: `g` was filled by a successful glob.
        unsafe { libc::globfree(&mut g) };
    }
    result
}

/// One line: `None` for a blank or comment line.
pub fn parse_line(line: &str) -> Result<Option<Item>, String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let t = line.trim();
    if t.is_empty() || t.starts_with(';') {
        return Ok(None);
    }
    if t.starts_with('#') {
        return Err("'#' does not start a comment in PHP's INI syntax (use ';')".to_string());
    }
    if let Some(rest) = t.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| "syntax error: '[' without ']'".to_string())?;
        let after = rest[end + 1..].trim();
        if !after.is_empty() && !after.starts_with(';') {
            return Err(format!("syntax error: '{after}' after the section header"));
        }
        let name = value(rest[..end].trim())?;
        if name.is_empty() {
            return Err("empty section name".to_string());
        }
        return Ok(Some(Item::Section(name)));
    }
    let eq = find_unquoted(t, b'=')
        .ok_or_else(|| format!("syntax error: expected 'name = value', not '{t}'"))?;
    let lhs = t[..eq].trim_end();
    let (name, key) = match lhs.find('[') {
        Some(open) => {
            let inner = lhs[open + 1..]
                .strip_suffix(']')
                .ok_or_else(|| format!("syntax error in '{lhs}': expected name[key]"))?;
            (lhs[..open].trim_end(), Some(value(inner.trim())?))
        }
        None => (lhs, None),
    };
    if name.is_empty() {
        return Err("syntax error: an entry without a name".to_string());
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || "\"'$;[]{}()|&^~!".contains(*c))
    {
        return Err(format!("syntax error: '{c}' in the name '{name}'"));
    }
    let rest = &t[eq + 1..];
    let raw = match find_unquoted(rest, b';') {
        Some(c) => &rest[..c],
        None => rest,
    };
    check_quotes(raw)?;
    Ok(Some(Item::Entry {
        name: name.to_string(),
        key,
        raw: raw.trim().to_string(),
    }))
}

/// The first `want` byte outside quotes (`"` with backslash escapes, `'` raw).
fn find_unquoted(s: &str, want: u8) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote = 0u8;
    while i < b.len() {
        let c = b[i];
        if quote == b'"' {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                quote = 0;
            }
        } else if quote == b'\'' {
            if c == b'\'' {
                quote = 0;
            }
        } else if c == want {
            return Some(i);
        } else if c == b'"' || c == b'\'' {
            quote = c;
        }
        i += 1;
    }
    None
}

fn check_quotes(raw: &str) -> Result<(), String> {
    // A closing quote exists for every opening one when a terminator scan finds none open.
    let b = raw.as_bytes();
    let mut i = 0;
    let mut quote = 0u8;
    while i < b.len() {
        let c = b[i];
        match quote {
            b'"' if c == b'\\' => i += 1,
            b'"' | b'\'' if c == quote => quote = 0,
            0 if c == b'"' || c == b'\'' => quote = c,
            _ => {}
        }
        i += 1;
    }
    match quote {
        0 => Ok(()),
        q => Err(format!("syntax error: unterminated {} quote", q as char)),
    }
}

/// `${NAME}` (the environment's value, empty when unset, as PHP) and `${NAME:-DEFAULT}` (PHP
/// 8.3's form: DEFAULT when NAME is unset or empty). `s` starts after `${`; returns the value
/// and the bytes consumed including the `}`.
fn expand(s: &str) -> Result<(String, usize), String> {
    let end = s
        .find('}')
        .ok_or_else(|| "syntax error: '${' without '}'".to_string())?;
    let inner = &s[..end];
    let (name, default) = match inner.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (inner, None),
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!(
            "'${{{inner}}}' does not name an environment variable"
        ));
    }
    let v = std::env::var(name).unwrap_or_default();
    let v = match default {
        Some(d) if v.is_empty() => d.to_string(),
        _ => v,
    };
    Ok((v, end + 1))
}

/// Interprets a raw value as PHP's INI scanner does in normal mode (see the module's doc).
/// INI expressions (`|`, `&`, `^`, `~`, `!`, parentheses outside quotes) are refused: they are
/// for PHP's constants, which no directive here takes.
pub fn value(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if !raw.contains(['"', '\'', '$']) {
        match raw.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" => return Ok("1".to_string()),
            "no" | "off" | "false" | "none" | "null" => return Ok(String::new()),
            _ => {}
        }
    }
    let mut out = String::new();
    let mut rest = raw;
    // Whitespace next to a double-quoted string is dropped, as the scanner does.
    let mut after_dquote = false;
    while let Some(c) = rest.chars().next() {
        match c {
            '"' => {
                while out.ends_with([' ', '\t']) {
                    out.pop();
                }
                let (s, used) = double_quoted(&rest[1..])?;
                out.push_str(&s);
                rest = &rest[1 + used..];
                after_dquote = true;
                continue;
            }
            '\'' => {
                let end = rest[1..]
                    .find('\'')
                    .ok_or("syntax error: unterminated ' quote")?;
                out.push_str(&rest[1..1 + end]);
                rest = &rest[end + 2..];
            }
            '$' if rest.starts_with("${") => {
                let (v, used) = expand(&rest[2..])?;
                out.push_str(&v);
                rest = &rest[2 + used..];
            }
            ' ' | '\t' if after_dquote => {
                rest = &rest[1..];
                continue;
            }
            '|' | '&' | '^' | '~' | '!' | '(' | ')' => {
                return Err(format!(
                    "unquoted '{c}' (an INI expression, for PHP's constants): quote the value"
                ))
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        after_dquote = false;
    }
    Ok(out)
}

/// The inside of a `"..."` string; `s` starts after the opening quote. Returns the value and
/// the bytes consumed including the closing quote.
fn double_quoted(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        match b[i] {
            b'"' => return Ok((out, i + 1)),
            b'\\' if i + 1 < b.len() && matches!(b[i + 1], b'"' | b'\\' | b'$') => {
                out.push(b[i + 1] as char);
                i += 2;
            }
            b'$' if s[i..].starts_with("${") => {
                let (v, used) = expand(&s[i + 2..])?;
                out.push_str(&v);
                i += 2 + used;
            }
            _ => {
                let c = s[i..].chars().next().unwrap_or('\0');
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Err("syntax error: unterminated \" quote".to_string())
}

/// Splits a raw value into words as a shell would for plain words and quotes, with no shell:
/// blanks separate words; `'...'` is literal; `"..."` keeps blanks and takes `\"`, `\\`, `\$`
/// and `` \` `` escapes; a backslash outside quotes escapes the next character; `${VAR}` is
/// expanded outside single quotes (its value never splits into more words). Shell syntax that
/// would need a shell (`|`, `&`, `<`, `>`, `(`, `)`, a backquote, `$(`) is refused.
pub fn words(raw: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '\'' {
                        closed = true;
                        break;
                    }
                    cur.push(c);
                }
                if !closed {
                    return Err("unterminated ' quote".to_string());
                }
            }
            '"' => {
                in_word = true;
                let mut closed = false;
                while let Some((j, c)) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.peek() {
                            Some(&(_, n)) if matches!(n, '"' | '\\' | '$' | '`') => {
                                cur.push(n);
                                chars.next();
                            }
                            _ => cur.push('\\'),
                        },
                        '$' if raw[j..].starts_with("${") => {
                            let (v, used) = expand(&raw[j + 2..])?;
                            cur.push_str(&v);
                            skip_to(&mut chars, j + 2 + used);
                        }
                        '$' if raw[j..].starts_with("$(") => {
                            return Err("'$(' needs a shell".to_string());
                        }
                        '`' => return Err("'`' needs a shell".to_string()),
                        _ => cur.push(c),
                    }
                }
                if !closed {
                    return Err("unterminated \" quote".to_string());
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some((_, n)) => cur.push(n),
                    None => return Err("a backslash at the end".to_string()),
                }
            }
            '$' if raw[i..].starts_with("${") => {
                in_word = true;
                let (v, used) = expand(&raw[i + 2..])?;
                cur.push_str(&v);
                skip_to(&mut chars, i + 2 + used);
            }
            '$' if raw[i..].starts_with("$(") => return Err("'$(' needs a shell".to_string()),
            '|' | '&' | '<' | '>' | '(' | ')' | '`' | ';' => {
                return Err(format!(
                    "'{c}' needs a shell: run one (command = /bin/sh -c '...') or quote it"
                ))
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Advances `chars` to byte offset `to`.
fn skip_to(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, to: usize) {
    while chars.peek().is_some_and(|&(k, _)| k < to) {
        chars.next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &str) -> (String, Option<String>, String) {
        match parse_line(line) {
            Ok(Some(Item::Entry { name, key, raw })) => (name, key, raw),
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn lines() {
        assert_eq!(parse_line("  ; comment").unwrap(), None);
        assert_eq!(parse_line("").unwrap(), None);
        assert_eq!(parse_line("\r").unwrap(), None);
        assert_eq!(
            parse_line("[www] ; the pool").unwrap(),
            Some(Item::Section("www".into()))
        );
        assert_eq!(
            entry("pm.max_children = 5 ; five"),
            ("pm.max_children".into(), None, "5".into())
        );
        assert_eq!(
            entry("env[PATH] = /usr/bin:/bin"),
            ("env".into(), Some("PATH".into()), "/usr/bin:/bin".into())
        );
        assert_eq!(
            entry("php_admin_value[error_log] = /var/log/x.log"),
            (
                "php_admin_value".into(),
                Some("error_log".into()),
                "/var/log/x.log".into()
            )
        );
        // A ';' inside quotes is not a comment; one after them is.
        assert_eq!(
            entry(r#"access.format = "%R; \"%m\"" ; c"#).2,
            r#""%R; \"%m\"""#
        );
        assert_eq!(entry("x =").2, "");
        assert_eq!(entry("pm.process_idle_timeout = 10s;").2, "10s");
        assert!(parse_line("# comment").is_err());
        assert!(parse_line("foo").is_err());
        assert!(parse_line("[www").is_err());
        assert!(parse_line("[]").is_err());
        assert!(parse_line("[www] x").is_err());
        assert!(parse_line("a b = 1").is_err());
        assert!(parse_line("= 1").is_err());
        assert!(parse_line("x = \"open").is_err());
        assert!(parse_line("x = 'open").is_err());
    }

    #[test]
    fn values_as_php_reads_them() {
        // Checked against PHP 8.2's parse_ini_file (INI_SCANNER_NORMAL).
        std::env::set_var("FCGI_SPAWN_INI_TEST", "bar");
        let v = |s: &str| value(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(v(r#""x" "y""#), "xy");
        assert_eq!(v("x y  z"), "x y  z");
        assert_eq!(
            v(r#""q\"uo\\te\$d \n ${FCGI_SPAWN_INI_TEST}""#),
            r#"q"uo\te$d \n bar"#
        );
        assert_eq!(
            v("'raw ${FCGI_SPAWN_INI_TEST} \\n'"),
            "raw ${FCGI_SPAWN_INI_TEST} \\n"
        );
        assert_eq!(v("${FCGI_SPAWN_INI_TEST}/baz"), "bar/baz");
        assert_eq!(v("yes"), "1");
        assert_eq!(v("On"), "1");
        assert_eq!(v("None"), "");
        assert_eq!(v("off"), "");
        assert_eq!(v(r#""yes""#), "yes");
        assert_eq!(v("/run/$pool.sock"), "/run/$pool.sock");
        assert_eq!(v("${FCGI_SPAWN_INI_UNSET}x"), "x");
        assert_eq!(v("${FCGI_SPAWN_INI_UNSET:-dflt}"), "dflt");
        assert_eq!(v("0660"), "0660");
        assert_eq!(v(r#"abc"def"ghi"#), "abcdefghi");
        assert_eq!(v(r#""a" b "c""#), "abc");
        assert_eq!(v("x # y"), "x # y");
        assert_eq!(v("{x}"), "{x}");
        for bad in [
            "x | y",
            "E_ALL & ~E_NOTICE",
            "a(b)",
            "x!y",
            "${}",
            "${A",
            "${A B}",
        ] {
            assert!(value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_words() {
        std::env::set_var("FCGI_SPAWN_INI_WORDS", "two words");
        let w = |s: &str| words(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(w("/usr/sbin/fcgiwrap -f"), ["/usr/sbin/fcgiwrap", "-f"]);
        assert_eq!(
            w("  app   'a b'  \"c d\" e\\ f "),
            ["app", "a b", "c d", "e f"]
        );
        assert_eq!(w(r#"app "x\"y\\z\$" '\n'"#), ["app", r#"x"y\z$"#, "\\n"]);
        assert_eq!(w(r#"app "" ''"#), ["app", "", ""]);
        assert_eq!(
            w("app ${FCGI_SPAWN_INI_WORDS} \"${FCGI_SPAWN_INI_WORDS}\" '${X}'"),
            ["app", "two words", "two words", "${X}"]
        );
        assert_eq!(w("app --pool=$pool"), ["app", "--pool=$pool"]);
        assert_eq!(w("a\"b\"'c'"), ["abc"]);
        assert!(w("").is_empty());
        for bad in [
            "a | b", "a && b", "a > f", "$(x)", "`x`", "'open", "\"open", "a \\",
        ] {
            assert!(words(bad).is_err(), "{bad}");
        }
    }
}
