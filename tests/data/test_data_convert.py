"""Converters: real source formats in, exact arrays out, loud failures, atomic DST."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_sources import clevr_example, make_shapestacks, objects_room_example, write_png
from PIL import Image

from lom_pyro.data import convert_clevr6, convert_objects_room, convert_shapestacks, read_split
from lom_pyro.data.errors import DataError
from lom_pyro.data.h5 import list_splits
from lom_pyro.data.tfrecord import write_tfrecord

# ----------------------------------------------------------------------------- Objects Room


@pytest.mark.parametrize(
    ("variant", "k", "compress"), [("train", 7, True), ("empty_room", 4, False), ("six_objects", 10, True)]
)
def test_objects_room_round_trip(
    tmp_path: Path, rng: np.random.Generator, variant: str, k: int, compress: bool
) -> None:
    src, dst = tmp_path / "or.tfrecords", tmp_path / "or.h5"
    records = [objects_room_example(rng, k) for _ in range(5)]
    write_tfrecord(src, records, gzip=compress)
    summary = convert_objects_room(src, dst, variant=variant, progress=False, chunk_size=2)
    split = "train" if variant == "train" else "test"
    assert summary.counts == {split: 5}
    data = read_split(dst, split)
    np.testing.assert_array_equal(data["images"], np.stack([r["image"] for r in records]))
    np.testing.assert_array_equal(data["masks"], np.stack([r["mask"][..., 0] // 255 for r in records]))
    assert data["masks"].dtype == np.uint8 and data["masks"].shape == (5, k, 64, 64)
    assert "factors" not in data


def test_objects_room_limit_test_size_and_folder_source(tmp_path: Path, rng: np.random.Generator) -> None:
    records = [objects_room_example(rng) for _ in range(6)]
    write_tfrecord(tmp_path / "objects_room_train.tfrecords", records, gzip=True)
    dst = tmp_path / "or.h5"
    summary = convert_objects_room(tmp_path, dst, limit=5, test_size=2, progress=False)
    assert summary.counts == {"test": 2, "train": 3} and summary.records_read == 5
    np.testing.assert_array_equal(read_split(dst, "test")["images"], np.stack([r["image"] for r in records[:2]]))
    np.testing.assert_array_equal(read_split(dst, "train")["images"], np.stack([r["image"] for r in records[2:5]]))


def test_objects_room_wrong_feature_size(tmp_path: Path, rng: np.random.Generator) -> None:
    src = tmp_path / "or.tfrecords"
    good, bad = objects_room_example(rng), objects_room_example(rng)
    bad["image"] = bad["image"].ravel()[:-1]
    write_tfrecord(src, [good, bad])
    with pytest.raises(DataError, match=r"or\.tfrecords: record 1: feature 'image' has 12287 values; expected 12288\."):
        convert_objects_room(src, tmp_path / "or.h5", progress=False)
    assert not list(tmp_path.glob("*.h5")) and not list(tmp_path.glob(".*tmp"))


def test_objects_room_wrong_variant_k_and_bad_mask(tmp_path: Path, rng: np.random.Generator) -> None:
    src = tmp_path / "or.tfrecords"
    write_tfrecord(src, [objects_room_example(rng, 7)])
    with pytest.raises(DataError, match=r"record 0: feature 'mask' has 28672 values; expected 40960\."):
        convert_objects_room(src, tmp_path / "x.h5", variant="six_objects", progress=False)
    ex = objects_room_example(rng)
    ex["mask"][0, 0, 0, 0] = 7
    write_tfrecord(src, [ex])
    with pytest.raises(DataError, match=r"record 0: feature 'mask' holds the value 7; expected only 0 and 255\."):
        convert_objects_room(src, tmp_path / "x.h5", progress=False)
    write_tfrecord(src, [{"image": objects_room_example(rng)["image"]}])
    with pytest.raises(DataError, match=r"record 0: feature 'mask' is missing"):
        convert_objects_room(src, tmp_path / "x.h5", progress=False)
    write_tfrecord(src, [{"image": np.zeros(12288, np.float32), "mask": np.zeros(7 * 4096, np.uint8)}])
    with pytest.raises(DataError, match=r"record 0: feature 'image' is a float_list, expected a bytes_list\."):
        convert_objects_room(src, tmp_path / "x.h5", progress=False)


def test_failed_conversion_keeps_existing_dst(tmp_path: Path, rng: np.random.Generator) -> None:
    src, dst = tmp_path / "or.tfrecords", tmp_path / "or.h5"
    write_tfrecord(src, [objects_room_example(rng) for _ in range(3)])
    convert_objects_room(src, dst, progress=False)
    before = dst.read_bytes()
    raw = bytearray(src.read_bytes())
    raw[-10] ^= 0x55  # corrupt the last record's data
    src.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"record 2 has a data CRC mismatch"):
        convert_objects_room(src, dst, progress=False, chunk_size=1)  # chunks 0, 1 already written
    assert dst.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["or.h5", "or.tfrecords"]


# ----------------------------------------------------------------------------- CLEVR6


def test_clevr6_filter_packing_and_factors(tmp_path: Path, rng: np.random.Generator) -> None:
    src, dst = tmp_path / "clevr.tfrecords", tmp_path / "c.h5"
    records = [clevr_example(rng, n) for n in (3, 7, 6, 10, 0)]
    write_tfrecord(src, records, gzip=True)
    summary = convert_clevr6(src, dst, size=64, progress=False)
    assert summary.records_read == 5 and summary.records_skipped == 2  # 7 and 10 objects
    data = read_split(dst, "train")
    assert data["images"].shape == (3, 64, 64, 3) and data["masks"].shape == (3, 7, 64, 64)
    assert data["factors"].shape == (3, 7, 9)
    np.testing.assert_array_equal(data["masks"].sum(1), 1)  # still a partition
    kept = [records[i] for i in (0, 2, 4)]
    for got_f, got_m, rec, n in zip(data["factors"], data["masks"], kept, (3, 6, 0), strict=True):
        order = [0, *np.flatnonzero(rec["visibility"][1:] > 0.5) + 1]
        assert len(order) == n + 1
        expected = np.stack(
            [
                rec[k].astype(np.float32)
                for k in ("x", "y", "z", "rotation", "size", "material", "shape", "color", "visibility")
            ],
            axis=-1,
        )[order]
        np.testing.assert_array_equal(got_f[: n + 1], expected)
        np.testing.assert_array_equal(got_f[n + 1 :], 0)
        np.testing.assert_array_equal(got_m[n + 1 :], 0)
    with __import__("h5py").File(dst) as f:
        assert tuple(f.attrs["factor_names"]) == (
            "x", "y", "z", "rotation", "size", "material", "shape", "color", "visibility"
        )
        assert "sum(visibility) <= 7" in f.attrs["preprocessing"]


@pytest.mark.parametrize("size", [64, 96])
def test_clevr6_crop_geometry(tmp_path: Path, rng: np.random.Generator, size: int) -> None:
    """A marker block at a known source pixel lands on the expected output pixel."""
    scale = 192 // size  # 3 or 2 source pixels per output pixel
    r, c = 10, 20  # expected output pixel
    top, left = 29 + scale * r, 64 + scale * c
    rec = clevr_example(rng, 1, boxes=[(top, top + scale, left, left + scale)])
    rec["image"][:] = 0
    # wide, for bilinear
    rec["image"][top - 2 * scale : top + 3 * scale, left - 2 * scale : left + 3 * scale] = (255, 0, 0)
    src, dst = tmp_path / "c.tfrecords", tmp_path / "c.h5"
    write_tfrecord(src, [rec])
    convert_clevr6(src, dst, size=size, progress=False)
    data = read_split(dst)
    obj = data["masks"][0, 1]
    assert obj.sum() == 1 and obj[r, c] == 1
    np.testing.assert_array_equal(data["images"][0, r, c], (255, 0, 0))
    assert data["images"][0, r + 4, c + 4].max() == 0


def test_clevr6_outside_crop_is_dropped(tmp_path: Path, rng: np.random.Generator) -> None:
    # an object entirely left of column 64 keeps its channel (visible in the source) but no pixels
    rec = clevr_example(rng, 2, boxes=[(100, 120, 10, 30), (100, 120, 100, 130)])
    src, dst = tmp_path / "c.tfrecords", tmp_path / "c.h5"
    write_tfrecord(src, [rec])
    convert_clevr6(src, dst, size=96, progress=False)
    masks = read_split(dst)["masks"][0]
    assert masks[1].sum() == 0 and masks[2].sum() > 0


def test_clevr6_invisible_entity_with_pixels_fails(tmp_path: Path, rng: np.random.Generator) -> None:
    rec = clevr_example(rng, 2)
    rec["visibility"][3] = 0.0  # entity 3 has pixels but claims to be invisible
    src = tmp_path / "c.tfrecords"
    write_tfrecord(src, [rec])
    with pytest.raises(DataError, match=r"c\.tfrecords: record 0: entity 3 has visibility 0 but a non-empty mask"):
        convert_clevr6(src, tmp_path / "c.h5", progress=False)


def test_clevr6_bad_size_argument(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="64 or 96"):
        convert_clevr6(tmp_path / "x", tmp_path / "y.h5", size=80)


def test_missing_source_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.tfrecords: no such file; expected a TFRecord file"):
        convert_clevr6(tmp_path / "nope.tfrecords", tmp_path / "y.h5", progress=False)


# ----------------------------------------------------------------------------- ShapeStacks


def test_shapestacks_round_trip_uncropped_size(tmp_path: Path, rng: np.random.Generator) -> None:
    """image_size=196 means no resize: outputs are exactly the centre crops."""
    root = tmp_path / "ss"
    truth = make_shapestacks(root, rng)
    dst = tmp_path / "ss.h5"
    summary = convert_shapestacks(root, dst, image_size=196, progress=False)
    assert summary.counts == {"train": 4, "val": 2, "test": 2}
    assert set(list_splits(dst)) == {"train", "val", "test"}
    for split, group in (("train", "train"), ("eval", "val"), ("test", "test")):
        data = read_split(dst, group)
        for i, (rgb, labels, scenario, cam) in enumerate(truth[split]):
            np.testing.assert_array_equal(data["images"][i], rgb[14:210, 14:210])
            onehot = (np.arange(9)[:, None, None] == labels[14:210, 14:210]).astype(np.uint8)
            np.testing.assert_array_equal(data["masks"][i], onehot)
            height = int(scenario.split("h=")[1].split("-")[0])
            stable = float("vcom=0" in scenario and "vpsf=0" in scenario)
            np.testing.assert_array_equal(data["scene_factors"][i], [height, stable, cam])


def test_shapestacks_resized_matches_pil(tmp_path: Path, rng: np.random.Generator) -> None:
    root = tmp_path / "ss"
    truth = make_shapestacks(root, rng)
    dst = tmp_path / "ss.h5"
    convert_shapestacks(root, dst, limit=1, progress=False)
    data = read_split(dst, "train")
    assert data["images"].shape == (1, 64, 64, 3) and data["masks"].shape == (1, 9, 64, 64)
    rgb, labels, _, _ = truth["train"][0]
    image = Image.fromarray(rgb).crop((14, 14, 210, 210)).resize((64, 64), Image.Resampling.BILINEAR)
    lab = np.asarray(Image.fromarray(labels).crop((14, 14, 210, 210)).resize((64, 64), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(data["images"][0], np.asarray(image))
    np.testing.assert_array_equal(data["masks"][0].argmax(0), lab)
    np.testing.assert_array_equal(data["masks"][0].sum(0), 1)


def test_shapestacks_missing_split_file(tmp_path: Path, rng: np.random.Generator) -> None:
    root = tmp_path / "ss"
    make_shapestacks(root, rng)
    (root / "splits" / "default" / "eval.txt").unlink()
    dst = tmp_path / "ss.h5"
    dst.write_bytes(b"precious")
    with pytest.raises(
        DataError, match=r"eval\.txt: the split file is missing; expected splits/<split>/\{train,eval,test\}\.txt"
    ):
        convert_shapestacks(root, dst, progress=False)
    assert dst.read_bytes() == b"precious"


def test_shapestacks_unreadable_png(tmp_path: Path, rng: np.random.Generator) -> None:
    root = tmp_path / "ss"
    make_shapestacks(root, rng)
    victim = sorted((root / "recordings").glob("*/rgb-*cam_12-mono-0.png"))[0]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(
        DataError, match=rf"{victim.name}: cannot be read as an image .*; expected the RGB rendering as PNG data\."
    ):
        convert_shapestacks(root, tmp_path / "ss.h5", progress=False)


def test_shapestacks_bad_map_values_and_missing_map(tmp_path: Path, rng: np.random.Generator) -> None:
    root = tmp_path / "ss"
    make_shapestacks(root, rng)
    victim = sorted((root / "recordings").glob("*/iseg-*cam_1-mono-0.map"))[0]
    write_png(victim, np.full((224, 224), 33, np.uint8))
    with pytest.raises(DataError, match=r"\.map: pixel value 33 is not 32·k for a label k in 0\.\.8"):
        convert_shapestacks(root, tmp_path / "ss.h5", progress=False)
    victim.unlink()
    with pytest.raises(DataError, match=r"cam_1-mono-0\.png: has no instance map"):
        convert_shapestacks(root, tmp_path / "ss.h5", progress=False)


def test_shapestacks_separate_iseg_tree(tmp_path: Path, rng: np.random.Generator) -> None:
    """GENESIS layout: maps under iseg/<scenario>/ with their own w/f/l/c fields."""
    root = tmp_path / "ss"
    truth = make_shapestacks(root, rng)
    for m in sorted((root / "recordings").glob("*/iseg-*.map")):
        target = root / "iseg" / m.parent.name / m.name.replace("w=1-f=2-l=3-c=original", "w=0-f=0-l=0-c=original")
        target.parent.mkdir(parents=True, exist_ok=True)
        m.rename(target)
    convert_shapestacks(root, tmp_path / "ss.h5", image_size=196, progress=False)
    labels = truth["test"][1][1]
    got = read_split(tmp_path / "ss.h5", "test")["masks"][1]
    np.testing.assert_array_equal(got.argmax(0), labels[14:210, 14:210])
