"""Side-by-side benchmark, in one run on this machine: BentoML service vs a plain FastAPI app.

Starts, on free loopback ports, (a) the BentoML service, (b) the plain reference
(``loadtest/reference_app.py``: FastAPI + uvicorn, one model call per request) and (c) the
BentoML service with adaptive batching off (``DELIVERY_ETA_MAX_BATCH_SIZE=1``), all with the same
worker count. Then it drives them with ``wrk`` in alternating order (A/B/C, then C/B/A, ...) so
slow drift of a noisy machine hits every target alike, and prints medians over the rounds:

- single-row ``/v1/predict``: requests/s, p50, p99, non-2xx at each connection count;
- ``/v1/predict/batch``: rows/s for batches of each size (service only);
- CPU shares while each run lasted: wrk, the target's processes, everything else on the box.

    python -m loadtest.bench --workers 2 --duration 10 --rounds 2

Results (table, every run, server logs) go to ``--out`` (default loadtest/results/bench-<time>).
Figures are measurements, not a test: the exit code is 0 unless something failed to run
(``--strict`` makes a missed target exit 1).
"""

# Modules: cli (flags, the run from start to report), targets (starting the servers), measure
# (wrk runs in alternating rounds, idle probes), wrk (running wrk, parsing its output),
# processes (CPU accounting from /proc), probes (one-off HTTP probes of a server), runs (what
# one run measured), report (tables and target verdicts), common (target names and labels).
