"""TFRecord framing, CRC32C and the hand-written tf.train.Example codec."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lom_pyro.data import tfrecord as tfr
from lom_pyro.data.errors import TFRecordError
from lom_pyro.data.tfrecord import (
    crc32c,
    encode_example,
    iter_examples,
    iter_records,
    masked_crc32c,
    parse_example,
    write_tfrecord,
)


def _crc_reference(data: bytes) -> int:
    """Bit-at-a-time CRC32C, straight from the definition."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert tfr._crc32c_fallback(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=0, max_size=9000))
def test_fallback_crc_matches_definition(data: bytes) -> None:
    assert tfr._crc32c_fallback(data) == _crc_reference(data)


@pytest.mark.parametrize("n", [2048, 2049, 70_001])
def test_fallback_crc_lanes_match_table(n: int) -> None:
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert tfr._crc32c_fallback(data) == tfr._update_py(0xFFFFFFFF, data) ^ 0xFFFFFFFF


def test_masked_crc_definition() -> None:
    c = crc32c(b"abc")
    assert masked_crc32c(b"abc") == ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- Example codec

floats32 = st.floats(width=32, allow_nan=False)
int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=30, deadline=None)
@given(
    fl=st.lists(floats32, max_size=20),
    il=st.lists(int64s, max_size=20),
    bl=st.lists(st.binary(max_size=5), min_size=1, max_size=5),
    packed=st.booleans(),
)
def test_example_round_trip(fl: list[float], il: list[int], bl: list[bytes], packed: bool) -> None:
    record = encode_example(
        {"f": np.asarray(fl, np.float32), "i": np.asarray(il, np.int64), "b": bl}, packed=packed
    )
    parsed = parse_example(record)
    assert parsed["f"].kind == "float" and parsed["i"].kind == "int64" and parsed["b"].kind == "bytes"
    np.testing.assert_array_equal(parsed["f"].float32(), np.asarray(fl, np.float32))
    np.testing.assert_array_equal(parsed["i"].int64(), np.asarray(il, np.int64))
    assert parsed["b"].bytes_list() == bl


def test_packed_and_unpacked_wire_formats_by_hand() -> None:
    # Feature{float_list{value: [1.5, -2]}} packed: 12 0a 0a 08 <2 floats>; unpacked: 0d <f> 0d <f>
    floats = struct.pack("<2f", 1.5, -2.0)
    packed = b"\x12\x0a\x0a\x08" + floats
    unpacked = b"\x12\x0a" + b"\x0d" + floats[:4] + b"\x0d" + floats[4:]
    # Feature{int64_list{value: [1, 300, -1]}}: varints 01, ac 02, ff..ff 01
    ints = b"\x01\xac\x02" + b"\xff" * 9 + b"\x01"
    ints_packed = b"\x1a" + bytes([2 + len(ints)]) + b"\x0a" + bytes([len(ints)]) + ints
    ints_unpacked_body = b"\x08\x01" + b"\x08\xac\x02" + b"\x08" + b"\xff" * 9 + b"\x01"
    ints_unpacked = b"\x1a" + bytes([len(ints_unpacked_body)]) + ints_unpacked_body

    def example(feature: bytes) -> bytes:
        entry = b"\x0a\x01k" + b"\x12" + bytes([len(feature)]) + feature
        features = b"\x0a" + bytes([len(entry)]) + entry
        return b"\x0a" + bytes([len(features)]) + features

    for raw in (packed, unpacked):
        np.testing.assert_array_equal(parse_example(example(raw))["k"].float32(), [1.5, -2.0])
    for raw in (ints_packed, ints_unpacked):
        np.testing.assert_array_equal(parse_example(example(raw))["k"].int64(), [1, 300, -1])


def test_uint8_fast_and_general_paths() -> None:
    values = np.arange(300, dtype=np.int64).astype(np.uint8)
    one_per_value = parse_example(encode_example({"x": values}))["x"]
    assert len(one_per_value.payload) == 3 * values.size  # 0a 01 <byte> per value
    np.testing.assert_array_equal(one_per_value.uint8(), values)
    several = parse_example(encode_example({"x": [values[:7].tobytes(), values[7:].tobytes()]}))["x"]
    np.testing.assert_array_equal(several.uint8(), values)


def test_unknown_fields_are_skipped() -> None:
    record = encode_example({"a": [1, 2]})
    # an unknown varint field 5 and fixed64 field 6 at the top level of Example
    extra = b"\x28\x07" + b"\x31" + b"\0" * 8
    np.testing.assert_array_equal(parse_example(extra + record)["a"].int64(), [1, 2])


