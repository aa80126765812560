"""Prediction logs with a challenger's answers, written through the service's own log classes.

The live comparison (``make compare``) and the promotion gate's live evidence read what the
service's ``SQLitePredictionLog`` / ``RedisPredictionLog`` wrote; the tests make their data
the same way: blocks appended and flushed, labels joined with ``attach_feedback``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from prediction_log import (
    ModelCall,
    PredictionBlock,
    PredictionLog,
    ShadowScores,
    new_prediction_ids,
)


def intervals(points: np.ndarray, half_width: float) -> np.ndarray:
    """(n, 3) outputs: each point with the interval point +- ``half_width``."""
    points = np.asarray(points, dtype=np.float64)
    return np.column_stack([points, points - half_width, points + half_width])


@dataclass
class LoggedRequest:
    """One request as the service would log it, and the labels its client sends later."""

    champion: str
    champion_outputs: np.ndarray
    labels: np.ndarray
    """The actual minutes per row; NaN: no feedback for that row."""
    challenger: str | None = None
    challenger_outputs: np.ndarray | None = None
    created_at: float = field(default_factory=time.time)
    call: ModelCall | None = field(default_factory=lambda: ModelCall(1.0, 10))
    shadow_call: ModelCall = field(default_factory=lambda: ModelCall(4.0, 40))

    def block(self) -> tuple[PredictionBlock, list[str]]:
        """The block the service appends, and its prediction ids."""
        rows = len(self.champion_outputs)
        key, ids = new_prediction_ids(rows)
        shadow = None
        if self.challenger is not None and self.challenger_outputs is not None:
            shadow = ShadowScores(self.challenger, self.challenger_outputs, self.shadow_call)
        block = PredictionBlock(
            key,
            self.created_at,
            self.champion,
            np.zeros((rows, 5)),
            self.champion_outputs,
            call=self.call,
            shadow=shadow,
        )
        return block, ids


async def write_requests(log: PredictionLog, requests: list[LoggedRequest]) -> None:
    """Log ``requests``, then send their labels through feedback (as clients do), and close."""
    try:
        labelled: list[tuple[str, float]] = []
        for request in requests:
            block, ids = request.block()
            log.append(block)
            labelled += [
                (prediction_id, float(actual))
                for prediction_id, actual in zip(ids, request.labels, strict=True)
                if not np.isnan(actual)
            ]
        await log.flush()
        for prediction_id, actual in labelled:
            result = await log.attach_feedback(prediction_id, actual)
            assert result.status == "joined", result
    finally:
        await log.close()
