"""The feature contract: every request field, how it becomes a model input, and the training
file's target and timestamp columns -- declared once, in a YAML file a person edits.

Everything that names a feature derives it from a :class:`FeatureContract`: the API's request
model (``serving.schema``), the training-file check (``models.training.order_history``), the
model's input columns (``models.features``), drift, cohorts, the prediction log's export, the
canary and every load-test body. The contract a model was trained with is stored in its
metadata and is the API of the service that serves it.
"""

from __future__ import annotations

import itertools
import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENTITY_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
"""Characters an entity id may hold (ids become Redis keys and log lines)."""
ENTITY_ID_MAX_LENGTH = 64
MAX_CATEGORY_VALUES = 250
"""Most values one category may list: HistGradientBoosting's native categories are bins, at
most 255 of them (a few are kept for missing / other)."""
MAX_FIELDS = 64
"""Most request fields one contract may declare (one key each in every request body)."""
MAX_COHORTS_PER_DIMENSION = 12
"""Cohort names become metric label values: a bounded set, fixed by the contract."""
MAX_COHORT_DIMENSIONS = 4
MAX_EXAMPLES = 8
"""Most further example orders (``examples``) one contract may declare."""
OTHER_VALUE_DEFAULT = "other"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
"""Field, feature and cohort names: snake_case identifiers (they become Python attributes,
JSON keys, Parquet columns and Prometheus label values)."""

Monotonic = Literal["increasing", "decreasing", "none"]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CohortSpec(_Strict):
    """Slice live traffic and the holdout report by this field: one cohort per band or value."""

    dimension: Name
    """The dimension's name (the metric label ``dimension``, e.g. ``distance``)."""
    edges: list[float] | None = None
    """Inner band edges of a number or integer field; a value on an edge belongs to the band
    above it."""
    names: list[Name] | None = None
    """One name per band (or per value of a boolean: false, then true; of a category: each
    value, then ``other`` if declared). Default: derived from the field's name and edges."""


class _FieldBase(_Strict):
    description: str = ""
    required: bool = True
    """An order without a required field is refused (400); an optional one takes ``default``."""

    @model_validator(mode="after")
    def _check(self) -> Any:
        problems = _field_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class NumberField(_FieldBase):
    """A real number within ``[minimum, maximum]``."""

    kind: Literal["number"]
    minimum: float
    maximum: float
    example: float
    default: float | None = None
    monotonic: Monotonic = "none"
    """The model may only learn a prediction that rises (``increasing``) or falls with it."""
    cohort: CohortSpec | None = None


class IntegerField(_FieldBase):
    """A whole number within ``[minimum, maximum]``."""

    kind: Literal["integer"]
    minimum: int
    maximum: int
    example: int
    default: int | None = None
    monotonic: Monotonic = "none"
    cohort: CohortSpec | None = None


class BooleanField(_FieldBase):
    """Yes or no; the API takes ``true``/``false`` and ``1``/``0`` (as training files hold it)."""

    kind: Literal["boolean"]
    example: bool | Literal[0, 1]
    default: bool | None = None
    monotonic: Monotonic = "none"
    cohort: CohortSpec | None = None


class CategoryField(_FieldBase):
    """One of a fixed set of values, fed to the model as a native category."""

    kind: Literal["category"]
    values: list[str | int] = Field(min_length=1, max_length=MAX_CATEGORY_VALUES)
    on_unseen: Literal["refuse", "other"] = "refuse"
    """A value not in ``values``: ``refuse`` it (400 listing the allowed values), or map it to
    ``other_value`` (its own category, learnt from the training rows that had such values)."""
    other_value: str = OTHER_VALUE_DEFAULT
    example: str | int
    default: str | int | None = None
    cohort: CohortSpec | None = None

    def levels(self) -> tuple[str | int, ...]:
        """The category's codes, in order: its values, then ``other_value`` when unseen values
        map to it. A value's model input is its index here."""
        if self.on_unseen == "other":
            return (*self.values, self.other_value)
        return tuple(self.values)


