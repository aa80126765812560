"""Microseconds per row of ``predict_rows`` for each tree evaluator, per batch size.

    BENTOML_HOME=/root/bentoml .venv/bin/python -m loadtest.runtime_bench
    .venv/bin/python -m loadtest.runtime_bench --tag delivery_eta:<version> --compile-variants

Rows are the model's own holdout orders (stored beside a file-trained model, else regenerated
from its metadata), sampled per batch size. Each variant produces the full ``(n, 3)``
point/lower/upper output. Every round times
each variant for at least ``--budget-ms`` (alternating the order of variants between rounds,
so that load from other processes on a shared machine falls on all of them alike); the table
shows the median over rounds of us/row and, in brackets, the median of the per-round ratios to
the ``treelite`` runtime (GTIL up to 256 rows, sklearn above: what was served before
``tl2cgen``). ``maxdiff`` is the largest |difference| from sklearn in minutes over all sizes.
The model thread of the service runs with OpenMP capped at 1 thread: so do all variants
except the ``t2`` ones.

``--compare TAG[,TAG]`` also times other models' compiled libraries (same contract) on the same
rows, alternating with the served one: an A/B of two builds or two model sizes.

``--compile-variants`` also compiles and times other TL2cgen settings (-O0/-O2/-O3, no
quantization); each build takes 5-60 s on 2 cores.

``--ceiling`` measures the model-only ceiling instead: ``--processes`` processes (default 2,
one per core, as the service's workers) each call the served compiled library's
``predict_rows`` on ``--ceiling-rows``-row batches of holdout rows for ``--seconds``, started
together; prints the summed rows/s. ``make bench`` measures it between its v2 cells
(``loadtest.bench.columnar``).
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from models.compiled_build import build_library, combined_treelite_model
from models.compiled_runtime import METADATA_KEY, CompiledRuntime
from models.features import training_frame
from models.model import DeliveryTimeModel
from models.store.artifact import ModelArtifact, load_artifact
from models.store.stages import resolve_serving_tag
from models.training.from_files import HOLDOUT_FILE, read_stored_holdout
from models.treelite_runtime import TreeliteRuntime

Predict = Callable[[np.ndarray], np.ndarray]
SIZES = (1, 8, 32, 128, 256, 512, 1000, 2000)
COMPARED = "model "
"""Prefix of the variants of ``--compare``: ``model <tag>``, that model's compiled library."""


def _limited(threads: int, predict: Predict) -> Predict:
    def call(rows: np.ndarray) -> np.ndarray:
        with threadpool_limits(threads):
            return predict(rows)

    return call


def _gtil(model: DeliveryTimeModel, threads: int, dtype: type = np.float64) -> Predict:
    import treelite

    parts = [
        treelite.sklearn.import_model(r)
        for r in (model.point_model, model.lower_model, model.upper_model)
    ]

    def call(rows: np.ndarray) -> np.ndarray:
        x: np.ndarray = np.ascontiguousarray(model.unfitted_as_missing(rows), dtype=dtype)
        point, lower, upper = (treelite.gtil.predict(p, x, nthread=threads) for p in parts)
        return model.combine(point, lower, upper, rows)

    return call


