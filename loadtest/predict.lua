-- wrk script: POSTs that cycle through a bodies file (one JSON body per line, at most
-- MAX_BODIES read), written from the served feature contract by loadtest/wrk_bodies.py or
-- `python -m models.served_contract bodies --url URL --out FILE [--rows N]` (single orders for
-- /v1/predict, or --rows N batches for /v1/predict/batch). Each thread starts at its own line.
-- Usage: wrk -t2 -c64 -d15s -s loadtest/predict.lua http://127.0.0.1:3000/v1/predict -- FILE
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local MAX_BODIES = 10000

function load_bodies(path)
  if path == nil or path == "" then
    error("pass a bodies file: wrk ... -s loadtest/predict.lua URL -- FILE "
      .. "(python -m models.served_contract bodies --url URL --out FILE)")
  end
  local list = {}
  for line in io.lines(path) do
    if #line > 0 then list[#list + 1] = line end
    if #list >= MAX_BODIES then break end
  end
  if #list == 0 then error("no bodies in " .. path) end
  return list
end

bodies, next_body = nil, 1

function init(args)
  bodies = load_bodies(args[1])
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000))
  next_body = math.random(#bodies)
end

request = function()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, body)
end
