"""A TFRecord reader and writer, without TensorFlow or protobuf.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little endian) | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

where ``masked_crc32c(b) = ((c >> 15) | (c << 17)) + 0xA282EAD8 (mod 2**32)`` with
``c = crc32c(b)``. The DeepMind multi-object datasets wrap the whole stream in GZIP.
Each record's data is a serialized ``tf.train.Example``::

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }   // entries: key = 1, value = 2
    Feature  { oneof { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed]; }   // packed or not
    Int64List { repeated int64 value = 1 [packed]; }   // packed or not

:func:`iter_records` streams records with memory bounded by the largest record;
:func:`parse_example` decodes an Example lazily (a :class:`Feature` keeps its raw
bytes until asked for values). CRC32C uses ``google-crc32c`` when it is importable,
otherwise a table-driven implementation that runs many byte lanes at once in numpy.

>>> crc32c(b"123456789") == 0xE3069283
True
>>> record = encode_example({"x": np.arange(3, dtype=np.uint8), "y": [0.5]})
>>> parse_example(record)["x"].uint8()
array([0, 1, 2], dtype=uint8)
"""

from __future__ import annotations

import functools
import gzip as _gzip
import itertools
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Literal, TypeAlias

import numpy as np

from lom_pyro.data.errors import TFRecordError

__all__ = [
    "CRC32C_IMPLEMENTATION",
    "Feature",
    "FeatureValue",
    "crc32c",
    "encode_example",
    "iter_examples",
    "iter_records",
    "masked_crc32c",
    "parse_example",
    "write_tfrecord",
]

PathLike: TypeAlias = str | os.PathLike[str]

#: A value :func:`encode_example` accepts: ``bytes`` or a sequence of ``bytes`` (a
#: bytes_list); a ``uint8`` array (a bytes_list with **one 1-byte entry per value**,
#: the multi-object-datasets convention); a float array, float or list of floats (a
#: float_list); any other integer array, int or list of ints (an int64_list).
FeatureValue: TypeAlias = bytes | Sequence[bytes] | np.ndarray | Sequence[float] | Sequence[int] | float | int

# ----------------------------------------------------------------------------- CRC32C

_POLY = 0x82F63B78  # Castagnoli polynomial, bit-reflected
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = (c >> 1) ^ (_POLY if c & 1 else 0)
        table.append(c)
    return table


_TABLE = _make_table()
_TABLE_NP = np.asarray(_TABLE, dtype=np.uint32)


def _update_py(reg: int, data: bytes | memoryview) -> int:
    """Advance the raw (un-inverted) CRC register over ``data`` one byte at a time."""
    table = _TABLE
    for b in bytes(data):
        reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


def _apply(columns: Sequence[int], vec: int) -> int:
    """Multiply a 32×32 GF(2) matrix (given by its columns) with a 32-bit vector."""
    out, bit = 0, 0
    while vec:
        if vec & 1:
            out ^= columns[bit]
        vec >>= 1
        bit += 1
    return out


