"""The protocol's tensor datatypes and the binary tensor data extension (as Triton defines it:
github.com/triton-inference-server/server docs/protocol/extension_binary_data.md).

A binary tensor is its elements as raw little-endian values, row-major; a ``BYTES`` tensor is
each element as a 4-byte little-endian length and then that many bytes. ``BOOL`` is one byte
per element, 0 or 1.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from serving.inference_protocol.errors import InferenceRequestError

FIXED_SIZE_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""Every datatype with a fixed element size, and its numpy dtype (little-endian)."""
BYTES = "BYTES"
DATATYPES = frozenset({*FIXED_SIZE_DTYPES, BYTES})
"""The protocol's datatypes this server reads (BF16 has no numpy type: not offered)."""
BYTES_LENGTH = struct.Struct("<I")
_SEPARATOR = "\0" * BYTES_LENGTH.size
"""A length of 0 to 255 with its low byte zeroed too (:func:`_short_ascii`)."""


def decode_binary(
    datatype: str, buffer: memoryview, count: int, name: str
) -> np.ndarray | list[str]:
    """``count`` elements of ``datatype`` from a binary buffer: a numpy array over the buffer
    (no copy) for fixed-size types, a list of ``str`` (UTF-8) for ``BYTES``. A buffer whose size
    does not match raises :class:`InferenceRequestError` naming input ``name``."""
    if datatype == BYTES:
        return decode_bytes(buffer, count, name)
    dtype = FIXED_SIZE_DTYPES[datatype]
    if len(buffer) != count * dtype.itemsize:
        raise InferenceRequestError(
            f"input {name!r}: binary_data_size {len(buffer)} is not {count} elements of "
            f"{datatype} ({count * dtype.itemsize} bytes)",
            name,
        )
    if datatype == "BOOL":
        raw = np.frombuffer(buffer, dtype=np.uint8)
        if raw.size and int(raw.max()) > 1:
            raise InferenceRequestError(f"input {name!r}: a BOOL element is not 0 or 1", name)
        return raw.view(np.bool_)
    return np.frombuffer(buffer, dtype=dtype)


def decode_bytes(buffer: memoryview, count: int, name: str) -> list[str]:
    """``count`` length-prefixed UTF-8 strings filling ``buffer`` exactly.

    Printable ASCII elements (ids and categories usually are) are read with a few numpy passes
    over the whole buffer: as one fixed-width array when every element has the first one's
    length, else by :func:`_short_ascii`. Anything else is read element by element (~0.7 us each).
    """
    size = len(buffer)
    if count == 0:
        if size:
            raise InferenceRequestError(f"input {name!r}: binary data for 0 elements", name)
        return []
    if size < 4:
        raise InferenceRequestError(f"input {name!r}: BYTES data shorter than a length", name)
    (first,) = BYTES_LENGTH.unpack_from(buffer, 0)
    if first and size == count * (4 + first):
        table = np.frombuffer(buffer, dtype=np.uint8).reshape(count, 4 + first)
        lengths = np.ascontiguousarray(table[:, :4]).view("<u4").ravel()
        text = np.ascontiguousarray(table[:, 4:])
        # NUL would be dropped by numpy's fixed-width bytes; non-ASCII needs real UTF-8.
        if bool((lengths == first).all()) and bool(((text > 0) & (text < 128)).all()):
            return text.view(f"S{first}").ravel().astype(f"U{first}").tolist()
    elif first and count > 1:
        short = _short_ascii(buffer, count)
        if short is not None:
            return short
    values: list[bytes] = []
    offset = 0
    data = bytes(buffer)
    for _ in range(count):
        if offset + 4 > size:
            break
        (length,) = BYTES_LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + length > size:
            break
        values.append(data[offset : offset + length])
        offset += length
    if len(values) != count or offset != size:
        raise InferenceRequestError(
            f"input {name!r}: BYTES data does not hold exactly {count} length-prefixed elements",
            name,
        )
    try:
        return [v.decode() for v in values]
    except UnicodeDecodeError:
        raise InferenceRequestError(f"input {name!r}: a BYTES element is not UTF-8", name) from None


def _short_ascii(buffer: memoryview, count: int) -> list[str] | None:
    """The ``count`` elements of a BYTES buffer when each is 1 to 255 ASCII characters with no
    NUL, found without a per-element parse; None when the buffer is not such (the caller then
    reads it element by element, which is always right).

    In such a buffer the only zero bytes are the three high bytes of each length, so the runs
    of three zeros propose where every element starts. The proposal is then checked against
    the sequential reading: the first start is 0, each next start is the previous one plus 4
    plus its length, and the last element ends the buffer -- exactly the starts the element-
    by-element reading would find, whatever bytes the elements hold. With each length's low
    byte zeroed too, every length is four NULs that no element holds: the elements are the
    buffer decoded once and split there.
    """
    raw = np.frombuffer(buffer, dtype=np.uint8)
    zeros = np.flatnonzero(raw == 0)
    if len(zeros) != 3 * count:
        return None
    runs = zeros.reshape(count, 3)
    starts = runs[:, 0] - 1
    if starts[0] != 0 or not bool((runs[:, 2] - runs[:, 0] == 2).all()):
        return None
    ends = starts + 4 + raw[starts]
    if ends[-1] != len(raw) or not bool((ends[:-1] == starts[1:]).all()):
        return None
    separated = raw.copy()
    separated[starts] = 0
    try:
        text = separated.tobytes().decode("ascii")
    except UnicodeDecodeError:
        return None
    return text.split(_SEPARATOR)[1:]


def encode_binary(datatype: str, values: np.ndarray | Sequence[str]) -> bytes:
    """The binary form of a 1-d tensor (the inverse of :func:`decode_binary`); a ``BYTES``
    tensor may be given as a table of equal-length elements (:func:`encode_bytes`)."""
    if datatype == BYTES:
        return encode_bytes(values)
    return np.ascontiguousarray(values, dtype=FIXED_SIZE_DTYPES[datatype]).tobytes()


def encode_bytes(values: Sequence[str] | np.ndarray) -> bytes:
    """Length-prefixed UTF-8 elements; one fixed-width numpy pass when all lengths agree.

    ``values`` may also be a ``(n, width)`` uint8 array: ``n`` elements of ``width`` bytes each,
    encoded without making a ``str`` per element (the prediction ids of a large answer).
    """
    if isinstance(values, np.ndarray):
        if values.ndim != 2 or values.dtype != np.uint8:
            raise TypeError(f"a BYTES table is (n, width) uint8, not {values.dtype} {values.shape}")
        return _fixed_width(values)
    encoded = [v.encode() for v in values]
    if not encoded:
        return b""
    width = len(encoded[0])
    if len(set(map(len, encoded))) == 1:
        return _fixed_width(np.frombuffer(b"".join(encoded), dtype=np.uint8).reshape(-1, width))
    return b"".join(BYTES_LENGTH.pack(len(v)) + v for v in encoded)


def _fixed_width(elements: np.ndarray) -> bytes:
    """``(n, width)`` uint8 elements, each after its length."""
    count, width = elements.shape
    table = np.empty((count, 4 + width), dtype=np.uint8)
    table[:, :4] = np.frombuffer(BYTES_LENGTH.pack(width), dtype=np.uint8)
    table[:, 4:] = elements
    return table.tobytes()
