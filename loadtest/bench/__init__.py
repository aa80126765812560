"""Side-by-side benchmark, in one run on this machine: the service against honest references.

Starts, on free loopback ports, each of these servers (``--targets``) at each worker count
(``--workers``; one target per server and count):

- ``service``: the service as shipped (``bentoml serve service:DeliveryETA``, batching on);
- ``tutorial``: what a user would write instead (``loadtest/tutorial_app.py``: FastAPI +
  uvicorn with uvloop/httptools, one sklearn GradientBoostingRegressor, a dict lookup);
- ``fastapi-floor`` and ``bentoml-floor``: do-nothing handlers (``loadtest/floors/``) that show
  what each framework costs per request before any model work;
- optionally ``bentoml-nobatch`` (the service with adaptive batching off) and, with
  ``--variant``, the service with a setting changed.

Then it drives them with ``wrk`` in alternating order (A/B/C, then C/B/A, ...) so slow drift of
a noisy machine hits every target alike, and prints medians over the rounds, with ratios
"service ÷ it":

- single-row ``/v1/predict``: requests/s, p50, p99, non-2xx, CPU-seconds per 1,000 requests
  (the server's whole process tree) and RSS per worker, at each connection count;
- the first seconds of load after start (cold start) and lone requests before and after load;
- ``/v1/predict/batch``: rows/s for batches of each size (servers with a batch route);
- CPU shares while each run lasted: wrk, the target's processes, everything else on the box;
- then the sustained cell (``--sustained``, 300 s): the service alone under single rows at 64
  connections, p50/p90/p99/max over the whole run and per 30-s window, RSS start/end, errors.

    python -m loadtest.bench --workers 2 --duration 10 --rounds 2
    python -m loadtest.bench --workers 1,2,3     # each server's best worker count

Results (table, every run, server logs) go to ``--out`` (default loadtest/results/bench-<time>).
Figures are measurements, not a test: the exit code is 0 unless something failed to run
(``--strict`` makes a missed target exit 1).
"""

# Modules: cli (flags, the run from start to report), workers (worker-count specs -> targets),
# targets (starting the servers), measure (wrk runs in alternating rounds, idle probes), wrk
# (running wrk, parsing its output), processes (CPU and memory from /proc), probes (one-off
# HTTP probes of a server), runs (what one run measured, CPU per 1k), cells (what each table
# column measures, how values print), report (tables and target verdicts), results (every run,
# the header, bench.md and runs.json), sustained (the long single-row cell), common (server
# names and labels).