@functools.cache
def _zeros_operator(n: int) -> tuple[int, ...]:
    """Columns of the linear map ``reg -> register after n zero bytes`` (cached per n)."""
    if n == 1:
        return tuple(_update_py(1 << b, b"\0") for b in range(32))
    half = _zeros_operator(n // 2)
    op = tuple(_apply(half, c) for c in half)  # Z_{2m} = Z_m ∘ Z_m
    if n % 2:
        one = _zeros_operator(1)
        op = tuple(_apply(one, c) for c in op)
    return op


@functools.cache
def _zeros_tables(n: int) -> np.ndarray:
    """The zero-run operator of :func:`_zeros_operator` as four byte tables, (4, 256) uint32."""
    cols = np.asarray(_zeros_operator(n), dtype=np.uint32)  # (32,)
    values = np.arange(256, dtype=np.uint32)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for byte in range(4):
        for bit in range(8):
            hit = ((values >> bit) & 1).astype(bool)
            tables[byte, hit] ^= cols[8 * byte + bit]
    return tables


def _apply_tables(tables: np.ndarray, reg: np.ndarray) -> np.ndarray:
    return (
        tables[0, reg & 0xFF]
        ^ tables[1, (reg >> 8) & 0xFF]
        ^ tables[2, (reg >> 16) & 0xFF]
        ^ tables[3, reg >> 24]
    )


def _update_np(reg: int, data: bytes | memoryview) -> int:
    """Advance the raw CRC register over ``data`` using ``lanes`` parallel byte streams.

    The CRC register is linear over GF(2), so ``raw(A || B, r) = Z_|B|(raw(A, r)) ^ raw(B, 0)``
    with ``Z_n`` the (32×32) effect of n zero bytes. We split the data into M lanes of L
    bytes, run all lanes at once (one numpy table lookup per byte column), then fold the
    lane registers pairwise with ``Z_L``, ``Z_2L``, ... (M is a power of two).
    """
    n = len(data)
    lanes = 1 << max(4, min(14, (n // 32).bit_length() - 1))
    length = n // lanes
    head = n - lanes * length
    reg = _update_py(reg, memoryview(data)[:head])
    body = np.frombuffer(data, dtype=np.uint8, offset=head).reshape(lanes, length)
    columns = np.ascontiguousarray(body.T)  # (L, M): one byte per lane per step
    state = np.zeros(lanes, dtype=np.uint32)
    state[0] = reg
    idx = np.empty(lanes, dtype=np.uint32)
    shifted = np.empty(lanes, dtype=np.uint32)
    for col in columns:
        np.bitwise_xor(state, col, out=idx)
        np.bitwise_and(idx, 0xFF, out=idx)
        np.right_shift(state, 8, out=shifted)
        np.take(_TABLE_NP, idx, out=state)
        state ^= shifted
    span = length
    while state.size > 1:  # fold pairs: the left lane is followed by `span` bytes of the right one
        state = _apply_tables(_zeros_tables(span), state[0::2]) ^ state[1::2]
        span *= 2
    return int(state[0])


def _crc32c_fallback(data: bytes | memoryview) -> int:
    reg = _update_py(_U32, data) if len(data) < 2048 else _update_np(_U32, data)
    return reg ^ _U32


try:  # the C implementation is ~100x faster; it is an optional dependency (extra "crc")
    import google_crc32c as _google_crc32c

    def crc32c(data: bytes | memoryview) -> int:
        """CRC32C (Castagnoli) of ``data``; ``crc32c(b"123456789") == 0xE3069283``."""
        return int(_google_crc32c.value(bytes(data)))

    CRC32C_IMPLEMENTATION = "google-crc32c"
except ImportError:  # pragma: no cover - depends on the environment

    def crc32c(data: bytes | memoryview) -> int:
        """CRC32C (Castagnoli) of ``data``; ``crc32c(b"123456789") == 0xE3069283``."""
        return _crc32c_fallback(data)

    CRC32C_IMPLEMENTATION = "numpy"


def masked_crc32c(data: bytes | memoryview) -> int:
    """The masked CRC32C that TFRecord stores: ``rotr15(crc32c(data)) + 0xA282EAD8 (mod 2**32)``."""
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + _MASK_DELTA) & _U32


# ----------------------------------------------------------------------------- records

_GZIP_MAGIC = b"\x1f\x8b"
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def _open_read(path: PathLike, gzip: bool | None) -> IO[bytes]:
    if gzip is None:  # auto-detect: a GZIP stream starts with 1f 8b
        with open(path, "rb") as probe:
            gzip = probe.read(2) == _GZIP_MAGIC
    if gzip:
        return _gzip.open(path, "rb")  # type: ignore[return-value]  # owns (and closes) its file
    return open(path, "rb")  # noqa: SIM115 - handed to the caller's `with`


def _read_exact(f: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes; reads in bounded pieces, so a corrupt huge length cannot
    make us allocate more than the file actually holds."""
    chunks, left = [], n
    while left:
        chunk = f.read(min(left, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def iter_records(path: PathLike, *, gzip: bool | None = None, verify: bool = True) -> Iterator[bytes]:
    """Stream the records of a TFRecord file, checking the framing as it goes.

    Memory stays bounded by the largest record, whatever the file size.

    :param path: the ``.tfrecord(s)`` file.
    :param gzip: ``True``/``False`` to force or forbid GZIP; ``None`` detects it from the
        first two bytes.
    :param verify: check both masked CRC32Cs of every record.
    :raises TFRecordError: on a truncated record, a CRC mismatch or a corrupt GZIP
        stream; the message names the file and the record index.
    """
    f = _open_read(path, gzip)
    index = 0
    try:
        with f:
            for index in itertools.count():
                header = _read_exact(f, _HEADER.size)
                if not header:
                    return
                if len(header) < _HEADER.size:
                    raise TFRecordError(
                        f"{os.fspath(path)}: record {index} is truncated: {len(header)} of the 12 header bytes "
                        "are present; the file was probably cut short."
                    )
                length, length_crc = _HEADER.unpack(header)
                if verify and masked_crc32c(header[:8]) != length_crc:
                    raise TFRecordError(
                        f"{os.fspath(path)}: record {index} has a length CRC mismatch (stored {length_crc:#010x}, "
                        f"computed {masked_crc32c(header[:8]):#010x}); the file is corrupt or not a TFRecord "
                        "(pass gzip=True if it is compressed)."
                    )
                body = _read_exact(f, length + _FOOTER.size)
                if len(body) < length + _FOOTER.size:
                    raise TFRecordError(
                        f"{os.fspath(path)}: record {index} is truncated: expected {length + 4} bytes of data "
                        f"and CRC, found {len(body)}; the file was probably cut short."
                    )
                data = body[:length]
                if verify:
                    (data_crc,) = _FOOTER.unpack_from(body, length)
                    if masked_crc32c(data) != data_crc:
                        raise TFRecordError(
                            f"{os.fspath(path)}: record {index} has a data CRC mismatch (stored {data_crc:#010x}, "
                            f"computed {masked_crc32c(data):#010x}); the file is corrupt."
                        )
                yield data
    except (EOFError, zlib.error, _gzip.BadGzipFile) as err:
        raise TFRecordError(
            f"{os.fspath(path)}: record {index}: the GZIP stream is corrupt or cut short ({err})."
        ) from err


# ----------------------------------------------------------------------------- protobuf decoding


class _ProtoError(TFRecordError):
    """Malformed protobuf bytes or a list of the wrong kind; the message names neither the
    file nor the record, so callers that know them re-raise with both."""


class _KindError(_ProtoError):
    """A feature holds another kind of list than the one asked for."""


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _ProtoError("a varint runs past the end of its message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _ProtoError("a varint is longer than 10 bytes")


def _fields(buf: memoryview, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field_number, wire_type, a, b)``: the varint value as ``a`` for wire type 0,
    else the byte span ``buf[a:b]`` of the field's payload."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value, pos
            continue
        if wire == 2:
            size, pos = _varint(buf, pos, end)
        elif wire == 1:
            size = 8
        elif wire == 5:
            size = 4
        else:
            raise _ProtoError(f"unsupported wire type {wire} for field {field}")
        if pos + size > end:
            raise _ProtoError(f"field {field} runs past the end of its message")
        yield field, wire, pos, pos + size
        pos += size


_KIND_BY_FIELD: dict[int, Literal["bytes", "float", "int64"]] = {1: "bytes", 2: "float", 3: "int64"}
_LIST_NAME = {"bytes": "bytes_list", "float": "float_list", "int64": "int64_list", "none": "empty Feature"}


@dataclass(frozen=True, slots=True, eq=False)
class Feature:
    """One ``tf.train.Feature``, decoded lazily.

    :ivar kind: ``"bytes"``, ``"float"``, ``"int64"``, or ``"none"`` for an empty Feature.
    :ivar payload: the serialized ``BytesList`` / ``FloatList`` / ``Int64List`` message.
    """

    kind: Literal["bytes", "float", "int64", "none"]
    payload: memoryview

    def _expect(self, kind: str) -> None:
        if self.kind not in (kind, "none"):
            raise _KindError(f"is a {_LIST_NAME[self.kind]}, expected a {_LIST_NAME[kind]}")

    def bytes_list(self) -> list[bytes]:
        """The entries of a bytes_list."""
        self._expect("bytes")
        buf = self.payload
        return [bytes(buf[a:b]) for f, w, a, b in _fields(buf, 0, len(buf)) if f == 1 and w == 2]

    def uint8(self) -> np.ndarray:
        """A bytes_list's entries concatenated and read as uint8, shape ``(total_bytes,)``.

        The multi-object datasets store one 1-byte entry per pixel value; that layout is
        decoded with a vectorized fast path (entries are ``0x0A 0x01 <byte>`` triples).
        """
        self._expect("bytes")
        raw = np.frombuffer(self.payload, dtype=np.uint8)
        if raw.size % 3 == 0:
            triples = raw.reshape(-1, 3)
            if (triples[:, 0] == 0x0A).all() and (triples[:, 1] == 1).all():
                return triples[:, 2].copy()
        return np.frombuffer(b"".join(self.bytes_list()), dtype=np.uint8)

    def float32(self) -> np.ndarray:
        """The values of a float_list (packed or not), shape ``(n,)`` float32."""
        self._expect("float")
        buf = self.payload
        parts: list[np.ndarray] = []
        for f, w, a, b in _fields(buf, 0, len(buf)):
            if f != 1:
                continue
            if w not in (2, 5):
                raise _ProtoError(f"float_list value has wire type {w}, expected 2 (packed) or 5")
            if (b - a) % 4:
                raise _ProtoError("a packed float_list has a length that is not a multiple of 4")
            parts.append(np.frombuffer(buf[a:b], dtype="<f4"))
        if not parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(parts).astype(np.float32)

    def int64(self) -> np.ndarray:
        """The values of an int64_list (packed or not), shape ``(n,)`` int64."""
        self._expect("int64")
        buf = self.payload
        values: list[int] = []
        for f, w, a, b in _fields(buf, 0, len(buf)):
            if f != 1:
                continue
            if w == 0:
                values.append(a)
            elif w == 2:
                pos = a
                while pos < b:
                    v, pos = _varint(buf, pos, b)
                    values.append(v)
            else:
                raise _ProtoError(f"int64_list value has wire type {w}, expected 0 or 2 (packed)")
        # int64 is two's complement in a 64-bit varint
        return np.asarray([v - (1 << 64) if v >= 1 << 63 else v for v in values], dtype=np.int64)

    def value(self) -> list[bytes] | np.ndarray:
        """The natural value: ``list[bytes]``, float32 array or int64 array."""
        if self.kind == "float":
            return self.float32()
        if self.kind == "int64":
            return self.int64()
        return self.bytes_list()


def _parse_feature(buf: memoryview, pos: int, end: int) -> Feature:
    kind: Literal["bytes", "float", "int64", "none"] = "none"
    payload = buf[0:0]
    for f, w, a, b in _fields(buf, pos, end):
        if f in _KIND_BY_FIELD and w == 2:
            kind, payload = _KIND_BY_FIELD[f], buf[a:b]  # oneof: the last one wins
    return Feature(kind, payload)


def parse_example(data: bytes | memoryview) -> dict[str, Feature]:
    """Decode a serialized ``tf.train.Example`` into ``{name: Feature}``.

    Values are decoded only when a :class:`Feature` method asks for them.

    :raises TFRecordError: if the bytes are not a well-formed Example (no file named;
        :func:`iter_examples` adds it).
    """
    buf = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    features: dict[str, Feature] = {}
    try:
        for f, w, a, b in _fields(buf, 0, len(buf)):
            if f != 1 or w != 2:  # Example.features
                continue
            for f2, w2, a2, b2 in _fields(buf, a, b):
                if f2 != 1 or w2 != 2:  # Features.feature (map entry)
                    continue
                key, feature = "", Feature("none", buf[0:0])
                for f3, w3, a3, b3 in _fields(buf, a2, b2):
                    if f3 == 1 and w3 == 2:
                        key = bytes(buf[a3:b3]).decode("utf-8")
                    elif f3 == 2 and w3 == 2:
                        feature = _parse_feature(buf, a3, b3)
                features[key] = feature
    except (_ProtoError, UnicodeDecodeError) as err:
        raise TFRecordError(f"the record is not a well-formed tf.train.Example ({err}).") from err
    return features


def iter_examples(
    path: PathLike, *, gzip: bool | None = None, verify: bool = True
) -> Iterator[tuple[int, dict[str, Feature]]]:
    """Stream ``(record_index, features)`` pairs; errors name the file and record index."""
    for index, record in enumerate(iter_records(path, gzip=gzip, verify=verify)):
        try:
            yield index, parse_example(record)
        except TFRecordError as err:
            raise TFRecordError(f"{os.fspath(path)}: record {index}: {err}") from err


# ----------------------------------------------------------------------------- encoding


def _enc_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _enc_varint(number << 3 | 2) + _enc_varint(len(payload)) + payload


def _encode_list(value: FeatureValue, packed: bool) -> tuple[int, bytes]:
    """``(Feature field number, serialized list message)`` for one value."""
    if isinstance(value, bytes):
        return 1, _field(1, value)
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        triples = np.empty((value.size, 3), dtype=np.uint8)  # one 1-byte entry per value
        triples[:, 0], triples[:, 1], triples[:, 2] = 0x0A, 1, value.ravel()
        return 1, triples.tobytes()
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, bytes) for v in value):
        return 1, b"".join(_field(1, v) for v in value)  # type: ignore[arg-type]
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        flat = arr.astype("<f4").ravel()
        if packed:
            return 2, _field(1, flat.tobytes())
        return 2, b"".join(b"\x0d" + v.tobytes() for v in flat)
    if arr.dtype.kind in "iub":
        ints = [int(v) for v in arr.ravel()]
        if packed:
            return 3, _field(1, b"".join(_enc_varint(v) for v in ints))
        return 3, b"".join(b"\x08" + _enc_varint(v) for v in ints)
    raise TypeError(f"cannot encode a feature of type {type(value).__name__} (dtype {arr.dtype}) in a tf.train.Example")


def encode_example(features: Mapping[str, FeatureValue], *, packed: bool = True) -> bytes:
    """Serialize ``{name: value}`` as a ``tf.train.Example`` (see :data:`FeatureValue`).

    :param packed: write float and int64 lists packed (protobuf 3 default) or one tagged
        value at a time (what older writers produce).
    """
    entries = []
    for key, value in features.items():
        number, payload = _encode_list(value, packed)
        entry = _field(1, key.encode("utf-8")) + _field(2, _field(number, payload))
        entries.append(_field(1, entry))
    return _field(1, b"".join(entries))


def write_tfrecord(
    path: PathLike,
    examples: Iterable[Mapping[str, FeatureValue] | bytes],
    *,
    gzip: bool = False,
    packed: bool = True,
    compresslevel: int = 6,
) -> int:
    """Write ``examples`` (mappings, encoded with :func:`encode_example`, or raw record
    bytes) as a TFRecord file; returns the number of records written.

    :param gzip: compress the stream, as the DeepMind multi-object datasets are.
    """
    count = 0
    with open(path, "wb") as raw:
        out: IO[bytes] = _gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel) if gzip else raw  # type: ignore[assignment]
        try:
            for example in examples:
                data = example if isinstance(example, bytes) else encode_example(example, packed=packed)
                length = struct.pack("<Q", len(data))
                out.write(length + struct.pack("<I", masked_crc32c(length)))
                out.write(data)
                out.write(struct.pack("<I", masked_crc32c(data)))
                count += 1
        finally:
            if out is not raw:
                out.close()
    return count
