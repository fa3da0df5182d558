#!/bin/bash
# One thread of each face: bench/apps/loop_app.c (fcgi_loop_*, one epoll loop) against
# bench/apps/native_app.c with one thread (fcgi_accept_request), fcgi-bench on TCP with
# keep-alive, -c 1 / 64 / 1000, 5 s runs after 1 s of warm-up, 3 alternating rounds; prints
# the medians (requests/s, p99 latency). Needs `cargo build --release` first.
#
#   bench/loop.sh [PORT]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${1:-9811}
lib=$root/target/release
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
for app in loop_app native_app; do
  cc -O2 -I"$root/include" "$root/bench/apps/$app.c" -o "$tmp/$app" -L"$lib" \
    -Wl,-rpath,"$lib" -lfcgi -lpthread
done
ulimit -n "$(ulimit -Hn)"
for round in 1 2 3; do
  for app in loop native; do
    if [ $app = loop ]; then "$tmp/loop_app" "127.0.0.1:$port" &
    else "$tmp/native_app" "127.0.0.1:$port" 1 hello & fi
    pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
    for c in 1 64 1000; do
      "$lib/fcgi-bench" -c $c -d 5 --warmup 1 --expect Hello --json "127.0.0.1:$port" /hello |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(sys.argv[1], sys.argv[2], d["requests_per_s"], d["errors"], d["latency_us"]["p99"])' $app $c
    done
    kill $pid; wait $pid 2>/dev/null || true
  done
done | tee "$tmp/raw" >&2
python3 - "$tmp/raw" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    app, c, rps, err, p99 = line.split()
    rows.setdefault((app, int(c)), []).append((float(rps), int(err), int(p99)))
print("| server (one thread) | -c 1 | -c 64 | -c 1000 |")
print("|---|---:|---:|---:|")
names = {"loop": "loop_app (fcgi_loop_*, epoll)", "native": "native_app, 1 thread (fcgi_accept_request)"}
for app in ("loop", "native"):
    cells = []
    for c in (1, 64, 1000):
        r = rows[(app, c)]
        rps = statistics.median(x[0] for x in r)
        p99 = statistics.median(x[2] for x in r)
        errs = sum(x[1] for x in r)
        cells.append("%s req/s, p99 %s us%s" % (format(round(rps, -2), ",.0f"), p99, "" if errs == 0 else " (%d errors)" % errs))
    print("| %s | %s |" % (names[app], " | ".join(cells)))
PY
