"""The model store round trip, and refusal of artifacts that don't match the code."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from models.contract import default_contract
from models.store.artifact import ENTITY_FILE, MODEL_FILE, ModelArtifactError, load_artifact
from tests.harness.model_copies import copy_model

FEATURE_NAMES = default_contract().feature_names


def test_registered_model_loads_with_its_metadata(registered) -> None:  # type: ignore[no-untyped-def]
    artifact = load_artifact(registered.tag)
    assert artifact.tag == registered.tag
    assert artifact.labels["stage"] == "candidate"
    meta = artifact.metadata
    assert meta["feature_names"] == list(FEATURE_NAMES)
    assert set(meta["artifact_sha256"]) == {MODEL_FILE, ENTITY_FILE}
    assert meta["metrics"]["holdout_mae"] > 0
    assert meta["interval"]["level"] == 0.9
    assert set(meta["reference_stats"]) == {*FEATURE_NAMES, "predicted_delivery_time_min"}
    assert {"scikit-learn", "bentoml", "numpy"} <= set(meta["library_versions"])
    assert meta["row_counts"]["train"] > 0 and len(meta["training_data_sha256"]) == 64
    assert (
        (registered.path / "model_card.md")
        .read_text()
        .startswith(f"# Model card: {registered.tag}")
    )
    x = np.array([[3.0, 1, 30.0, 35.0, 35.0]])
    np.testing.assert_allclose(
        artifact.model.predict_rows(x), registered.result.model.predict_rows(x)
    )


def test_unknown_tag_is_refused_with_one_line() -> None:
    with pytest.raises(ModelArtifactError, match="not in the model store") as info:
        load_artifact("delivery_eta:doesnotexist")
    assert "\n" not in str(info.value)


def test_corrupted_model_file_is_refused(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tag, path = copy_model(registered, tmp_path, "tamper")
    with (path / MODEL_FILE).open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ModelArtifactError, match="does not match its recorded sha256"):
        load_artifact(tag)


def test_feature_list_mismatch_is_refused(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tag, path = copy_model(registered, tmp_path, "tamper")
    info = yaml.safe_load((path / "model.yaml").read_text())
    info["metadata"]["feature_names"] = list(reversed(FEATURE_NAMES))
    (path / "model.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    with pytest.raises(ModelArtifactError, match="trained on features"):
        load_artifact(tag)


def test_entity_snapshot_is_json_with_defaults(registered) -> None:  # type: ignore[no-untyped-def]
    snapshot = json.loads((registered.path / ENTITY_FILE).read_text())
    assert set(snapshot["defaults"]) == {"restaurant_avg_delivery_time", "driver_avg_delivery_time"}
    assert len(snapshot["restaurant_avg_delivery_time"]) > 10


def _repickle_under(module: str, registered, tmp_path: Path, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """A copy of the model whose pickle names ``DeliveryTimeModel`` as living in ``module``
    (as one registered by an older layout of this code would), checksums updated."""
    import sys

    import joblib

    import models.model
    from models.model import DeliveryTimeModel
    from models.store.artifact import sha256_file

    tag, path = copy_model(registered, tmp_path, "tamper")
    model = joblib.load(path / MODEL_FILE)
    with monkeypatch.context() as patch:
        patch.setattr(DeliveryTimeModel, "__module__", module)
        patch.setitem(sys.modules, module, models.model)
        joblib.dump(model, path / MODEL_FILE)
    assert module.encode() in (path / MODEL_FILE).read_bytes()
    info = yaml.safe_load((path / "model.yaml").read_text())
    info["metadata"]["artifact_sha256"][MODEL_FILE] = sha256_file(path / MODEL_FILE)
    (path / "model.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    monkeypatch.delitem(sys.modules, module, raising=False)
    return tag


def test_a_model_registered_before_the_layout_change_still_loads(
    registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    tag = _repickle_under("models.predictor", registered, tmp_path, monkeypatch)
    artifact = load_artifact(tag)
    x = np.array([[3.0, 1, 30.0, 35.0, 35.0]])
    np.testing.assert_allclose(
        artifact.model.predict_rows(x), registered.result.model.predict_rows(x)
    )


def test_a_model_needing_code_this_version_lacks_is_refused_with_one_line(
    registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    tag = _repickle_under("models.not_here_any_more", registered, tmp_path, monkeypatch)
    with pytest.raises(ModelArtifactError, match="needs code this version does not have") as info:
        load_artifact(tag)
    assert "\n" not in str(info.value)


def test_the_field_order_survives_a_model_yaml_written_with_sorted_keys(
    registered, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # The contract's field order is the model's input order; yaml.safe_dump sorts by default.
    tag, path = copy_model(registered, tmp_path, "sorted")
    info = yaml.safe_load((path / "model.yaml").read_text())
    (path / "model.yaml").write_text(yaml.safe_dump(info, sort_keys=True))
    assert list(
        yaml.safe_load((path / "model.yaml").read_text())["metadata"]["feature_contract"]["fields"]
    ) != list(default_contract().fields)
    artifact = load_artifact(tag)
    assert artifact.contract.feature_names == FEATURE_NAMES
    assert list(artifact.contract.fields) == list(default_contract().fields)
