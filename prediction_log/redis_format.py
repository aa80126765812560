"""The Redis log's format: which hash a block goes to, its field, and the bytes it holds.

A hash per request cost ~424 B of Redis memory for a single prediction (a key, its TTL entry, a
hash of 13 named fields with numbers as text): 6x SQLite. So the blocks of one 10-s slot
(``records.ID_SLOT_S``, the last 7 digits of a block key) are grouped into :data:`SHARDS`
hashes, ``<prefix><shard>-<slot>`` -- the shard is the key's last random digit -- each expiring
as a whole; a block is one field of it, named by the rest of its key (10 bytes), its value the
block packed in binary (:func:`pack_block`, 108 B for one row of the default contract). A
model version is stored once per hash (field ``v`` + its CRC-32), the blocks name it by CRC.

A label is the field ``<block field><row, uint32>`` (14 bytes) holding the actual and the
time it arrived, two float64: one field, so one HSETNX joins it atomically across replicas.
The three kinds of fields are told apart by their length (10, 14 and 5 bytes).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from prediction_log.records import ID_SLOT_S, ID_SLOTS, ModelCall, PredictionBlock

SHARDS = 16
"""Hashes per time slot: a slot's blocks spread over them (the block key's digit 22, random), so
that no hash grows past ~1/16 of a slot's traffic (a big hash expires in one go)."""
KEY_PATTERN = "?-" + "?" * 7
"""What follows the prefix in a block hash's name (a SCAN MATCH glob): ``<shard>-<slot>``.
Keys of the hash-per-request format (31 characters after the prefix) do not match."""
BLOCK_FIELD_BYTES = 10
LABEL_FIELD_BYTES = BLOCK_FIELD_BYTES + 4
_VERSION = b"v"
VERSION_FIELD_BYTES = len(_VERSION) + 4

FORMAT = 1
"""The first byte of every packed block: its format."""
_HEADER = struct.Struct("<BBdIIHBfI")
"""format, flags, created_at, version CRC, rows, features per row, sources per row, champion's
call ms (float32) and rows."""
_SHADOW = struct.Struct("<IfI")
"""challenger's version CRC, call ms (float32) and rows."""
_LABEL = struct.Struct("<dd")
"""actual, labelled_at."""
_HAS_IDS, _HAS_SOURCES, _HAS_CALL, _HAS_SHADOW = 1, 2, 4, 8


def block_location(block_key: str) -> tuple[str, bytes] | None:
    """(hash name after the prefix, field) of a block key; None if it is not one of
    ``records.new_prediction_ids``'s."""
    if len(block_key) != 31 or {block_key[i] for i in (8, 13, 18, 23)} != {"-"}:
        return None
    digits = block_key[:22].replace("-", "")
    try:
        int(block_key[24:], 16)
        return block_key[22:], bytes.fromhex("0" + digits)
    except ValueError:
        return None


def block_key_of(suffix: str, field: bytes) -> str:
    """The block key whose :func:`block_location` is (``suffix``, ``field``)."""
    d = field.hex()[1:]
    return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:19]}{suffix}"


def slot_of(suffix: str) -> int | None:
    """The time slot of a hash name after the prefix; None if it is not one."""
    try:
        return int(suffix[2:], 16) if len(suffix) == 9 and suffix[1] == "-" else None
    except ValueError:
        return None


