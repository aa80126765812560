-- wrk script: /v1/predict/batch calls cycling through a bodies file of batches (one
-- {"orders": [...]} per line), written from the served contract by loadtest/wrk_bodies.py or
-- `python -m models.served_contract bodies --url URL --out FILE --rows 100`. Bodies are built
-- once, before the run, so the load generator spends its CPU on HTTP, not on formatting rows.
-- Usage: wrk -t2 -c8 -d10s -s loadtest/bench.lua http://127.0.0.1:3000/v1/predict/batch -- FILE
dofile((debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "") .. "predict.lua")
