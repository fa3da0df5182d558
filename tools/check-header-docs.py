#!/usr/bin/env python3
"""Checks that include/fcgi.h says who owns what (run by `make lint`).

The convention (stated at the top of include/fcgi.h, and in docs/native-api.md):

  * The comment directly above every declaration that takes or returns a pointer (`*`) or a
    callback (a typedef'd function-pointer type such as fcgi_hook or fcgi_log_func), and
    above every function-pointer typedef, has a line starting "Ownership:".
  * That paragraph (up to the next "Threads:" line or the end of the comment) names who owns
    the pointers (borrowed, copied, owned by / owns, keeps or kept, stored, frees, takes
    back, belongs, the caller's) and how long they live (for the call, during the call,
    until ..., afterwards, must outlive, as long as).
  * A declaration that takes a callback, and every function-pointer typedef, also has a line
    starting "Threads:" (which threads call it, what it must not do).
  * Nothing but blank lines follows the include guard's closing #endif.

Usage: check-header-docs.py [HEADER]        check HEADER (default: include/fcgi.h)
       check-header-docs.py --self-test [HEADER]
                                           check that broken copies of HEADER fail
Exit status 0 when the header follows the convention, 1 (with one line per problem, naming
the function) when it does not, 2 on a usage error.
"""

import os
import re
import sys
import tempfile

OWNER_WORDS = re.compile(
    r"\b(borrowed|copied|copies|copy|owned|owns|keeps|kept|stored|frees?|freed|takes back"
    r"|gives .{1,40} back|belongs|caller's)\b"
)
LIFETIME_WORDS = re.compile(
    r"\b(for the call|during the call|during each call|until|afterwards|must outlive"
    r"|as long as)\b"
)
FN_TYPEDEF = re.compile(r"^typedef\b.*\(\s*\*\s*(\w+)\s*\)\s*\(")
FUNCTION = re.compile(r"^(?P<ret>[^()]*?)\b(?P<name>\w+)\s*\((?P<params>.*)\)\s*;$", re.S)


def comment_text(lines):
    """The text of a /* */ comment's lines, without the delimiters and leading ` * `."""
    out = []
    for line in lines:
        s = line.strip()
        if s.startswith("/*"):
            s = s[2:]
        if s.endswith("*/"):
            s = s[:-2]
        s = s.strip()
        if s.startswith("*"):
            s = s[1:].strip()
        out.append(s)
    return out


def parse(text):
    """(line number, declaration, lines of the comment directly above it or None) for each
    top-level declaration: typedefs and function prototypes (preprocessor lines skipped)."""
    lines = text.split("\n")
    decls = []
    comment = None  # (last line index, lines) of the latest comment
    i = 0
    stmt, stmt_start = [], None
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if not stmt and s.startswith("/*"):
            start = i
            while "*/" not in lines[i]:
                i += 1
            comment = (i, lines[start : i + 1])
            i += 1
            continue
        if not stmt and (not s or s.startswith("#") or s.startswith("//") or s in ("}", "extern \"C\" {")):
            # A preprocessor line continues with a trailing backslash.
            while s.endswith("\\") and i + 1 < len(lines):
                i += 1
                s = lines[i].strip()
            i += 1
            continue
        if not stmt:
            stmt_start = i
        stmt.append(s)
        if s.endswith(";") or s.endswith("{"):
            decl = " ".join(stmt)
            above = comment[1] if comment and comment[0] == stmt_start - 1 else None
            decls.append((stmt_start + 1, decl, above))
            stmt = []
        i += 1
    return decls


def guard_problems(text, path):
    lines = text.rstrip("\n").split("\n")
    m = re.search(r"^#ifndef (\w+)\s*\n#define \1\s*$", text, re.M)
    if not m:
        return [f"{path}: no include guard (#ifndef X / #define X)"]
    last = lines[-1].strip()
    if not re.match(rf"#endif\b.*\b{m.group(1)}\b", last):
        # Find the guard's #endif to name what follows it.
        for n, line in enumerate(lines):
            if re.match(rf"\s*#endif\b.*\b{m.group(1)}\b", line):
                k = next(k for k in range(n + 1, len(lines)) if lines[k].strip())
                return [
                    f"{path}:{k + 1}: text after the include guard's #endif (line {n + 1}): "
                    f"{lines[k].strip()!r}; emit it inside the guard (cbindgen.toml "
                    "after_includes, not trailer)"
                ]
        return [f"{path}: the last line is not the include guard's #endif"]
    return []


