"""Training data for a run: an endless, resumable batch stream, and the held-out scenes.

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

__all__ = ["TrainingBatches", "held_out", "check_data", "is_procedural"]


def is_procedural(name: str) -> bool:
    from lom_pyro.data.procedural import DATASETS

    return name in DATASETS


def check_data(config: TrainConfig) -> None:
    """Refuse, before any work, a dataset that does not fit the config (one sentence)."""
    if is_procedural(config.dataset):
        from lom_pyro.data.procedural import MIN_IMAGE_SIZE

        if config.image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE} for the procedural dataset {config.dataset!r}, "
                             f"got {config.image_size}")
        return
    from pathlib import Path

    from lom_pyro.data.dataset import SceneDataset
    from lom_pyro.data.procedural import DATASETS

    if not Path(config.dataset).exists():
        raise ValueError(f"dataset {config.dataset!r}: neither a procedural dataset ({', '.join(DATASETS)}) nor an "
                         f"existing file (an HDF5 file written by lom-pyro convert)")
    info = SceneDataset(config.dataset, split="train").info  # raises a clear error for a bad file
    if tuple(info.image_size) != (config.image_size, config.image_size):
        raise ValueError(f"image_size={config.image_size} does not match dataset {config.dataset}, whose images are "
                         f"{info.image_size[0]}x{info.image_size[1]}")


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

    def __init__(self, config: TrainConfig, position: int = 0, ranks: Ranks | None = None) -> None:
        from torch.utils.data import DataLoader

        ranks = ranks or Ranks()

        if position % config.batch_size:
            raise ValueError(f"data position {position} is not a whole number of batches of {config.batch_size}")
        self.position, self.global_batch = position, config.batch_size
        share = config.batch_size // ranks.world
        self._slice = slice(ranks.rank * share, (ranks.rank + 1) * share)
        if is_procedural(config.dataset):
            from lom_pyro.data.procedural import ProceduralDataset

            data = ProceduralDataset(config.dataset, image_size=config.image_size, seed=config.seed, start=position)
            self._loader = DataLoader(data, batch_size=config.batch_size)
            self._sliced = False
        else:
            from lom_pyro.data.dataset import SceneDataset

            data = SceneDataset(config.dataset, split="train", value_range=(-1.0, 1.0), masks=False, factors=False)
            sampler = _EpochBatches(len(data), config.batch_size, config.seed, position // config.batch_size,
                                    self._slice)
            self._loader = DataLoader(data, batch_sampler=sampler)
            self._sliced = True   # the sampler reads only this rank's scenes
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
    n = n or config.eval_scenes
    if is_procedural(config.dataset):
        from lom_pyro.data.procedural import generate

        scenes = generate(config.dataset, n, config.image_size, seed=config.seed + 10_000)
        return {"images": scenes.model_images(), "masks": torch.from_numpy(scenes.masks),
                "background": scenes.background_channels, "factors": torch.from_numpy(scenes.factors),
                "factor_names": scenes.factor_names}
    from lom_pyro.data.dataset import SceneDataset

    data = SceneDataset(config.dataset, split=split, value_range=(-1.0, 1.0))
    items = [data[i] for i in range(min(n, len(data)))]
    out = {"images": torch.stack([i["image"] for i in items]), "masks": torch.stack([i["masks"] for i in items]),
           "background": tuple(data.info.background_channels)}
    if data.info.factor_names:
        out.update(factors=torch.stack([i["factors"] for i in items]), factor_names=data.info.factor_names)
    return out
