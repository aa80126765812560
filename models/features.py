"""The model's features: their contract, the entity aggregates, and the one way rows are built.

Training (``training_frame``) and serving (``assemble_features``) build the model's input here,
side by side, so that the two joins cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import pandas as pd

# Order of the model's input columns. Stored in the model metadata and checked at start-up:
# a model trained on another order would silently predict garbage.
FEATURE_NAMES: tuple[str, ...] = (
    "distance_km",
    "is_peak_hour",
    "order_value",
    "restaurant_avg_delivery_time",
    "driver_avg_delivery_time",
)
ENTITY_FEATURES: tuple[str, ...] = ("restaurant_avg_delivery_time", "driver_avg_delivery_time")

# Accepted values, shared by the API (``serving.schema``) and the training-data check
# (``models.training.order_history``): a row the API would refuse is never trained on.
ENTITY_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
ENTITY_ID_MAX_LENGTH = 64
DISTANCE_KM_RANGE: tuple[float, float] = (0.1, 50)
ORDER_VALUE_RANGE: tuple[float, float] = (0, 100_000)
DELIVERY_TIME_MIN_RANGE: tuple[float, float] = (1, 300)
"""An actual delivery time in minutes (feedback labels and training targets), inclusive."""

FeatureSource = Literal["request", "online", "default"]
"""Where an entity feature's value came from: the request, the online store, or the default."""


class OrderFeatures(Protocol):
    """What feature assembly reads from one order (the API's ``Order`` has these fields)."""

    @property
    def restaurant_id(self) -> str: ...
    @property
    def driver_id(self) -> str: ...
    @property
    def distance_km(self) -> float: ...
    @property
    def is_peak_hour(self) -> int: ...
    @property
    def order_value(self) -> float: ...
    @property
    def restaurant_avg_delivery_time(self) -> float | None: ...
    @property
    def driver_avg_delivery_time(self) -> float | None: ...


# Entities seen fewer times than this in the history window fall back to the default: an
# average of two deliveries is mostly noise.
MIN_ORDERS_PER_ENTITY = 5


@dataclass(frozen=True)
class EntityFeatures:
    """Per-entity average delivery times, plus the defaults for entities not in the table."""

    restaurant_avg_delivery_time: dict[str, float]
    driver_avg_delivery_time: dict[str, float]
    defaults: dict[str, float]
    history_end: str

    def to_json_dict(self) -> dict[str, object]:
        """Serialisable form written next to the model and loaded into Redis."""
        return {
            "restaurant_avg_delivery_time": self.restaurant_avg_delivery_time,
            "driver_avg_delivery_time": self.driver_avg_delivery_time,
            "defaults": self.defaults,
            "history_end": self.history_end,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, object]) -> EntityFeatures:
        """Inverse of :meth:`to_json_dict`."""
        return cls(
            restaurant_avg_delivery_time=dict(data["restaurant_avg_delivery_time"]),  # type: ignore[call-overload]
            driver_avg_delivery_time=dict(data["driver_avg_delivery_time"]),  # type: ignore[call-overload]
            defaults=dict(data["defaults"]),  # type: ignore[call-overload]
            history_end=str(data["history_end"]),
        )


def compute_entity_features(history: pd.DataFrame) -> EntityFeatures:
    """Average delivery time per restaurant and per driver over an (earlier) history window.

    Defaults for unknown entities are the history's overall mean delivery time: the best guess
    for an entity we know nothing about.
    """
    target = "delivery_time_minutes"
    overall = float(history[target].mean())

    def per_entity(column: str) -> dict[str, float]:
        stats = history.groupby(column, observed=True)[target].agg(["mean", "size"])
        kept = stats[stats["size"] >= MIN_ORDERS_PER_ENTITY]
        return {str(k): round(float(v), 4) for k, v in kept["mean"].items()}

    return EntityFeatures(
        restaurant_avg_delivery_time=per_entity("restaurant_id"),
        driver_avg_delivery_time=per_entity("driver_id"),
        defaults={name: round(overall, 4) for name in ENTITY_FEATURES},
        history_end=str(history["order_ts"].max()),
    )


