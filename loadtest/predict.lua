-- wrk script: single /v1/predict calls with varied orders (known and unknown entities).
-- Usage: wrk -t2 -c64 -d15s -s loadtest/predict.lua http://127.0.0.1:3000/v1/predict
math.randomseed(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  local r = math.random(0, 330)  -- ids >= 300 are unknown to the store
  local d = math.random(0, 850)
  local body = string.format(
    '{"restaurant_id":"r_%04d","driver_id":"d_%04d","distance_km":%.2f,"is_peak_hour":%d,"order_value":%.2f}',
    r, d, 0.3 + math.random() * 12, math.random(0, 1), 5 + math.random() * 80)
  return wrk.format(nil, nil, nil, body)
end
