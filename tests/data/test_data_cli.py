"""``lom-pyro convert``: success, and one-line failures that leave DST alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_sources import make_shapestacks, objects_room_example

from lom_pyro.cli import main
from lom_pyro.data import read_split
from lom_pyro.data.tfrecord import write_tfrecord


def test_convert_objects_room(tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = tmp_path / "or.tfrecords", tmp_path / "or.h5"
    write_tfrecord(src, [objects_room_example(rng, 4) for _ in range(3)], gzip=True)
    assert main(
        ["convert", "objects-room", str(src), str(dst), "--variant", "empty_room", "--limit", "2", "--quiet"]
    ) == 0
    assert "test: 2" in capsys.readouterr().out
    assert read_split(dst, "test")["masks"].shape == (2, 4, 64, 64)


def test_convert_shapestacks(tmp_path: Path, rng: np.random.Generator) -> None:
    make_shapestacks(tmp_path / "ss", rng)
    assert main(
        ["convert", "shapestacks", str(tmp_path / "ss"), str(tmp_path / "s.h5"),
         "--split", "default", "--limit", "1", "--quiet"]
    ) == 0
    assert read_split(tmp_path / "s.h5", "val")["images"].shape == (1, 64, 64, 3)


@pytest.mark.parametrize("corruption", ["crc", "truncate", "size"])
def test_failure_is_one_line_and_dst_untouched(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str], corruption: str
) -> None:
    src, dst = tmp_path / "or.tfrecords", tmp_path / "or.h5"
    records = [objects_room_example(rng) for _ in range(3)]
    if corruption == "size":
        records[1]["mask"] = records[1]["mask"][:6]
    write_tfrecord(src, records)
    raw = src.read_bytes()
    if corruption == "crc":
        src.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    elif corruption == "truncate":
        src.write_bytes(raw[:-100])
    dst.write_bytes(b"an existing file")
    assert main(["convert", "objects-room", str(src), str(dst), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lom-pyro convert: ") and "or.tfrecords: record" in err
    assert "Traceback" not in err
    assert dst.read_bytes() == b"an existing file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["or.h5", "or.tfrecords"]


def test_option_for_another_kind_and_missing_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "clevr6", "x", str(tmp_path / "y.h5"), "--variant", "train"]) == 2
    assert "--variant does not apply to 'clevr6'" in capsys.readouterr().err
    assert main(["convert", "shapestacks", str(tmp_path / "none"), str(tmp_path / "y.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "splits/default: no such folder" in err


def test_convert_procedural(tmp_path: Path) -> None:
    pytest.importorskip("lom_pyro.data.procedural")
    dst = tmp_path / "p.h5"
    assert main(["convert", "procedural", "stacks", str(dst), "--n-train", "3", "--n-test", "2", "--size", "32"]) == 0
    assert read_split(dst, "test")["images"].shape == (2, 32, 32, 3)
