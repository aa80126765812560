"""train.py as `make serve` and `make train` run it: trains into an empty store once, then
leaves it alone; trains on a file against a contract, or refuses and registers nothing."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.local_server import ROOT


def _train(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "train.py", "--small", "--card-dir", str(home / "card"), *args],
        cwd=ROOT,
        env={**os.environ, "BENTOML_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def first_training(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``train.py --small --if-missing`` once into an empty store: the store and the run.

    Shared because training is most of this file's CPU: the test that retrains a model the
    code can no longer serve starts from a copy of this store instead of training again (the
    same synthetic data and settings: the model a plain ``train.py --small`` registers).
    """
    home = tmp_path_factory.mktemp("first-training")
    return home, _train(home, "--if-missing")


def test_if_missing_trains_into_an_empty_store_then_skips(
    first_training: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    home, first = first_training
    assert first.returncode == 0, first.stderr[-2000:]
    assert "registered delivery_eta:" in first.stdout
    assert "ratio" in first.stdout and "coverage" in first.stdout
    assert (home / "card" / "model_card.md").is_file()
    assert (home / "card" / "interval_coverage.png").read_bytes().startswith(b"\x89PNG")

    second = _train(home, "--if-missing")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "registered" not in second.stdout
    assert "skipping training" in second.stderr
    assert len(list((home / "models" / "delivery_eta").iterdir())) == 2  # one version + latest


def test_if_missing_retrains_when_the_latest_model_is_not_servable(
    first_training: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    import yaml

    trained_home, first = first_training
    assert first.returncode == 0, first.stderr[-2000:]
    home = tmp_path / "home"  # a copy: the shared store stays as trained
    shutil.copytree(trained_home, home, symlinks=True)
    (version_dir,) = [p for p in (home / "models" / "delivery_eta").iterdir() if p.is_dir()]
    info = yaml.safe_load((version_dir / "model.yaml").read_text())
    del info["metadata"]["reference_stats"]  # as written by an older version of this code
    (version_dir / "model.yaml").write_text(yaml.safe_dump(info, sort_keys=False))

    upgraded = _train(home, "--if-missing")
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
    assert "no servable model" in upgraded.stderr
    assert "registered delivery_eta:" in upgraded.stdout
    # The same synthetic data again: registered, and said so, naming the older model.
    assert (
        f"notice: the training data is identical to delivery_eta:{version_dir.name}'s "
        "(stage=candidate; the same fitting settings)"
    ) in upgraded.stdout


def _store_versions(home: Path) -> list[Path]:
    store = home / "models" / "delivery_eta"
    return [p for p in store.iterdir() if p.is_dir()] if store.is_dir() else []


def test_train_on_a_csv_export_reports_segments_and_records_the_data(tmp_path: Path) -> None:
    import yaml

    from examples.warehouse_export import order_export

    data = tmp_path / "orders.csv"
    order_export(20_000, days=40, seed=11).to_csv(data, index=False)
    trained = _train(tmp_path, "--data", str(data))
    assert trained.returncode == 0, trained.stderr[-2000:]
    out = trained.stdout
    assert "20,000 rows read" in out and "ignored extra columns: city" in out
    assert "order id column 'order_id'" in out
    assert "Bayes floor unknown (real data)" in out
    for segment in ("peak: peak", "distance: distance_2_5km", "entity: entity_unknown"):
        assert segment in out
    (version,) = _store_versions(tmp_path)
    info = yaml.safe_load((version / "model.yaml").read_text())
    recorded = info["metadata"]["training_data"]
    assert recorded["kind"] == "file" and recorded["rows_read"] == 20_000
    assert recorded["source"]["path"] == str(data.resolve())
    assert (
        recorded["source"]["sha256"]
        == __import__("hashlib").sha256(b"orders.csv" + data.read_bytes()).hexdigest()
    )
    assert (version / "holdout.parquet").is_file()
    assert info["labels"]["stage"] == "candidate"
    card = (tmp_path / "card" / "model_card.md").read_text()
    assert "unknown for real data" in card and "| holdout |" in card


def test_bad_data_exits_2_with_the_report_and_registers_nothing(tmp_path: Path) -> None:
    from examples.warehouse_export import order_export

    bad = order_export(3000, days=30, seed=2).astype(object)
    bad.loc[5, "created_at"] = "31/02/2026"
    bad.loc[6, "order_value"] = -3
    data = tmp_path / "bad.csv"
    bad.to_csv(data, index=False)
    refused = _train(tmp_path, "--data", str(data))
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert "cannot train on this data, nothing registered" in refused.stderr
    assert "created_at: 1 row(s) not a timestamp (rows 6)" in refused.stderr
    assert "order_value: 1 row(s) outside 0-100000 (rows 7)" in refused.stderr
    assert _store_versions(tmp_path) == []

    dropped = _train(tmp_path, "--data", str(data), "--drop-invalid")
    assert dropped.returncode == 0, dropped.stderr[-2000:]
    assert "dropped 2 invalid row(s), kept 2,998" in dropped.stdout
    assert len(_store_versions(tmp_path)) == 1


def test_bad_arguments_exit_2_without_a_traceback(tmp_path: Path) -> None:
    labels_only = _train(tmp_path, "--labels", str(tmp_path / "labels.parquet"))
    assert labels_only.returncode == 2 and "--labels needs --data" in labels_only.stderr
    split = _train(tmp_path, "--data", "x.csv", "--split", "0.5,0.5,0.5,0.5")
    assert split.returncode == 2 and "sum to 1" in split.stderr
    missing = _train(tmp_path, "--data", str(tmp_path / "nowhere.parquet"))
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr
    assert "Traceback" not in missing.stderr + split.stderr + labels_only.stderr
    assert _store_versions(tmp_path) == []


def _rich_files(tmp_path: Path, rows: int = 8000) -> tuple[Path, Path]:
    from tests.models.training.contract_orders import CONTRACT_YAML, rich_orders

    data, contract = tmp_path / "orders.csv", tmp_path / "contract.yaml"
    rich_orders(rows, days=30, seed=5).to_csv(data, index=False)
    contract.write_text(CONTRACT_YAML)
    return data, contract


def test_train_on_a_file_with_its_own_contract(tmp_path: Path) -> None:
    import pandas as pd
    import yaml

    data, contract = _rich_files(tmp_path)
    trained = _train(tmp_path, "--data", str(data), "--contract", str(contract))
    assert trained.returncode == 0, trained.stderr[-2000:]
    out = trained.stdout
    assert "row(s) with a value the contract does not list, mapped to 'other'" in out
    for segment in ("weather: storm", "vehicle: other", "city_tier: 2"):
        assert segment in out
    (version,) = _store_versions(tmp_path)
    metadata = yaml.safe_load((version / "model.yaml").read_text())["metadata"]
    assert list(metadata["feature_contract"]["fields"]) == list(
        yaml.safe_load(contract.read_text())["fields"]
    )
    assert metadata["training_data"]["schema"]["weather"] == "one of: clear, rain, storm"
    assert "compiled_library" in metadata  # parity with sklearn passed at registration
    holdout = pd.read_parquet(version / "holdout.parquet")
    assert list(holdout.columns)[1:-1] == list(metadata["feature_contract"]["fields"])
    card = (tmp_path / "card" / "model_card.md").read_text()
    assert "| `weather` | category | `clear`, `rain`, `storm`; any other value is refused |" in card


def test_a_contract_problem_exits_2_and_registers_nothing(tmp_path: Path) -> None:
    data, contract = _rich_files(tmp_path, rows=100)
    contract.write_text(
        contract.read_text()
        .replace("maximum: 40", "maximum: -1")
        .replace("kind: boolean", "kind: flag")
    )
    refused = _train(tmp_path, "--data", str(data), "--contract", str(contract))
    assert refused.returncode == 2
    assert "cannot use this contract, nothing registered" in refused.stderr
    assert f"{contract}:" in refused.stderr and "fields.distance_km" in refused.stderr
    assert "fields.festival" in refused.stderr  # every problem at once
    assert "Traceback" not in refused.stderr
    assert _store_versions(tmp_path) == []


def test_a_file_missing_a_declared_column_is_refused_naming_it(tmp_path: Path) -> None:
    import pandas as pd

    data, contract = _rich_files(tmp_path, rows=3000)
    pd.read_csv(data).drop(columns="weather").to_csv(data, index=False)
    refused = _train(tmp_path, "--data", str(data), "--contract", str(contract))
    assert refused.returncode == 2
    assert "missing column 'weather': one of: clear, rain, storm" in refused.stderr
    assert _store_versions(tmp_path) == []
    synthetic = _train(tmp_path, "--contract", str(contract))
    assert synthetic.returncode == 2
    assert "synthetic order history has no column for field(s) store_id, items" in synthetic.stderr
    assert _store_versions(tmp_path) == []


def test_make_passes_the_contract_to_train_and_retrain() -> None:
    for target in ("train", "retrain"):
        dry = subprocess.run(
            ["make", "-n", target, "DATA=orders.csv", "CONTRACT=mine.yaml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert dry.returncode == 0, dry.stderr
        # (`make env`'s bytecode step names train.py among the files it compiles.)
        runs = [cmd for cmd in dry.stdout.splitlines() if "compileall" not in cmd]
        (line,) = [cmd for cmd in runs if "train.py" in cmd]
        assert "--data orders.csv" in line and "--contract mine.yaml" in line
