-- wrk script of the benchmark suite (bench/suite/wrk.rs): counts every response that is not a
-- 200 whose body contains the string given after `--`, and prints one machine-readable line.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  expect = args[1] or ""
  bad = 0
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body or "", expect, 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do
    b = b + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    "wrk-check requests=%d duration_us=%d bad=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, b, e.connect, e.read, e.write, e.status, e.timeout))
end
