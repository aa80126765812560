"""Adaptive batching of concurrent predictions with BentoML's own dispatcher.

BentoML 1.4 batches only HTTP requests that hit a batchable route, and a service calling its
own batchable method goes over HTTP again (to port 3000, whatever port it serves on). Both
/v1 routes therefore hand their rows to one in-process ``CorkDispatcher`` -- the same adaptive
batching algorithm BentoML runs for batchable APIs, reached through ``framework_internals`` --
and the model sees merged batches with no extra hop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from framework_internals import batch_dispatcher


class Overloaded(RuntimeError):
    """The batch queue's estimated wait exceeds its latency budget: shed this request."""


def _shed() -> np.ndarray:
    raise Overloaded("prediction queue is over its latency budget")


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
    ) -> None:
        self._predict_rows = predict_rows
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
        self.after_call: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
        """``after_call(rows, outputs) -> outputs``, run once per model call on the merged batch
        (clamping, metrics and drift cost a few array operations per call, not per request)."""

    async def _run_batch(self, parts: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not parts:
            return []
        sizes = [part.shape[0] for part in parts]
        if self._observe_batch is not None:
            self._observe_batch(len(parts), sum(sizes))
        stacked = parts[0] if len(parts) == 1 else np.concatenate(parts)
        loop = asyncio.get_running_loop()
        outputs = await loop.run_in_executor(self._executor, self._predict_rows, stacked)
        if self.after_call is not None:
            outputs = self.after_call(stacked, outputs)
        if len(parts) == 1:
            return [outputs]
        return list(np.split(outputs, np.cumsum(sizes)[:-1]))

    async def predict(self, rows: np.ndarray) -> np.ndarray:
        """Predict ``rows``, sharing the model call with whatever else is queued."""
        outputs = await self._infer(rows)
        assert (
            outputs is not None
        )  # the dispatcher returns None only via the fallback, which raises
        return outputs

    def shutdown(self) -> None:
        """Stop the dispatcher's controller task and the model thread."""
        self._dispatcher.shutdown()
        self._executor.shutdown(wait=False, cancel_futures=True)
