"""Record every prediction and join delayed labels (actual delivery times) to it.

``SQLitePredictionLog`` is the default: one file, bounded by retention and by size, survives
restarts; every worker of one replica shares it. With several replicas the feedback may reach
another pod than the one that predicted, so clusters use ``RedisPredictionLog`` (shared,
TTL-bounded). Writes go through a bounded per-worker queue flushed by a background task every
100 ms, off the request path: a label sent to *another* replica within that window is still
unknown (404, retry later). docs/prediction-log.md has the costs and the settings.

The package, lowest first: ``settings`` (``DELIVERY_ETA_PREDICTION_LOG_*``), ``records`` (what
a block and a label are), ``buffered`` (the write queue both backends share), the backends --
``sqlite_schema`` (the SQLite format) with ``sqlite_log`` (writing) and ``sqlite_reader``,
``redis_log`` (the Redis format and writing) with ``redis_reader`` -- ``reading`` (the read
interface the offline tools use, ``operations``) and ``location`` (which log an instance or a
tool uses; :meth:`~prediction_log.location.LogLocation.reader` opens it for reading). The
readers are not imported here: the service only writes.
"""

from prediction_log.buffered import (
    EVICTION_REASONS,
    RECORD_OUTCOMES,
    EvictionReason,
    LogObserver,
    RecordOutcome,
)
from prediction_log.records import (
    MAX_ROWS_PER_BLOCK,
    FeedbackResult,
    FeedbackStatus,
    ModelCall,
    PredictionBlock,
    PredictionIds,
    PredictionLog,
    PredictionLogUnavailable,
    PredictionNotRecorded,
    PredictionRecord,
    ShadowPrediction,
    ShadowScores,
    decode_entity_ids,
    encode_entity_ids,
    new_block_key,
    new_prediction_ids,
    split_prediction_id,
)
from prediction_log.redis_log import RedisPredictionLog
from prediction_log.sqlite_log import SQLitePredictionLog, unusable_reason

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
    "PredictionIds",
    "PredictionLog",
    "PredictionLogUnavailable",
    "PredictionNotRecorded",
    "PredictionRecord",
    "RecordOutcome",
    "RedisPredictionLog",
    "SQLitePredictionLog",
    "ShadowPrediction",
    "ShadowScores",
    "decode_entity_ids",
    "encode_entity_ids",
    "new_block_key",
    "new_prediction_ids",
    "split_prediction_id",
    "unusable_reason",
]
