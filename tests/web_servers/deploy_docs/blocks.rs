//! The marked blocks of docs/deploy.md: parsing, lookup, and the check that each is run.

use super::*;

// ---------------------------------------------------------------------------------------------
// The document's blocks
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub(crate) struct Block {
    kind: String,
    name: String,
    /// 1-based line of the marker.
    line: usize,
    text: String,
}

/// The marked blocks of `doc`, or what is wrong with a marker.
pub(crate) fn parse_doc(doc: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if !(t.starts_with("<!--") && t.contains("deploy-test")) {
            i += 1;
            continue;
        }
        let line = i + 1;
        let words: Vec<&str> = t
            .strip_prefix("<!--")
            .and_then(|r| r.strip_suffix("-->"))
            .and_then(|r| r.trim().strip_prefix("deploy-test:"))
            .map(|r| r.split_whitespace().collect())
            .unwrap_or_default();
        let [kind, name] = words[..] else {
            return Err(format!(
                "{DOC}:{line}: want `<!-- deploy-test: KIND NAME -->`, got {t:?}"
            ));
        };
        if !lines.get(i + 1).is_some_and(|l| l.starts_with("```")) {
            return Err(format!(
                "{DOC}:{line}: the marker is not followed by a fenced block"
            ));
        }
        let mut text = String::new();
        let mut j = i + 2;
        loop {
            let Some(l) = lines.get(j) else {
                return Err(format!("{DOC}:{line}: the block never ends"));
            };
            if l.trim_end() == "```" {
                break;
            }
            text.push_str(l);
            text.push('\n');
            j += 1;
        }
        blocks.push(Block {
            kind: kind.to_string(),
            name: name.to_string(),
            line,
            text,
        });
        i = j + 1;
    }
    Ok(blocks)
}

/// The marked blocks of docs/deploy.md (read once per test binary).
pub(crate) fn doc_blocks() -> &'static [Block] {
    static BLOCKS: OnceLock<Result<Vec<Block>, String>> = OnceLock::new();
    let parsed = BLOCKS.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DOC);
        let doc = fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        parse_doc(&doc)
    });
    match parsed {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// The text of the block marked `<!-- deploy-test: KIND NAME -->`; fails the test when the
/// document has none (or several).
pub(crate) fn doc_block(kind: &str, name: &str) -> String {
    assert!(KINDS.contains(&kind), "unknown kind {kind:?}");
    let found: Vec<&Block> = doc_blocks()
        .iter()
        .filter(|b| b.kind == kind && b.name == name)
        .collect();
    match found[..] {
        [b] => b.text.clone(),
        [] => panic!(
            "{DOC} has no block marked `<!-- deploy-test: {kind} {name} -->`: the section this \
             test runs was removed or its marker changed"
        ),
        _ => panic!("{DOC} has several blocks marked `deploy-test: {kind} {name}`"),
    }
}

/// Replaces, in `base`, the section that starts with the first line of `fragment` (compared
/// trimmed) by `fragment`. With `braces` the section ends at the `}` closing its first line
/// (nginx); without, before the next line that starts in column 0 (HAProxy).
pub(crate) fn replace_section(base: &str, fragment: &str, braces: bool) -> String {
    let first = fragment
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .expect("an empty fragment");
    let lines: Vec<&str> = base.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == first)
        .unwrap_or_else(|| panic!("no section {first:?} to replace in\n{base}"));
    let mut end = start;
    if braces {
        let mut depth = 0i32;
        for (k, l) in lines.iter().enumerate().skip(start) {
            depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
            if depth == 0 {
                end = k;
                break;
            }
        }
        assert!(depth == 0, "section {first:?} is never closed in\n{base}");
    } else {
        end = lines[start + 1..]
            .iter()
            .position(|l| !l.is_empty() && !l.starts_with(char::is_whitespace))
            .map_or(lines.len(), |p| start + 1 + p)
            - 1;
        // Blank lines before the next section stay.
        while end > start && lines[end].trim().is_empty() {
            end -= 1;
        }
    }
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend(fragment.lines());
    out.extend(&lines[end + 1..]);
    out.join("\n") + "\n"
}

#[test]
pub(crate) fn every_marked_block_is_run_by_a_test() {
    let blocks = doc_blocks();
    let source = [
        include_str!("../deploy_docs.rs"),
        include_str!("blocks.rs"),
        include_str!("haproxy.rs"),
        include_str!("lighttpd.rs"),
        include_str!("nginx.rs"),
        include_str!("systemd.rs"),
    ]
    .concat();
    let mut seen = Vec::new();
    for b in blocks {
        assert!(
            KINDS.contains(&b.kind.as_str()),
            "{DOC}:{}: unknown kind {:?} (known: {KINDS:?})",
            b.line,
            b.kind
        );
        let key = (b.kind.as_str(), b.name.as_str());
        assert!(
            !seen.contains(&key),
            "{DOC}:{}: a second block marked {} {}",
            b.line,
            b.kind,
            b.name
        );
        seen.push(key);
        let call = format!("doc_block(\"{}\", \"{}\")", b.kind, b.name);
        assert!(
            source.contains(&call),
            "{DOC}:{}: the block marked `deploy-test: {} {}` is run by no test (no {call} in \
             tests/web_servers/deploy_docs.rs)",
            b.line,
            b.kind,
            b.name
        );
    }
    for kind in KINDS {
        assert!(
            blocks.iter().any(|b| b.kind == *kind),
            "{DOC} has no block of kind {kind}"
        );
    }
}

#[test]
pub(crate) fn parser_rejects_bad_markers() {
    let ok = "x\n<!-- deploy-test: nginx a -->\n```nginx\nline 1\n```\n";
    let b = parse_doc(ok).expect("a good marker");
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].kind.as_str(), b[0].name.as_str()), ("nginx", "a"));
    assert_eq!(b[0].text, "line 1\n");
    assert!(parse_doc("<!-- deploy-test: nginx -->\n```\n```\n").is_err());
    assert!(parse_doc("<!-- deploy-test: nginx a -->\n\ntext\n").is_err());
    assert!(parse_doc("<!-- deploy-test: nginx a -->\n```\nunclosed\n").is_err());
    let fragment = "upstream app {\n    server b;\n}\n";
    let base = "upstream app {\n    server a;\n    keepalive 8;\n}\n\nserver {\n}\n";
    assert_eq!(
        replace_section(base, fragment, true),
        "upstream app {\n    server b;\n}\n\nserver {\n}\n"
    );
    let base = "global\n    x\n\nfcgi-app f\n    a\n    b\n\nbackend b\n    y\n";
    assert_eq!(
        replace_section(base, "fcgi-app f\n    c\n", false),
        "global\n    x\n\nfcgi-app f\n    c\n\nbackend b\n    y\n"
    );
}