def check(path):
    text = open(path, encoding="utf-8").read()
    problems = guard_problems(text, path)
    decls = parse(text)
    callbacks = set()
    for _, decl, _ in decls:
        m = FN_TYPEDEF.match(decl)
        if m:
            callbacks.add(m.group(1))
    cb_word = re.compile(r"\b(" + "|".join(sorted(callbacks)) + r")\b") if callbacks else None
    checked = 0
    for lineno, decl, above in decls:
        m = FN_TYPEDEF.match(decl)
        if m:
            name, kind = m.group(1), "callback type"
            takes_callback = True
        else:
            f = FUNCTION.match(decl)
            if not f or decl.startswith("typedef"):
                continue
            name, kind = f.group("name"), "function"
            takes_callback = bool(cb_word and cb_word.search(f.group("params")))
        involves_pointer = "*" in decl or takes_callback or (cb_word and cb_word.search(decl))
        if not involves_pointer:
            continue
        checked += 1
        where = f"{path}:{lineno}: {name} ({kind})"
        if above is None:
            problems.append(f"{where}: no comment directly above it")
            continue
        body = comment_text(above)
        own = [n for n, l in enumerate(body) if l.startswith("Ownership:")]
        if not own:
            problems.append(f"{where}: its comment has no line starting \"Ownership:\"")
        else:
            para = []
            for l in body[own[0] :]:
                if para and l.startswith("Threads:"):
                    break
                para.append(l)
            para = " ".join(para)
            if not OWNER_WORDS.search(para):
                problems.append(
                    f"{where}: its Ownership paragraph does not say who owns the pointers "
                    "(borrowed, copied, owned by, keeps, frees, belongs, ...)"
                )
            if not LIFETIME_WORDS.search(para):
                problems.append(
                    f"{where}: its Ownership paragraph does not say how long they live "
                    "(for the call, until ..., must outlive, ...)"
                )
        if takes_callback and not any(l.startswith("Threads:") for l in body):
            problems.append(
                f"{where}: it involves a callback, but its comment has no line starting "
                "\"Threads:\""
            )
    if checked == 0:
        problems.append(f"{path}: no declaration with a pointer or callback found (parse error?)")
    return problems, checked


def self_test(path):
    """Breaks copies of the header in known ways; each must be reported."""
    text = open(path, encoding="utf-8").read()

    def drop_line(starting, in_decl):
        i = text.index(in_decl)
        j = text.rindex(starting, 0, i)
        k = text.index("\n", j)
        return text[:j] + text[k + 1 :]

    cases = [
        ("an Ownership line removed", drop_line("Ownership:", " fcgi_write("), "fcgi_write"),
        ("a Threads line removed", drop_line("Threads:", " fcgi_set_log_func("), "fcgi_set_log_func"),
        ("a callback type's Ownership line removed",
         drop_line("Ownership:", " (*fcgi_log_func)("), "fcgi_log_func"),
        ("a macro after the guard", text.rstrip("\n") + "\n\n#define FCGI_LATE 1\n", "#endif"),
        ("a new undocumented function",
         text.replace("#ifdef __cplusplus\n}", "void fcgi_new_thing(void *p);\n\n#ifdef __cplusplus\n}", 1),
         "fcgi_new_thing"),
    ]
    failed = 0
    with tempfile.TemporaryDirectory() as d:
        for what, broken, expect in cases:
            if broken == text:
                print(f"self-test: {what}: the mutation did not apply", file=sys.stderr)
                failed += 1
                continue
            p = os.path.join(d, "fcgi.h")
            open(p, "w", encoding="utf-8").write(broken)
            problems, _ = check(p)
            if not any(expect in x for x in problems):
                print(f"self-test: {what}: not reported (got {problems})", file=sys.stderr)
                failed += 1
    if failed:
        return 1
    print(f"check-header-docs: self-test passed ({len(cases)} broken copies of {path} rejected)")
    return 0


def main(argv):
    args = argv[1:]
    test = bool(args) and args[0] == "--self-test"
    if test:
        args = args[1:]
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(__doc__, file=sys.stderr)
        return 2
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = args[0] if args else os.path.relpath(os.path.join(root, "include", "fcgi.h"))
    if test:
        return self_test(path)
    problems, checked = check(path)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(
            f"check-header-docs: {len(problems)} problem(s) in {path}; the convention is "
            "described at the top of the header and in tools/check-header-docs.py; fix the "
            "doc comments in src/ffi/*.rs (or cbindgen.toml), then make build",
            file=sys.stderr,
        )
        return 1
    print(f"check-header-docs: {path}: {checked} declarations with pointers or callbacks, all "
          "state ownership")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