def slot_age(slot: int, now: float) -> int:
    """Whole slots from ``slot`` to the slot of ``now`` (negative: a slot in the future, a
    writer's clock ahead), across the wrap of :data:`records.ID_SLOTS`."""
    age = (int(now // ID_SLOT_S) - slot) % ID_SLOTS
    return age - ID_SLOTS if age > ID_SLOTS // 2 else age


def version_field(version: str) -> bytes:
    """The field holding ``version`` in each hash with a block of it."""
    return crc_field(version_crc(version))


def crc_field(crc: int) -> bytes:
    """The field holding the model version whose CRC is ``crc``."""
    return _VERSION + struct.pack("<I", crc)


def version_crc(version: str) -> int:
    """How a block names its model version."""
    return zlib.crc32(version.encode())


def label_field(field: bytes, row: int) -> bytes:
    """The field of the label of row ``row`` of the block at ``field``."""
    return field + struct.pack("<I", row)


def pack_label(actual: float, labelled_at: float) -> bytes:
    """A label's value."""
    return _LABEL.pack(actual, labelled_at)


def unpack_label(value: bytes) -> tuple[float, float] | None:
    """(actual, labelled_at) of a label's value; None if it is not one."""
    return _LABEL.unpack(value) if len(value) == _LABEL.size else None


def label_row(name: bytes) -> tuple[bytes, int]:
    """(block field, row) of a label field."""
    return name[:BLOCK_FIELD_BYTES], struct.unpack("<I", name[BLOCK_FIELD_BYTES:])[0]


def pack_block(block: PredictionBlock) -> bytes:
    """A block as one field's value: the header, then features and outputs (float64, row-major),
    the feature sources (int8), the challenger's part, and the entity ids (the rest)."""
    features, outputs = block.encoded()
    rows = len(block)
    flags = 0
    parts = [b"", features, outputs]
    sources = 0
    if block.feature_sources is not None:
        flags |= _HAS_SOURCES
        packed_sources = np.ascontiguousarray(block.feature_sources, dtype=np.int8).tobytes()
        sources = len(packed_sources) // rows if rows else 0
        parts.append(packed_sources)
    call = block.call or ModelCall(0.0, 0)
    if block.call is not None:
        flags |= _HAS_CALL
    if block.shadow is not None:
        flags |= _HAS_SHADOW
        shadow = block.shadow
        parts.append(
            _SHADOW.pack(version_crc(shadow.model_version), shadow.call.ms, shadow.call.rows)
        )
        parts.append(shadow.encoded())
    if block.entity_ids is not None:
        flags |= _HAS_IDS
        parts.append(block.entity_ids)
    width = block.features.shape[1] if block.features.ndim == 2 else 0
    parts[0] = _HEADER.pack(
        FORMAT,
        flags,
        block.created_at,
        version_crc(block.model_version),
        rows,
        width,
        sources,
        call.ms,
        call.rows,
    )
    return b"".join(parts)


@dataclass(frozen=True)
class PackedBlock:
    """A block as :func:`unpack_block` reads it (model versions still as CRCs)."""

    created_at: float
    version_crc: int
    rows: int
    features: bytes
    outputs: bytes
    feature_sources: bytes | None
    call: ModelCall | None
    entity_ids: bytes | None
    shadow_crc: int | None = None
    shadow_outputs: bytes | None = None
    shadow_call: ModelCall | None = None


def _ms(value: float) -> float:
    # Stored as float32; the service rounds a call's ms to 4 decimals (serving.pipeline).
    return round(value, 4)


def unpack_block(value: bytes) -> PackedBlock | None:
    """A packed block; None if ``value`` is not one (another format, truncated)."""
    if len(value) < _HEADER.size or value[0] != FORMAT:
        return None
    _, flags, created_at, crc, rows, width, sources, ms, call_rows = _HEADER.unpack_from(value)
    at = _HEADER.size
    features = value[at : at + rows * width * 8]
    at += rows * width * 8
    outputs = value[at : at + rows * 24]
    at += rows * 24
    feature_sources = None
    if flags & _HAS_SOURCES:
        feature_sources = value[at : at + rows * sources]
        at += rows * sources
    shadow_crc = shadow_outputs = shadow_call = None
    if flags & _HAS_SHADOW:
        shadow_crc, s_ms, s_rows = _SHADOW.unpack_from(value, at)
        at += _SHADOW.size
        shadow_outputs = value[at : at + rows * 24]
        shadow_call = ModelCall(_ms(s_ms), s_rows)
        at += rows * 24
    if at > len(value):
        return None
    return PackedBlock(
        created_at,
        crc,
        rows,
        features,
        outputs,
        feature_sources,
        ModelCall(_ms(ms), call_rows) if flags & _HAS_CALL else None,
        value[at:] if flags & _HAS_IDS else None,
        shadow_crc,
        shadow_outputs,
        shadow_call,
    )


def versions_of(fields: dict[bytes, bytes]) -> dict[int, str]:
    """The model versions a hash's fields name, by CRC."""
    return {
        struct.unpack("<I", name[1:])[0]: value.decode(errors="replace")
        for name, value in fields.items()
        if len(name) == VERSION_FIELD_BYTES and name[:1] == _VERSION
    }


def version_name(versions: dict[int, str], crc: int) -> str:
    """The version a CRC names (a placeholder if its field is missing: it never is, the
    writer sets both in one HSET)."""
    return versions.get(crc, f"unknown-version-{crc:08x}")
