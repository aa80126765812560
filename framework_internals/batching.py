"""Touch-point 1: BentoML's adaptive-batching dispatcher and optimizer (``bentoml._internal.marshal``).

A batchable API cannot be called in-process: BentoML routes a service's call to its own batchable
method over HTTP again, so the pipeline drives BentoML's ``CorkDispatcher`` itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


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
    (:func:`_whole_large_requests`); while a call runs, the controller waits for it rather
    than polling every millisecond (:func:`_waiting_controller`).
    """
    from bentoml._internal.marshal.dispatcher import CorkDispatcher, NonBlockSema

    dispatcher: Any = _waiting_controller(_whole_large_requests(CorkDispatcher), NonBlockSema)(
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


def _waiting_controller(dispatcher_class: Any, sema_class: Any) -> Any:
    """``CorkDispatcher`` whose controller waits for the running model call to end instead of
    polling every ``TICKET_INTERVAL`` (1 ms) meanwhile.

    BentoML's controller (``CorkDispatcher.controller``), once a request is queued, wakes every
    millisecond until the model is free: under steady load -- requests always queued behind a
    running call -- that is 40 event-loop wake-ups during one 40 ms call of 10,000 rows, ~1 ms
    of a worker's event loop per call spent asking "done yet?". This controller makes the same
    decisions in the same order (the warm-up that trains the optimizer is BentoML's own), but
    while a call runs it sleeps until something could change one: the call ends (the
    semaphore's ``release`` sets ``changed``), a request arrives (:meth:`inbound_call` sets
    it), or the moment the head of the queue would cross the latency budget (then it is shed
    as BentoML sheds it, no later than BentoML's next 1 ms poll would have).
    """

    class Signalling(sema_class):
        """BentoML's ``NonBlockSema`` (one model call at a time), setting ``changed`` when
        the call ends."""

        def __init__(self, count: int, changed: asyncio.Event) -> None:
            super().__init__(count)
            self.changed = changed

        def release(self) -> None:
            super().release()
            self.changed.set()

    class WaitingController(dispatcher_class):
        wakeups = 0
        """Times the main loop has looked at the queue (tests: no polling while a call runs)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.changed = asyncio.Event()
            super().__init__(*args, shared_sema=Signalling(1, self.changed), **kwargs)

        async def inbound_call(self, data: Any) -> Any:
            self.changed.set()  # the queue grows before this yields: the controller sees it
            return await super().inbound_call(data)

        async def controller(self) -> None:
            optimizer = self.optimizer
            try:  # BentoML's warm-up, as CorkDispatcher.controller runs it
                skipped = optimizer.N_SKIPPED_SAMPLE
                await self.train_optimizer(skipped, skipped + 6, 1)
                for required, batch in ((6, 1), (5, 2), (3, 3)):
                    await self.train_optimizer(required, 1, batch)
                    optimizer.trigger_refresh()
            except Exception:
                logger.exception("Error training optimizer")
            while True:
                try:
                    await self._dispatch_next()
                except Exception:
                    logger.exception("Error processing batch requests")

        async def _dispatch_next(self) -> None:
            """One pass of BentoML's controller loop: dispatch, shed, or wait."""
            queue, optimizer = self._queue, self.optimizer
            async with self._wake_event:  # until a request is queued
                await self._wake_event.wait_for(queue.__len__)
            self.wakeups += 1
            n = len(queue)
            dt = self.TICKET_INTERVAL
            now = time.time()
            w0 = now - queue[0].enqueue_time  # the first request's wait so far
            wn = now - queue[-1].enqueue_time  # the last one's
            a, b = optimizer.o_a, optimizer.o_b
            latency_0 = w0 + a * n + b  # the first request's latency were it called now
            if n > 1 and latency_0 >= self.max_latency:
                queue.popleft().future.cancel()
                return
            if self._sema.is_locked():
                if n == 1 and w0 >= self.max_latency:
                    queue.popleft().future.cancel()
                    return
                # BentoML: asyncio.sleep(TICKET_INTERVAL), then look again.
                self.changed.clear()
                until_shed = self.max_latency - (w0 if n == 1 else latency_0)
                try:
                    async with asyncio.timeout(until_shed):
                        await self.changed.wait()
                except TimeoutError:
                    pass
                return
            if n < self.max_batch_size and n * (wn + dt + (a or 0)) <= optimizer.wait * 0.95:
                await asyncio.sleep(dt)  # wait for company (the optimizer's wait is capped)
                return
            self._sema.acquire()
            inputs_info = tuple(self._get_inputs())
            self._loop.create_task(self.outbound_call(inputs_info))

    return WaitingController


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
