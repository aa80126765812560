"""Cost of ``train.py --data`` on big order files: wall time, rows/s and peak RSS.

python -m loadtest.train_data_bench --rows 1000000 5000000 --formats csv parquet

Each run is a fresh ``train.py --data`` process (own temporary BENTOML_HOME) whose peak RSS is
read from ``getrusage`` by a one-shot wrapper process, so runs cannot inherit each other's
peak. Writing the file is not timed. Files come from ``examples/warehouse_export.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from examples.warehouse_export import order_export

ROOT = Path(__file__).resolve().parents[1]
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
    "print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def measure(data: Path, home: Path, contract: Path | None = None) -> dict[str, float]:
    """Run ``train.py --data`` once (with ``--contract`` when given); wall seconds and peak
    RSS (MiB) of the training process."""
    command = [sys.executable, "train.py", "--data", str(data), "--card-dir", ""]
    if contract is not None:
        command += ["--contract", str(contract.resolve())]
    wrapper = [sys.executable, "-c", _MEASURE, *command]
    env_run = subprocess.run(
        wrapper,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"BENTOML_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    rc, seconds, max_rss_kib = env_run.stdout.split()
    if rc != "0":
        raise RuntimeError(f"train.py --data {data} exited {rc}")
    return {"seconds": float(seconds), "peak_rss_mib": int(max_rss_kib) / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet"])
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument(
        "--contract",
        type=Path,
        help="train against this contract (default: the default contract, whose columns the "
        "generated export has)",
    )
    args = parser.parse_args(argv)
    print("| rows | format | file MiB | wall s | rows/s | peak RSS MiB |")
    print("|--:|---|--:|--:|--:|--:|")
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="bench-train-data-") as tmp:
            export = order_export(rows, days=args.days)
            files = {}
            for fmt in args.formats:
                files[fmt] = Path(tmp) / f"orders.{fmt}"
                if fmt == "csv":
                    export.to_csv(files[fmt], index=False)
                else:
                    export.to_parquet(files[fmt], index=False)
            del export
            for fmt, path in files.items():
                result = measure(path, Path(tmp) / f"home-{fmt}", args.contract)
                result["rows"] = rows
                print(
                    f"| {rows:,} | {fmt} | {path.stat().st_size / 2**20:,.0f} | "
                    f"{result['seconds']:.1f} | {rows / result['seconds']:,.0f} | "
                    f"{result['peak_rss_mib']:,.0f} |",
                    flush=True,
                )
                print(json.dumps({"format": fmt, **result}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
