"""`make contract`: the drafter on the rich order history and on files built to hit each rule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from examples.rich_orders import DEFAULT_FIELDS, EXTRA_COLUMNS, RARE_WEATHER, rich_orders
from models.contract import (
    CategoryField,
    EntityField,
    IntegerField,
    NumberField,
    load_contract,
    parse_contract,
)
from models.contract.__main__ import main
from models.contract.draft import (
    RANGE_MARGIN,
    RARE_SHARE,
    Draft,
    DraftError,
    draft_contract,
    read_sample,
)
from models.contract.spec import MAX_FIELDS
from models.features import TARGET, compute_entity_features, training_frame

ROWS = 20_000


@pytest.fixture(scope="module")
def orders() -> pd.DataFrame:
    return rich_orders(ROWS, days=60, seed=11)


@pytest.fixture(scope="module")
def orders_csv(orders: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("orders") / "orders.csv"
    orders.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def drafted(orders_csv: Path) -> Draft:
    return draft_contract(orders_csv)


def _write(frame: pd.DataFrame, tmp_path: Path, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def _small_orders(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """A minimal history: a timestamp, a target and one number."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "created_at": pd.date_range("2026-01-01", periods=rows, freq="h").strftime(
                "%Y-%m-%dT%H:%M:%S"
            ),
            "distance_km": np.round(rng.uniform(0.5, 9.5, rows), 2),
            "delivery_time_min": np.round(rng.uniform(10, 60, rows), 1),
        }
    )


def test_each_column_gets_the_kind_its_values_suggest(drafted: Draft) -> None:
    kinds = {name: spec.kind for name, spec in drafted.contract.fields.items()}
    assert kinds == {
        "restaurant_id": "entity",
        "driver_id": "entity",
        "distance_km": "number",
        "is_peak_hour": "boolean",
        "order_value": "number",
        "weather": "category",
        "road_traffic": "category",
        "vehicle_type": "category",
        "city_tier": "category",
        "item_count": "integer",
        "kitchen_prep_estimate_min": "number",
        "driver_rating": "number",
        "concurrent_deliveries": "integer",
        "festival": "boolean",
    }
    assert set(kinds) == set(DEFAULT_FIELDS) | set(EXTRA_COLUMNS)


def test_target_and_timestamp_are_detected_and_the_target_range_covers_every_row(
    drafted: Draft, orders: pd.DataFrame
) -> None:
    contract = drafted.contract
    assert (contract.target.column, contract.timestamp.column) == (
        "delivery_time_min",
        "created_at",
    )
    target = orders["delivery_time_min"]
    assert contract.target.minimum <= target.min()
    assert contract.target.maximum >= target.max()


def test_number_bounds_are_the_observed_range_widened_by_the_margin(
    drafted: Draft, orders: pd.DataFrame
) -> None:
    for name in ("distance_km", "order_value", "kitchen_prep_estimate_min", "driver_rating"):
        spec = drafted.contract.fields[name]
        assert isinstance(spec, NumberField)
        low, high = float(orders[name].min()), float(orders[name].max())
        margin = RANGE_MARGIN * (high - low)
        expected_low = max(low - margin, 0.0) if low >= 0 else low - margin
        # Rounded outwards to 3 significant digits of the range: within 1 % of the range.
        assert expected_low - 0.01 * (high - low) <= spec.minimum <= expected_low
        assert high + margin <= spec.maximum <= high + margin + 0.01 * (high - low)
        assert spec.minimum <= spec.example <= spec.maximum
        assert spec.monotonic == "none"
    # distance's widened lower bound is negative: clipped at 0 (no distance is negative).
    assert drafted.contract.fields["distance_km"].minimum == 0  # type: ignore[union-attr]


