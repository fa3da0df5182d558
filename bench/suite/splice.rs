//! `--into`: the sections of a partial run put into a full report (BENCHMARKS.md). No
//! dependency on the rest of the runner, so tests/tools/bench_splice.rs tests it.

/// The sections of a report every run writes (the others belong to the scenarios that ran).
const COMMON_SECTIONS: [&str; 5] = [
    "## Machine",
    "## Results",
    "## Reproduce",
    "## What the scenarios measure",
    "## Reading the results",
];

/// `## ` sections of a report: (title line, whole text with the title).
fn sections(md: &str) -> Vec<(&str, &str)> {
    let starts: Vec<usize> = md
        .match_indices("\n## ")
        .map(|(i, _)| i + 1)
        .chain(md.starts_with("## ").then_some(0))
        .collect();
    let mut starts = starts;
    starts.sort_unstable();
    starts
        .iter()
        .enumerate()
        .map(|(k, &at)| {
            let end = starts.get(k + 1).copied().unwrap_or(md.len());
            let text = &md[at..end];
            (text.lines().next().unwrap_or(""), text)
        })
        .collect()
}

/// Puts the scenario sections of report `new` into report `old`: each replaces the section of
/// the same title, or goes before "## Reproduce"; `by` (which run made it) follows its title.
pub fn splice(old: &str, new: &str, by: &str) -> Result<String, String> {
    let ours: Vec<(&str, &str)> = sections(new)
        .into_iter()
        .filter(|(t, _)| !COMMON_SECTIONS.iter().any(|c| t.starts_with(c)))
        .collect();
    if ours.is_empty() {
        return Err("--into: this run wrote no section of its own".into());
    }
    let mut out = old.to_string();
    for (title, text) in ours {
        let (head, body) = text.split_once('\n').unwrap_or((text, ""));
        let stamped = format!("{head}\n\n{by}\n{body}");
        let existing = sections(&out)
            .into_iter()
            .find(|(t, _)| *t == title)
            .map(|(_, t)| t.to_string());
        match existing {
            Some(t) => out = out.replacen(&t, &stamped, 1),
            None => {
                let at = out
                    .find("\n## Reproduce")
                    .map(|i| i + 1)
                    .ok_or("--into: the report has no \"## Reproduce\" section")?;
                out.insert_str(at, &stamped);
            }
        }
    }
    Ok(out)
}
