"""The HDF5 layout: writer, validating reader, EfficientMORL files, procedural data."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from lom_pyro.data.errors import DataError
from lom_pyro.data.h5 import H5SplitReader, H5Writer, list_splits, read_split, write_procedural


def _scenes(rng: np.random.Generator, n: int, k: int = 3, s: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8)
    masks = (np.arange(k)[None, :, None, None] == rng.integers(0, k, (n, 1, s, s))).astype(np.uint8)
    factors = rng.normal(size=(n, k, 2)).astype(np.float32)
    return images, masks, factors


def test_writer_round_trip_and_attributes(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "d.h5"
    parts = [_scenes(rng, n) for n in (3, 4)]
    test = _scenes(rng, 2)
    with H5Writer(path, dataset="demo", background_channels=(0,), factor_names=("a", "b"), preprocessing="none") as w:
        for images, masks, factors in parts:
            w.append(images, masks, factors)
        w.append(*test, split="test")
        assert not path.exists()  # only a temporary sibling so far
    assert w.counts == {"train": 7, "test": 2}
    data = read_split(path, "train")
    for key, i in (("images", 0), ("masks", 1), ("factors", 2)):
        np.testing.assert_array_equal(data[key], np.concatenate([p[i] for p in parts]))
    with H5SplitReader(path, "test") as r:
        info = r.info
        np.testing.assert_array_equal(r[1]["masks"], test[1][1])
    assert (info.layout, info.dataset, info.num_scenes, info.image_size, info.num_channels) == (
        "lom", "demo", 2, (8, 8), 3
    )
    assert info.factor_names == ("a", "b") and info.background_channels == (0,) and info.preprocessing == "none"
    assert set(list_splits(path)) == {"train", "test"}
    with h5py.File(path) as f:
        assert f["train/images"].dtype == np.uint8 and f["train/masks"].shape == (7, 3, 8, 8)
        assert f["train/factors"].dtype == np.float32


def test_writer_rejects_bad_chunks_and_aborts(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "d.h5"
    path.write_bytes(b"old")
    images, masks, factors = _scenes(rng, 2)
    with pytest.raises(DataError, match=r"d\.h5: cannot append to split 'train': masks must hold only 0 and 1\."):
        with H5Writer(path, dataset="demo", background_channels=(0,)) as w:
            w.append(images, masks * 255)
    with pytest.raises(DataError, match=r"images must be uint8 \(B, H, W, 3\), got float32"):
        with H5Writer(path, dataset="demo", background_channels=(0,)) as w:
            w.append(images.astype(np.float32), masks)
    with pytest.raises(DataError, match=r"factors must be given exactly when factor_names are"):
        with H5Writer(path, dataset="demo", background_channels=(0,)) as w:
            w.append(images, masks, factors)
    with pytest.raises(DataError, match=r"masks items have shape \(4, 8, 8\), earlier ones \(3, 8, 8\)"):
        with H5Writer(path, dataset="demo", background_channels=(0,)) as w:
            w.append(images, masks)
            w.append(images, np.concatenate([masks, masks[:, :1] * 0], axis=1))
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def _lom_file(path: Path, **overrides: np.ndarray | None) -> None:
    rng = np.random.default_rng(0)
    images, masks, factors = _scenes(rng, 4)
    arrays: dict[str, np.ndarray | None] = {"images": images, "masks": masks, "factors": factors}
    arrays.update(overrides)
    with h5py.File(path, "w") as f:
        f.attrs["factor_names"] = ["a", "b"]
        g = f.create_group("train")
        for key, value in arrays.items():
            if value is not None:
                g[key] = value


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"masks": None}, r"'train/masks' is missing; expected one-hot instance masks\."),
        ({"images": None}, r"split 'train' has neither 'images' \(lom_pyro layout\) nor 'imgs'"),
        ({"images": np.zeros((4, 8, 8), np.uint8)}, r"'train/images' has shape \(4, 8, 8\); expected \(N, H, W, 3\)\."),
        ({"images": np.zeros((4, 8, 8, 3), np.float32)}, r"'train/images' has dtype float32; expected uint8\."),
        ({"masks": np.zeros((5, 3, 8, 8), np.uint8)}, r"'train/masks' holds 5 scenes but 'train/images' holds 4"),
        ({"masks": np.zeros((4, 3, 8, 9), np.uint8)}, r"'train/masks' has shape \(4, 3, 8, 9\); expected H, W = 8, 8"),
        (
            {"masks": np.zeros((4, 3, 8, 8, 1), np.uint8)},
            r"'train/masks' has shape \(4, 3, 8, 8, 1\); expected \(N, K, H, W\)\.",
        ),
        (
            {"factors": np.zeros((4, 2, 2), np.float32)},
            r"'train/factors' has shape \(4, 2, 2\); expected \(N, K, F\) = \(4, 3, F\)\.",
        ),
        ({"factors": np.zeros((4, 3, 2), np.float64)}, r"'train/factors' has dtype float64; expected float32\."),
    ],
)
def test_reader_validation_names_file_and_key(tmp_path: Path, overrides: dict, message: str) -> None:
    path = tmp_path / "bad.h5"
    _lom_file(path, **overrides)
    with pytest.raises(DataError, match=rf"bad\.h5: {message}"):
        H5SplitReader(path, "train")


def test_reader_missing_split_and_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    _lom_file(path)
    with pytest.raises(DataError, match=r"d\.h5: has no split group 'val' \(found: train\)\."):
        H5SplitReader(path, "val")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match=r"junk\.h5: cannot be opened as HDF5"):
        H5SplitReader(junk)
    with pytest.raises(DataError, match=r"absent\.h5: no such file"):
        H5SplitReader(tmp_path / "absent.h5")


def test_reader_mask_values_checked_lazily(tmp_path: Path) -> None:
    masks = np.zeros((4, 3, 8, 8), np.uint8)
    masks[:, 0] = 1
    masks[2, 1, 0, 0] = 3
    path = tmp_path / "m.h5"
    _lom_file(path, masks=masks)
    with H5SplitReader(path) as r:
        r.read(0, 2)  # fine
        with pytest.raises(DataError, match=r"m\.h5: 'train/masks' scene 2 has values other than 0 and 255"):
            r.read(2)


# ----------------------------------------------------------------------------- EfficientMORL


def _emorl_file(path: Path, imgs: np.ndarray, masks: np.ndarray, factors: np.ndarray | None = None) -> None:
    with h5py.File(path, "w") as f:
        for split in ("train", "test"):
            g = f.create_group(split)
            g["imgs"], g["masks"] = imgs, masks
            if factors is not None:
                g["factors"] = factors


def test_emorl_reader(tmp_path: Path, rng: np.random.Generator) -> None:
    images, masks, factors = _scenes(rng, 3)
    path = tmp_path / "emorl.h5"
    _emorl_file(path, images.astype(np.float32), (masks * 255)[..., None], factors)
    data = read_split(path, "test")
    np.testing.assert_array_equal(data["images"], images)
    np.testing.assert_array_equal(data["masks"], masks)
    np.testing.assert_array_equal(data["factors"], factors)
    with H5SplitReader(path, "train") as r:
        assert r.info.layout == "emorl" and r.info.factor_names == ("factor_0", "factor_1")
        assert r.info.background_channels == (0,)


def test_emorl_clevr_is_cropped_and_resized(tmp_path: Path, rng: np.random.Generator) -> None:
    images = rng.integers(0, 256, (2, 240, 320, 3), dtype=np.uint8)
    labels = np.zeros((2, 240, 320), np.int64)
    labels[:, 29 + 40 : 29 + 44, 64 + 60 : 64 + 64] = 1  # 4×4 block at crop (40, 60) -> 96px (20, 30)
    masks = (np.arange(3)[None, :, None, None] == labels[:, None]).astype(np.uint8)[..., None] * 255
    path = tmp_path / "clevr6.h5"
    _emorl_file(path, images, masks)
    data = read_split(path, "train", dataset="clevr6")
    assert data["images"].shape == (2, 96, 96, 3) and data["masks"].shape == (2, 3, 96, 96)
    expected = np.asarray(
        Image.fromarray(images[0]).crop((64, 29, 256, 221)).resize((96, 96), Image.Resampling.BILINEAR)
    )
    np.testing.assert_array_equal(data["images"][0], expected)
    np.testing.assert_array_equal(np.argwhere(data["masks"][0, 1]), [[20, 30], [20, 31], [21, 30], [21, 31]])
    small = read_split(path, "train", dataset="clevr6", image_size=64)
    assert small["masks"].shape == (2, 3, 64, 64)
    raw = read_split(path, "train")  # not told it is CLEVR: as stored
    assert raw["images"].shape == (2, 240, 320, 3)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.nan, r"scene 1 has NaN or infinite values; expected values in \[0, 255\]"),
        (300.0, r"scene 1 has values in \[0\.0, 300\.0\]; expected \[0, 255\]"),
    ],
)
def test_emorl_bad_image_values(tmp_path: Path, rng: np.random.Generator, value: float, message: str) -> None:
    images, masks, _ = _scenes(rng, 3)
    imgs = images.astype(np.float32)
    imgs[1, 2, 3, 0] = value
    path = tmp_path / "e.h5"
    _emorl_file(path, imgs, (masks * 255)[..., None])
    with H5SplitReader(path) as r:
        r.read(0)
        with pytest.raises(DataError, match=rf"e\.h5: 'train/imgs' {message}\."):
            r.read(1)


def test_emorl_masks_need_trailing_axis(tmp_path: Path, rng: np.random.Generator) -> None:
    images, masks, _ = _scenes(rng, 2)
    path = tmp_path / "e.h5"
    _emorl_file(path, images, masks * 255)
    with pytest.raises(DataError, match=r"'train/masks' has shape \(2, 3, 8, 8\); expected \(N, K, H, W, 1\)\."):
        H5SplitReader(path)


# ----------------------------------------------------------------------------- procedural


def test_write_procedural(tmp_path: Path) -> None:
    pytest.importorskip("lom_pyro.data.procedural")
    path = tmp_path / "p.h5"
    write_procedural("sprites", path, n_train=5, n_test=3, image_size=32, seed=3, chunk_size=2)
    train, test = read_split(path, "train"), read_split(path, "test")
    assert train["images"].shape == (5, 32, 32, 3) and test["masks"].shape[0] == 3
    np.testing.assert_array_equal(train["masks"].sum(1), 1)
    with H5SplitReader(path, "test") as r:
        assert r.info.dataset == "sprites" and r.info.factor_names is not None
    again = tmp_path / "q.h5"
    write_procedural("sprites", again, n_train=5, n_test=3, image_size=32, seed=3, chunk_size=2)
    np.testing.assert_array_equal(read_split(again, "train")["images"], train["images"])
    assert not np.array_equal(train["images"][:3], test["images"])
