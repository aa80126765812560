"""The model's inputs, built one way from a feature contract: entity aggregates, the offline
feature frame (training) and the online feature matrix (serving).

Training (:func:`training_frame`) and serving (:class:`FeatureAssembler`) build the model's
input here, side by side, from the same :class:`~models.contract.FeatureContract`, so the two
joins cannot drift apart. Nothing here names a feature: every name comes from the contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.contract import CategoryField, FeatureContract

TARGET = "delivery_time_minutes"
"""The training code's name of the target column (the file's is ``contract.target.column``)."""
ORDER_TS = "order_ts"
"""The training code's name of the order-time column (``contract.timestamp.column``)."""

FeatureSource = Literal["request", "online", "default"]
"""Where an entity feature's value came from: the request, the online store, or the default."""
FEATURE_SOURCES: tuple[FeatureSource, ...] = ("request", "online", "default")
"""Source codes: the assembler reports ``FEATURE_SOURCES[code]`` per entity feature."""
DEFAULT_SOURCE_CODE = FEATURE_SOURCES.index("default")


@dataclass(frozen=True)
class EntityFeatures:
    """Per-entity aggregates (one table per entity feature), plus the defaults for entities not
    in a table."""

    tables: dict[str, dict[str, float]]
    """Entity feature name -> {entity id: aggregate}."""
    defaults: dict[str, float]
    history_end: str

    def to_json_dict(self) -> dict[str, object]:
        """Serialisable form written next to the model and loaded into Redis: one key per
        entity feature, plus ``defaults`` and ``history_end``."""
        return {**self.tables, "defaults": self.defaults, "history_end": self.history_end}

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> EntityFeatures:
        """Inverse of :meth:`to_json_dict`."""
        tables = {
            str(name): {str(k): float(v) for k, v in table.items()}
            for name, table in data.items()
            if name not in ("defaults", "history_end")
        }
        return cls(
            tables=tables,
            defaults={str(k): float(v) for k, v in dict(data["defaults"]).items()},
            history_end=str(data["history_end"]),
        )


def compute_entity_features(history: pd.DataFrame, contract: FeatureContract) -> EntityFeatures:
    """Mean delivery time per entity of every entity field, over an (earlier) history window.

    Defaults for unknown entities are the history's overall mean delivery time: the best guess
    for an entity we know nothing about.
    """
    overall = float(history[TARGET].mean())
    tables = {}
    for entity in contract.entity_fields:
        spec = contract.fields[entity]
        stats = history.groupby(entity, observed=True)[TARGET].agg(["mean", "size"])
        kept = stats[stats["size"] >= getattr(spec, "min_orders", 1)]
        tables[contract.entity_feature(entity)] = {
            str(k): round(float(v), 4) for k, v in kept["mean"].items()
        }
    return EntityFeatures(
        tables=tables,
        defaults={name: round(overall, 4) for name in contract.entity_features},
        history_end=str(history[ORDER_TS].max()),
    )


def category_codes(values: pd.Series, spec: CategoryField) -> np.ndarray:
    """Float codes (index into ``spec.levels()``) of a category column; NaN for a missing or
    (``on_unseen: refuse``) unknown value -- the training check refuses those rows first."""
    levels = spec.levels()
    lookup = {str(v): float(i) for i, v in enumerate(levels)}
    unseen = lookup.get(str(spec.other_value), np.nan) if spec.on_unseen == "other" else np.nan
    if isinstance(values.dtype, pd.CategoricalDtype):
        # Real histories arrive dictionary-encoded: map each distinct value once.
        per_category = np.array(
            [lookup.get(str(c), unseen) for c in values.cat.categories] + [np.nan]
        )
        return per_category[values.cat.codes.to_numpy()]  # code -1 (missing) takes NaN
    text = values.astype(object).map(lambda v: None if v is None or v != v else str(v))
    mapped = text.map(lookup)
    return np.where(text.isna(), np.nan, mapped.fillna(unseen).to_numpy(dtype=np.float64))


def training_frame(
    orders: pd.DataFrame, contract: FeatureContract, entities: EntityFeatures
) -> pd.DataFrame:
    """Feature matrix (columns ``contract.feature_names``) for offline rows, joined like
    serving does."""
    missing = [n for n, s in contract.fields.items() if s.required and n not in orders]
    if missing:
        raise KeyError(f"orders lack the contract's required field(s) {missing}")
    frame = pd.DataFrame(index=orders.index)
    for name in contract.direct_fields:
        spec = contract.fields[name]
        # An optional field the orders do not carry takes its default, as the API does.
        default = getattr(spec, "default", None)
        values = orders[name] if name in orders else pd.Series(default, index=orders.index)
        if isinstance(spec, CategoryField):
            frame[name] = category_codes(values, spec)
        else:
            frame[name] = values.astype(float).to_numpy()
    for entity in contract.entity_fields:
        feature = contract.entity_feature(entity)
        frame[feature] = _lookup(
            orders[entity], entities.tables[feature], entities.defaults[feature]
        )
    return frame[list(contract.feature_names)]