class EntityField(_FieldBase):
    """An id whose aggregate (mean delivery time over the history window) is the model input;
    looked up in the online feature store, overridable in the request, else the default."""

    kind: Literal["entity"]
    example: str
    feature: Name | None = None
    """The aggregate's name: the model input and the request's override field. Default
    ``<key>_avg_delivery_time``."""
    key: Name | None = None
    """The entity's name in feature-store keys. Default: the field name without ``_id``."""
    aggregate: Literal["mean_target"] = "mean_target"
    """Mean of the target over the entity's history-window orders."""
    min_orders: int = Field(default=5, ge=1)
    """Entities with fewer history orders get the default (an average of two is noise)."""
    monotonic: Monotonic = "increasing"
    """A slower entity's average can only lengthen a delivery."""


FieldSpec = Annotated[
    NumberField | IntegerField | BooleanField | CategoryField | EntityField,
    Field(discriminator="kind"),
]


class TargetSpec(_Strict):
    """The training file's target: the actual delivery time in minutes."""

    column: Name
    minimum: float = 1
    maximum: float = 300
    description: str = "actual minutes from order to door"


class TimestampSpec(_Strict):
    """The training file's order time (the time splits and the entity history window use it)."""

    column: Name
    description: str = "when the order was placed (ISO 8601; without an offset it is UTC)"