def test_integer_bounds_are_whole_numbers_around_the_observed_range(
    drafted: Draft, orders: pd.DataFrame
) -> None:
    for name in ("item_count", "concurrent_deliveries"):
        spec = drafted.contract.fields[name]
        assert isinstance(spec, IntegerField)
        low, high = int(orders[name].min()), int(orders[name].max())
        margin = RANGE_MARGIN * (high - low)
        assert spec.minimum == max(math.floor(low - margin), 0)
        assert spec.maximum == math.ceil(high + margin)
        assert spec.example == round(orders[name].median())


def test_categories_list_their_values_by_frequency_and_the_rare_tail_maps_to_other(
    drafted: Draft, orders: pd.DataFrame
) -> None:
    weather = drafted.contract.fields["weather"]
    assert isinstance(weather, CategoryField)
    counts = orders["weather"].value_counts()
    frequent = [v for v, c in counts.items() if c >= RARE_SHARE * len(orders)]
    rare = [v for v, c in counts.items() if c < RARE_SHARE * len(orders)]
    assert set(rare) == set(RARE_WEATHER)  # the generator's tail is there, and rare
    assert weather.values == frequent
    assert weather.on_unseen == "other"
    assert not set(rare) & set(weather.values)
    assert weather.example == counts.index[0]
    assert drafted.contract.category_levels("weather")[-1] == weather.other_value

    traffic = drafted.contract.fields["road_traffic"]
    assert isinstance(traffic, CategoryField)
    assert traffic.values == list(orders["road_traffic"].value_counts().index)
    assert traffic.on_unseen == "refuse"  # no tail: a new value is a 400 listing the values


def test_id_columns_are_entities(drafted: Draft, orders: pd.DataFrame) -> None:
    for name in ("restaurant_id", "driver_id"):
        spec = drafted.contract.fields[name]
        assert isinstance(spec, EntityField)
        assert spec.example == orders[name].value_counts().index[0]
        assert spec.min_orders == 5  # the default: the draft leaves it
    assert drafted.contract.entity_features == (
        "restaurant_avg_delivery_time",
        "driver_avg_delivery_time",
    )


def test_columns_left_out_are_named_with_the_reason(drafted: Draft) -> None:
    reasons = {item.column: item.reason for item in drafted.left_out}
    assert set(reasons) == {"order_id", "delivered_at"}
    assert "row id" in reasons["order_id"]
    assert "after created_at" in reasons["delivered_at"]
    for column, reason in reasons.items():
        assert any(column in line and reason[:30] in line for line in drafted.text.splitlines())


