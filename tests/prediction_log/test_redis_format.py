"""The Redis log's format (``prediction_log.redis_format``): where a block goes and the bytes
it is, read back exactly; no Redis needed."""

from __future__ import annotations

import numpy as np

from prediction_log import ModelCall, PredictionBlock, ShadowScores, new_prediction_ids
from prediction_log.records import ID_SLOT_S, ID_SLOTS
from prediction_log.redis_format import (
    block_key_of,
    block_location,
    label_field,
    label_row,
    pack_block,
    pack_label,
    slot_age,
    slot_of,
    unpack_block,
    unpack_label,
    version_crc,
)


def test_a_block_key_names_its_slot_hash_and_field_and_is_found_back() -> None:
    now = 1_750_000_003.0
    key, _ = new_prediction_ids(3, now=now)
    location = block_location(key)
    assert location is not None
    suffix, field = location
    assert len(field) == 10 and len(suffix) == 9 and suffix[1] == "-"
    assert (
        slot_of(suffix) == int(now // ID_SLOT_S) % ID_SLOTS and slot_age(slot_of(suffix), now) == 0
    )
    assert block_key_of(suffix, field) == key
    assert block_location("not-a-key") is None and block_location(key.replace("-", "_")) is None
    assert label_row(label_field(field, 2)) == (field, 2)
    # Ids of one slot spread over its 16 hashes; ids ten slots on are in other hashes.
    same = {block_location(new_prediction_ids(1, now=now + 1)[0]) for _ in range(200)}
    later = {block_location(new_prediction_ids(1, now=now + 100)[0]) for _ in range(200)}
    assert {loc[0] for loc in same if loc} == {f"{d:x}-{suffix[2:]}" for d in range(16)}
    assert {loc[0][2:] for loc in later if loc} == {f"{slot_of(suffix) + 10:07x}"}


def test_slot_ages_cross_the_wrap_and_a_writer_ahead_is_in_the_future() -> None:
    now = ID_SLOTS * ID_SLOT_S + 5.0  # the slot counter just wrapped to 0
    assert slot_age(ID_SLOTS - 3, now) == 3
    assert slot_age(2, now) == -2


def test_a_packed_block_reads_back_exactly_and_a_single_row_is_about_a_hundred_bytes() -> None:
    key, _ = new_prediction_ids(2)
    features = np.array([[1.5, 2.0, 3.25, 0.1, 7.0], [9.0, 8.0, 7.0, 6.0, 1 / 3]])
    outputs = np.array([[20.1, 15.0, 30.0], [21.0, 16.0, 31.0]])
    block = PredictionBlock(
        key,
        1_750_000_000.123456,
        "delivery_eta:champion",
        features,
        outputs,
        b"r_1\nr_2\nd_1\nd_2",
        np.array([[0, 1], [2, 0]], dtype=np.int8),
        ModelCall(0.8123, 64),
        ShadowScores("delivery_eta:challenger", outputs + 1, ModelCall(3.5, 400)),
    )
    packed = unpack_block(pack_block(block))
    assert packed is not None
    assert (packed.created_at, packed.rows) == (block.created_at, 2)
    assert packed.version_crc == version_crc("delivery_eta:champion")
    assert np.frombuffer(packed.features, "<f8").reshape(2, 5).tolist() == features.tolist()
    assert np.frombuffer(packed.outputs, "<f8").reshape(2, 3).tolist() == outputs.tolist()
    assert (
        packed.feature_sources == bytes([0, 1, 2, 0]) and packed.entity_ids == b"r_1\nr_2\nd_1\nd_2"
    )
    assert (packed.call, packed.shadow_call) == (ModelCall(0.8123, 64), ModelCall(3.5, 400))
    assert packed.shadow_crc == version_crc("delivery_eta:challenger")
    assert packed.shadow_outputs is not None
    assert np.frombuffer(packed.shadow_outputs, "<f8").tolist() == (outputs + 1).ravel().tolist()
    single = PredictionBlock(
        key,
        1.0,
        "v",
        features[:1],
        outputs[:1],
        b"r_0042\nd_0117",
        np.zeros((1, 2), dtype=np.int8),
        ModelCall(0.5, 1),
    )
    assert len(pack_block(single)) == 29 + 64 + 2 + 13  # header, numbers, sources, ids
    bare = unpack_block(pack_block(PredictionBlock(key, 1.0, "v", features[:1], outputs[:1])))
    assert bare is not None and (bare.entity_ids, bare.feature_sources, bare.call) == (
        None,
        None,
        None,
    )
    assert unpack_block(b"\x02" + bytes(40)) is None and unpack_block(b"short") is None
    assert unpack_label(pack_label(22.5, 1.75e9)) == (22.5, 1.75e9) and unpack_label(b"x") is None