class FeatureContract(_Strict):
    """Request fields, in order, and the training file's target and timestamp columns."""

    version: Literal[1] = 1
    description: str = ""
    target: TargetSpec
    timestamp: TimestampSpec
    fields: dict[Name, FieldSpec] = Field(min_length=1, max_length=MAX_FIELDS)
    examples: list[dict[Name, Any]] = Field(default_factory=list, max_length=MAX_EXAMPLES)
    """Further example orders, each given as its differences from the fields' examples (an
    entity aggregate may be given too, as the request's override): the API's batch example
    and the tools' bodies (:meth:`example_orders`)."""

    @model_validator(mode="after")
    def _consistent(self) -> FeatureContract:
        problems = []
        for index, example in enumerate(self.examples):
            problems += [f"examples.{index}: {p}" for p in self._example_problems(example)]
        file_columns = {self.target.column, self.timestamp.column}
        if len(file_columns) < 2:
            problems.append("target.column and timestamp.column must differ")
        for name, spec in self.fields.items():
            if name in file_columns:
                problems.append(f"fields.{name}: is also the target or timestamp column")
            cohort = getattr(spec, "cohort", None)
            if cohort is not None and cohort.names is not None:
                expected = _band_count(spec, cohort)
                if len(cohort.names) != expected:
                    problems.append(
                        f"fields.{name}.cohort: names must list {expected}, one per band"
                    )
        features = self.feature_names
        taken = set(self.fields)
        for name, spec in self.fields.items():
            if isinstance(spec, EntityField):
                feature = self.entity_feature(name)
                if feature in taken or features.count(feature) > 1:
                    problems.append(f"fields.{name}: feature {feature!r} clashes with another name")
                taken.add(feature)
        if not self.fields_of_kind("number", "integer", "boolean", "category"):
            problems.append("fields: declare at least one number, integer, boolean or category")
        cohorts = [c for dim in self.cohort_dimensions.values() for c in dim]
        if len(cohorts) != len(set(cohorts)):
            problems.append("cohort names must be unique across all fields")
        if len(self.cohort_dimensions) > MAX_COHORT_DIMENSIONS + 1:
            problems.append(f"at most {MAX_COHORT_DIMENSIONS} fields may declare a cohort")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- derived views (computed once per contract; the contract is frozen) ------------------

    def override_bounds(self) -> tuple[float, float]:
        """An entity override's range: above the first (exclusive) up to the second -- minutes,
        like the aggregate it replaces, bounded by the target's maximum."""
        return 0.0, float(self.target.maximum)

    def fields_of_kind(self, *kinds: str) -> list[str]:
        """Names of the fields of these kinds, in declared order."""
        return [name for name, spec in self.fields.items() if spec.kind in kinds]

    @cached_property
    def direct_fields(self) -> tuple[str, ...]:
        """Fields that are model inputs themselves (every kind but ``entity``)."""
        return tuple(n for n, s in self.fields.items() if s.kind != "entity")

    @cached_property
    def entity_fields(self) -> tuple[str, ...]:
        """Fields that are entity ids."""
        return tuple(n for n, s in self.fields.items() if s.kind == "entity")

    def entity_feature(self, field: str) -> str:
        """The aggregate feature (and request override) of entity ``field``."""
        spec = self.fields[field]
        assert isinstance(spec, EntityField)
        return spec.feature or f"{self.entity_key(field)}_avg_delivery_time"

    def entity_key(self, field: str) -> str:
        """The entity's name in feature-store keys."""
        spec = self.fields[field]
        assert isinstance(spec, EntityField)
        return spec.key or field.removesuffix("_id")

    @cached_property
    def entity_features(self) -> tuple[str, ...]:
        """The entity aggregates, in entity-field order."""
        return tuple(self.entity_feature(f) for f in self.entity_fields)

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        """The model's input columns: direct fields in declared order, then the entity
        aggregates. Stored in the model metadata and checked at start-up."""
        return (*self.direct_fields, *self.entity_features)

    @cached_property
    def categorical_mask(self) -> tuple[bool, ...]:
        """Per model input, whether it is a category (its value is a category code)."""
        return tuple(
            n in self.fields and self.fields[n].kind == "category" for n in self.feature_names
        )

    @cached_property
    def monotonic_constraints(self) -> tuple[int, ...]:
        """Per model input: 1 increasing, -1 decreasing, 0 free (HistGradientBoosting's form)."""
        by_field = {n: getattr(s, "monotonic", "none") for n, s in self.fields.items()}
        by_feature = {
            **by_field,
            **{self.entity_feature(f): by_field[f] for f in self.entity_fields},
        }
        sign = {"increasing": 1, "decreasing": -1, "none": 0}
        return tuple(sign[by_feature[n]] for n in self.feature_names)

    def category_levels(self, field: str) -> tuple[str | int, ...]:
        """A category's codes, in order: its values, then ``other_value`` when unseen values
        map to it. A value's model input is its index here."""
        spec = self.fields[field]
        assert isinstance(spec, CategoryField)
        return spec.levels()

    @cached_property
    def cohort_dimensions(self) -> dict[str, tuple[str, ...]]:
        """Each cohort dimension's names, in code order; ``entity`` (known / unknown) last when
        the contract has entities. A fixed set: the contract bounds every cohort label."""
        dimensions: dict[str, tuple[str, ...]] = {}
        for name, spec in self.fields.items():
            cohort = getattr(spec, "cohort", None)
            if cohort is not None:
                dimensions[cohort.dimension] = tuple(cohort_names(name, spec, cohort))
        if self.entity_fields:
            dimensions["entity"] = ("entity_known", "entity_unknown")
        return dimensions

    def cohort_field(self, dimension: str) -> str | None:
        """The field a cohort dimension slices by (None for ``entity``)."""
        for name, spec in self.fields.items():
            cohort = getattr(spec, "cohort", None)
            if cohort is not None and cohort.dimension == dimension:
                return name
        return None

    def example_order(self) -> dict[str, Any]:
        """One order of every field's example value (the API's and the load tests' body)."""
        return {name: spec.example for name, spec in self.fields.items()}

    def example_orders(self) -> list[dict[str, Any]]:
        """:meth:`example_order`, then each of ``examples`` applied to it."""
        first = self.example_order()
        return [first, *({**first, **changes} for changes in self.examples)]

    def _example_problems(self, example: dict[str, Any]) -> list[str]:
        problems = []
        for name, value in example.items():
            if name in self.fields:
                spec = self.fields[name]
                try:
                    type(spec).model_validate({**spec.model_dump(), "example": value})
                except ValidationError as exc:
                    message = exc.errors()[0]["msg"].removeprefix("Value error, ")
                    problems.append(f"{name}: {message}")
            elif name in self.entity_features:
                number = isinstance(value, int | float) and not isinstance(value, bool)
                if not number or not 0 < value <= self.target.maximum:
                    problems.append(f"{name}: {value!r} is not in 0..{self.target.maximum}")
            else:
                problems.append(f"{name}: not a field or an entity aggregate of this contract")
        return problems

    def metadata(self) -> dict[str, Any]:
        """The contract as stored in a model's metadata (no None: BentoML's metadata holds
        none)."""
        return self.model_dump(mode="json", exclude_none=True)


