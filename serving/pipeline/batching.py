"""Adaptive batching of concurrent predictions with BentoML's own dispatcher.

BentoML 1.4 batches only HTTP requests that hit a batchable route, and a service calling its
own batchable method goes over HTTP again (to port 3000, whatever port it serves on). Both
/v1 routes therefore hand their rows to one in-process ``CorkDispatcher`` -- the same adaptive
batching algorithm BentoML runs for batchable APIs, reached through ``framework_internals`` --
and the model sees merged batches with no extra hop.

One request's way through it, top to bottom: :meth:`AdaptiveBatcher.predict` registers the
request (its rows, its per-row tags) and queues the rows; the dispatcher merges queued rows
into one model call; after the call, ``on_call`` sees the merged :class:`ModelCallResult` once
(and may replace its outputs, e.g. clamped); each request gets its own rows back, and the call
it was part of, as :class:`ScoredRows`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

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
class ModelCallResult:
    """One model call on the merged rows of every request in it."""

    features: np.ndarray
    """(rows, k) model input, the requests' rows in queue order."""
    tags: np.ndarray | None
    """The same rows' tags (what callers passed to ``predict``), or None without tags."""
    outputs: np.ndarray
    """(rows, m) model outputs."""
    seconds: float
    """Duration of the model call alone (measured in the model thread, no queueing)."""


@dataclass(frozen=True)
class ScoredRows:
    """One request's rows as the model scored them, and the model call they were part of."""

    outputs: np.ndarray
    """(n, m) model outputs for the request's rows, in order (after ``on_call``)."""
    call_seconds: float
    """Duration of the model call alone (measured in the model thread, no queueing)."""
    call_rows: int
    """Rows of that call: this request's and those of every request merged with it."""


@dataclass
class _Waiting:
    """A request between ``predict`` and its answer: its tags, and the call(s) that scored it
    (two or more when the dispatcher cut it to fill a batch)."""

    tags: np.ndarray | None
    calls: list[tuple[float, int]] = field(default_factory=list)


CallObserver = Callable[[ModelCallResult], np.ndarray]
"""``on_call(call) -> outputs``: run once per model call on the merged batch (clamping, metrics
and drift cost a few array operations per call, not per request); what it returns is what the
requests get."""


class AdaptiveBatcher:
    """Merge concurrent ``predict`` calls (each an ``(n, k)`` matrix) into model batches."""

    def __init__(
        self,
        predict_rows: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch_size: int,
        max_latency_ms: int,
        on_call: CallObserver | None = None,
        observe_batch: Callable[[int, int], None] | None = None,
        native_threads: int = 1,
        max_wait_ms: float = 2.0,
    ) -> None:
        """``on_call``: see :data:`CallObserver`; ``observe_batch(requests, rows)`` of every
        model call (batch-size metrics)."""
        self._predict_rows = predict_rows
        self._on_call = on_call
        self._observe_batch = observe_batch
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
        # Requests in flight, by the id of the rows array they queued (see _request_of).
        self._waiting: dict[int, tuple[np.ndarray, _Waiting]] = {}
        self.shed_at = -float("inf")
        """``time.monotonic()`` of the last request shed with :class:`Overloaded`."""
        self.queued_rows = 0
        """Rows handed to ``predict`` and not answered yet (waiting, or in the running call)."""

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

    def _request_of(self, part: np.ndarray) -> tuple[_Waiting, slice]:
        """The request ``part`` belongs to, and which of its rows it holds.

        The dispatcher hands over a request's own array, or -- when it cut a request to fill a
        batch -- a slice of it: a view whose ``base`` is that array (``predict`` queues arrays
        that own their memory, so a view's base is always the request's array).
        """
        entry = self._waiting.get(id(part))
        if entry is not None and entry[0] is part:
            return entry[1], slice(None)
        owner, waiting = self._waiting[id(part.base)]
        start = (
            part.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
        ) // owner.strides[0]
        return waiting, slice(start, start + len(part))

    async def _run_batch(self, parts: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not parts:
            return []
        sizes = [part.shape[0] for part in parts]
        rows = sum(sizes)
        if self._observe_batch is not None:
            self._observe_batch(len(parts), rows)
        stacked = parts[0] if len(parts) == 1 else np.concatenate(parts)
        requests = [self._request_of(part) for part in parts]
        loop = asyncio.get_running_loop()
        outputs, seconds = await loop.run_in_executor(self._executor, self._timed, stacked)
        for waiting, _ in requests:
            waiting.calls.append((seconds, rows))
        if self._on_call is not None:
            tags = [w.tags[rows_of] for w, rows_of in requests if w.tags is not None]
            merged_tags = None
            if len(tags) == len(parts):
                merged_tags = tags[0] if len(tags) == 1 else np.concatenate(tags)
            outputs = self._on_call(ModelCallResult(stacked, merged_tags, outputs, seconds))
        if len(parts) == 1:
            return [outputs]
        return list(np.split(outputs, np.cumsum(sizes)[:-1]))

    async def predict(self, rows: np.ndarray, tags: np.ndarray | None = None) -> ScoredRows:
        """Predict ``rows``, sharing the model call with whatever else is queued. ``tags``
        (one per row) reach ``on_call`` with their rows, never the model."""
        assert tags is None or len(tags) == len(rows)
        if rows.base is not None or id(rows) in self._waiting:
            rows = rows.copy()  # queue an array of this request's own (see _request_of)
        waiting = _Waiting(tags)
        self._waiting[id(rows)] = (rows, waiting)
        self.queued_rows += len(rows)
        try:
            outputs = await self._infer(rows)
        except Overloaded:
            self.shed_at = time.monotonic()
            raise
        finally:
            self.queued_rows -= len(rows)
            del self._waiting[id(rows)]
        assert outputs is not None  # None only via the fallback, which raises
        # A request cut in two was part of two calls: it names the first, as its first rows'.
        seconds, call_rows = waiting.calls[0] if waiting.calls else (0.0, 0)
        return ScoredRows(outputs, seconds, call_rows)

    def shutdown(self) -> None:
        """Stop the dispatcher's controller task and the model thread."""
        self._dispatcher.shutdown()
        self._executor.shutdown(wait=False, cancel_futures=True)
