-- wrk script: POSTs one request body read from a file, for every contestant.
--   BENCH_BODY     path of the body file (JSON or V2 binary-extension bytes)
--   BENCH_HEADERS  optional extra headers, "Name: value" separated by "\n"
--   BENCH_STICKY   optional header name: every request carries it with one of 10,007
--                  cycling values ("user-N"), as clients of a sticky traffic split do
-- At the end prints one line BENCH_RESULT {json} with exact latency percentiles
-- (p50/p99/p99.9 in microseconds), request and error counts.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local extra = os.getenv("BENCH_HEADERS") or ""
for line in string.gmatch(extra, "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name then wrk.headers[name] = value end
end

local sticky = os.getenv("BENCH_STICKY") or ""
if sticky ~= "" then
  local n = 0
  request = function()
    n = (n + 1) % 10007
    wrk.headers[sticky] = "user-" .. n
    return wrk.format()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"err_connect": %d, "err_read": %d, "err_write": %d, "err_status": %d, "err_timeout": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
