"""A torch ``Dataset`` over one split of an HDF5 file, safe with DataLoader workers.

>>> ds = SceneDataset("objects_room.h5", "train", value_range=(-1, 1))  # doctest: +SKIP
>>> item = ds[0]                                                       # doctest: +SKIP
>>> item["image"].shape, item["masks"].shape                           # doctest: +SKIP
(torch.Size([3, 64, 64]), torch.Size([7, 64, 64]))
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, TypeAlias

import torch
from torch.utils.data import Dataset

from lom_pyro.data.h5 import H5SplitReader, SplitInfo

__all__ = ["EMORL_RANGE", "GENESIS_RANGE", "SceneDataset"]

PathLike: TypeAlias = str | os.PathLike[str]

#: Image ranges the orderless models expect: EMORL works in [-1, 1], GENESIS-v2 in [0, 1].
EMORL_RANGE = (-1.0, 1.0)
GENESIS_RANGE = (0.0, 1.0)


class SceneDataset(Dataset[dict[str, torch.Tensor]]):
    """Scenes of one split as model-ready tensors.

    Items are dicts with ``image`` (3, H, W) float32 in ``value_range``, ``masks``
    (K, H, W) float32 in {0, 1}, ``factors`` (K, F) and ``scene_factors`` (G,) float32
    when the file has them, and ``index`` (the scene's position in the split).

    The HDF5 file is opened lazily by whichever process reads first, and reopened when
    the process id changes, so the dataset pickles without a handle and every
    DataLoader worker gets its own. Values are checked as they are read: images that are
    not stored as uint8 (EfficientMORL) must be finite and in [0, 255], masks binary;
    a bad scene raises :class:`~lom_pyro.data.errors.DataError` naming file, key and index.

    :param path: lom_pyro or EfficientMORL HDF5 file.
    :param split: group name (``train``, ``val``, ``test``).
    :param value_range: ``(low, high)`` that 0 and 255 map to; :data:`EMORL_RANGE` or
        :data:`GENESIS_RANGE`.
    :param dataset, image_size, background_channels: passed to
        :class:`~lom_pyro.data.h5.H5SplitReader` (EfficientMORL CLEVR needs ``dataset``).
    :param masks: include ``masks`` in items.
    :param factors: include ``factors`` / ``scene_factors`` when present.
    """

    def __init__(
        self,
        path: PathLike,
        split: str = "train",
        *,
        value_range: tuple[float, float] = EMORL_RANGE,
        dataset: str | None = None,
        image_size: int | None = None,
        background_channels: Sequence[int] | None = None,
        masks: bool = True,
        factors: bool = True,
    ) -> None:
        low, high = (float(v) for v in value_range)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"value_range must be finite (low, high) with low < high, got {value_range}")
        self.path = os.fspath(path)
        self.split = split
        self.value_range = (low, high)
        self.load_masks, self.load_factors = masks, factors
        self._reader_kwargs: dict[str, Any] = {
            "dataset": dataset, "image_size": image_size, "background_channels": background_channels,
        }  # fmt: skip
        with H5SplitReader(self.path, split, **self._reader_kwargs) as reader:  # validate now, read later
            self.info: SplitInfo = reader.info
        self._reader: H5SplitReader | None = None
        self._pid: int | None = None

    def _open(self) -> H5SplitReader:
        if self._reader is None or self._pid != os.getpid():
            # a handle inherited through fork is not ours to use (or close)
            self._reader = H5SplitReader(self.path, self.split, **self._reader_kwargs)
            self._pid = os.getpid()
        return self._reader

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_reader"], state["_pid"] = None, None
        return state

    def __len__(self) -> int:
        return self.info.num_scenes

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} scenes in {self.path} split '{self.split}'")
        index %= n
        raw = self._open()[index]
        low, high = self.value_range
        image = torch.from_numpy(raw["images"]).permute(2, 0, 1).float().mul_((high - low) / 255.0).add_(low)
        item = {"image": image, "index": torch.tensor(index, dtype=torch.int64)}
        if self.load_masks:
            item["masks"] = torch.from_numpy(raw["masks"]).float()
        if self.load_factors:
            for key in ("factors", "scene_factors"):
                if key in raw:
                    item[key] = torch.from_numpy(raw[key])
        return item

    def close(self) -> None:
        """Close this process's file handle (reopened on the next read)."""
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = self._pid = None
