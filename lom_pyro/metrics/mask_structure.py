"""A third structure judge, ``masks``: the blocks as the model's own slot masks say.

The pixel judges (:mod:`lom_pyro.metrics.structure`) decide from the picture alone. A
model that decodes K slots also says which pixels belong to which slot; this judge takes
those masks as the blocks and reads the picture only for colours, the wall and the floor.
It is reported beside the pixel judges, never instead of them: a model may split a picture
into slots more cleanly than the picture itself shows (a melted blob painted by two slots).

For an RGB image in ``[0, 1]`` and its masks ``(K, H, W)`` (soft, summing to one over K, or
one-hot), with the thresholds of :class:`MaskCriterion`:

1. Each pixel belongs to the slot of its largest mask value. Wall and floor colours are
   those of the pixel judges (the median of the top and of the bottom rows).
2. A slot is an *object* when it holds at least ``block_area`` of the image and the median
   distance of its pixels' colours to the wall-floor colour segment exceeds
   ``foreground`` (a wall or floor slot has the background's colours; an empty slot holds
   no pixels).
3. Every object is a distinguishable *block*: one piece (its largest 4-connected region
   holds at least ``one_piece`` of its pixels) whose mask is clear (the median of its mask
   value over its pixels is at least ``confidence``). A split or smeared slot fails the
   image, as a detached piece or a melted blob does by eye.
4. At least two blocks; two blocks *touch* when one lies within ``g = max(1,
   round(gap_fraction·H))`` pixels of the other (a soft boundary's pixels may belong to a
   background slot) and no background lies between them: both are in one connected region
   of the blocks' pixels and the pixels further than ``0.03`` from the wall-floor segment
   (the ``touching`` judge's ``link``: a soft edge fades towards the background, a gap
   shows the background itself). Touching blocks differ in median colour by at least
   ``distinct`` (one colour painted by two slots is one block).
5. *One pile*: the touching relation connects every block.
6. *Resting*: each block rests on a block it touches whose centre lies lower and whose
   columns hold this block's centre column (± a pixel), or stands on the floor (the
   pixel judges' rule: floor colour, not wall, just below its bottom row, or the image
   ends). Exactly one block stands on the floor.

>>> from lom_pyro.data.procedural import generate
>>> scenes = generate("stacks", 16, image_size=32, seed=0)
>>> bool(mask_flags(scenes.images, scenes.masks).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from lom_pyro.metrics.structure import StackAnalysis, as_unit_nhwc, background_colours, check_fractions, on_floor
from lom_pyro.ops import segment_distance

__all__ = ["MaskCriterion", "mask_flags", "analyse_masks"]

_LINK = 0.03   # pixels this far from the background join blocks (TouchingCriterion.link's default)

@dataclass(frozen=True)
class MaskCriterion:
    """The thresholds of the ``masks`` judge (module docstring).

    The defaults are the grid point that agreed most with the blind labels' P ∪ B on the
    tuning half of the labelled set (``benchmarks/judge_calibration.py``), never one model's
    samples. The lowest ``confidence`` and ``distinct`` of the grid won: on that set, an
    unclear mask or two touching slots of one colour said little the other rules did not.

    :ivar foreground: a slot whose pixels lie (in median) further than this from the
        wall-floor colour segment is an object.
    :ivar block_area: the least share of the image an object holds.
    :ivar one_piece: the least share of an object's pixels in its largest connected region.
    :ivar confidence: the least median mask value over an object's pixels.
    :ivar distinct: the least colour distance between two touching blocks.
    :ivar gap_fraction: blocks this close, as a fraction of the image height (at least one
        pixel), touch.
    """

    foreground: float = 0.2
    block_area: float = 0.006
    one_piece: float = 0.8
    confidence: float = 0.2
    distinct: float = 0.02
    gap_fraction: float = 0.06

    def __post_init__(self) -> None:
        check_fractions(self, one_allowed=True)


def _as_masks(masks: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """Masks as float32 ``(N, K, H, W)`` for ``N`` images of ``H`` x ``W``; ``(N, K, 1, H, W)``
    (the models' layout) is accepted too."""
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    m = np.asarray(masks)
    if m.ndim == 5 and m.shape[2] == 1:
        m = m[:, :, 0]
    n, h, w = shape
    if m.ndim != 4 or m.shape[0] != n or m.shape[2:] != (h, w) or m.shape[1] < 1:
        raise ValueError(f"masks: expected shape (N, K, H, W) = ({n}, K, {h}, {w}) to match the images, "
                         f"got {m.shape}")
    return m.astype(np.float32)


def _judge(img: np.ndarray, masks: np.ndarray, wall: np.ndarray, floor: np.ndarray,
           criterion: MaskCriterion) -> StackAnalysis:
    """Rules 2-6 of the module docstring for one image ``(H, W, 3)`` and its masks ``(K, H, W)``."""
    h, w = img.shape[:2]
    owner = masks.argmax(0)
    distance = segment_distance(img, wall, floor)
    min_area = max(4, round(criterion.block_area * h * w))
    blocks = []   # (pixels, box, colour)
    for k in range(masks.shape[0]):
        own = owner == k
        if own.sum() < min_area or np.median(distance[own]) <= criterion.foreground:
            continue   # background, or (nearly) empty
        lab, n = ndimage.label(own)
        if np.bincount(lab.ravel())[1:].max() < criterion.one_piece * own.sum():
            return StackAnalysis(False, f"slot {k} is in pieces (not one block)")
        if np.median(masks[k][own]) < criterion.confidence:
            return StackAnalysis(False, f"slot {k}'s mask is unclear (a smeared block)")
        ys, xs = np.nonzero(own)
        blocks.append((own, (int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())),
                       np.median(img[own], 0)))
    blocks.sort(key=lambda b: (b[1][0] + b[1][1]) / 2)   # top to bottom
    found = tuple(b[1] for b in blocks)
    if len(blocks) < 2:
        return StackAnalysis(False, f"{len(blocks)} block(s) found, at least 2 needed", found)
    reach = max(1, round(criterion.gap_fraction * h))
    grown = [ndimage.binary_dilation(b[0], np.ones((2 * reach + 1, 2 * reach + 1), bool)) for b in blocks]
    linked, _ = ndimage.label((distance > _LINK) | np.any([b[0] for b in blocks], 0))
    region = [np.bincount(linked[b[0]]).argmax() for b in blocks]   # each block's linked region
    touch = np.array([[i != j and region[i] == region[j] and bool((grown[i] & blocks[j][0]).any())
                       for j in range(len(blocks))] for i in range(len(blocks))])
    for i, j in zip(*np.nonzero(np.triu(touch))):
        if np.linalg.norm(blocks[i][2] - blocks[j][2]) < criterion.distinct:
            return StackAnalysis(False, f"blocks {i} and {j} (from the top) have one colour (one block)", found)
    reached = {0}
    frontier = [0]
    while frontier:
        i = frontier.pop()
        for j in np.flatnonzero(touch[i]):
            if int(j) not in reached:
                reached.add(int(j))
                frontier.append(int(j))
    if len(reached) < len(blocks):
        return StackAnalysis(False, "more than one pile (blocks that touch no other)", found)
    on_the_floor = []
    for i, (_, (top, bottom, lo, hi), _) in enumerate(blocks):
        centre = (lo + hi) / 2
        supported = any(touch[i, j] and (t2 + b2) > (top + bottom) and l2 - 1 <= centre <= h2 + 1
                        for j, (_, (t2, b2, l2, h2), _) in enumerate(blocks))
        if supported:
            continue
        if not on_floor(img, bottom, lo, hi, wall, floor):
            return StackAnalysis(False, f"block {i} (from the top) rests on nothing (wall beneath it)", found)
        on_the_floor.append(i)
    if len(on_the_floor) != 1:
        return StackAnalysis(False, f"{len(on_the_floor)} blocks stand on the floor (one pile has one)", found)
    return StackAnalysis(True, "ok", found)


