"""The per-worker write queue shared by both log backends: bounded, sampled, retried, counted.

Requests append blocks; a background task writes everything queued every ``flush_interval_s``
(off the request path), in bulk. A failed write keeps its blocks queued and retries them; while
the queue is full new blocks are dropped. Every row handed to the log ends in exactly one
outcome, reported to a :class:`LogObserver` (the metrics): written, sampled out, dropped because
the queue was full, or dropped because the store still failed at shutdown.

A store failure is never silent: the state says ``failing`` with the error (``/health``), the
episode is logged when it starts and when it ends (not once per retry), and feedback for a
prediction this worker made but has not recorded answers "retry later" (still queued) or "never
recorded" (dropped; the keys of the last :data:`DROPPED_KEYS_KEPT` dropped blocks are kept) --
never "unknown", which would say the prediction was never made.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from typing import Any, Literal, Protocol

from prediction_log.records import (
    FeedbackResult,
    PredictionBlock,
    PredictionLogUnavailable,
    PredictionNotRecorded,
    split_prediction_id,
)

LOGGER_NAME = "serving.pipeline.prediction_log"
"""The log's logger: still under ``serving``, whose loggers the service configures (JSON lines,
its level; ``serving.telemetry.logs``), and under the name its lines always had."""
logger = logging.getLogger(LOGGER_NAME)

RecordOutcome = Literal["written", "sampled_out", "dropped_queue_full", "dropped_write_failed"]
RECORD_OUTCOMES: tuple[RecordOutcome, ...] = (
    "written",
    "sampled_out",
    "dropped_queue_full",
    "dropped_write_failed",
)
EvictionReason = Literal["retention", "size_cap"]
EVICTION_REASONS: tuple[EvictionReason, ...] = ("retention", "size_cap")
LogState = Literal["ready", "degraded", "failing"]
"""``failing``: the last write or lookup failed; ``degraded``: it succeeded, but the store says it
cannot take much more (a full filesystem: :meth:`BufferedLog._store_trouble`)."""

# Failures and overflow are logged at most this often: an outage must not flood the log.
LOG_EVERY_S = 10.0
# While the store fails, retry at this pace instead of every flush interval.
RETRY_INTERVAL_S = 1.0
# Most blocks one write takes: after an outage the backlog goes out in bounded transactions,
# so a feedback lookup waiting for the store's one connection is not stuck behind all of it.
WRITE_CHUNK_BLOCKS = 2000
# Block keys of dropped blocks remembered, so that their feedback says "never recorded" rather
# than "unknown" (~100 B each: ~1 MiB at most per worker). Older ones are forgotten (then 404).
DROPPED_KEYS_KEPT = 10_000


class LogObserver(Protocol):
    """What the log reports (``serving.telemetry.prediction_log_metrics.PredictionLogMetrics`` in the service)."""

    def records(self, outcome: RecordOutcome, rows: int) -> None:
        """``rows`` predictions reached ``outcome``."""

    def queue_rows(self, rows: int) -> None:
        """Rows now waiting in this worker's queue."""

    def store_up(self, up: bool) -> None:
        """Whether the store's last write or lookup succeeded."""

    def evicted(self, reason: EvictionReason, rows: int) -> None:
        """``rows`` stored predictions were deleted (expired, or to stay under the size cap)."""

    def size_bytes(self, size: int) -> None:
        """Bytes the store holds (SQLite: pages in use)."""


class Unobserved:
    """A :class:`LogObserver` that reports nowhere (tests, tools)."""

    def records(self, outcome: RecordOutcome, rows: int) -> None:
        """Ignored."""

    def queue_rows(self, rows: int) -> None:
        """Ignored."""

    def store_up(self, up: bool) -> None:
        """Ignored."""

    def evicted(self, reason: EvictionReason, rows: int) -> None:
        """Ignored."""

    def size_bytes(self, size: int) -> None:
        """Ignored."""


def sampled_in(block: PredictionBlock, rate: float) -> bool:
    """Whether a block is logged at sample ``rate``: single predictions always are; a batch is
    kept if its (random) key falls under the rate, so the decision is a property of the ids."""
    if rate >= 1.0 or len(block) <= 1:
        return True
    return int(block.block_key[:8], 16) < rate * 16**8


class RateLimitedWarning:
    """One WARNING line per ``every_s`` at most, with the count of events since the last line."""

    def __init__(self, every_s: float = LOG_EVERY_S) -> None:
        self._every_s = every_s
        self._last = -float("inf")
        self._suppressed = 0

    def __call__(self, message: str, *args: object) -> None:
        """Count one event; log it (and how many were not logged since) if the time has come."""
        self._suppressed += 1
        now = time.monotonic()
        if now - self._last < self._every_s:
            return
        self._last = now
        count, self._suppressed = self._suppressed, 0
        logger.warning(message + " (%d such events since the last line)", *args, count)