def _gtil_combined(model: DeliveryTimeModel) -> Predict:
    import treelite

    combined, base_scores = combined_treelite_model(model)
    shift = np.array(base_scores)

    def call(rows: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(model.unfitted_as_missing(rows), dtype=np.float64)
        raw = treelite.gtil.predict(combined, x, nthread=1).reshape(-1, 3) + shift
        return model.combine_stacked(raw, rows)

    return call


def _tl2cgen_public(runtime: CompiledRuntime, dtype: str) -> Predict:
    """TL2cgen's own Python API (DMatrix + Predictor.predict), in float32 or float64."""
    import tl2cgen

    shift = runtime._shift

    def call(rows: np.ndarray) -> np.ndarray:
        missing = runtime.model.unfitted_as_missing(rows)
        x = np.ascontiguousarray(missing, dtype=np.float32 if dtype == "float32" else np.float64)
        raw = runtime._predictor.predict(tl2cgen.DMatrix(x), pred_margin=True).reshape(-1, 3)
        return runtime.model.combine_stacked(raw.astype(np.float64) + shift, rows)

    return call


def _compiled(artifact: ModelArtifact, workdir: Path) -> tuple[Path, dict[str, Any]]:
    record = artifact.metadata.get(METADATA_KEY)
    if record is not None:
        return artifact.path / record["file"], record
    print(f"{artifact.tag} has no compiled library: building one in {workdir}", file=sys.stderr)
    built = build_library(artifact.model, workdir)
    if built is None:
        raise SystemExit("no C compiler: cannot benchmark tl2cgen")
    return workdir / built["file"], built


def variants(artifact: ModelArtifact, workdir: Path, compile_variants: bool) -> dict[str, Predict]:
    model = artifact.model
    library, record = _compiled(artifact, workdir)
    compiled = CompiledRuntime(model, library, record)
    with threadpool_limits(2):
        compiled_t2 = CompiledRuntime(model, library, record, nthread=2)
    out: dict[str, Predict] = {
        "treelite": TreeliteRuntime(model, max_rows=256).predict_rows,
        "sklearn": model.predict_rows,
        "sklearn t2": _limited(2, model.predict_rows),
        "gtil": _gtil(model, 1),
        "gtil t2": _limited(2, _gtil(model, 2)),
        "gtil f32": _gtil(model, 1, np.float32),
        "gtil combined": _gtil_combined(model),
        "tl2cgen": compiled.predict_rows,
        "tl2cgen t2": _limited(2, compiled_t2.predict_rows),
        "tl2cgen pyapi": _tl2cgen_public(compiled, "float64"),
        "tl2cgen pyapi f32": _tl2cgen_public(compiled, "float32"),
    }
    if compile_variants:
        for name, params, options in (
            ("tl2cgen -O0", {"quantize": 1, "parallel_comp": 2}, ("-O0",)),
            ("tl2cgen -O2", {"quantize": 1, "parallel_comp": 2}, ("-O2",)),
            ("tl2cgen -O3", {"quantize": 1, "parallel_comp": 2}, ("-O3",)),
            ("tl2cgen noquant -O1", {"parallel_comp": 2}, ("-O1",)),
        ):
            file = f"compiled/{name.replace(' ', '_')}.so"
            started = time.perf_counter()
            built = build_library(
                model, workdir, library_file=file, codegen_params=params, compiler_options=options
            )
            assert built is not None
            print(f"built {name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            out[name] = CompiledRuntime(model, workdir / file, built).predict_rows
    return out


def holdout_rows(artifact: ModelArtifact) -> np.ndarray:
    """The model's holdout as model input: the one stored beside a file-trained model, else
    regenerated from the synthetic generator's config."""
    data = artifact.metadata.get("training_data", {})
    if isinstance(data, dict) and data.get("kind") == "file":
        holdout = read_stored_holdout(artifact.path / str(data.get("holdout_file", HOLDOUT_FILE)))
    else:
        from models.promotion.holdout import regenerate_holdout

        _, holdout = regenerate_holdout(artifact.metadata["training_config"])
    return training_frame(holdout, artifact.contract, artifact.entities).to_numpy()


def measure(
    predictors: dict[str, Predict],
    pool: np.ndarray,
    sizes: tuple[int, ...],
    rounds: int,
    budget_s: float,
) -> tuple[
    dict[tuple[str, int], list[float]], dict[tuple[str, int], list[float]], dict[str, float]
]:
    rng = np.random.default_rng(0)
    per_row: dict[tuple[str, int], list[float]] = {}
    ratio: dict[tuple[str, int], list[float]] = {}
    maxdiff = dict.fromkeys(predictors, 0.0)
    names = list(predictors)
    for n in sizes:
        rows = pool[rng.integers(0, len(pool), n)]
        expected = predictors["sklearn"](rows)
        for name, predict in predictors.items():
            if name.startswith(COMPARED):  # another model: checked against its own sklearn
                maxdiff[name] = float("nan")  # at load (CompiledRuntime's probe)
                continue
            diff = float(np.max(np.abs(predict(rows) - expected)))
            maxdiff[name] = max(maxdiff[name], diff)
        for r in range(rounds):
            timings: dict[str, float] = {}
            for name in names if r % 2 == 0 else names[::-1]:
                predict = predictors[name]
                predict(rows)
                calls, started = 0, time.perf_counter()
                while True:
                    predict(rows)
                    calls += 1
                    elapsed = time.perf_counter() - started
                    if elapsed >= budget_s:
                        break
                timings[name] = elapsed / calls / n * 1e6
            for name, us in timings.items():
                per_row.setdefault((name, n), []).append(us)
                ratio.setdefault((name, n), []).append(us / timings["treelite"])
        print(f"  {n} rows done", file=sys.stderr, flush=True)
    return per_row, ratio, maxdiff


CEILING_ROWS = 10_000
CEILING_PROCESSES = 2


def _ceiling_worker(tag: str, rows_file: str, seconds: float, ready: Any, results: Any) -> None:
    """One process of :func:`model_ceiling`: load, wait for the others, call for ``seconds``."""
    artifact = load_artifact(tag)
    library, record = _compiled(artifact, Path(tempfile.mkdtemp(prefix="bench-ceiling-")))
    runtime = CompiledRuntime(artifact.model, library, record)
    batch = np.load(rows_file)
    with threadpool_limits(1):
        runtime.predict_rows(batch)  # warm: pages, caches
        ready.wait()
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            runtime.predict_rows(batch)
            calls += 1
        elapsed = time.perf_counter() - started
    results.put((calls * len(batch), elapsed))


@functools.cache
def _holdout_of(tag: str) -> np.ndarray:
    """The model's holdout rows, once per process (a synthetic holdout is regenerated)."""
    return holdout_rows(load_artifact(tag))


def model_ceiling(
    tag: str,
    *,
    rows: int = CEILING_ROWS,
    seconds: float = 5.0,
    processes: int = CEILING_PROCESSES,
    pool: np.ndarray | None = None,
) -> float:
    """Rows/s of the compiled model alone (``CompiledRuntime.predict_rows``, what the service's
    model thread calls) in ``processes`` processes at once, ``rows``-row calls drawn from
    ``pool`` (model-input rows; default the model's holdout rows), one OpenMP thread each: the
    model-only ceiling of the service's throughput on this machine. Start-up (loading, the
    parity probe) is not timed."""
    pool = _holdout_of(tag) if pool is None else pool
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(processes), context.Queue()
    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as workdir:
        files = []
        for seed in range(processes):
            files.append(str(Path(workdir) / f"rows-{seed}.npy"))
            np.save(files[-1], pool[np.random.default_rng(seed).integers(0, len(pool), rows)])
        workers = [
            context.Process(
                target=_ceiling_worker, args=(tag, file, seconds, ready, results), daemon=True
            )
            for file in files
        ]
        for worker in workers:
            worker.start()
        measured = [results.get(timeout=seconds + 300) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
    return sum(done / elapsed for done, elapsed in measured)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=None, help="model tag (default: the one served)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--budget-ms", type=float, default=20.0)
    parser.add_argument("--only", default="", help="comma-separated variant names to keep")
    parser.add_argument(
        "--compare",
        default="",
        help="comma-separated model tags (same contract) whose compiled libraries are timed "
        "beside the served one, alternating, on the same rows: variants 'model <tag>'",
    )
    parser.add_argument("--compile-variants", action="store_true")
    parser.add_argument(
        "--ceiling", action="store_true", help="the model-only ceiling (rows/s), see above"
    )
    parser.add_argument("--processes", type=int, default=CEILING_PROCESSES)
    parser.add_argument("--ceiling-rows", type=int, default=CEILING_ROWS)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--rows-file",
        default=None,
        help="the ceiling's rows: a .npy of model-input rows (make bench writes the cells' own as "
        "<run>/bodies/model-rows-<n>.npy); default the model's holdout rows",
    )
    args = parser.parse_args(argv)
    if args.ceiling:
        tag = str(resolve_serving_tag(args.tag))
        rate = model_ceiling(
            tag,
            rows=args.ceiling_rows,
            seconds=args.seconds,
            processes=args.processes,
            pool=np.load(args.rows_file) if args.rows_file else None,
        )
        print(
            f"model {tag}: {rate:,.0f} rows/s in {args.processes} processes, "
            f"{args.ceiling_rows}-row calls ({1e6 * args.processes / rate:.2f} us/row/process)"
        )
        return 0
    artifact = load_artifact(resolve_serving_tag(args.tag))
    sizes = tuple(int(s) for s in args.sizes.split(","))
    # OpenMP capped at 1 thread, as in the service's model thread.
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as workdir, threadpool_limits(1):
        predictors = variants(artifact, Path(workdir), args.compile_variants)
        for other_tag in filter(None, args.compare.split(",")):
            other = load_artifact(other_tag)
            library, record = _compiled(other, Path(workdir) / other_tag.replace(":", "-"))
            name = f"{COMPARED}{other.tag}"
            predictors[name] = CompiledRuntime(other.model, library, record).predict_rows
            args.only += f",{name}" if args.only else ""
        if args.only:
            keep = {"treelite", "sklearn", *args.only.split(",")}
            predictors = {k: v for k, v in predictors.items() if k in keep}
        per_row, ratio, maxdiff = measure(
            predictors, holdout_rows(artifact), sizes, args.rounds, args.budget_ms / 1000
        )
    print(
        f"model {artifact.tag}; us/row, median of {args.rounds} rounds "
        "(median ratio to the treelite runtime)"
    )
    width = max(len(n) for n in predictors) + 2
    print(f"{'variant':<{width}}" + "".join(f"{n:>17}" for n in sizes) + "   maxdiff")
    for name in predictors:
        cells = "".join(
            f"{statistics.median(per_row[(name, n)]):9.2f} ({statistics.median(ratio[(name, n)]):5.2f})"
            for n in sizes
        )
        print(f"{name:<{width}}{cells}   {maxdiff[name]:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
