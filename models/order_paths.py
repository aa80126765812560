"""Which files an order history path names: a CSV file (optionally compressed), a Parquet file,
or a directory of Parquet files -- the forms ``make train DATA=`` and ``make contract`` take.

Below both rooms that read order histories, the contract's draft (``contract/draft/reading``)
and training (``training/order_history``), so that neither imports the other for it. Each turns
:class:`OrderPathError` into its own error, with the same words.
"""

from __future__ import annotations

from pathlib import Path

PARQUET_SUFFIXES = {".parquet", ".pq"}
"""File endings read as Parquet (in a directory, only these files are read)."""
COMPRESSED_CSV_SUFFIXES = {".csv.gz", ".csv.bz2", ".csv.zst"}
"""Compressed CSV endings pyarrow reads as they are."""


class OrderPathError(ValueError):
    """The path names no order history that can be read; ``str()`` says why."""


def resolve_files(path: Path) -> tuple[str, list[Path]]:
    """(format, files) of a CSV file, a Parquet file or a directory of Parquet files."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in PARQUET_SUFFIXES)
        if not files:
            raise OrderPathError(f"{path}: directory holds no .parquet files")
        return "parquet", files
    if not path.is_file():
        raise OrderPathError(f"{path}: no such file or directory")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return "parquet", [path]
    if path.suffix.lower() == ".csv" or suffixes in COMPRESSED_CSV_SUFFIXES:
        return "csv", [path]
    raise OrderPathError(
        f"{path}: unknown format (expected .csv, .csv.gz, .parquet or a directory of .parquet)"
    )
