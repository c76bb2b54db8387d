"""The aggregate posterior of a trained LOM, cached: for many scenes, the scene posterior
``q(s | x)`` and the ordered posterior slot means (Figure 2, steps 1–4).

The posterior means are behind the stop-gradient (§3.2), so a slot prior can be fitted to
them afterwards as plain density estimation, without decoding an image. The cache holds the
alignment the LOM made against its own prior (each scene encoded at its posterior-mean
scene latent); a prior fitted to it is used with that alignment held fixed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lom_pyro.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

__all__ = ["encode_scenes", "posterior_cache"]

CHUNK = 256
BLOCK = 8192


@torch.no_grad()
def encode_scenes(lom, images: Tensor, progress: bool = False) -> dict[str, Tensor]:
    """``scene_loc``, ``scene_scale`` ``(N, Ds)`` and aligned ``slots`` ``(N, K, Dz)`` of
    ``images (N, C, H, W)`` in [-1, 1], in chunks on the LOM's device; results on CPU."""
    device = next(lom.parameters()).device
    parts: dict[str, list[Tensor]] = {"scene_loc": [], "scene_scale": [], "slots": []}
    started = time.monotonic()
    for start in range(0, images.shape[0], CHUNK):
        enc = lom.encode(images[start:start + CHUNK].to(device))
        parts["scene_loc"].append(enc.scene_loc.float().cpu())
        parts["scene_scale"].append(enc.scene_scale.float().cpu())
        parts["slots"].append(enc.slots_loc.float().cpu())
        if progress:
            done = min(start + CHUNK, images.shape[0])
            print(f"\rencoded {done}/{images.shape[0]} scenes ({time.monotonic() - started:.0f} s)",
                  end="" if done < images.shape[0] else "\n", file=sys.stderr, flush=True)
    return {k: torch.cat(v) for k, v in parts.items()}


def posterior_cache(lom, dataset: str, image_size: int, scenes: int, seed: int, source: str,
                    path: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """The cache of ``scenes`` procedural scenes of ``dataset`` encoded by ``lom`` (in blocks of
    8,192, block i generated with ``seed + i``).

    With ``path``, a cache written there for the same source, data, count and seed is read
    instead of encoding again, and a new one is written there (atomically).
    """
    from lom_pyro.data.procedural import generate

    key = {"source": source, "dataset": dataset, "image_size": image_size, "scenes": scenes, "seed": seed}
    if path is not None and Path(path).is_file():
        cached = load_checkpoint(path)
        if cached.get("key") != key:
            raise CheckpointError(f"--cache {path}: holds {cached.get('key')}, not {key}; "
                                  "give another file or remove it")
        return cached
    encoded: dict[str, list[Tensor]] = {}
    # blocks of BLOCK scenes, block i drawn with seed + i: 100K scenes of images would not fit in memory
    for i, first in enumerate(range(0, scenes, BLOCK)):
        images = generate(dataset, min(BLOCK, scenes - first), image_size, seed=seed + i).model_images()
        for name, value in encode_scenes(lom, images, progress).items():
            encoded.setdefault(name, []).append(value)
    cache = {"key": key, **{name: torch.cat(parts) for name, parts in encoded.items()}}
    if path is not None:
        save_checkpoint(path, cache)
    return cache
