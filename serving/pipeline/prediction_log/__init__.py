"""Record every prediction and join delayed labels (actual delivery times) to it.

``SQLitePredictionLog`` is the default: one file, bounded by retention and by size, survives
restarts; every worker of one replica shares it. With several replicas the feedback may reach
another pod than the one that predicted, so clusters use ``RedisPredictionLog`` (shared,
TTL-bounded). Writes go through a bounded per-worker queue flushed by a background task every
100 ms, off the request path: a label sent to *another* replica within that window is still
unknown (404, retry later). docs/prediction-log.md has the costs and the settings.

``records`` is the stored format, ``queue`` the write queue both backends share, ``sqlite_log``
and ``redis_log`` the stores.
"""

from serving.pipeline.prediction_log.queue import (
    EVICTION_REASONS,
    RECORD_OUTCOMES,
    EvictionReason,
    LogObserver,
    RecordOutcome,
)
from serving.pipeline.prediction_log.records import (
    MAX_ROWS_PER_BLOCK,
    FeedbackResult,
    FeedbackStatus,
    ModelCall,
    PredictionBlock,
    PredictionLog,
    PredictionLogUnavailable,
    PredictionRecord,
    ShadowPrediction,
    ShadowScores,
    decode_entity_ids,
    encode_entity_ids,
    new_prediction_ids,
    split_prediction_id,
)
from serving.pipeline.prediction_log.redis_log import RedisPredictionLog
from serving.pipeline.prediction_log.sqlite_log import SQLitePredictionLog, unusable_reason

__all__ = [
    "EVICTION_REASONS",
    "MAX_ROWS_PER_BLOCK",
    "RECORD_OUTCOMES",
    "EvictionReason",
    "FeedbackResult",
    "FeedbackStatus",
    "LogObserver",
    "ModelCall",
    "PredictionBlock",
    "PredictionLog",
    "PredictionLogUnavailable",
    "PredictionRecord",
    "RecordOutcome",
    "RedisPredictionLog",
    "SQLitePredictionLog",
    "ShadowPrediction",
    "ShadowScores",
    "decode_entity_ids",
    "encode_entity_ids",
    "new_prediction_ids",
    "split_prediction_id",
    "unusable_reason",
]