def _field_problems(spec: Any) -> list[str]:
    problems: list[str] = []
    if spec.kind in ("number", "integer"):
        if not spec.minimum < spec.maximum:
            problems.append(f"minimum {spec.minimum} must be below maximum {spec.maximum}")
        for what in ("example", "default"):
            value = getattr(spec, what)
            if value is not None and not spec.minimum <= value <= spec.maximum:
                problems.append(f"{what} {value} is outside {spec.minimum}..{spec.maximum}")
    if spec.kind == "category":
        if len({str(v) for v in spec.values}) != len(spec.values):
            problems.append("values must be unique")
        if spec.on_unseen == "other" and spec.other_value in {str(v) for v in spec.values}:
            problems.append(f"other_value {spec.other_value!r} is also one of the values")
        for what in ("example", "default"):
            value = getattr(spec, what)
            if value is not None and value not in spec.levels():
                problems.append(f"{what} {value!r} is not one of the values")
    if spec.kind == "entity":
        if (
            not re.fullmatch(ENTITY_ID_PATTERN, spec.example)
            or len(spec.example) > ENTITY_ID_MAX_LENGTH
        ):
            problems.append(f"example {spec.example!r} is not a valid id")
        if not spec.required:
            problems.append("entity fields are required (an order without its id has no aggregate)")
    if spec.required and getattr(spec, "default", None) is not None:
        problems.append("a required field takes no default (set required: false)")
    if not spec.required and spec.kind != "entity" and getattr(spec, "default", None) is None:
        problems.append("an optional field needs a default")
    cohort = getattr(spec, "cohort", None)
    if cohort is not None:
        if spec.kind in ("number", "integer"):
            if not cohort.edges:
                problems.append("cohort: a number's cohort needs edges")
            elif sorted(set(cohort.edges)) != list(cohort.edges):
                problems.append("cohort: edges must be strictly increasing")
        elif cohort.edges is not None:
            problems.append(f"cohort: a {spec.kind} field's cohort takes no edges")
        if _band_count(spec, cohort) > MAX_COHORTS_PER_DIMENSION:
            problems.append(f"cohort: at most {MAX_COHORTS_PER_DIMENSION} bands")
    return problems


def _band_count(spec: Any, cohort: CohortSpec) -> int:
    if spec.kind in ("number", "integer"):
        return len(cohort.edges or []) + 1
    if spec.kind == "boolean":
        return 2
    return len(spec.levels())


def cohort_names(name: str, spec: Any, cohort: CohortSpec) -> list[str]:
    """A field's cohort names: declared, or derived (``<field>_<low>_<high>``, ``not_<field>`` /
    ``<field>``, ``<field>_<value>``)."""
    if cohort.names:
        return list(cohort.names)
    if spec.kind in ("number", "integer"):
        edges = [spec.minimum, *(cohort.edges or []), None]
        return [
            f"{name}_{_label(low)}_{_label(high)}"
            if high is not None
            else f"{name}_{_label(low)}_plus"
            for low, high in itertools.pairwise(edges)
        ]
    if spec.kind == "boolean":
        return [f"not_{name}", name]
    return [f"{name}_{_slug(v)}" for v in spec.levels()]


def _label(value: float | None) -> str:
    return f"{value:g}".replace(".", "p").replace("-", "m")


def _slug(value: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_")[:40] or "blank"
