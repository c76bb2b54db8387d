"""SceneDataset: value ranges, worker safety, presets."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lom_pyro.data import DATASET_PRESETS, SceneDataset, get_preset
from lom_pyro.data.errors import DataError
from lom_pyro.data.h5 import H5Writer


@pytest.fixture
def h5file(tmp_path: Path, rng: np.random.Generator) -> Path:
    path = tmp_path / "d.h5"
    n, k, s = 10, 3, 8
    images = rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8)
    images[0] = 0
    images[0, 0, 0] = 255
    masks = (np.arange(k)[None, :, None, None] == rng.integers(0, k, (n, 1, s, s))).astype(np.uint8)
    with H5Writer(path, dataset="demo", background_channels=(0,), factor_names=("a",)) as w:
        w.append(images, masks, np.arange(n * k, dtype=np.float32).reshape(n, k, 1))
    return path


@pytest.mark.parametrize("value_range", [(-1.0, 1.0), (0.0, 1.0)])
def test_item_shapes_and_range(h5file: Path, value_range: tuple[float, float]) -> None:
    ds = SceneDataset(h5file, value_range=value_range)
    item = ds[0]
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    assert item["masks"].shape == (3, 8, 8) and item["factors"].shape == (3, 1)
    assert item["image"].min().item() == value_range[0] and item["image"].max().item() == value_range[1]
    assert torch.equal(item["masks"].sum(0), torch.ones(8, 8))
    assert ds[-1]["index"].item() == 9 and len(ds) == 10


def test_pickles_without_handle(h5file: Path) -> None:
    ds = SceneDataset(h5file)
    ds[0]  # opens in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._reader is None
    assert torch.equal(clone[3]["image"], ds[3]["image"])


def test_multi_worker_loader_each_index_once(h5file: Path) -> None:
    ds = SceneDataset(h5file, value_range=(0.0, 1.0))
    ds[0]  # a handle open in the parent must not leak into the workers
    loader = DataLoader(ds, batch_size=3, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0))
    for _ in range(2):  # two epochs
        seen = torch.cat([batch["index"] for batch in loader])
        assert sorted(seen.tolist()) == list(range(10))
        factors = torch.cat([batch["factors"] for batch in loader])
        assert factors.shape == (10, 3, 1)


def test_bad_images_raise_when_read(tmp_path: Path) -> None:
    path = tmp_path / "e.h5"
    imgs = np.zeros((3, 4, 4, 3), np.float32)
    imgs[2, 0, 0, 0] = np.nan
    with h5py.File(path, "w") as f:
        f["train/imgs"] = imgs
        f["train/masks"] = np.full((3, 2, 4, 4, 1), 255, np.uint8) * (np.arange(2) == 0)[None, :, None, None, None]
    ds = SceneDataset(path)
    ds[1]
    with pytest.raises(DataError, match=r"e\.h5: 'train/imgs' scene 2 has NaN or infinite values"):
        ds[2]


def test_value_range_validated(h5file: Path) -> None:
    with pytest.raises(ValueError, match="low < high"):
        SceneDataset(h5file, value_range=(1.0, 0.0))


def test_presets() -> None:
    assert DATASET_PRESETS["objects_room"].background_channels == (0, 1, 2, 3)
    assert (DATASET_PRESETS["objects_room"].image_size, DATASET_PRESETS["objects_room"].num_slots) == (64, 7)
    assert DATASET_PRESETS["clevr6"].image_size == 96 and DATASET_PRESETS["clevr6_64"].image_size == 64
    assert DATASET_PRESETS["shapestacks"].num_slots == 9 and DATASET_PRESETS["shapestacks"].background_channels == (0,)
    assert get_preset("clevr6").with_image_size(64).image_size == 64
    with pytest.raises(ValueError, match="known: clevr6, clevr6_64, objects_room, shapestacks"):
        get_preset("mnist")
