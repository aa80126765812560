"""What shadow inference costs the client: the same service with the shadow off and on, alternated.

    python -m loadtest.shadow_cost                       # trains two small models on first use
    python -m loadtest.shadow_cost --configs off,on,on-nice0 --rounds 5 --duration 8
    python -m loadtest.shadow_cost --store ~/bentoml --model-tag <champion> --challenger-tag <tag>

One checkout, one champion model, two or three servers side by side on free loopback ports,
each with a private BENTOML_HOME and prediction log:

    off       no challenger
    on        DELIVERY_ETA_SHADOW_MODEL_TAG=<challenger>, DELIVERY_ETA_SHADOW_FRACTION (1.0)
    on-nice0  the same with DELIVERY_ETA_SHADOW_NICE=0: does the shadow thread's nice matter?

Each round runs wrk for single-row predictions at 64 connections and 1000-row batches at 8, the
servers in alternating order (A B, then B A). Per run: req/s, p50, p99, non-2xx, server CPU-ms
per request (the process tree, from /proc), the CPU of the niced shadow threads, and from each
server's /metrics the shadow's rows by outcome and the model calls by role over the run -- so
the table shows the shadow did score the rows while it was measured (a shadow that dropped
them all would be a free, fake win). Medians, on/off ratios with the spread of the per-round
paired ratios, and the command line that reproduces the run print at the end; ``runs.json``
and the server logs stay in ``--out``.

Without ``--model-tag`` the models come from a store of the benchmark's own (``<out>/store``,
two ``TrainingConfig.small`` models trained on first use), so the user's store keeps its
``latest`` and ``candidate``.
"""

# Modules: configs (the servers compared and the runs per round), counters (the shadow's and the
# model's counters from /metrics), runs (one measured run), report (tables and verdicts from the
# runs), __main__ (arguments, models, servers, the rounds). Built on loadtest/bench/ (wrk, /proc
# accounting, probes) and loadtest/servers.py.
