"""Training data from files under a contract: what the model records about it, and a stored
holdout that rebuilds the model's input with the model's contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.contract import default_contract
from models.features import ORDER_TS, TARGET, compute_entity_features, training_frame
from models.training.config import TrainingConfig
from models.training.from_files import (
    holdout_columns,
    holdout_parquet,
    load_file_training_data,
    read_stored_holdout,
)
from models.training.release import train_and_register
from tests.models.training.contract_orders import rich_contract, rich_orders


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("orders") / "orders.parquet"
    rich_orders(4000, days=30, seed=8).drop(columns="prep_estimate_min").to_parquet(path)
    return path


def test_the_metadata_records_the_contracts_columns(data_file: Path) -> None:
    data = load_file_training_data(data_file, rich_contract())
    recorded = data.metadata()
    assert list(recorded["schema"]) == ["placed_at", *rich_contract().fields, "minutes"]
    assert recorded["absent_optional_columns"] == {"prep_estimate_min": "15.0"}
    assert any("mapped to 'other'" in note for note in recorded["notes"])
    assert recorded["extra_columns"] == []
    assert recorded["id_column"] == "order_id"


def test_the_stored_holdout_rebuilds_the_model_input(data_file: Path, tmp_path: Path) -> None:
    contract = rich_contract()
    data = load_file_training_data(data_file, contract)
    holdout = data.parts["holdout"]
    entities = compute_entity_features(data.parts["history"], contract)
    path = tmp_path / "holdout.parquet"
    path.write_bytes(holdout_parquet(holdout, seed=1, contract=contract))
    stored = read_stored_holdout(path)
    assert (
        tuple(stored.columns) == holdout_columns(contract) == (ORDER_TS, *contract.fields, TARGET)
    )
    np.testing.assert_array_equal(
        training_frame(stored, contract, entities).to_numpy(),
        training_frame(holdout, contract, entities).to_numpy(),
    )


def test_data_checked_against_another_contract_is_refused(data_file: Path) -> None:
    data = load_file_training_data(data_file, rich_contract())
    with pytest.raises(ValueError, match="another contract"):
        train_and_register(
            TrainingConfig.small(), stage="candidate", data=data, contract=default_contract()
        )


def test_too_few_labels_are_refused_naming_the_labels_file_and_the_minimum(
    tmp_path: Path,
) -> None:
    import pandas as pd

    from examples.warehouse_export import order_export
    from models.training.order_report import OrderHistoryError

    history = order_export(4000, days=30, seed=2)
    history.to_parquet(tmp_path / "history.parquet", index=False)
    # 6 batches of 40 labelled predictions, each batch one timestamp, after the history.
    labels = order_export(240, days=1, seed=3).rename(columns={"order_id": "prediction_id"})
    newest = pd.to_datetime(history["created_at"], utc=True).max()
    labels["created_at"] = [newest + pd.Timedelta(minutes=1 + i // 40) for i in range(240)]
    labels.to_parquet(tmp_path / "labels.parquet", index=False)
    with pytest.raises(OrderHistoryError) as caught:
        load_file_training_data(tmp_path / "history.parquet", labels=tmp_path / "labels.parquet")
    assert str(caught.value) == (
        f"labels {tmp_path / 'labels.parquet'}: too few labelled orders: 240 labelled orders; "
        "the holdout is the newest 15% of them = 36 orders, it needs at least 50: retraining "
        "on labels needs at least 330 labelled orders with this holdout share; collect more "
        "feedback, or raise the holdout share (--split H,T,C,O)"
    )
