#!/usr/bin/env bash
# The system-call fence (issue 21): libc functions are called only in crates/runtime/src/sys/, where
# each call goes through `syscall!` with a `// SAFETY:` line. This check, part of `make lint`,
# fails when a `libc::name(` call appears anywhere else in src/ or crates/ and the allow-list
# (tools/syscall-fence.allow) does not name that function for that file.
#
# What counts: `libc::` followed by a name starting with a lower-case letter or `_` and then
# `(`. libc's types and constants (`libc::c_int`, `libc::EINTR`, `libc::pollfd { .. }`) and
# its renderings of C macros in capitals (`libc::WIFEXITED(st)`, `libc::SIGRTMIN()`) are not
# calls into the C library's functions and pass. Comments are ignored, and so are the items
# under a `#[cfg(test)]` attribute (the unit tests' fixtures: pipes, socketpairs, signals).
#
# Usage: tools/check-syscall-fence.sh [ROOT]   (ROOT: the repository, default: this script's
# parent directory). Exit status 0 when the tree is clean, 1 with one line per offending call.

set -euo pipefail

root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
allow=$root/tools/syscall-fence.allow
[ -f "$allow" ] || { echo "check-syscall-fence: $allow is missing" >&2; exit 1; }

# The calls outside the fence as "path:line:function", test items and comments left out.
calls=$(cd "$root" && find src crates -name '*.rs' -not -path 'crates/runtime/src/sys/*' -print0 | sort -z |
    xargs -0 awk '
        FNR == 1 { skip = 0; pending = 0 }
        {
            line = $0
            if (skip) {
                # Inside a #[cfg(test)] item: it ends at the closing brace of its indentation.
                if (line == end) skip = 0
                next
            }
            if (pending == 1) {
                # The item under #[cfg(test)] starts here (after more attributes, if any).
                if (line ~ /^[ \t]*#\[/ || line ~ /^[ \t]*$/ || line ~ /^[ \t]*\/\//) next
                match(line, /^[ \t]*/)
                end = substr(line, 1, RLENGTH) "}"
                pending = 2
            }
            if (pending == 2) {
                # Its header, up to the brace that opens its body (or the ";" that ends it).
                if (line ~ /\{[ \t]*$/) { pending = 0; skip = 1 }
                else if (line ~ /;[ \t]*$/) pending = 0
                next
            }
            if (line ~ /^[ \t]*#\[cfg\(test\)\][ \t]*$/) { pending = 1; next }
            sub(/\/\/.*/, "", line)
            while (match(line, /libc::[a-z_][A-Za-z0-9_]*[ \t]*\(/)) {
                name = substr(line, RSTART + 6, RLENGTH - 7)
                sub(/[ \t]+$/, "", name)
                print FILENAME ":" FNR ":" name
                line = substr(line, RSTART + RLENGTH)
            }
        }')

# The allow-list: "path: name name ...  # reason" lines; blank lines and "#" lines are comments.
declare -A allowed=()
while IFS= read -r entry; do
    entry=${entry%%#*}
    [[ $entry =~ ^[[:space:]]*$ ]] && continue
    path=${entry%%:*}
    path=${path//[[:space:]]/}
    for name in ${entry#*:}; do
        allowed["$path:$name"]=1
    done
done <"$allow"

fails=0
declare -A used=()
while IFS= read -r c; do
    [ -n "$c" ] || continue
    path=${c%%:*}
    name=${c##*:}
    if [ -n "${allowed["$path:$name"]:-}" ]; then
        used["$path:$name"]=1
    else
        echo "$c: libc::$name called outside crates/runtime/src/sys/ (move it into the fence, or allow-list it in tools/syscall-fence.allow with a reason)" >&2
        fails=$((fails + 1))
    fi
done <<<"$calls"

# Entries that no longer match a call are stale: the list must not grow silently.
for key in "${!allowed[@]}"; do
    if [ -z "${used[$key]:-}" ]; then
        echo "tools/syscall-fence.allow: ${key%%:*} no longer calls libc::${key#*:}; remove the entry" >&2
        fails=$((fails + 1))
    fi
done

if [ "$fails" -ne 0 ]; then
    echo "check-syscall-fence: $fails problem(s)" >&2
    exit 1
fi
echo "check-syscall-fence: no libc call outside crates/runtime/src/sys/ beyond the allow-list"
