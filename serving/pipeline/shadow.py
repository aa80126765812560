"""Shadow inference: a challenger model scores the rows the champion answered, off the
response path, and its answers go into the prediction log beside the champion's.

The client's answer is complete before a row reaches the shadow: ``PredictionPipeline.predict``
hands the finished block to :meth:`ShadowScorer.submit`, which only queues it (or passes it
straight to the log). Every ``interval_s`` a background task scores everything queued in one
call of the challenger, in a thread of its own at a lower CPU priority, and then appends the
blocks, now carrying the challenger's outputs, to the prediction log. One label then scores
both models on the same request.

What the shadow may cost is bounded: a row queue (past it, ``dropped_queue_full``), and no new
shadow work while the champion is overloaded (it shed a request in the last second, or more
rows wait for it than one full batch: ``dropped_overload``). A challenger that raises costs its
rows' shadow answers (``failed``), never a client's answer: the blocks are logged without them.
Each predicted row of a worker with a challenger is counted under exactly one outcome.

A challenger trained with another contract scores the same orders only if the requests carry
everything it needs: :func:`models.contract.compat.challenger_input_problems` names each field they do not (a required
field the served API lacks, a field of another kind, values or bounds the served API accepts and
the challenger does not), and the service refuses to start (docs/shadow.md). When they do but
the two models' inputs differ (feature order or subset, category levels, entity tables),
:class:`ChallengerInputs` builds the challenger's own input from the same validated orders; the
champion's matrix is reused only when the inputs are the same.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from models.contract import CategoryField, FeatureContract
from models.features import EntityFeatures, FeatureAssembler
from prediction_log import ModelCall, PredictionBlock, ShadowScores
from prediction_log.buffered import RateLimitedWarning
from serving.pipeline.feature_store import lookup_tables
from serving.telemetry.metrics import MetricsRecorder
from serving.telemetry.roles import CHALLENGER

logger = logging.getLogger("serving.pipeline.shadow")

MAX_ROWS_PER_CALL = 4096
"""Most rows one challenger call scores; a larger backlog goes in several calls."""

_Queued = tuple[PredictionBlock, np.ndarray, Sequence[Any]]
"""A block waiting for the challenger, its rows' entity-known flags and (when the challenger
builds its own input) its orders."""


def shadow_selected(block_key: str, fraction: float) -> bool:
    """Whether the challenger scores the block with this key at ``fraction`` (0-1).

    Decided by 7 random hex digits of the key, its second group and the third's last three: a
    property of the prediction ids, independent of the log's batch sampling (which reads the
    first 8), and the same on every replica. Not the key's last 7: they are the time slot
    (``prediction_log.records.new_prediction_ids``), the same for every block of 10 seconds.
    """
    if fraction >= 1.0:
        return True
    if fraction <= 0.0:
        return False
    return int(block_key[9:13] + block_key[15:18], 16) < fraction * 16**7


def _input_layout(contract: FeatureContract) -> tuple[tuple[Any, ...], ...]:
    """What decides a model's input matrix besides the entity tables: per input column, its
    name and kind, a category's levels, an aggregate's entity field."""
    layout: list[tuple[Any, ...]] = []
    for name in contract.direct_fields:
        spec = contract.fields[name]
        levels = spec.levels() if isinstance(spec, CategoryField) else ()
        layout.append((name, spec.kind, levels))
    for entity, feature in zip(contract.entity_fields, contract.entity_features, strict=True):
        layout.append((feature, "entity", entity))
    return tuple(layout)


class _OrderView:
    """An order of the served API as the challenger's assembler reads it: attributes the
    served request model lacks take the challenger's value for them (a default, or None for an
    aggregate override the requests cannot send)."""

    __slots__ = ("_absent", "_order")

    def __init__(self, order: Any, absent: Mapping[str, Any]) -> None:
        self._order = order
        self._absent = absent

    def __getattr__(self, name: str) -> Any:
        absent = self._absent
        return absent[name] if name in absent else getattr(self._order, name)


@dataclass(frozen=True)
class ChallengerInputs:
    """The challenger's own model input, built from the champion's validated orders with the
    challenger's contract (its assembler) and entity tables (its embedded snapshot)."""

    assembler: FeatureAssembler
    entities: EntityFeatures
    absent: dict[str, Any]
    """Attributes the challenger reads that the served request model has not, and their
    values (:class:`_OrderView`)."""
    _tables: list[tuple[str, str, Mapping[str, float]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        contract = self.assembler.contract
        tables = [
            (entity, feature, self.entities.tables[feature])
            for entity, feature in zip(
                contract.entity_fields, contract.entity_features, strict=True
            )
        ]
        object.__setattr__(self, "_tables", tables)

    @classmethod
    def needed(
        cls,
        served: FeatureContract,
        served_entities: EntityFeatures,
        challenger: FeatureContract,
        challenger_entities: EntityFeatures,
    ) -> ChallengerInputs | None:
        """The challenger's own inputs, or None when its input is the champion's (same
        layout, same entity tables): the champion's matrix is then scored as it is.
        ``challenger_input_problems`` must have found nothing."""
        if _input_layout(served) == _input_layout(challenger) and (
            served_entities.tables == challenger_entities.tables
            and served_entities.defaults == challenger_entities.defaults
        ):
            return None
        carried = {*served.fields, *served.entity_features}
        absent: dict[str, Any] = {
            name: getattr(spec, "default", None)
            for name, spec in challenger.fields.items()
            if name not in carried
        }
        absent |= {name: None for name in challenger.entity_features if name not in carried}
        return cls(FeatureAssembler(challenger), challenger_entities, absent)

    def matrix(self, orders: Sequence[Any]) -> np.ndarray:
        """The challenger's input for ``orders`` (its feature order; aggregates: the request's
        override when the served API carries it, else the challenger's table, else its
        default)."""
        if self.absent:
            orders = [_OrderView(order, self.absent) for order in orders]
        online = lookup_tables(self._tables, self.assembler.entity_ids(orders))
        features, _ = self.assembler.assemble(orders, online, self.entities.defaults)
        return features


def _lower_priority(nice: int, threads: int) -> None:
    """The shadow thread's initializer: a lower CPU priority (Linux sets nice per thread), so
    under contention the kernel runs the champion's threads first; and a capped native pool."""
    threadpool_limits(threads)
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError as exc:  # not permitted in some sandboxes: run at normal priority
            logger.warning("shadow thread keeps normal priority: %s", exc)


class ShadowScorer:
    """One worker's challenger: queue blocks, score them in bulk, hand them to ``sink``."""

    def __init__(
        self,
        predict_rows: Callable[[np.ndarray], np.ndarray],
        *,
        model_version: str,
        sink: Callable[[PredictionBlock], None],
        clamp: Callable[[np.ndarray], np.ndarray],
        fraction: float,
        max_queue_rows: int,
        interval_s: float,
        overloaded: Callable[[], bool],
        metrics: MetricsRecorder | None = None,
        nice: int = 0,
        native_threads: int = 1,
        inputs: ChallengerInputs | None = None,
    ) -> None:
        """``inputs``: how the challenger's input is built from the orders when it is not the
        champion's matrix (``ChallengerInputs.needed``)."""
        self.model_version = model_version
        self._predict_rows = predict_rows
        self._sink = sink
        self._clamp = clamp
        self._fraction = fraction
        self._max_queue_rows = max_queue_rows
        self._interval_s = interval_s
        self._overloaded = overloaded
        self._metrics = metrics
        self._inputs = inputs
        self._pending: deque[_Queued] = deque()
        self._pending_rows = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="shadow",
            initializer=_lower_priority,
            initargs=(nice, native_threads),
        )
        self._warn_failure = RateLimitedWarning()
        self._warn_drop = RateLimitedWarning()

    @property
    def builds_own_input(self) -> bool:
        """Whether :meth:`submit` needs the orders (the challenger builds its own input)."""
        return self._inputs is not None

    @property
    def queue_rows(self) -> int:
        """Rows waiting for the challenger."""
        return self._pending_rows

    def submit(
        self, block: PredictionBlock, entity_known: np.ndarray, orders: Sequence[Any] = ()
    ) -> None:
        """Queue an answered request's block for the challenger, or log it without a shadow
        answer (not selected, overload, queue full: counted). Never blocks, never raises.

        ``orders`` are the block's validated orders: kept while queued only when the
        challenger builds its own input from them."""
        rows = len(block)
        if not shadow_selected(block.block_key, self._fraction):
            self._pass_through(block, "not_selected")
            return
        if self._overloaded():
            self._pass_through(block, "dropped_overload")
            return
        if self._pending_rows + rows > self._max_queue_rows:
            self._pass_through(block, "dropped_queue_full")
            self._warn_drop(
                "shadow queue full (%d rows): a request's %d rows logged without the challenger",
                self._pending_rows,
                rows,
            )
            return
        self._pending.append((block, entity_known, orders if self._inputs is not None else ()))
        self._pending_rows += rows  # the gauge is set once per round, not per request
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._score_forever())

    def _pass_through(self, block: PredictionBlock, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.shadow_rows(outcome, len(block))  # type: ignore[arg-type]
        self._sink(block)

    def _report_queue(self) -> None:
        if self._metrics is not None:
            self._metrics.shadow_queue_rows(self._pending_rows)

    async def _score_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.flush()

    async def flush(self) -> None:
        """Score what is queued when the call starts and hand it to the sink (the feedback path
        calls this so that this worker's own predictions are in the log before it looks one up).

        Blocks queued meanwhile wait for the next round: under sustained traffic the queue never
        empties, and a caller would otherwise wait as long as requests keep coming.
        """
        async with self._lock:
            self._report_queue()  # the queue as this round found it
            remaining = len(self._pending)
            while remaining > 0:
                taken: list[_Queued] = []
                rows = 0
                while remaining > 0 and (
                    not taken or rows + len(self._pending[0][0]) <= MAX_ROWS_PER_CALL
                ):
                    item = self._pending.popleft()
                    taken.append(item)
                    rows += len(item[0])
                    remaining -= 1
                self._pending_rows -= rows
                await self._score(taken)
            self._report_queue()

    async def _score(self, taken: list[_Queued]) -> None:
        blocks = [block for block, _, _ in taken]
        loop = asyncio.get_running_loop()
        try:
            outputs, call = await loop.run_in_executor(self._executor, self._score_rows, taken)
        except Exception as exc:
            # Whatever the challenger does, the champion's predictions are still logged.
            rows = sum(len(block) for block in blocks)
            self._warn_failure(
                "challenger %s failed on %d rows (logged without its answers): %s: %s",
                self.model_version,
                rows,
                type(exc).__name__,
                exc,
            )
            if self._metrics is not None:
                self._metrics.shadow_rows("failed", rows)
            for block in blocks:
                self._sink(block)
            return
        # Only this stays on the event loop: one block per request, handed to the log.
        start = 0
        for block in blocks:
            end = start + len(block)
            self._sink(
                block.with_shadow(ShadowScores(self.model_version, outputs[start:end], call))
            )
            start = end

    def _score_rows(self, taken: list[_Queued]) -> tuple[np.ndarray, ModelCall]:
        """The challenger's outputs for every queued row, and its call; observed in metrics.

        Runs in the shadow thread: the stacking (or the challenger's own assembly), the checks
        and the metrics (cohorts, the difference histogram) cost as much as the model call, and
        at the thread's lower priority they do not take the event loop's time.
        """
        champion_features = np.concatenate([block.features for block, _, _ in taken])
        features = champion_features
        if self._inputs is not None:
            orders = [order for _, _, block_orders in taken for order in block_orders]
            if len(orders) != len(features):
                raise ValueError(f"{len(orders)} orders queued for {len(features)} rows")
            features = self._inputs.matrix(orders)
        started = time.perf_counter()
        raw = self._predict_rows(features)
        seconds = time.perf_counter() - started
        outputs = self._clamp(np.asarray(raw, dtype=np.float64))
        if outputs.shape != (len(features), 3) or not np.isfinite(outputs).all():
            raise ValueError(
                f"challenger returned {outputs.shape} outputs, not finite ({len(features)}, 3)"
            )
        if self._metrics is not None:
            champion_points = np.concatenate([block.outputs[:, 0] for block, _, _ in taken])
            known = np.concatenate([known for _, known, _ in taken])
            # The served contract's cohorts of the same rows: both models' answers are sliced
            # alike (the cohort label values are the served contract's).
            cohorts = self._metrics.cohorts.codes(champion_features, known)
            self._metrics.model_call(CHALLENGER, seconds, len(features))
            self._metrics.predictions(outputs, cohorts, role=CHALLENGER)
            self._metrics.shadow_difference(champion_points, outputs[:, 0])
            self._metrics.shadow_rows("scored", len(features))
        return outputs, ModelCall(ms=round(seconds * 1000, 4), rows=len(features))

    async def close(self) -> None:
        """Stop the timer and score what is queued (bounded by the queue), then stop the thread."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        try:
            await self.flush()
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
