"""Binary tensors read and written: every BYTES buffer decodes exactly as the element-by-element
reading of the extension does -- through whichever fast path applies -- and every malformed one
is refused naming the input."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from serving.inference_protocol import InferenceRequestError
from serving.inference_protocol.datatypes import (
    decode_binary,
    decode_bytes,
    encode_binary,
    encode_bytes,
)


def _prefixed(values: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def _reference(buffer: bytes, count: int) -> list[str] | None:
    """The extension's reading, one element after the other (None: not ``count`` elements)."""
    values, at = [], 0
    while at + 4 <= len(buffer) and len(values) < count:
        (length,) = struct.unpack_from("<I", buffer, at)
        values.append(buffer[at + 4 : at + 4 + length])
        at += 4 + length
    if len(values) != count or at != len(buffer):
        return None
    try:
        return [v.decode() for v in values]
    except UnicodeDecodeError:
        return None


def _decoded_or_none(buffer: bytes, count: int) -> list[str] | None:
    try:
        return decode_bytes(memoryview(buffer), count, "ids")
    except InferenceRequestError as refused:
        assert refused.input_name == "ids"
        return None


ALPHABETS = {
    "ids": b"abcdefghijklmnopqrstuvwxyz_0123456789",
    "with NUL": b"ab\x00",
    "zero bytes only": b"\x00",
    "non-ASCII UTF-8": "aé€".encode(),
    "any byte": bytes(range(256)),
}


@pytest.mark.parametrize("alphabet", ALPHABETS.values(), ids=ALPHABETS)
@pytest.mark.parametrize("longest", [1, 8, 127, 128, 300])
def test_every_buffer_decodes_as_the_element_by_element_reading(
    alphabet: bytes, longest: int
) -> None:
    rng = random.Random(longest)
    for _ in range(40):
        count = rng.randint(1, 50)
        shortest = rng.choice([0, 1])
        values = [
            bytes(rng.choices(alphabet, k=rng.randint(shortest, longest))) for _ in range(count)
        ]
        buffer = _prefixed(values)
        assert _decoded_or_none(buffer, count) == _reference(buffer, count)
        # Damaged the same way as a hostile client would: a byte changed, cut or added.
        damaged = bytearray(buffer)
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        for variant in (bytes(damaged), buffer[:-1], buffer + b"\x00"):
            assert _decoded_or_none(variant, count) == _reference(variant, count)


def test_ids_of_different_lengths_decode_and_encode_back() -> None:
    ids = [f"r_{i}" for i in range(1, 20_000, 7)]
    encoded = encode_bytes(ids)
    assert encoded == _prefixed([i.encode() for i in ids])
    assert decode_binary("BYTES", memoryview(encoded), len(ids), "ids") == ids


def test_a_table_of_equal_length_elements_encodes_as_its_strings_would() -> None:
    ids = [f"{i:036x}" for i in range(1000)]
    table = np.frombuffer("".join(ids).encode(), dtype=np.uint8).reshape(1000, 36)
    assert (
        encode_binary("BYTES", table) == encode_bytes(ids) == _prefixed([i.encode() for i in ids])
    )
    with pytest.raises(TypeError, match="uint8"):
        encode_bytes(table.astype(np.int64))


def test_a_buffer_whose_zero_bytes_fake_element_starts_is_still_read_right() -> None:
    # Three NULs inside an element, and one element fewer: the zero-byte count matches a
    # buffer of short elements, but the lengths do not chain up.
    values = [b"ab", b"\x00\x00\x00x", b"cd"]
    buffer = _prefixed(values)
    assert decode_bytes(memoryview(buffer), 3, "ids") == ["ab", "\x00\x00\x00x", "cd"]
    assert _decoded_or_none(buffer, 4) is None


def test_fixed_size_tensors_round_trip_and_wrong_sizes_are_refused() -> None:
    values = np.array([1.5, -2.0, 3.25])
    assert decode_binary("FP64", memoryview(encode_binary("FP64", values)), 3, "x").tolist() == [
        1.5,
        -2.0,
        3.25,
    ]
    with pytest.raises(InferenceRequestError, match="'x': binary_data_size 24 is not 2"):
        decode_binary("FP64", memoryview(encode_binary("FP64", values)), 2, "x")
    with pytest.raises(InferenceRequestError, match="not 0 or 1"):
        decode_binary("BOOL", memoryview(b"\x00\x02"), 2, "x")