def test_the_yaml_parses_carries_comments_and_a_written_file_loads_the_same(
    drafted: Draft, orders_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse_contract(drafted.text) == drafted.contract
    comments = [line for line in drafted.text.splitlines() if line.lstrip().startswith("#")]
    # The header names the file, so where it wraps depends on the temporary path's length.
    header = " ".join(line.lstrip("# ") for line in comments[:3])
    assert f"all {ROWS:,} rows" in header
    assert any("monotonic" in line and "increasing" in line for line in comments)
    assert any("rare value(s)" in line for line in comments)

    out = tmp_path / "contract.yaml"
    assert main(["draft", str(orders_csv), "--out", str(out)]) == 0
    assert load_contract(out) == drafted.contract
    assert main(["draft", str(orders_csv), "--out", "-"]) == 0
    assert capsys.readouterr().out == drafted.text
    assert main(["check", str(out)]) == 0


def test_an_existing_contract_is_not_overwritten_without_force(
    orders_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "contract.yaml"
    out.write_text("# edited by hand\n")
    assert main(["draft", str(orders_csv), "--out", str(out)]) == 1
    assert out.read_text() == "# edited by hand\n"
    assert main(["draft", str(orders_csv), "--out", str(out), "--force"]) == 0
    assert out.read_text().startswith("# Feature contract drafted")


def test_every_row_of_the_file_becomes_a_complete_feature_row(
    drafted: Draft, orders: pd.DataFrame
) -> None:
    """The draft trains as is: every value of the file is inside its field's bounds or values
    (categories through `other`), so the contract's feature frame has no hole."""
    contract = drafted.contract
    frame = orders.rename(columns={"created_at": "order_ts", "delivery_time_min": TARGET})
    frame["order_ts"] = pd.to_datetime(frame["order_ts"], utc=True)
    entities = compute_entity_features(frame.iloc[: len(frame) // 2], contract)
    features = training_frame(frame, contract, entities)
    assert list(features.columns) == list(contract.feature_names)
    assert not features.isna().any().any()
    for name, spec in contract.fields.items():
        if isinstance(spec, NumberField | IntegerField):
            assert spec.minimum <= orders[name].min() and orders[name].max() <= spec.maximum
    other = contract.category_levels("weather").index("other")
    assert (features["weather"][orders["weather"].isin(RARE_WEATHER)] == other).all()


def test_parquet_and_a_directory_of_parquet_draft_the_same_contract(
    orders: pd.DataFrame, drafted: Draft, tmp_path: Path
) -> None:
    parquet = _write(orders, tmp_path, "orders.parquet")
    directory = tmp_path / "parts"
    directory.mkdir()
    for i, start in enumerate(range(0, len(orders), 7_000)):
        orders.iloc[start : start + 7_000].to_parquet(directory / f"part-{i}.parquet", index=False)
    for source in (parquet, directory):
        contract = draft_contract(source).contract
        assert contract.model_copy(update={"description": ""}) == drafted.contract.model_copy(
            update={"description": ""}
        )


def test_a_sample_bounds_the_rows_kept_but_ranges_and_values_count_every_row(
    orders_csv: Path, drafted: Draft
) -> None:
    sample = read_sample(orders_csv, max_rows=2_000)
    assert (sample.rows, sample.rows_total, sample.sampled) == (2_000, ROWS, True)
    sampled = draft_contract(orders_csv, max_rows=2_000)
    assert "uniform sample of 2,000" in sampled.text
    for name, spec in drafted.contract.fields.items():
        small = sampled.contract.fields[name]
        assert small.kind == spec.kind, name
        for key in ("minimum", "maximum", "values", "on_unseen"):
            assert getattr(small, key, None) == getattr(spec, key, None), (name, key)
    assert sampled.contract.target.maximum == drafted.contract.target.maximum


def test_an_ambiguous_target_exits_2_listing_the_candidates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _small_orders().rename(columns={"delivery_time_min": "duration_door"})
    frame["duration_kitchen"] = np.round(frame["duration_door"] / 3, 1)
    frame["duration_kitchen"] += np.random.default_rng(1).uniform(0.1, 5, len(frame))
    path = _write(frame, tmp_path)
    assert main(["draft", str(path), "--out", "-"]) == 2
    error = capsys.readouterr().err
    assert "--target" in error and "duration_door" in error and "duration_kitchen" in error
    assert main(["draft", str(path), "--out", "-", "--target", "duration_door"]) == 0
    assert "column: duration_door" in capsys.readouterr().out


def test_no_target_like_column_exits_2_listing_the_positive_numbers(tmp_path: Path) -> None:
    frame = _small_orders().rename(columns={"delivery_time_min": "elapsed"})
    with pytest.raises(DraftError) as raised:
        draft_contract(_write(frame, tmp_path))
    assert raised.value.exit_code == 2
    assert "distance_km, elapsed" in str(raised.value)
    assert draft_contract(_write(frame, tmp_path), target="elapsed").target == "elapsed"


def test_an_ambiguous_timestamp_exits_2_and_the_flag_decides(tmp_path: Path) -> None:
    frame = _small_orders().rename(columns={"created_at": "t_order"})
    frame["t_kitchen"] = frame["t_order"]
    path = _write(frame, tmp_path)
    with pytest.raises(DraftError) as raised:
        draft_contract(path)
    assert raised.value.exit_code == 2
    assert "--timestamp" in str(raised.value) and "t_order, t_kitchen" in str(raised.value)
    drafted = draft_contract(path, timestamp="t_order")
    assert drafted.contract.timestamp.column == "t_order"
    assert [item.column for item in drafted.left_out] == ["t_kitchen"]


def test_one_time_column_is_the_timestamp_and_offsets_are_read(tmp_path: Path) -> None:
    frame = _small_orders().rename(columns={"created_at": "when"})
    frame["when"] = (
        pd.to_datetime(frame["when"])
        .dt.tz_localize("Europe/Paris")
        .dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    )
    drafted = draft_contract(_write(frame, tmp_path))
    assert drafted.timestamp == "when"
    assert "only time column" in drafted.text


def test_rule_by_rule_on_a_file_built_to_hit_each_one(tmp_path: Path) -> None:
    rows = 2_000
    rng = np.random.default_rng(5)
    frame = _small_orders(rows)
    frame["constant"] = 3
    frame["delivery_seconds"] = frame["delivery_time_min"] * 60  # leaks the target
    frame["note"] = [f"please ring {i}" for i in rng.integers(0, 10_000, rows)]  # free text
    frame["Road Traffic"] = rng.choice(["Low", "High"], rows)  # not a contract name
    frame["zone_code"] = rng.choice(["007", "012", "031"], rows)  # codes, not numbers
    frame["store_id"] = rng.integers(0, 40, rows)  # numeric ids, ~50 orders each
    frame["customer_id"] = [f"c{i}" for i in rng.integers(0, 1_500, rows)]  # ~1 order each
    frame["contactless"] = rng.choice(["true", "false"], rows)
    tip = np.round(rng.uniform(0, 5, rows), 2).astype(object)
    tip[rng.random(rows) < 0.1] = None
    frame["tip"] = tip
    frame["mostly_empty"] = np.where(rng.random(rows) < 0.8, None, 1.5)
    # 60 cuisines, over the cap of 50: the 50 frequent ones cover 99.5 % of the rows.
    cuisine = rng.choice([f"cuisine {i}" for i in range(50)], rows)
    cuisine[:10] = [f"cuisine {i}" for i in range(50, 60)]
    frame["cuisine"] = cuisine

    drafted = draft_contract(_write(frame, tmp_path))
    reasons = {item.column: item.reason for item in drafted.left_out}
    fields = drafted.contract.fields

    assert "no signal" in reasons["constant"]
    assert "follows the target" in reasons["delivery_seconds"]
    assert "free text" in reasons["note"]
    assert "'road_traffic'" in reasons["Road Traffic"]
    assert "too few" in reasons["customer_id"]
    assert "empty in" in reasons["mostly_empty"]
    assert set(reasons) == {
        "constant",
        "delivery_seconds",
        "note",
        "Road Traffic",
        "customer_id",
        "mostly_empty",
    }

    zone = fields["zone_code"]
    assert isinstance(zone, CategoryField) and sorted(zone.values) == ["007", "012", "031"]
    store = fields["store_id"]
    assert isinstance(store, EntityField) and store.example.isdigit()
    contactless = fields["contactless"]
    assert contactless.kind == "boolean" and contactless.example in (True, False)
    tip_field = fields["tip"]
    assert tip_field.kind == "number" and tip_field.required is False
    assert tip_field.default == tip_field.example  # type: ignore[union-attr]
    cuisine = fields["cuisine"]
    assert isinstance(cuisine, CategoryField)
    assert len(cuisine.values) <= 50 and cuisine.on_unseen == "other"

    # Over the cap, repeated values that are valid ids are an entity (the brief's id rule).
    narrow = draft_contract(_write(frame, tmp_path), max_categories=2)
    assert narrow.contract.fields["zone_code"].kind == "entity"


def test_a_0_1_column_is_a_boolean_that_keeps_the_files_form(tmp_path: Path) -> None:
    frame = _small_orders()
    frame["festival"] = np.arange(len(frame)) % 7 == 0
    frame["peak"] = (np.arange(len(frame)) % 3 == 0).astype(int)
    drafted = draft_contract(_write(frame, tmp_path, "orders.parquet"))
    festival, peak = drafted.contract.fields["festival"], drafted.contract.fields["peak"]
    assert festival.kind == peak.kind == "boolean"
    assert festival.example is False  # a bool column: true/false
    assert peak.example == 0 and peak.example is not False  # a 0/1 column: 0/1


def test_a_category_named_other_gets_another_other_value(tmp_path: Path) -> None:
    frame = _small_orders(4_000)
    frame["vehicle"] = np.where(np.arange(len(frame)) % 2 == 0, "bike", "other")
    frame.loc[0, "vehicle"] = "hovercraft"
    spec = draft_contract(_write(frame, tmp_path)).contract.fields["vehicle"]
    assert isinstance(spec, CategoryField)
    assert sorted(spec.values) == ["bike", "other"] and spec.on_unseen == "other"
    assert spec.other_value not in spec.values


def test_more_usable_columns_than_a_contract_takes_is_refused(tmp_path: Path) -> None:
    frame = _small_orders(200)
    rng = np.random.default_rng(2)
    for i in range(MAX_FIELDS + 1):
        frame[f"signal_{i}"] = rng.uniform(0, 1, len(frame))
    path = _write(frame, tmp_path)
    with pytest.raises(DraftError) as raised:
        draft_contract(path)
    assert raised.value.exit_code == 2
    assert f"at most {MAX_FIELDS}" in str(raised.value) and "--columns" in str(raised.value)
    chosen = ["created_at", "delivery_time_min", "signal_0", "signal_1"]
    assert list(draft_contract(path, columns=chosen).contract.fields) == ["signal_0", "signal_1"]
    excluded = draft_contract(path, exclude=[f"signal_{i}" for i in range(10)])
    assert len(excluded.contract.fields) == (MAX_FIELDS + 1) - 10 + 1  # and distance_km


def test_a_column_missing_from_one_file_of_a_directory_is_left_out(tmp_path: Path) -> None:
    frame = _small_orders(600)
    frame["weather"] = np.where(np.arange(len(frame)) % 2 == 0, "Sunny", "Rainy")
    frame.iloc[:300].to_parquet(tmp_path / "a.parquet", index=False)
    frame.iloc[300:].drop(columns="weather").to_parquet(tmp_path / "b.parquet", index=False)
    drafted = draft_contract(tmp_path)
    assert {i.column: i.reason for i in drafted.left_out} == {
        "weather": "missing from 1 of the 2 files"
    }


def test_an_unreadable_path_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(DraftError, match="no such file"):
        draft_contract(tmp_path / "nope.csv")
    (tmp_path / "orders.txt").write_text("a,b\n1,2\n")
    with pytest.raises(DraftError, match="unknown format"):
        draft_contract(tmp_path / "orders.txt")


def test_values_and_names_yaml_would_misread_stay_text(tmp_path: Path) -> None:
    frame = _small_orders(600)
    answers = ["yes", "no", "null", "1.0", "#tag", 'say "hi": ok', "Ünïcode"]
    frame["answer"] = [answers[i % len(answers)] for i in range(len(frame))]
    frame["on"] = np.arange(len(frame)) % 5  # a field named like a YAML boolean
    drafted = draft_contract(_write(frame, tmp_path))
    answer = drafted.contract.fields["answer"]
    assert isinstance(answer, CategoryField)
    assert sorted(answer.values) == sorted(answers)
    assert drafted.contract.fields["on"].kind == "integer"


def test_head_reads_only_the_first_rows_and_says_so(orders_csv: Path) -> None:
    sample = read_sample(orders_csv, max_rows=1_500, head=True)
    assert (sample.rows, sample.rows_total, sample.head) == (1_500, 1_500, True)
    first = pd.read_csv(orders_csv, nrows=1_500)
    assert sample.columns["order_id"].to_pylist() == first["order_id"].tolist()
    text = draft_contract(orders_csv, max_rows=1_500, head=True).text
    assert "first 1,500 rows only (--head)" in text.replace("\n# ", " ")
    whole = read_sample(orders_csv, max_rows=ROWS, head=True)  # nothing left to cut
    assert (whole.rows, whole.head) == (ROWS, False)
