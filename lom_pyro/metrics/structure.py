"""Structure accuracy (S-Acc): is a picture one stack of blocks standing on the floor?

The paper (§4) counts "the fraction of generated stacks whose blocks all
touch". Here that judgement is made from pixels alone, for scenes like the
procedural ``"stacks"`` dataset: a wall above a floor, and flat-coloured
rectangular blocks. The judge has to find *the blocks themselves*, so that a
blurry blob of the right colours does not pass.

The criterion, for an RGB image in ``[0, 1]`` of height ``H`` and width ``W``
(all distances are Euclidean in RGB; sizes scale with the image):

1. **Background.** The wall colour is the per-channel median of the top
   ``r = max(1, round(H/32))`` rows, the floor colour that of the bottom ``r``
   rows. A pixel is *foreground* when its distance to the colour segment
   between wall and floor exceeds ``0.15`` (so a blurred horizon, a blend of
   the two, stays background).
2. **One pile.** The foreground has at least one 4-connected component; the
   largest is the stack. Every other component must be smaller than one
   minimal block, ``h_min * w_min`` pixels (stray specks are tolerated, a
   second pile or a detached piece is not).
3. **Bands.** Each row of the stack gets the median colour of its pixels at
   least ``e + 1`` px (see rule 5) inside the row's ends. Rows are split
   recursively at the largest colour step between neighbouring rows until
   every band's rows lie within ``0.05`` of the band's median colour. Bands of
   at least ``h_min = max(3, round(H/24))`` rows are *blocks*; the rest are
   *transition* rows.
4. **Sharp boundaries.** Every run of consecutive transition rows (between two
   blocks, above the top block or below the lowest) is at most
   ``t_max = max(2, round(H/32))`` rows tall.
5. **Rectangles.** In every row of a block the stack is one run of pixels,
   whose left and right ends are within ``e = max(1, round(W/64))`` px of the
   block's median left and right ends. The block is at least
   ``w_min = max(3, round(W/10))`` px wide, at least 90 % of its bounding box
   is foreground and at least 75 % of the box is within ``0.2`` of the
   block's colour. Transition rows stay within the columns of the blocks next
   to them (± ``e``).
6. **A stack.** There are at least two blocks; vertically adjacent blocks
   differ in colour by at least ``0.25`` (separate blocks, not a gradient),
   and each block's centre column lies within the columns of the block
   beneath it (it rests on that block rather than hanging beside it).
7. **On the floor.** Below the stack (the ``r`` rows starting two rows under
   its lowest row, in the lowest block's columns; the row right under it is
   skipped because blur mixes it with the block) the median colour is closer
   to the floor colour than to the wall colour, or the stack reaches the
   bottom of the image.

Because rule 4 separates neighbouring blocks by at most ``t_max`` rows of
foreground, a gap of background between two blocks (a floating block) breaks
the stack into two components (rule 2), and a block lifted off the floor above
the horizon has wall beneath it (rule 7). A stack raised but still standing on
the floor region is indistinguishable, in one image, from a stack further
back, and passes.

>>> from lom_pyro.data.procedural import generate
>>> scenes = generate("stacks", 16, image_size=64, seed=0)
>>> structure_accuracy(scenes.images, value_range=(0, 255))
1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["StackAnalysis", "analyse_stack", "stack_is_structured", "structure_accuracy", "structure_flags"]

_FG = 0.15  # foreground: distance to the wall-floor colour segment
_FLAT = 0.05  # rows of one band lie within this of the band colour
_COLOUR = 0.2  # block pixels within this of the block colour
_DIFF = 0.25  # adjacent blocks differ at least this much
_FILL = 0.9  # foreground fraction of a block's bounding box
_COLOUR_FILL = 0.75  # fraction of a block's box close to its colour
_MIN_SIDE = 16
_CHUNK = 512  # images converted to float at a time


@dataclass(frozen=True)
class StackAnalysis:
    """What the judge saw in one image.

    :ivar structured: whether the image passes the criterion.
    :ivar reason: ``"ok"`` or the first rule that failed, in words.
    :ivar blocks: the blocks found, top to bottom, as ``(top, bottom, left, right)``
        inclusive pixel bounds (may be partial when a rule failed early).
    """

    structured: bool
    reason: str
    blocks: tuple[tuple[int, int, int, int], ...] = ()


# ----------------------------------------------------------------------------- input


def _as_nhwc(images: Any, value_range: tuple[float, float] | None) -> np.ndarray:
    """Images as float32 ``(N, H, W, 3)`` in [0, 1] from ``(N, 3, H, W)`` or ``(N, H, W, 3)``."""
    if hasattr(images, "detach"):  # a torch tensor, without importing torch
        images = images.detach().cpu().numpy()
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images: expected a 4-d array (N, 3, H, W) or (N, H, W, 3), got shape {x.shape}")
    if x.shape[-1] == 3 and x.shape[1] != 3:
        pass
    elif x.shape[1] == 3 and x.shape[-1] != 3:
        x = x.transpose(0, 2, 3, 1)
    elif x.shape[1] == 3 and x.shape[-1] == 3:
        raise ValueError(f"images: cannot tell the channel axis of shape {x.shape}")
    else:
        raise ValueError(f"images: expected 3 colour channels first or last, got shape {x.shape}")
    if min(x.shape[1:3]) < _MIN_SIDE:
        raise ValueError(f"images: expected height and width >= {_MIN_SIDE}, got {x.shape[1:3]}")
    if value_range is None:
        if x.dtype != np.uint8:
            raise ValueError(f"value_range: required for {x.dtype} images, e.g. (0, 1) or (-1, 1)")
        value_range = (0.0, 255.0)
    if len(value_range) != 2 or not float(value_range[0]) < float(value_range[1]):
        raise ValueError(f"value_range: expected (low, high) with low < high, got {value_range!r}")
    low, high = float(value_range[0]), float(value_range[1])
    return np.clip((x.astype(np.float32) - low) / (high - low), 0.0, 1.0)


def _segment_distance(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from colours ``c`` ``(..., 3)`` to the segment ``[a, b]`` (broadcastable)."""
    ab = b - a
    t = np.clip(((c - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(c - (a + t[..., None] * ab), axis=-1)


# ----------------------------------------------------------------------------- the judge


def _row_medians(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-row, per-channel median of ``img`` ``(R, W, 3)`` over ``mask`` ``(R, W)`` (non-empty rows)."""
    vals = np.sort(np.where(mask[..., None], img, np.inf), axis=1)  # masked-out values sort last
    k = mask.sum(1)
    r = np.arange(len(k))
    return (vals[r, (k - 1) // 2] + vals[r, k // 2]) / 2


def _bands(colours: np.ndarray, tol: float) -> list[tuple[int, int]]:
    """Split rows ``(R, 3)`` into flat bands ``[a, b)`` at the largest colour steps."""
    out: list[tuple[int, int]] = []
    todo = [(0, len(colours))]
    while todo:
        a, b = todo.pop()
        seg = colours[a:b]
        if b - a <= 1 or np.linalg.norm(seg - np.median(seg, 0), axis=1).max() <= tol:
            out.append((a, b))
            continue
        cut = a + 1 + int(np.argmax(np.linalg.norm(np.diff(seg, axis=0), axis=1)))
        todo += [(a, cut), (cut, b)]
    return sorted(out)


def _judge(img: np.ndarray, fg: np.ndarray, wall: np.ndarray, floor: np.ndarray) -> StackAnalysis:
    h, w = fg.shape
    rows_edge = max(1, round(h / 32))
    h_min, t_max = max(3, round(h / 24)), max(2, round(h / 32))
    e_tol, w_min = max(1, round(w / 64)), max(3, round(w / 10))

    # rule 2: one pile
    lab, n = ndimage.label(fg)
    if n == 0:
        return StackAnalysis(False, "no foreground")
    sizes = np.bincount(lab.ravel())[1:]
    main = int(np.argmax(sizes)) + 1
    if (np.delete(sizes, main - 1) >= h_min * w_min).any():
        return StackAnalysis(False, "more than one pile (a second foreground component)")
    comp = lab == main
    ys = np.flatnonzero(comp.any(1))
    y0, y1 = int(ys[0]), int(ys[-1])
    rows = comp[y0 : y1 + 1]  # (R, W); every row is non-empty because the component is connected
    left = rows.argmax(1)
    right = w - 1 - rows[:, ::-1].argmax(1)
    runs = np.diff(rows.astype(np.int8), axis=1, prepend=0).clip(0).sum(1)
    # row colour from the inside of the row: the ends are blurred into whatever lies beside
    inside = ndimage.binary_erosion(rows, np.ones((1, 2 * e_tol + 3), bool))
    inside |= rows & ~inside.any(1, keepdims=True)
    colour = _row_medians(img[y0 : y1 + 1], inside)  # (R, 3)

    # rule 3: flat bands, blocks and transitions
    bands = _bands(colour, _FLAT)
    kinds = ["block" if b - a >= h_min else "transition" for a, b in bands]
    blocks = [(a, b) for (a, b), k in zip(bands, kinds) if k == "block"]
    found = tuple((y0 + a, y0 + b - 1, int(np.median(left[a:b])), int(np.median(right[a:b]))) for a, b in blocks)
    med = [np.median(colour[a:b], 0) for a, b in blocks]  # block colours
    if len(blocks) < 2:
        return StackAnalysis(False, f"{len(blocks)} block(s) found, at least 2 needed", found)

    # rule 4: sharp boundaries
    run = 0
    for (a, b), k in zip(bands, kinds):
        run = run + (b - a) if k == "transition" else 0
        if run > t_max:
            return StackAnalysis(False, f"a transition of more than {t_max} rows (blurred boundary)", found)

    # rule 5: filled rectangles with straight sides
    for (a, b), (top, bottom, lo, hi), c in zip(blocks, found, med):
        if hi - lo + 1 < w_min:
            return StackAnalysis(False, f"block narrower than {w_min} px: rows {top}-{bottom}", found)
        if (runs[a:b] != 1).any():
            return StackAnalysis(False, f"block not one run per row: rows {top}-{bottom}", found)
        if (np.abs(left[a:b] - lo) > e_tol).any() or (np.abs(right[a:b] - hi) > e_tol).any():
            return StackAnalysis(False, f"block with ragged sides: rows {top}-{bottom}", found)
        box = comp[top : bottom + 1, lo : hi + 1]
        # the inside (not the possibly blurred side columns) is flat
        pad = min(e_tol + 1, (hi - lo) // 2)
        inner = img[top : bottom + 1, lo + pad : hi + 1 - pad]
        close = np.linalg.norm(inner - c, axis=-1) <= _COLOUR
        if box.mean() < _FILL or close.mean() < _COLOUR_FILL:
            return StackAnalysis(False, f"block not a flat filled rectangle: rows {top}-{bottom}", found)
    # transition rows stay within the columns of the blocks just above and below their run
    block_at = {band: i for i, band in enumerate(blocks)}
    i = 0
    while i < len(bands):
        if kinds[i] == "block":
            i += 1
            continue
        j = i
        while j + 1 < len(bands) and kinds[j + 1] == "transition":
            j += 1
        near = [found[block_at[bands[q]]] for q in (i - 1, j + 1) if 0 <= q < len(bands)]
        a, b = bands[i][0], bands[j][1]
        lo, hi = min(f[2] for f in near) - e_tol, max(f[3] for f in near) + e_tol
        if (left[a:b] < lo).any() or (right[a:b] > hi).any():
            return StackAnalysis(False, f"rows stick out beside the blocks: {y0 + a}-{y0 + b - 1}", found)
        i = j + 1

    # rule 6: distinct blocks, each resting on the one beneath
    for i in range(len(blocks) - 1):
        (_, _, ul, ur), (_, _, dl, dr) = found[i], found[i + 1]
        if np.linalg.norm(med[i] - med[i + 1]) < _DIFF:
            return StackAnalysis(False, "two adjacent bands of nearly the same colour (a gradient, not blocks)", found)
        if not dl <= (ul + ur) / 2 <= dr:
            return StackAnalysis(False, f"block {i} (from the top) is not supported by the block beneath", found)

    # rule 7: the lowest block stands on the floor
    if y1 + 1 < h:
        _, _, lo, hi = found[-1]
        # skip the first row below, which blur mixes with the block
        below = np.median(img[min(y1 + 2, h - 1) : y1 + 2 + rows_edge, lo : hi + 1].reshape(-1, 3), 0)
        if np.linalg.norm(below - floor) > np.linalg.norm(below - wall):
            return StackAnalysis(False, "the lowest block is not on the floor (wall beneath it)", found)
    return StackAnalysis(True, "ok", found)


def _analyse(x: np.ndarray) -> list[StackAnalysis]:
    """Judge float ``(N, H, W, 3)`` images in [0, 1]."""
    if len(x) == 0:
        return []
    h = x.shape[1]
    r = max(1, round(h / 32))
    wall = np.median(x[:, :r].reshape(len(x), -1, 3), axis=1)  # (N, 3)
    floor = np.median(x[:, -r:].reshape(len(x), -1, 3), axis=1)
    fg = _segment_distance(x, wall[:, None, None], floor[:, None, None]) > _FG  # (N, H, W)
    return [_judge(x[i], fg[i], wall[i], floor[i]) for i in range(len(x))]


# ----------------------------------------------------------------------------- public


def analyse_stack(image: Any, value_range: tuple[float, float] | None = None) -> StackAnalysis:
    """Judge one image and say why: see the module docstring for the criterion.

    :param image: ``(3, H, W)`` or ``(H, W, 3)`` array (or CPU tensor).
    :param value_range: ``(low, high)`` of the pixel values, e.g. ``(0, 1)`` or
        ``(-1, 1)``; may be omitted only for ``uint8`` images (then ``(0, 255)``).
    :returns: a :class:`StackAnalysis`.
    """
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image: expected (3, H, W) or (H, W, 3), got shape {image.shape}")
    return _analyse(_as_nhwc(image[None], value_range))[0]


def stack_is_structured(image: Any, value_range: tuple[float, float] | None = None) -> bool:
    """Whether one image shows a single stack of blocks standing on the floor.

    :param image: ``(3, H, W)`` or ``(H, W, 3)``.
    :param value_range: as in :func:`analyse_stack`.
    """
    return analyse_stack(image, value_range).structured


def structure_flags(images: Any, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Per-image structure judgement.

    :param images: ``(N, 3, H, W)`` or ``(N, H, W, 3)`` array (or CPU tensor).
    :param value_range: ``(low, high)`` of the pixel values; required unless ``uint8``.
    :returns: bool array ``(N,)``.
    """
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    _as_nhwc(images[:0], value_range)  # validate the arguments even when there are no images
    flags = [
        a.structured
        for start in range(0, len(images), _CHUNK)  # bounded memory for 10K samples
        for a in _analyse(_as_nhwc(images[start : start + _CHUNK], value_range))
    ]
    return np.array(flags, dtype=bool)


def structure_accuracy(images: Any, value_range: tuple[float, float] | None = None) -> float:
    """S-Acc: the fraction of images that show one stack of blocks on the floor.

    :param images: ``(N, 3, H, W)`` or ``(N, H, W, 3)``, ``N >= 1``.
    :param value_range: ``(low, high)`` of the pixel values, e.g. ``(-1, 1)`` for
        model samples in the EMORL convention; required unless ``uint8``.
    :returns: a float in [0, 1].
    """
    flags = structure_flags(images, value_range)
    if flags.size == 0:
        raise ValueError("images: expected at least one image")
    return float(flags.mean())