def test_wrong_kind_and_malformed() -> None:
    feat = parse_example(encode_example({"a": [1.0]}))["a"]
    with pytest.raises(TFRecordError, match="is a float_list, expected a bytes_list"):
        feat.uint8()
    with pytest.raises(TFRecordError, match="not a well-formed tf.train.Example"):
        parse_example(b"\x0a\x10\x0a")  # says 16 bytes follow, 1 does


# ----------------------------------------------------------------------------- framing


def _records(n: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"v": rng.integers(0, 256, 50 + i, dtype=np.uint8), "i": np.asarray([i])} for i in range(n)]


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("flag", [None, "explicit"])
def test_write_read_round_trip(tmp_path: Path, compress: bool, flag: str | None) -> None:
    path = tmp_path / "r.tfrecords"
    examples = _records(5)
    assert write_tfrecord(path, examples, gzip=compress) == 5
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    gz = None if flag is None else compress
    got = list(iter_examples(path, gzip=gz))
    assert [i for i, _ in got] == list(range(5))
    for (_, feats), ex in zip(got, examples, strict=True):
        np.testing.assert_array_equal(feats["v"].uint8(), ex["v"])
        np.testing.assert_array_equal(feats["i"].int64(), ex["i"])


def test_framing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "r.tfrecords"
    write_tfrecord(path, [b"hello"])
    raw = path.read_bytes()
    assert raw[:8] == struct.pack("<Q", 5)
    assert raw[8:12] == struct.pack("<I", masked_crc32c(raw[:8]))
    assert raw[12:17] == b"hello" and raw[17:] == struct.pack("<I", masked_crc32c(b"hello"))
    assert list(iter_records(path)) == [b"hello"]


@pytest.mark.parametrize("cut", [1, 5, 12 + 10])
def test_truncated_record(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.tfrecords"
    write_tfrecord(path, [b"a" * 40, b"b" * 40])
    first = 12 + 40 + 4
    path.write_bytes(path.read_bytes()[: first + cut])
    with pytest.raises(TFRecordError, match=r"cut\.tfrecords: record 1 is truncated"):
        list(iter_records(path))


def test_data_crc_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "bad.tfrecords"
    write_tfrecord(path, [b"a" * 40, b"b" * 40, b"c" * 40])
    raw = bytearray(path.read_bytes())
    raw[2 * 56 + 12 + 3] ^= 0xFF  # a data byte of record 2
    path.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=r"bad\.tfrecords: record 2 has a data CRC mismatch"):
        list(iter_records(path))
    assert len(list(iter_records(path, verify=False))) == 3


def test_length_crc_mismatch_hints_gzip(tmp_path: Path) -> None:
    path = tmp_path / "gz.tfrecords"
    write_tfrecord(path, [b"x" * 10], gzip=True)
    with pytest.raises(TFRecordError, match=r"record 0 has a length CRC mismatch.*gzip=True"):
        list(iter_records(path, gzip=False))


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "cut.tfrecords.gz"
    rng = np.random.default_rng(1)
    write_tfrecord(path, [rng.integers(0, 256, 4000, dtype=np.uint8).tobytes() for _ in range(3)], gzip=True)
    path.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(TFRecordError, match=r"cut\.tfrecords\.gz: record \d+"):
        list(iter_records(path))


def test_malformed_example_names_file_and_record(tmp_path: Path) -> None:
    path = tmp_path / "m.tfrecords"
    write_tfrecord(path, [encode_example({"a": [1]}), b"\x0a\x05\x0a"])
    with pytest.raises(TFRecordError, match=r"m\.tfrecords: record 1: the record is not a well-formed"):
        list(iter_examples(path))


def test_streaming_reads_lazily(tmp_path: Path) -> None:
    path = tmp_path / "s.tfrecords"
    write_tfrecord(path, [b"ok", b"ok"])
    with open(path, "ab") as f:
        f.write(b"\x00" * 5)  # garbage after two good records
    it = iter_records(path)
    assert next(it) == b"ok" and next(it) == b"ok"  # the damage is only found when reached
    with pytest.raises(TFRecordError, match="record 2 is truncated"):
        next(it)


def test_gzip_module_compatibility(tmp_path: Path) -> None:
    # a file gzipped by another tool (whole stream at once) reads the same
    plain = tmp_path / "p.tfrecords"
    write_tfrecord(plain, _records(3))
    gz = tmp_path / "p.tfrecords.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert list(iter_records(gz)) == list(iter_records(plain))


def test_corrupt_huge_length_without_verification(tmp_path: Path) -> None:
    path = tmp_path / "huge.tfrecords"
    path.write_bytes(struct.pack("<QI", 1 << 50, 0) + b"tiny")
    with pytest.raises(TFRecordError, match=r"record 0 is truncated: expected \d+ bytes of data and CRC, found 4"):
        list(iter_records(path, verify=False))
