#!/usr/bin/env python3
"""tests/README.md must stay true: every export of the library is named in it, and every test it
names still exists.

- Exports: `nm -D --defined-only` of the built libfcgi.so (LIB, default target/release/libfcgi.so;
  skipped with a note when it is not built), or, with --exports FILE, one name a line. Each must
  appear in tests/README.md as `name` (in backquotes).
- Tests: every backquoted `group::module::test` in tests/README.md, where `group` is a test binary
  (a directory tests/<group>/ with a main.rs, or a file tests/<group>.rs), must name a function
  (or a name a test macro is given) in the module's file, tests/<group>/<module path>.rs or an
  inline module in it; `group::module::*` must name an existing module.

Reads the sources only (no build). Exit status 1 with one line per problem; --self-test checks
that a missing export and a stale test name are caught.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binaries(tests_dir):
    """Test binaries: name -> (root file, directory of its modules)."""
    out = {}
    for entry in sorted(os.listdir(tests_dir)):
        path = os.path.join(tests_dir, entry)
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, "main.rs")):
            out[entry] = (os.path.join(path, "main.rs"), path)
        elif entry.endswith(".rs") and os.path.isfile(path):
            out[entry[:-3]] = (path, os.path.join(tests_dir, entry[:-3]))
    return out


def program_test_names(tests_dir):
    """The test names program_tests! generates (tests/memsafe/programs.rs)."""
    path = os.path.join(tests_dir, "memsafe", "programs.rs")
    if not os.path.isfile(path):
        return []
    text = open(path, encoding="utf-8").read()
    m = re.search(r"macro_rules! program_tests \{(.*?)\n\}", text, re.S)
    if not m:
        return []
    return re.findall(r"^\s*(\w+) => \"", m.group(1), re.M)


def resolve(tests_dir, bins, parts):
    """Whether `parts` (binary, modules..., test or `*`) names a test (or a module, for `*`).
    A module is a file tests/<binary>/<path>.rs or an inline `mod name` of the file above it; a
    test is a `fn name` in its module's file, or a name a test-generating macro is given there
    (`name => ...`, or program_tests!'s list)."""
    root, moddir = bins[parts[0]]
    text = open(root, encoding="utf-8").read()
    d = moddir
    for i, p in enumerate(parts[1:], start=1):
        last = i == len(parts) - 1
        if last and p == "*":
            return True
        f = os.path.join(d, p + ".rs")
        if os.path.isfile(f):
            text, d = open(f, encoding="utf-8").read(), os.path.join(d, p)
            if last:
                return True
            continue
        if re.search(r"\bmod\s+" + p + r"\s*\{", text) and not last:
            continue
        if last:
            if re.search(r"\bfn\s+" + p + r"\b", text) or re.search(r"^\s*" + p + r"\s*=>", text, re.M):
                return True
            return "program_tests!(" in text and p in program_test_names(tests_dir)
        return False
    return True


def exports(lib, exports_file):
    if exports_file:
        return [l.strip() for l in open(exports_file) if l.strip()]
    if not os.path.isfile(lib):
        print(f"check-test-map: {lib} not built, exports not checked (make build)")
        return []
    out = subprocess.run(
        ["nm", "-D", "--defined-only", lib], capture_output=True, text=True, check=True
    ).stdout
    names = [l.split()[-1] for l in out.splitlines() if len(l.split()) == 3]
    return [n for n in names if re.match(r"^(fcgi_|FCGX_|FCGI_|OS_|_fcgi_sF$)", n)]


def check(readme, tests_dir, names):
    text = open(readme, encoding="utf-8").read()
    quoted = set(re.findall(r"`([^`\s]+)`", text))
    problems = []
    for n in names:
        if n not in quoted:
            problems.append(f"{readme}: the export {n} is not named (as `{n}`)")
    bins = binaries(tests_dir)
    for q in sorted(quoted):
        parts = q.split("::")
        if len(parts) < 2 or parts[0] not in bins:
            continue
        if not all(re.match(r"^\w+$", p) for p in parts[:-1]) or not re.match(r"^(\w+|\*)$", parts[-1]):
            continue
        if not resolve(tests_dir, bins, parts):
            problems.append(f"{readme}: no test {q}")
    return problems


def self_test(readme, tests_dir, names):
    """A missing export and a stale test name must both be reported."""
    text = open(readme, encoding="utf-8").read()
    victim = names[0] if names else None
    with tempfile.TemporaryDirectory() as d:
        broken = os.path.join(d, "README.md")
        stale = "`native::raw_echo::no_such_test_exists`"
        body = text.replace(f"`{victim}`", "`removed`") if victim else text
        open(broken, "w", encoding="utf-8").write(body + "\n" + stale + "\n")
        problems = check(broken, tests_dir, names)
    ok = any("no test native::raw_echo::no_such_test_exists" in p for p in problems)
    if victim:
        ok = ok and any(f"export {victim} " in p for p in problems)
    if not ok:
        print("check-test-map: self-test failed: a broken README.md passed:", problems)
        return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", default=os.path.join(ROOT, "tests", "README.md"))
    ap.add_argument("--tests", default=os.path.join(ROOT, "tests"))
    ap.add_argument("--lib", default=os.path.join(ROOT, "target", "release", "libfcgi.so"))
    ap.add_argument("--exports", help="a file of export names, one a line (instead of nm)")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    names = exports(a.lib, a.exports)
    if a.self_test and not self_test(a.readme, a.tests, names):
        return 1
    problems = check(a.readme, a.tests, names)
    for p in problems:
        print(p)
    if problems:
        print(f"check-test-map: {len(problems)} problem(s); tests/README.md maps exports and limits to tests")
        return 1
    print(f"check-test-map: {len(names)} exports named in tests/README.md, every test it names exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
