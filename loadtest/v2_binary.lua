-- wrk script: Open Inference Protocol v2 infer calls with binary tensor data, cycling through a
-- records file written from the served contract by loadtest/v2_bodies.py (write_v2_bodies):
-- records "<header length> <body length>\n<body>", the header length sent as the
-- Inference-Header-Content-Length request header. Bodies are built once, before the run.
-- Usage: wrk -t2 -c4 -d10s -s loadtest/v2_binary.lua http://127.0.0.1:3000/v2/models/NAME/infer -- FILE

local MAX_BODIES = 1000

function load_records(path)
  if path == nil or path == "" then
    error("pass a records file: wrk ... -s loadtest/v2_binary.lua URL -- FILE")
  end
  local file = assert(io.open(path, "rb"))
  local list = {}
  while #list < MAX_BODIES do
    local line = file:read("*l")
    if line == nil or line == "" then break end
    local header_length, size = line:match("^(%d+) (%d+)$")
    if header_length == nil then error("not a record line in " .. path .. ": " .. line) end
    local body = file:read(tonumber(size))
    list[#list + 1] = { header_length = header_length, body = body }
  end
  file:close()
  if #list == 0 then error("no records in " .. path) end
  return list
end

records, next_record = nil, 1

function init(args)
  records = load_records(args[1])
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000))
  next_record = math.random(#records)
end

request = function()
  local record = records[next_record]
  next_record = next_record % #records + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/octet-stream",
    ["Inference-Header-Content-Length"] = record.header_length,
  }, record.body)
end
