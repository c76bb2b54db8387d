"""Training data for a run: the dataset resolved once (:func:`open_data`: procedural scenes
or a converted HDF5 file), its endless, resumable batch stream, and the held-out scenes.

The stream's position is the number of scenes consumed; a resumed run starts the stream
at the checkpoint's position and sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from lom_pyro.training.config import TrainConfig
from lom_pyro.training.distributed import Ranks

__all__ = ["TrainingBatches", "ProceduralData", "FileData", "open_data", "held_out", "check_data", "is_procedural"]


def is_procedural(name: str) -> bool:
    from lom_pyro.data.procedural import DATASETS

    return name in DATASETS


class ProceduralData:
    """The built-in procedural scenes of ``config.dataset``: endless, seeded by the run."""

    finite = False

    def __init__(self, config: TrainConfig) -> None:
        from lom_pyro.data.procedural import MIN_IMAGE_SIZE

        if config.image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE} for the procedural dataset {config.dataset!r}, "
                             f"got {config.image_size}")
        self.name, self.image_size, self.seed = config.dataset, config.image_size, config.seed

    def training_set(self, position: int) -> torch.utils.data.Dataset:
        """The stream of training scenes from scene ``position`` on, images in [-1, 1]."""
        from lom_pyro.data.procedural import ProceduralDataset

        return ProceduralDataset(self.name, image_size=self.image_size, seed=self.seed, start=position)

    def held_out(self, n: int, split: str = "test") -> dict[str, Any]:
        """``n`` scenes drawn apart from the training stream (one held-out split)."""
        from lom_pyro.data.procedural import generate

        scenes = generate(self.name, n, self.image_size, seed=self.seed + 10_000)
        return {"images": scenes.model_images(), "masks": torch.from_numpy(scenes.masks),
                "background": scenes.background_channels, "factors": torch.from_numpy(scenes.factors),
                "factor_names": scenes.factor_names}


class FileData:
    """An HDF5 file written by ``lom-pyro convert``: its train split for training, the
    others held out. Opening it checks the file and the image size."""

    finite = True

    def __init__(self, config: TrainConfig) -> None:
        from pathlib import Path

        from lom_pyro.data.dataset import SceneDataset
        from lom_pyro.data.procedural import DATASETS

        if not Path(config.dataset).exists():
            raise ValueError(f"dataset {config.dataset!r}: neither a procedural dataset ({', '.join(DATASETS)}) nor "
                             f"an existing file (an HDF5 file written by lom-pyro convert)")
        info = SceneDataset(config.dataset, split="train").info  # raises a clear error for a bad file
        if tuple(info.image_size) != (config.image_size, config.image_size):
            raise ValueError(f"image_size={config.image_size} does not match dataset {config.dataset}, whose images "
                             f"are {info.image_size[0]}x{info.image_size[1]}")
        self.path = config.dataset

    def training_set(self, position: int) -> torch.utils.data.Dataset:
        """The train split, images in [-1, 1] (a sampler chooses the order)."""
        from lom_pyro.data.dataset import SceneDataset

        return SceneDataset(self.path, split="train", value_range=(-1.0, 1.0), masks=False, factors=False)

    def held_out(self, n: int, split: str = "test") -> dict[str, Any]:
        """The first ``n`` scenes of ``split``."""
        from lom_pyro.data.dataset import SceneDataset

        data = SceneDataset(self.path, split=split, value_range=(-1.0, 1.0))
        items = [data[i] for i in range(min(n, len(data)))]
        out = {"images": torch.stack([i["image"] for i in items]),
               "masks": torch.stack([i["masks"] for i in items]), "background": tuple(data.info.background_channels)}
        if data.info.factor_names:
            out.update(factors=torch.stack([i["factors"] for i in items]), factor_names=data.info.factor_names)
        return out


def open_data(config: TrainConfig) -> ProceduralData | FileData:
    """The run's dataset, resolved once and checked before any work (one sentence if it
    does not fit the config)."""
    return ProceduralData(config) if is_procedural(config.dataset) else FileData(config)


def check_data(config: TrainConfig) -> None:
    """Refuse, before any work, a dataset that does not fit the config (one sentence)."""
    open_data(config)


class _EpochBatches(torch.utils.data.Sampler):
    """Index batches of a finite dataset, reshuffled every epoch by a seed of its own,
    starting at batch ``start`` of the endless sequence (last partial batch dropped);
    ``part`` of each batch (a rank's share)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, part: slice = slice(None)) -> None:
        if n < batch_size:
            raise ValueError(f"the training split has {n} scenes, fewer than batch_size={batch_size}")
        self.n, self.batch_size, self.seed, self.start, self.part = n, batch_size, seed, start, part

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch = self.n // self.batch_size
        epoch, offset = divmod(self.start, per_epoch)
        while True:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            for b in range(offset, per_epoch):
                yield order[b * self.batch_size:(b + 1) * self.batch_size][self.part].tolist()
            epoch, offset = epoch + 1, 0


class TrainingBatches:
    """Endless image batches in [-1, 1]: each global batch of ``config.batch_size`` scenes
    is split among the ranks, rank ``r`` taking the ``r``-th ``(B / world, 3, H, W)`` slice
    (one process: the whole batch). :attr:`position` counts the scenes of the global
    stream used so far (what a checkpoint stores to resume the stream)."""

    def __init__(self, config: TrainConfig, position: int = 0, ranks: Ranks | None = None,
                 data: ProceduralData | FileData | None = None) -> None:
        from torch.utils.data import DataLoader

        ranks = ranks or Ranks()
        data = data or open_data(config)
        if position % config.batch_size:
            raise ValueError(f"data position {position} is not a whole number of batches of {config.batch_size}")
        self.position, self.global_batch = position, config.batch_size
        share = config.batch_size // ranks.world
        self._slice = slice(ranks.rank * share, (ranks.rank + 1) * share)
        scenes = data.training_set(position)
        if data.finite:
            sampler = _EpochBatches(len(scenes), config.batch_size, config.seed, position // config.batch_size,
                                    self._slice)
            self._loader = DataLoader(scenes, batch_sampler=sampler)
        else:
            self._loader = DataLoader(scenes, batch_size=config.batch_size)
        self._sliced = data.finite   # the sampler reads only this rank's scenes
        self._batches = iter(self._loader)

    def __iter__(self) -> TrainingBatches:
        return self

    def __next__(self) -> Tensor:
        images = next(self._batches)["image"]
        self.position += self.global_batch
        return images if self._sliced else images[self._slice]


def held_out(config: TrainConfig, n: int | None = None, split: str = "test") -> dict[str, Any]:
    """Held-out scenes: ``images`` in [-1, 1], ground-truth ``masks``, ``background``
    channel indices, and ``factors`` / ``factor_names`` where the data has them."""
    return open_data(config).held_out(n or config.eval_scenes, split)