def _analyse(x: np.ndarray, masks: np.ndarray, criterion: MaskCriterion) -> list[StackAnalysis]:
    wall, floor = background_colours(x)
    return [_judge(x[i], masks[i], wall[i], floor[i], criterion) for i in range(len(x))]


def mask_flags(images: Any, masks: Any, value_range: tuple[float, float] | None = None,
               criterion: MaskCriterion | None = None) -> np.ndarray:
    """Per-image verdict of the ``masks`` judge: one pile of at least two distinguishable
    blocks, as the slot masks draw them, each resting on one beneath, one on the floor.

    :param images: ``(N, 3, H, W)`` or ``(N, H, W, 3)`` array (or CPU tensor).
    :param masks: ``(N, K, H, W)`` or ``(N, K, 1, H, W)`` slot masks of those images.
    :param value_range: ``(low, high)`` of the pixel values; required unless ``uint8``.
    :param criterion: the thresholds; the defaults when omitted.
    :returns: bool array ``(N,)``.
    """
    x = as_unit_nhwc(images, value_range)
    m = _as_masks(masks, x.shape[:3])
    return np.array([a.structured for a in _analyse(x, m, criterion or MaskCriterion())], dtype=bool)


def analyse_masks(image: Any, masks: Any, value_range: tuple[float, float] | None = None,
                  criterion: MaskCriterion | None = None) -> StackAnalysis:
    """Judge one image ``(3, H, W)`` or ``(H, W, 3)`` with its masks ``(K, H, W)`` and say why."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    image, masks = np.asarray(image), np.asarray(masks)
    if image.ndim != 3:
        raise ValueError(f"image: expected (3, H, W) or (H, W, 3), got shape {image.shape}")
    x = as_unit_nhwc(image[None], value_range)
    return _analyse(x, _as_masks(masks[None], x.shape[:3]), criterion or MaskCriterion())[0]
