"""Adaptive batching of concurrent predictions with BentoML's own dispatcher.

BentoML 1.4 batches only HTTP requests that hit a batchable route, and a service calling its
own batchable method goes over HTTP again (to port 3000, whatever port it serves on). Both
/v1 routes therefore hand their rows to one in-process ``CorkDispatcher`` -- the same adaptive
batching algorithm BentoML runs for batchable APIs, reached through ``framework_internals`` --
and the model sees merged batches with no extra hop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from framework_internals import batch_dispatcher

OVERLOAD_COOLDOWN_S = 1.0
"""After a request is shed, the batcher counts as overloaded for this long."""


class Overloaded(RuntimeError):
    """The batch queue's estimated wait exceeds its latency budget: shed this request."""


def _shed() -> np.ndarray:
    raise Overloaded("prediction queue is over its latency budget")


@dataclass(frozen=True)
class ScoredRows:
    """One request's rows as the model scored them, and the model call they were part of."""

    outputs: np.ndarray
    """(n, k) model outputs for the request's rows, in order."""
    call_seconds: float
    """Duration of the model call alone (measured in the model thread, no queueing)."""
    call_rows: int
    """Rows of that call: this request's and those of every request merged with it."""


# Columns the batcher appends to each output row: the call's seconds and rows. BentoML's
# dispatcher splits and merges only arrays along the row axis (a request larger than the room
# left in a batch is cut in two and its halves' outputs concatenated), so per-call facts and
# per-row tags travel as columns of the arrays it already carries.
_CALL_COLUMNS = 2


class AdaptiveBatcher:
    """Merge concurrent ``predict`` calls (each an ``(n, k)`` matrix) into model batches."""

    def __init__(
        self,
        predict_rows: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch_size: int,
        max_latency_ms: int,
        observe_batch: Callable[[int, int], None] | None = None,
        native_threads: int = 1,
        max_wait_ms: float = 2.0,
        tag_columns: int = 0,
    ) -> None:
        self._predict_rows = predict_rows
        self._observe_batch = observe_batch
        self._tag_columns = tag_columns
        # One model thread per worker: the trees are CPU-bound, so a second call would only
        # contend for the cores while the queue forms the next batch. Its OpenMP pool is capped
        # too: sklearn's trees open a parallel region per tree, and with workers x cores threads
        # spinning on 2 cores one 1-row call measured 440 ms instead of 30.
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="model",
            initializer=threadpool_limits,
            initargs=(native_threads,),
        )
        # BentoML's optimizer, with the wait and the learned per-row cost capped (see
        # framework_internals.capped_optimizer for why).
        self._dispatcher = batch_dispatcher(
            max_latency_ms=max_latency_ms,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            fallback=_shed,
        )
        self._infer = self._dispatcher(self._run_batch)
        self._max_batch_size = max_batch_size
        self.shed_at = -float("inf")
        """``time.monotonic()`` of the last request shed with :class:`Overloaded`."""
        self.queued_rows = 0
        """Rows handed to ``predict`` and not answered yet (waiting, or in the running call)."""
        self.after_call: Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray] | None
        self.after_call = None
        """``after_call(rows, tags, outputs, seconds) -> outputs``, run once per model call on
        the merged batch (clamping, metrics and drift cost a few array operations per call, not
        per request); ``tags`` are the calls' ``tags`` rows, ``seconds`` the model call's."""

    @property
    def overloaded(self) -> bool:
        """Whether the model is behind: a request was shed in the last
        ``OVERLOAD_COOLDOWN_S``, or more rows wait for it than one full batch. Work that can
        wait (the shadow) gives way then."""
        return (
            time.monotonic() - self.shed_at < OVERLOAD_COOLDOWN_S
            or self.queued_rows > self._max_batch_size
        )

    def _timed(self, rows: np.ndarray) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        outputs = self._predict_rows(rows)
        return outputs, time.perf_counter() - started

    async def _run_batch(self, parts: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not parts:
            return []
        sizes = [part.shape[0] for part in parts]
        if self._observe_batch is not None:
            self._observe_batch(len(parts), sum(sizes))
        stacked = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if self._tag_columns:
            tags = stacked[:, -self._tag_columns :]
            stacked = np.ascontiguousarray(stacked[:, : -self._tag_columns])
        else:
            tags = stacked[:, :0]
        loop = asyncio.get_running_loop()
        outputs, seconds = await loop.run_in_executor(self._executor, self._timed, stacked)
        if self.after_call is not None:
            outputs = self.after_call(stacked, tags, outputs, seconds)
        call = np.empty((len(stacked), _CALL_COLUMNS))
        call[:, 0], call[:, 1] = seconds, len(stacked)
        outputs = np.hstack([outputs, call])
        if len(parts) == 1:
            return [outputs]
        return list(np.split(outputs, np.cumsum(sizes)[:-1]))

    async def predict(self, rows: np.ndarray, tags: np.ndarray | None = None) -> ScoredRows:
        """Predict ``rows``, sharing the model call with whatever else is queued. ``tags``
        (``(n, tag_columns)``) ride along to ``after_call`` without reaching the model."""
        if self._tag_columns:
            assert tags is not None and tags.shape == (len(rows), self._tag_columns)
            # Filled in place: np.hstack's dispatch cost ~4 us, per request.
            tagged = np.empty((len(rows), rows.shape[1] + self._tag_columns))
            tagged[:, : rows.shape[1]] = rows
            tagged[:, rows.shape[1] :] = tags
            rows = tagged
        self.queued_rows += len(rows)
        try:
            outputs = await self._infer(rows)
        except Overloaded:
            self.shed_at = time.monotonic()
            raise
        finally:
            self.queued_rows -= len(rows)
        assert (
            outputs is not None
        )  # the dispatcher returns None only via the fallback, which raises
        return ScoredRows(
            outputs[:, :-_CALL_COLUMNS],
            float(outputs[0, -2]) if len(outputs) else 0.0,
            int(outputs[0, -1]) if len(outputs) else 0,
        )

    def shutdown(self) -> None:
        """Stop the dispatcher's controller task and the model thread."""
        self._dispatcher.shutdown()
        self._executor.shutdown(wait=False, cancel_futures=True)
