-- wrk script: /v1/predict/batch calls of ROWS orders (known and ~10 % unknown entities).
-- Usage: wrk -t2 -c8 -d10s -s loadtest/bench.lua http://127.0.0.1:3000/v1/predict/batch -- 100
-- Bodies are generated once per wrk thread (a pool of POOL distinct batches, cycled), so the
-- load generator spends its CPU on HTTP, not on formatting thousands of rows per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local POOL = 32
local bodies = {}
local next_body = 1

local function order()
  local r = math.random(0, 330)  -- ids >= 300 are unknown to the store
  local d = math.random(0, 880)  -- ids >= 800 are unknown to the store
  return string.format(
    '{"restaurant_id":"r_%04d","driver_id":"d_%04d","distance_km":%.2f,"is_peak_hour":%d,"order_value":%.2f}',
    r, d, 0.3 + math.random() * 12, math.random(0, 1), 5 + math.random() * 80)
end

function init(args)
  local rows = tonumber(args[1] or "100")
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000))
  for b = 1, POOL do
    local parts = {}
    for i = 1, rows do
      parts[i] = order()
    end
    bodies[b] = '{"orders":[' .. table.concat(parts, ",") .. ']}'
  end
end

request = function()
  local body = bodies[next_body]
  next_body = next_body % POOL + 1
  return wrk.format(nil, nil, nil, body)
end
