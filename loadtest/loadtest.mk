# Load test with an SLO verdict, and the side-by-side benchmark (included from the Makefile).
# Uses $(PY), env, system-deps and train from the Makefile. Traffic goes to loopback only.

USERS      ?= 100
SPAWN_RATE ?= 20
DURATION   ?= 60s
# Locust processes: 1 keeps up with 100 users of this mix on 2 cores (see docs/performance.md);
# -1 forks one per core when the generator is the bottleneck.
LOCUST_PROCESSES ?= 1
# HOST is a full URL here (http://127.0.0.1:3000). The Makefile's HOST (the bind address of
# `make serve`, default 127.0.0.1) is turned into http://$(HOST):$(PORT) when it has no scheme.
HOST       ?= http://127.0.0.1:3000
LOADTEST_URL = $(if $(findstring ://,$(HOST)),$(HOST),http://$(HOST):$(PORT))
LOADTEST_STAMP := $(shell date +%Y%m%d-%H%M%S)
RESULTS    ?= loadtest/results/$(LOADTEST_STAMP)

.PHONY: loadtest slo-verdict bench shadow-cost

loadtest: env ## locust user mix against a RUNNING service (HOST=...): CSV + HTML in RESULTS, SLO verdict
	$(PY) -m loadtest.slo run --host $(LOADTEST_URL) --users $(USERS) --spawn-rate $(SPAWN_RATE) \
	  --run-time $(DURATION) --processes $(LOCUST_PROCESSES) --results $(RESULTS)

slo-verdict: env ## re-judge an earlier load test: make slo-verdict RESULTS=loadtest/results/<run>
	$(PY) -m loadtest.slo verdict $(RESULTS)

# BENCH_WORKERS: worker counts, e.g. 2 (all servers), 1,2,3 (one target per server and count),
# "2 tutorial=1,2,3" (one server's own counts). BENCH_TARGETS, BENCH_CONNECTIONS,
# BENCH_BATCH_ROWS, BENCH_VARIANT are read from the environment (see python -m loadtest.bench -h),
# and BENCH_COLUMNAR_ROWS (default 1000,10000; empty skips them) for the columnar cells:
# /v1 batch, v2 JSON, v2 binary at 4 callers, and the model-only ceiling (issue 26).
BENCH_WORKERS  ?= 2
BENCH_DURATION ?= 8
BENCH_ROUNDS   ?= 3
# Seconds of the sustained cell (single rows at 64 connections, per 30-s window); 0 skips it.
BENCH_SUSTAINED ?= 300
BENCH_RESULTS  ?= loadtest/results/bench-$(LOADTEST_STAMP)
bench: env system-deps ## service vs tutorial FastAPI app vs framework floors, wrk on loopback, table with ratios, columnar cells (v1 batch / v2 JSON / v2 binary vs the model-only ceiling), then 5 min sustained (~17 min)
	$(PY) train.py --if-missing
	$(PY) -m loadtest.bench --workers "$(BENCH_WORKERS)" --duration $(BENCH_DURATION) \
	  --rounds $(BENCH_ROUNDS) --sustained $(BENCH_SUSTAINED) --out $(BENCH_RESULTS)

# Shadow inference's cost (issue 14): the service with the shadow off and at fraction 1.0 (and
# SHADOW_COST_ARGS="--configs off,on,on-nice0" for the shadow thread at nice 0), alternated in
# one run. Without --model-tag it trains two small models once into $(SHADOW_COST_OUT)/store.
SHADOW_COST_ARGS ?=
SHADOW_COST_OUT  ?= /tmp/shadow-cost
shadow-cost: env system-deps ## shadow off vs on (fraction 1.0), alternated: req/s, p50/p99, CPU/request, rows scored (~5 min; training two small models once, ~5 min more)
	$(PY) -m loadtest.shadow_cost --out $(SHADOW_COST_OUT) $(SHADOW_COST_ARGS)
