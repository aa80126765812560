"""Which files an order history path names (``models.order_paths``), and the words each of its
two readers (the contract's draft, training) repeats when it names none."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from models.contract.draft import DraftError
from models.contract.draft.reading import read_sample
from models.order_paths import OrderPathError, resolve_files
from models.training.order_history import read_order_history
from models.training.order_report import OrderHistoryError


def test_each_form_resolves_to_its_format_and_files(tmp_path: Path) -> None:
    csv, gz, pq = tmp_path / "a.csv", tmp_path / "a.csv.gz", tmp_path / "a.parquet"
    for path in (csv, gz, pq):
        path.write_bytes(b"")
    assert resolve_files(csv) == ("csv", [csv])
    assert resolve_files(gz) == ("csv", [gz])
    assert resolve_files(pq) == ("parquet", [pq])
    parts = tmp_path / "parts"
    (parts / "day=2").mkdir(parents=True)
    second, first = parts / "day=2" / "b.pq", parts / "a.parquet"
    for path in (second, first, parts / "notes.txt"):
        path.write_bytes(b"")
    assert resolve_files(parts) == ("parquet", [first, second])


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("missing.csv", "no such file or directory"),
        ("orders.json", "unknown format (expected .csv, .csv.gz, .parquet"),
        ("empty", "directory holds no .parquet files"),
    ],
)
def test_a_path_naming_no_order_history_says_why_to_both_readers(
    tmp_path: Path, name: str, words: str
) -> None:
    path, words = tmp_path / name, re.escape(words)
    if name == "orders.json":
        path.write_text("{}")
    elif name == "empty":
        path.mkdir()
    with pytest.raises(OrderPathError, match=words):
        resolve_files(path)
    # The draft and training keep their own errors, with the same words.
    with pytest.raises(DraftError, match=words):
        read_sample(path)
    with pytest.raises(OrderHistoryError, match=words):
        read_order_history(path)