def _lookup(ids: pd.Series, table: Mapping[str, float], default: float) -> np.ndarray:
    """``table[id]`` per row, ``default`` for ids not in it."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        per_category = np.array(
            [table.get(str(c), default) for c in ids.cat.categories] + [default]
        )
        return per_category[ids.cat.codes.to_numpy()]  # code -1 (missing) takes the last: default
    return ids.astype(str).map(table).fillna(default).to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class OnlineValues:
    """Values the online store returned for a batch of orders (None = not found), per entity
    feature."""

    values: Mapping[str, Sequence[float | None]]
    failed: bool = False
    """True when the store errored or timed out (all values are then None)."""

    @classmethod
    def missing(cls, features: Sequence[str], rows: int, failed: bool) -> OnlineValues:
        """Nothing found for any row (an empty store, or a failed lookup)."""
        nothing: list[float | None] = [None] * rows
        return cls({name: nothing for name in features}, failed=failed)


@dataclass(frozen=True)
class OrderColumns:
    """Orders given column by column (a columnar request): ``rows`` orders and, per request
    field present, its values in row order.

    Numbers, integers and booleans are numpy arrays; ids and text categories are sequences of
    ``str`` (an integer category may be an int64 array). A field left out takes its default for
    every row (a required one must be present). An entity aggregate's override column is float64
    with NaN where the order does not override it; left out, no order does.
    """

    rows: int
    columns: Mapping[str, Any]

    def __len__(self) -> int:
        return self.rows


@dataclass(frozen=True)
class FeatureAssembler:
    """Builds the model input for validated orders (objects with one attribute per request
    field, and one per entity feature for its override), column by column."""

    contract: FeatureContract
    _category_codes: dict[str, tuple[dict[Any, float], float | None]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        codes = {}
        for name in self.contract.direct_fields:
            spec = self.contract.fields[name]
            if isinstance(spec, CategoryField):
                levels = spec.levels()
                index = {v: float(i) for i, v in enumerate(levels)}
                other = index[spec.other_value] if spec.on_unseen == "other" else None
                codes[name] = (index, other)
        object.__setattr__(self, "_category_codes", codes)

    def entity_ids(self, orders: Sequence[Any]) -> dict[str, list[str]]:
        """Each entity field's ids, in order (what the feature store is asked for)."""
        return {name: list(map(attrgetter(name), orders)) for name in self.contract.entity_fields}

    def assemble(
        self, orders: Sequence[Any], online: OnlineValues, defaults: Mapping[str, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The float64 matrix in ``feature_names`` order and an int8 matrix of source codes
        (one column per entity feature, values index ``FEATURE_SOURCES``): request value, else
        online value, else default. One pass per column, so a 1000-order batch costs a handful
        of array operations, not 1000 row loops."""
        contract = self.contract
        matrix = np.empty((len(orders), len(contract.feature_names)), dtype=np.float64)
        for column, name in enumerate(contract.direct_fields):
            values = map(attrgetter(name), orders)  # map + attrgetter: no per-row frame
            category = self._category_codes.get(name)
            if category is None:
                matrix[:, column] = list(values)
            else:
                index, other = category
                if other is None:
                    matrix[:, column] = [index[v] for v in values]
                else:
                    matrix[:, column] = [index.get(v, other) for v in values]
        first = len(contract.direct_fields)
        codes = np.empty((len(orders), len(contract.entity_features)), dtype=np.int8)
        for column, name in enumerate(contract.entity_features):
            # float arrays turn None into NaN: "not given" / "not found" become one vector test.
            requested = np.array(list(map(attrgetter(name), orders)), dtype=np.float64)
            matrix[:, first + column], codes[:, column] = _entity_column(
                requested, online.values[name], defaults[name]
            )
        return matrix, codes

    def column_entity_ids(self, orders: OrderColumns) -> dict[str, list[str]]:
        """:meth:`entity_ids` of columnar orders."""
        return {name: list(orders.columns[name]) for name in self.contract.entity_fields}

    def assemble_columns(
        self, orders: OrderColumns, online: OnlineValues, defaults: Mapping[str, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`assemble` of columnar orders: the same matrix and source codes, with each
        category mapped once per distinct value rather than once per row."""
        contract, n, columns = self.contract, orders.rows, orders.columns
        matrix = np.empty((n, len(contract.feature_names)), dtype=np.float64)
        for column, name in enumerate(contract.direct_fields):
            values = columns.get(name)
            if values is None:  # an optional field left out: its default for every row
                values = [getattr(contract.fields[name], "default", None)] * n
            category = self._category_codes.get(name)
            if category is None:
                matrix[:, column] = np.asarray(values, dtype=np.float64)
            else:
                matrix[:, column] = _category_column(values, *category)
        first = len(contract.direct_fields)
        codes = np.empty((n, len(contract.entity_features)), dtype=np.int8)
        for column, name in enumerate(contract.entity_features):
            given = columns.get(name)
            requested = np.full(n, np.nan) if given is None else np.asarray(given, dtype=np.float64)
            matrix[:, first + column], codes[:, column] = _entity_column(
                requested, online.values[name], defaults[name]
            )
        return matrix, codes

    def rows_of(self, orders: OrderColumns) -> list[Any]:
        """Columnar orders as row objects (one attribute per request field and override, as
        :meth:`assemble` reads them): for the rare consumer that needs rows (a shadow
        challenger with another contract)."""
        contract, n = self.contract, orders.rows
        names = [*contract.fields, *contract.entity_features]
        columns: dict[str, list[Any]] = {}
        for name in names:
            values = orders.columns.get(name)
            if values is None:
                default = getattr(contract.fields.get(name), "default", None)
                columns[name] = [default] * n
            elif name in contract.entity_features:
                columns[name] = [None if v != v else v for v in np.asarray(values).tolist()]
            else:
                columns[name] = (
                    np.asarray(values).tolist() if hasattr(values, "dtype") else list(values)
                )
        return [
            SimpleNamespace(**dict(zip(names, row, strict=True)))
            for row in zip(*columns.values(), strict=True)
        ]

    def request_values(self, features: np.ndarray) -> dict[str, list[Any]]:
        """The request fields' values back from model-input rows (categories decoded): what
        the prediction log exports for retraining (entity ids are kept apart)."""
        out: dict[str, list[Any]] = {}
        for column, name in enumerate(self.contract.direct_fields):
            spec = self.contract.fields[name]
            values = features[:, column]
            if isinstance(spec, CategoryField):
                levels = spec.levels()
                out[name] = [levels[int(v)] if v == v else None for v in values.tolist()]
            elif spec.kind == "integer":
                out[name] = [round(v) for v in values.tolist()]
            elif spec.kind == "boolean":
                out[name] = [bool(v) for v in values.tolist()]
            else:
                out[name] = values.tolist()
        return out


def _category_column(values: Any, index: Mapping[Any, float], other: float | None) -> np.ndarray:
    """Category codes of a column, looked up once per distinct value (``pandas.factorize``
    hashes the column in C); a value outside ``index`` takes ``other`` (KeyError if None)."""
    positions, distinct = pd.factorize(np.asarray(values, dtype=object))
    if other is None:
        per_value = np.array([index[v] for v in distinct.tolist()], dtype=np.float64)
    else:
        per_value = np.array([index.get(v, other) for v in distinct.tolist()], dtype=np.float64)
    return per_value[positions]


def _entity_column(
    requested: np.ndarray, online: Sequence[float | None], default: float
) -> tuple[np.ndarray, np.ndarray]:
    """One entity feature's values and source codes: the request's value (not NaN), else the
    store's (None/NaN: not found), else the default."""
    if len(requested) <= 16:  # a few orders: a Python loop beats numpy's per-call overhead
        chosen: list[float] = []
        codes: list[int] = []
        for given, stored in zip(requested.tolist(), online, strict=True):
            if given == given:  # not NaN
                chosen.append(given)
                codes.append(0)
            elif stored is not None and stored == stored:
                chosen.append(stored)
                codes.append(1)
            else:
                chosen.append(default)
                codes.append(2)
        return np.array(chosen, dtype=np.float64), np.array(codes, dtype=np.int64)
    found = np.array(online, dtype=np.float64)
    has_request, has_online = ~np.isnan(requested), ~np.isnan(found)
    values = np.where(has_request, requested, np.where(has_online, found, default))
    return values, np.where(has_request, 0, np.where(has_online, 1, 2))


def source_counts(codes: np.ndarray) -> list[int]:
    """Occurrences of each ``FEATURE_SOURCES`` code in 1-d ``codes``."""
    if codes.size <= 16:  # a single order: a Python count beats numpy's per-call overhead
        values = codes.tolist()
        return [values.count(code) for code in range(len(FEATURE_SOURCES))]
    return list(np.bincount(codes, minlength=len(FEATURE_SOURCES)).tolist())
