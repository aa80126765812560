"""Touch-point 1: BentoML's adaptive-batching dispatcher and optimizer (``bentoml._internal.marshal``).

A batchable API cannot be called in-process: BentoML routes a service's call to its own batchable
method over HTTP again, so the pipeline drives BentoML's ``CorkDispatcher`` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def batch_dispatcher(
    *,
    max_latency_ms: int,
    max_batch_size: int,
    max_wait_ms: float,
    fallback: Callable[[], np.ndarray],
) -> Any:
    """BentoML's ``CorkDispatcher`` for row matrices (batch dimension 0), with a capped optimizer.

    Decorating an ``async (parts) -> outputs`` function with the result gives the adaptive
    batching BentoML runs for batchable APIs; ``fallback`` is called (and must raise) when a
    request's estimated wait exceeds ``max_latency_ms``. A request of ``max_batch_size`` rows
    or more that reaches the head of the queue is one model call of its own, whole
    (:func:`_whole_large_requests`).
    """
    from bentoml._internal.marshal.dispatcher import CorkDispatcher

    dispatcher: Any = _whole_large_requests(CorkDispatcher)(
        max_latency_in_ms=max_latency_ms,
        max_batch_size=max_batch_size,
        fallback=fallback,
        get_batch_size=lambda rows: int(rows.shape[0]),
        batch_dim=(0, 0),
    )
    dispatcher.optimizer = capped_optimizer(max_latency_ms / 1000, max_wait_ms / 1000)
    return dispatcher


def _whole_large_requests(dispatcher_class: Any) -> Any:
    """``CorkDispatcher`` taking a request of a whole batch or more in one call, uncut.

    BentoML cuts every request to ``max_batch_size`` rows and queues the rest at the head of
    the queue, so a 10,000-row request with batches of 1,000 became 10 model calls back to
    back: nothing else runs between them, and each costs a dispatch, a thread hand-off, the
    per-call observers, and a concatenation of the parts' answers (~8 ms of a worker's event
    loop per 10,000-row request). A request smaller than a batch is still cut to fill one.
    """

    class WholeLargeRequests(dispatcher_class):
        def _get_inputs(self, num_batches: int | None = None) -> Any:
            queue = self._queue
            if queue and self.get_batch_size(queue[0].data) >= self.max_batch_size:
                yield queue.popleft()
                return
            yield from super()._get_inputs(num_batches)

    return WholeLargeRequests


def capped_optimizer(max_latency_s: float, max_wait_s: float) -> Any:
    """BentoML's batching ``Optimizer`` with a ceiling on the wait and the per-row cost it learns.

    * Wait: the optimizer sets how long a queue may wait for company from the average of recent
      waits -- which include that same wait, so after a burst it stays high: a lone request
      measured 552 ms right after load, 2 ms on a fresh server. Batches still form under load
      while the model thread is busy; the cap only stops idle waiting.
    * Cost per row (``o_a``): a least-squares slope over the last 50 (rows, seconds) samples.
      Under a flood those batches all have similar sizes, so one slow call (a GC pause, a
      starved core) can tilt the slope to many ms per row (> 10 ms from a single 0.5 s call
      among 1 ms/row batches), and the dispatcher sheds whenever ``wait + o_a * queued + o_b``
      exceeds the budget. The slope is capped at the median per-row cost actually observed,
      which one outlier cannot move.
    """
    from bentoml._internal.marshal.dispatcher import Optimizer

    class CappedOptimizer(Optimizer):
        def trigger_refresh(self) -> None:
            super().trigger_refresh()
            if self.o_stat:
                observed = float(
                    np.median([seconds / max(rows, 1) for rows, seconds, _ in self.o_stat])
                )
                self.o_a = min(self.o_a, observed)
            self.wait = min(self.wait, max_wait_s)  # type: ignore[assignment]  # typed int

    return CappedOptimizer(max_latency_s)