def training_frame(orders: pd.DataFrame, entities: EntityFeatures) -> pd.DataFrame:
    """Feature matrix (columns ``FEATURE_NAMES``) for offline rows, joined like serving does."""
    frame = orders[["distance_km", "is_peak_hour", "order_value"]].astype(float).copy()
    frame["restaurant_avg_delivery_time"] = _lookup(
        orders["restaurant_id"],
        entities.restaurant_avg_delivery_time,
        entities.defaults["restaurant_avg_delivery_time"],
    )
    frame["driver_avg_delivery_time"] = _lookup(
        orders["driver_id"],
        entities.driver_avg_delivery_time,
        entities.defaults["driver_avg_delivery_time"],
    )
    return frame[list(FEATURE_NAMES)]


def _lookup(ids: pd.Series, table: Mapping[str, float], default: float) -> np.ndarray:
    """``table[id]`` per row, ``default`` for ids not in it."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        # Real histories arrive dictionary-encoded: look up each distinct id once.
        per_category = np.array(
            [table.get(str(c), default) for c in ids.cat.categories] + [default]
        )
        return per_category[ids.cat.codes.to_numpy()]  # code -1 (missing) takes the last: default
    return ids.map(table).fillna(default).to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class OnlineValues:
    """Values the online store returned for a batch of orders (None = not found)."""

    restaurant_avg_delivery_time: Sequence[float | None]
    driver_avg_delivery_time: Sequence[float | None]
    failed: bool = False
    """True when the store errored or timed out (all values are then None)."""


FEATURE_SOURCES: tuple[FeatureSource, ...] = ("request", "online", "default")
"""Source codes: ``assemble_feature_columns`` reports ``FEATURE_SOURCES[code]`` per entity feature."""


def assemble_feature_columns(
    orders: Sequence[OrderFeatures], online: OnlineValues, defaults: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Build the model input for ``orders`` column by column: request value, else online value,
    else default.

    Returns the float64 matrix in ``FEATURE_NAMES`` order and an int8 matrix of source codes
    (one column per ``ENTITY_FEATURES`` entry, values index ``FEATURE_SOURCES``). One pass per
    column, so a 1000-order batch costs a handful of array operations, not 1000 row loops.
    """
    matrix = np.empty((len(orders), len(FEATURE_NAMES)), dtype=np.float64)
    matrix[:, 0] = [o.distance_km for o in orders]
    matrix[:, 1] = [o.is_peak_hour for o in orders]
    matrix[:, 2] = [o.order_value for o in orders]
    codes = np.empty((len(orders), len(ENTITY_FEATURES)), dtype=np.int8)
    stored_columns = (online.restaurant_avg_delivery_time, online.driver_avg_delivery_time)
    for column, (name, stored) in enumerate(zip(ENTITY_FEATURES, stored_columns, strict=True)):
        # float arrays turn None into NaN: "not given" / "not found" become one vector test.
        requested = np.array([getattr(o, name) for o in orders], dtype=np.float64)
        found = np.array(stored, dtype=np.float64)
        has_request, has_online = ~np.isnan(requested), ~np.isnan(found)
        matrix[:, 3 + column] = np.where(
            has_request, requested, np.where(has_online, found, defaults[name])
        )
        codes[:, column] = np.where(has_request, 0, np.where(has_online, 1, 2))
    return matrix, codes


def source_counts(codes: np.ndarray) -> list[int]:
    """Occurrences of each ``FEATURE_SOURCES`` code in 1-d ``codes``."""
    if codes.size <= 16:  # a single order: a Python count beats numpy's per-call overhead
        values = codes.tolist()
        return [values.count(code) for code in range(len(FEATURE_SOURCES))]
    return list(np.bincount(codes, minlength=len(FEATURE_SOURCES)).tolist())


def source_rows(codes: np.ndarray) -> list[dict[str, FeatureSource]]:
    """Per order, where each entity feature came from, from ``assemble_feature_columns`` codes."""
    return [
        {name: FEATURE_SOURCES[code] for name, code in zip(ENTITY_FEATURES, row, strict=True)}
        for row in codes.tolist()
    ]


def assemble_features(
    orders: Sequence[OrderFeatures], online: OnlineValues, defaults: Mapping[str, float]
) -> tuple[np.ndarray, list[dict[str, FeatureSource]]]:
    """Build the model input for ``orders``: request value, else online value, else default.

    Returns the float64 matrix in ``FEATURE_NAMES`` order and, per order, where each entity
    feature came from.
    """
    matrix, codes = assemble_feature_columns(orders, online, defaults)
    return matrix, source_rows(codes)
