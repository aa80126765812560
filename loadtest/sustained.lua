-- wrk script of the sustained benchmark cell (loadtest/bench/sustained.py): the single-order
-- POSTs of predict.lua, plus a summary at the end that the cell merges over its windows -- the
-- latency quantiles at every 0.1 % (wrk --latency prints only 50/75/90/99), the max, requests
-- and errors.
-- Usage: wrk -t2 -c64 -d30s -s loadtest/sustained.lua http://127.0.0.1:3000/v1/predict -- FILE
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "predict.lua")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SUSTAINED requests=%d non2xx=%d socket_errors=%d max_us=%d\n",
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, latency.max))
  local quantiles = {}
  for i = 1, 999 do quantiles[i] = string.format("%d", latency:percentile(i / 10)) end
  io.write("QUANTILES_US " .. table.concat(quantiles, ",") .. "\n")
end
