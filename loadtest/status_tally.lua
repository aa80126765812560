-- wrk script: /v1/predict orders from a bodies file (predict.lua) plus a tally of every
-- response status, and of 503s that lack Retry-After. Prints "status <code> <count>" lines.
-- Usage: wrk -t2 -c512 -d10s --timeout 30s -s loadtest/status_tally.lua URL -- BODIES_FILE
dofile((debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "") .. "predict.lua")

local threads = {}
local load_init = init
function setup(thread) table.insert(threads, thread) end
function init(args) load_init(args); counts = {}; retry_after_missing = 0 end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 503 and headers["retry-after"] == nil and headers["Retry-After"] == nil then
    retry_after_missing = retry_after_missing + 1
  end
end

function done(summary, latency, requests)
  local total, missing = {}, 0
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("counts")) do total[code] = (total[code] or 0) + n end
    missing = missing + thread:get("retry_after_missing")
  end
  for code, n in pairs(total) do io.write(string.format("status %d %d\n", code, n)) end
  io.write(string.format("retry_after_missing %d\n", missing))
end