class BufferedLog:
    """The bounded write queue; backends implement ``_write``, ``_attach`` and ``_close``.

    ``store_errors`` are the exceptions that mean "the store failed" (retry, report, 503);
    anything else escaping ``_write`` is a bug: logged with its traceback, and those blocks
    dropped (counted), so that one bad block cannot wedge the queue.
    """

    backend: str = "none"
    store_errors: tuple[type[BaseException], ...] = (OSError,)
    shared_store: bool = True
    """Whether other workers (or replicas) write to the same store: then an id this worker does
    not find may be one another worker still holds in its queue, and while the store is in
    trouble a miss is answered "retry later" rather than "unknown"."""

    def __init__(
        self,
        *,
        max_queue_rows: int,
        sample_rate: float = 1.0,
        flush_interval_s: float = 0.1,
        observer: LogObserver | None = None,
    ) -> None:
        self._pending: deque[PredictionBlock] = deque()
        self._pending_keys: set[str] = set()
        self._pending_rows = 0
        self._dropped_keys: OrderedDict[str, None] = OrderedDict()
        self._chunk_blocks = WRITE_CHUNK_BLOCKS
        self._failing_since = 0.0
        self._episode_dropped_rows = 0
        self._max_queue_rows = max_queue_rows
        self._sample_rate = sample_rate
        self._interval_s = flush_interval_s
        self._observer = observer or Unobserved()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._state: LogState = "ready"
        self._error: str | None = None
        self._warn_overflow = RateLimitedWarning()
        self._observer.store_up(True)
        self._observer.queue_rows(0)

    @property
    def state(self) -> LogState:
        """``failing`` from a failed write or lookup until the next successful write
        (``status()`` also reports ``degraded``)."""
        return self._state

    @property
    def queue_rows(self) -> int:
        """Rows queued in this worker, not yet written."""
        return self._pending_rows

    def append(self, block: PredictionBlock) -> None:
        """Queue one request's predictions, unless sampled out or the queue is full (counted)."""
        rows = len(block)
        if not sampled_in(block, self._sample_rate):
            self._observer.records("sampled_out", rows)
            return
        if self._pending_rows + rows > self._max_queue_rows:
            # The newest block is shed, not the oldest: what was accepted stays accepted, and
            # the drop is decided (and remembered) while its request is still being answered.
            self._dropped("dropped_queue_full", [block])
            self._warn_overflow(
                "prediction log queue full (%d rows, store %s): dropped a request's %d predictions",
                self._pending_rows,
                self._state,
                rows,
            )
            return
        self._pending.append(block)
        self._pending_keys.add(block.block_key)
        self._pending_rows += rows
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s if self._state == "ready" else RETRY_INTERVAL_S)
            await self.flush()

    async def flush(self, limit_blocks: int | None = None) -> None:
        """Write what is queued; on a store failure it stays queued (and the state says so).

        ``limit_blocks``: write at most the blocks queued when the call started (what a
        feedback waits for), not those appended meanwhile -- under sustained traffic the queue
        never empties, and the caller would wait as long as predictions keep coming.
        """
        async with self._flush_lock:
            remaining = len(self._pending) if limit_blocks is None else limit_blocks
            wrote, failed = False, False
            while self._pending and remaining > 0:
                # Only append() adds, at the right end, and only flush() removes (under the
                # lock): the first `len(chunk)` blocks are still these after the write.
                chunk = [
                    self._pending[i]
                    for i in range(min(len(self._pending), self._chunk_blocks, remaining))
                ]
                remaining -= len(chunk)
                try:
                    await self._write(chunk)
                except self.store_errors as exc:
                    # Smaller writes next time: a disk with a little room again takes a part
                    # of the backlog even where the whole of it would not fit.
                    self._chunk_blocks = max(1, len(chunk) // 2)
                    self._failed(exc)
                    failed = True
                    break
                except Exception:
                    # A bug, not the store: retrying the same blocks would wedge the log for
                    # good (every later prediction dropped). Drop them, counted, and go on.
                    logger.exception("prediction log (%s) write failed unexpectedly", self.backend)
                    self._take(len(chunk))
                    self._dropped("dropped_write_failed", chunk)
                    continue
                self._observer.records("written", self._take(len(chunk)))
                self._chunk_blocks = min(WRITE_CHUNK_BLOCKS, self._chunk_blocks * 2)
                wrote = True
            if wrote and not failed:
                # Only once the backlog went through: a full disk may take a part of it (room
                # left in the WAL) and refuse the rest, and the state must not flap meanwhile.
                self._recovered()
            self._observer.queue_rows(self._pending_rows)

    def _take(self, blocks: int) -> int:
        """Remove the first ``blocks`` blocks from the queue; the rows they held."""
        rows = 0
        for _ in range(blocks):
            block = self._pending.popleft()
            self._pending_keys.discard(block.block_key)
            rows += len(block)
        self._pending_rows -= rows
        return rows

    def _dropped(self, outcome: RecordOutcome, blocks: list[PredictionBlock]) -> None:
        """Count ``blocks`` as lost and remember their keys (the oldest forgotten first)."""
        rows = 0
        for block in blocks:
            rows += len(block)
            self._dropped_keys[block.block_key] = None
            if len(self._dropped_keys) > DROPPED_KEYS_KEPT:
                self._dropped_keys.popitem(last=False)
        self._observer.records(outcome, rows)
        if self._state == "failing":
            self._episode_dropped_rows += rows

    def _failed(self, exc: BaseException) -> None:
        self._error = f"{type(exc).__name__}: {exc}"
        if self._state == "failing":
            return  # logged when the episode started; its end says what it cost
        self._state = "failing"
        self._failing_since = time.monotonic()
        self._episode_dropped_rows = 0
        self._observer.store_up(False)
        logger.warning(
            "prediction log (%s) failing, %d rows queued for retry (every %.0f s, up to %d "
            "rows kept): %s",
            self.backend,
            self._pending_rows,
            RETRY_INTERVAL_S,
            self._max_queue_rows,
            self._error,
        )

    def _recovered(self) -> None:
        if self._state != "ready":
            self._state, self._error = "ready", None
            self._observer.store_up(True)
            logger.warning(
                "prediction log (%s) recovered after %.1f s: the queued rows are written, "
                "%d rows were dropped meanwhile (queue full)",
                self.backend,
                time.monotonic() - self._failing_since,
                self._episode_dropped_rows,
            )

    async def attach_feedback(self, prediction_id: str, actual: float) -> FeedbackResult:
        """Join ``actual`` to its prediction, at most once.

        Raises :class:`PredictionLogUnavailable` while the prediction may still be recorded (it
        waits in this worker's queue for a failing store; or the store fails; or, with a shared
        store in trouble, it may wait in another worker's queue), and
        :class:`PredictionNotRecorded` for one this worker made but dropped.
        """
        located = split_prediction_id(prediction_id)
        key = located[0] if located is not None else ""
        if key in self._dropped_keys:
            raise PredictionNotRecorded(
                f"prediction {prediction_id} was made but never recorded: the prediction log "
                f"({self.backend}) dropped it while its store failed or its queue was full"
            )
        if key in self._pending_keys:
            # This worker's own prediction, not written yet: write what was queued so far (not
            # what is appended meanwhile), then look it up -- unless the store is failing: the
            # background task retries, and a write attempt per label would each wait for the
            # store's timeout.
            if self._state != "failing":
                await self.flush(limit_blocks=len(self._pending))
            if key in self._pending_keys:
                raise PredictionLogUnavailable(
                    f"prediction log ({self.backend}) cannot record it yet ({self._error})"
                )
        try:
            result = await self._attach(prediction_id, actual)
        except self.store_errors as exc:
            self._failed(exc)
            raise PredictionLogUnavailable(
                f"prediction log ({self.backend}) is unavailable ({self._error})"
            ) from exc
        if not self._pending:
            # The store answered (with nothing queued, no write would tell). Not while rows are
            # queued: a full disk still answers lookups, and only a write says it takes rows.
            self._recovered()
        if result.status == "unknown" and self.shared_store:
            trouble = self._error if self._state == "failing" else self._store_trouble()
            if trouble is not None:
                raise PredictionLogUnavailable(
                    f"prediction log ({self.backend}) cannot tell yet: {trouble}; the prediction "
                    "may be waiting in another worker's queue"
                )
        return result

    def _store_trouble(self) -> str | None:
        """Why the store may not take writes though the last one succeeded (a full
        filesystem), or None. Called by ``status()`` and for ids not found: cheap."""
        return None

    def status(self) -> dict[str, Any]:
        """The log's part of GET /health."""
        state, error = self._state, self._error
        if state == "ready" and (trouble := self._store_trouble()) is not None:
            state, error = "degraded", trouble
        return {
            "backend": self.backend,
            "state": state,
            "queue_rows": self._pending_rows,
            "queue_max_rows": self._max_queue_rows,
            "sample_rate": self._sample_rate,
            "error": error,
            "dropped_keys": len(self._dropped_keys),
            **self._details(),
        }

    def _details(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        """Stop the background task, write what is queued; what the store refuses is counted
        as lost (``dropped_write_failed``)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        try:
            await self.flush()
            if self._pending_rows:
                self._observer.records("dropped_write_failed", self._pending_rows)
                logger.warning(
                    "prediction log (%s) closed with %d rows unwritten: %s",
                    self.backend,
                    self._pending_rows,
                    self._error,
                )
                self._pending.clear()
                self._pending_keys.clear()
                self._pending_rows = 0
        finally:
            await self._close()

    async def _write(self, blocks: list[PredictionBlock]) -> None:
        raise NotImplementedError

    async def _attach(self, prediction_id: str, actual: float) -> FeedbackResult:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError
