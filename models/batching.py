"""Adaptive batching of concurrent predictions with BentoML's own dispatcher.

BentoML 1.4 batches only HTTP requests that hit a batchable route, and a service calling its
own batchable method goes over HTTP again (to port 3000, whatever port it serves on). Both
/v1 routes therefore hand their rows to one in-process ``CorkDispatcher`` -- the same adaptive
batching algorithm BentoML runs for batchable APIs -- and the model sees merged batches with
no extra hop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from bentoml._internal.marshal.dispatcher import CorkDispatcher, Optimizer
from threadpoolctl import threadpool_limits


class Overloaded(RuntimeError):
    """The batch queue's estimated wait exceeds its latency budget: shed this request."""


def _shed() -> np.ndarray:
    raise Overloaded("prediction queue is over its latency budget")


class _CappedWaitOptimizer(Optimizer):
    """BentoML's batching optimizer with a ceiling on the wait and on the per-row cost it learns.

    * Wait: the optimizer sets how long a queue may wait for company from the average of recent
      waits -- which include that same wait, so after a burst it stays high: a lone request
      measured 552 ms right after load, 2 ms on a fresh server. Batches still form under load
      while the model thread is busy; the cap only stops idle waiting.
    * Cost per row (``o_a``): a least-squares slope over the last 50 (rows, seconds) samples.
      Under a flood those batches all have similar sizes, so one slow call (a GC pause, a
      starved core) can tilt the slope to many ms per row (tests/models/test_batching.py:
      > 10 ms from a single 0.5 s call among 1 ms/row batches), and the dispatcher sheds
      whenever ``wait + o_a * queued + o_b`` exceeds the budget. Suspected cause of 790 503s
      in one CI run of the 512-connection test under the 10 s budget while answers took ~0.9 s
      (not reproduced: 3 floods since, slope <= 3.4 ms/row). The slope is capped at the median
      per-row cost actually observed, which one outlier cannot move.
    """

    def __init__(self, max_latency: float, max_wait: float) -> None:
        super().__init__(max_latency)
        self.max_wait = max_wait

    def trigger_refresh(self) -> None:
        super().trigger_refresh()
        if self.o_stat:
            observed = float(
                np.median([seconds / max(rows, 1) for rows, seconds, _ in self.o_stat])
            )
            self.o_a = min(self.o_a, observed)
        self.wait = min(self.wait, self.max_wait)  # type: ignore[assignment]  # BentoML types it int


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
        dispatcher: CorkDispatcher[np.ndarray, np.ndarray] = CorkDispatcher(
            max_latency_in_ms=max_latency_ms,
            max_batch_size=max_batch_size,
            fallback=_shed,
            get_batch_size=lambda rows: int(rows.shape[0]),
            batch_dim=(0, 0),
        )
        dispatcher.optimizer = _CappedWaitOptimizer(max_latency_ms / 1000, max_wait_ms / 1000)
        self._dispatcher = dispatcher
        self._infer = dispatcher(self._run_batch)

    async def _run_batch(self, parts: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not parts:
            return []
        sizes = [part.shape[0] for part in parts]
        if self._observe_batch is not None:
            self._observe_batch(len(parts), sum(sizes))
        stacked = parts[0] if len(parts) == 1 else np.concatenate(parts)
        loop = asyncio.get_running_loop()
        outputs = await loop.run_in_executor(self._executor, self._predict_rows, stacked)
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
