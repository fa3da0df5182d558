#!/usr/bin/env python3
"""Assembles the source tree of the Python package's sdist (make sdist) in STAGE:

    STAGE/pyproject.toml, setup.py, MANIFEST.in, README.md   from bindings/python
    STAGE/LICENSE                                            the repository's
    STAGE/fcgi_runtime/                                      the package (*.py, py.typed)
    STAGE/rust/                                              what `cargo build --release` of
                                                             libfcgi.so needs, nothing more

rust/ is the workspace reduced to the crates libfcgi.so is built from: fcgi-runtime-capi (the
root package: Cargo.toml, build.rs, cbindgen.toml, src/, csrc/, include/fcgi.h),
crates/runtime and crates/protocol (Cargo.toml, README.md, src/). Left out: crates/tools, the
tests, benches, examples, fuzz/ and PHP, and so, from the manifests, the [dev-dependencies],
[[bench]] and [[example]] sections and the workspace members and dependencies that name them.
Cargo.lock is copied and then pruned by cargo to the crates left (offline: nothing is
resolved anew, every version stays the one the repository locks), so setup.py builds it with
--locked.

Usage: tools/python-dist-stage.py STAGE   (CARGO names cargo; default: cargo on PATH)
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = os.path.join(ROOT, "bindings", "python")

#: The workspace members libfcgi.so is built from (the root package depends on the two others).
MEMBERS = [".", "crates/protocol", "crates/runtime"]
#: Files and directories of the root package that the build reads.
ROOT_FILES = ["Cargo.toml", "Cargo.lock", "build.rs", "cbindgen.toml", "include/fcgi.h"]
ROOT_DIRS = ["src", "csrc"]
#: Sections dropped from every manifest: nothing of them is needed to build the library.
DROP_SECTIONS = {"dev-dependencies", "bench", "example", "test"}
#: [workspace.dependencies] entries only the tools and the tests use.
DROP_WORKSPACE_DEPS = {"fcgi-runtime-tools", "clap", "clap_mangen", "serde", "serde_json"}

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "target", ".*")


def sections(text: str) -> List[Tuple[str, List[str]]]:
    """The manifest as (section name, its lines) pairs; the name of the part before the first
    header is "", an array of tables ([[bench]]) is named "bench". The comment lines right above
    a header go with its section."""
    out: List[Tuple[str, List[str]]] = [("", [])]
    for line in text.splitlines(keepends=True):
        m = re.match(r"^\[\[?([^\]]+)\]\]?\s*(#.*)?$", line.strip())
        if m:
            # The comment lines right above a header belong to its section.
            prev = out[-1][1]
            lead: List[str] = []
            while prev and prev[-1].lstrip().startswith("#"):
                lead.insert(0, prev.pop())
            out.append((m.group(1).strip(), lead))
        out[-1][1].append(line)
    return out


def reduce_manifest(text: str, root: bool) -> str:
    kept: List[str] = []
    for name, lines in sections(text):
        if name in DROP_SECTIONS:
            continue
        if root and name == "workspace":
            members = "[" + ", ".join('"%s"' % m for m in MEMBERS) + "]\n"
            done = set()
            for i, line in enumerate(lines):
                key = line.split("=", 1)[0].strip()
                if key in ("members", "default-members"):
                    lines[i] = "%s = %s" % (key, members)
                    done.add(key)
            if done != {"members", "default-members"}:
                raise SystemExit("Cargo.toml: [workspace] has no one-line members/default-members")
        if root and name == "workspace.dependencies":
            lines = [l for l in lines if l.split("=", 1)[0].strip() not in DROP_WORKSPACE_DEPS]
        kept.extend(lines)
    return "".join(kept)


def check_manifest(path: str, text: str) -> None:
    """The reduced manifest parses and names nothing that was left out."""
    data = tomllib.loads(text)
    for name in DROP_SECTIONS:
        if name in data:
            raise SystemExit("%s: [%s] is still there" % (path, name))
    deps: Dict[str, object] = dict(data.get("dependencies", {}))
    deps.update(data.get("build-dependencies", {}))
    for dep in deps:
        if dep in DROP_WORKSPACE_DEPS:
            raise SystemExit("%s: the library's build needs %s, which the sdist leaves out"
                             % (path, dep))


def copy(rel: str, src_root: str, dst_root: str) -> None:
    src, dst = os.path.join(src_root, rel), os.path.join(dst_root, rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.isdir(src):
        shutil.copytree(src, dst, ignore=_IGNORE)
    else:
        shutil.copy2(src, dst)


def stage_rust(rust: str) -> None:
    for rel in ROOT_FILES + ROOT_DIRS:
        copy(rel, ROOT, rust)
    for member in MEMBERS[1:]:
        for rel in ("Cargo.toml", "README.md", "src"):
            copy(os.path.join(member, rel), ROOT, rust)
    for member in MEMBERS:
        path = os.path.join(rust, member, "Cargo.toml")
        with open(path, encoding="utf-8") as f:
            text = reduce_manifest(f.read(), root=member == ".")
        if member == ".":
            text = ("# The workspace of fcgi-runtime reduced to the crates libfcgi.so is built "
                    "from (tools/python-dist-stage.py).\n" + text)
        check_manifest(path, text)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    # Prunes the lock file of the crates left out; --offline: resolves nothing anew.
    cargo = os.environ.get("CARGO") or "cargo"
    subprocess.run(
        [cargo, "metadata", "--offline", "--format-version", "1", "--manifest-path",
         os.path.join(rust, "Cargo.toml")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def stage_python(stage: str) -> None:
    for rel in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "fcgi_runtime"):
        copy(rel, PY, stage)
    shutil.copy2(os.path.join(ROOT, "LICENSE"), os.path.join(stage, "LICENSE"))


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    stage = os.path.abspath(sys.argv[1])
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    stage_python(stage)
    stage_rust(os.path.join(stage, "rust"))
    print("staged %s" % os.path.relpath(stage, os.getcwd()))


if __name__ == "__main__":
    main()
