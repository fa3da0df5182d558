//! bench/suite/splice.rs: a partial benchmark run's sections put into BENCHMARKS.md.

#[path = "../../bench/suite/splice.rs"]
mod splice;

use splice::splice;

#[test]
fn a_partial_run_replaces_its_own_sections_only() {
    let old = "# B\n\n## Results\n\nold rows\n\n## PHP: x\n\nold php\n\n## Reproduce\n\nr\n";
    let new = "# B\n\n## Results\n\nnothing\n\n## PHP: x\n\nnew php\n\n## Reproduce\n\nr\n";
    let got = splice(old, new, "By.").unwrap();
    assert_eq!(
        got,
        "# B\n\n## Results\n\nold rows\n\n## PHP: x\n\nBy.\n\nnew php\n\n## Reproduce\n\nr\n"
    );
    // A section the report does not have yet goes before Reproduce.
    let fresh = "# B\n\n## Results\n\nrows\n\n## Reproduce\n\nr\n";
    let got = splice(fresh, new, "By.").unwrap();
    assert!(got.contains("rows\n\n## PHP: x\n\nBy.\n\nnew php\n\n## Reproduce"));
    // A run with no section of its own has nothing to put in.
    assert!(splice(old, "# B\n\n## Results\n\nx\n", "By.").is_err());
}
