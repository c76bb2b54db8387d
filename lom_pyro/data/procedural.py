"""Procedurally generated multi-object scenes with ground-truth masks and factors.

Three datasets, each deterministic given ``(seed, image_size)`` and rendered in
plain numpy (torch only appears in :class:`ProceduralDataset`):

``"stacks"``
    ShapeStacks-like. A wall and a floor meet at a horizon of varying height;
    2-4 flat-coloured, slightly shaded rectangular blocks stand in one stack:
    the lowest on the floor, each one edge to edge on the one beneath, shifted
    sideways but with its centre (and the centre of mass of everything above
    it) over its support. Channels: ``0`` wall, ``1`` floor, ``2..5`` blocks
    by level (``2`` = lowest).
``"room"``
    Objects-Room-like. Sky, a wall split into two halves by a corner line, and
    a floor whose far edge is highest at the corner; 1-3 objects (box, ball,
    triangle) stand on the floor, smaller the further back they are, nearer
    ones occluding farther ones. Channels: ``0`` sky, ``1`` left wall,
    ``2`` right wall, ``3`` floor, ``4..6`` objects from back to front.
``"sprites"``
    1-4 independent shapes (square, circle, triangle) on a plain dark
    background, later ones occluding earlier ones. Channels: ``0`` background,
    ``1..4`` sprites in drawing order.

Factors are in image-relative units (positions and sizes divided by the image
size, colours in ``[0, 1]``); see :data:`FACTOR_NAMES`. Background rows and
absent objects have all-zero factors (``visible == 0``). An object hidden
entirely by nearer ones counts as absent.

Scenes are generated in chunks of :data:`CHUNK_SIZE`, chunk ``c`` from its own
random stream ``SeedSequence([seed, dataset, c])``. So ``generate(name, n)`` is
a prefix of ``generate(name, m)`` for ``n < m``, and the streaming
:class:`ProceduralDataset` yields exactly the scenes of :func:`generate`,
whatever the number of DataLoader workers.

>>> scenes = generate("stacks", 8, image_size=32, seed=0)
>>> scenes.images.shape, scenes.masks.shape, scenes.factors.shape
((8, 32, 32, 3), (8, 6, 32, 32), (8, 6, 9))
>>> scenes.background_channels
(0, 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lom_pyro.ops import segment_distance

__all__ = [
    "BACKGROUND_CHANNELS",
    "CHUNK_SIZE",
    "DATASETS",
    "FACTOR_NAMES",
    "NUM_CHANNELS",
    "SHAPE_NAMES",
    "ProceduralDataset",
    "ProceduralScenes",
    "generate",
]

#: names accepted by :func:`generate`
DATASETS: tuple[str, ...] = ("stacks", "room", "sprites")

#: number of mask channels K (background channels + object slots)
NUM_CHANNELS: dict[str, int] = {"stacks": 6, "room": 7, "sprites": 5}

#: mask channels that are background (wall/floor/sky), never objects
BACKGROUND_CHANNELS: dict[str, tuple[int, ...]] = {
    "stacks": (0, 1),
    "room": (0, 1, 2, 3),
    "sprites": (0,),
}

#: columns of :attr:`ProceduralScenes.factors`; positions/sizes are fractions of the image size
FACTOR_NAMES: dict[str, tuple[str, ...]] = {
    "stacks": ("x", "y_bottom", "width", "height", "r", "g", "b", "level", "visible"),
    "room": ("x", "depth", "size", "shape", "r", "g", "b", "visible"),
    "sprites": ("x", "y", "size", "shape", "r", "g", "b", "visible"),
}

#: meaning of the ``shape`` factor (its value is the index)
SHAPE_NAMES: dict[str, tuple[str, ...]] = {
    "room": ("box", "ball", "triangle"),
    "sprites": ("square", "circle", "triangle"),
}

#: scenes per random stream; fixed, since it defines which scene a seed gives
CHUNK_SIZE = 64

MIN_IMAGE_SIZE = 32
_MAX_BLOCKS = 4
_SHADING = 0.1  # blocks darken by up to 10 % from left to right (light from the left)


@dataclass(frozen=True, eq=False)
class ProceduralScenes:
    """A batch of generated scenes.

    :ivar name: dataset name, one of :data:`DATASETS`.
    :ivar images: ``uint8`` RGB images, shape ``(N, H, W, 3)``.
    :ivar masks: ``uint8`` one-hot instance masks, shape ``(N, K, H, W)``; every
        pixel is in exactly one channel.
    :ivar factors: ``float32`` per-channel factors, shape ``(N, K, F)``; zero rows
        for background channels and absent objects.
    :ivar factor_names: the ``F`` factor names; includes ``"visible"``.
    :ivar background_channels: indices of the background mask channels.
    """

    name: str
    images: np.ndarray
    masks: np.ndarray
    factors: np.ndarray
    factor_names: tuple[str, ...]
    background_channels: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def model_images(self) -> torch.Tensor:
        """The images as the models take them: ``float32`` in [-1, 1], ``(N, 3, H, W)``.
        (:class:`ProceduralDataset` scales by its ``value_range`` in another order of
        operations, equal within float32 rounding; each is kept because recorded runs resume
        bit-identically with it.)"""
        return torch.from_numpy(self.images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ----------------------------------------------------------------------------- helpers


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; inputs of one shape ``(...)`` in [0, 1], output ``(..., 3)``."""
    h6 = (h % 1.0) * 6.0
    i = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    # rows of the classic sector table: (r, g, b) for sectors 0..5
    table = np.stack(
        [
            np.stack([v, t, p], -1),
            np.stack([q, v, p], -1),
            np.stack([p, v, t], -1),
            np.stack([p, q, v], -1),
            np.stack([t, p, v], -1),
            np.stack([v, p, q], -1),
        ],
        0,
    )  # (6, ..., 3)
    return np.take_along_axis(table, i[None, ..., None].repeat(3, -1), 0)[0]


def _colours(rng: np.random.Generator, shape: tuple[int, ...], sat: tuple[float, float],
             val: tuple[float, float]) -> np.ndarray:
    """Random colours with saturation and value in the given ranges, shape ``(*shape, 3)``."""
    h = rng.random(shape)
    s = rng.uniform(*sat, size=shape)
    v = rng.uniform(*val, size=shape)
    return _hsv_to_rgb(h, s, v)


def _resample_until(
    values: np.ndarray,
    draw: Callable[[int], np.ndarray],
    ok: Callable[[np.ndarray], np.ndarray],
    tries: int = 200,
) -> np.ndarray:
    """Redraw the rows of ``values`` for which ``ok(values)`` is False (rejection sampling).

    :param values: ``(C, ...)`` initial draw, modified in place and returned.
    :param draw: ``draw(k)`` gives ``k`` fresh rows.
    :param ok: ``(C, ...) -> (C,)`` bool; may compare row ``i`` with scene ``i``'s other parameters.
    """
    for _ in range(tries):
        bad = ~ok(values)
        if not bad.any():
            break
        values[bad] = draw(int(bad.sum()))
    return values


def _compose(label_bg: np.ndarray, obj_masks: np.ndarray, num_bg: int) -> np.ndarray:
    """Painter's composition: later object channels cover earlier ones and the background.

    :param label_bg: background label per pixel, ``(C, H, W)`` ints ``< num_bg``.
    :param obj_masks: object silhouettes, ``(C, M, H, W)`` bool.
    :returns: label per pixel, ``(C, H, W)``.
    """
    ids = np.arange(num_bg, num_bg + obj_masks.shape[1], dtype=np.int16)
    top = (obj_masks * ids[None, :, None, None]).max(1)  # highest drawn object id, 0 if none
    return np.where(top > 0, top, label_bg.astype(np.int16))


def _finish(name: str, label: np.ndarray, palette: np.ndarray, shade: np.ndarray | None,
            factors: np.ndarray) -> ProceduralScenes:
    """Turn a label map and per-channel colours into a :class:`ProceduralScenes`.

    :param label: ``(C, H, W)`` channel of each pixel.
    :param palette: ``(C, K, 3)`` colour of each channel in [0, 1].
    :param shade: optional ``(C, K, W)`` brightness per channel and column.
    :param factors: ``(C, K, F)``; rows of objects that ended up invisible are zeroed.
    """
    k = NUM_CHANNELS[name]
    c, h, w = label.shape
    n_idx = np.arange(c)[:, None, None]
    # quantise the few distinct colours first, then gather bytes (much cheaper than floats per pixel)
    if shade is None:
        lut = np.clip(np.rint(palette * 255.0), 0, 255).astype(np.uint8)  # (C, K, 3)
        images = lut[n_idx, label]
    else:
        lut = np.clip(np.rint(palette[:, :, None] * shade[..., None] * 255.0), 0, 255).astype(np.uint8)
        images = lut[n_idx, label, np.arange(w)[None, None, :]]  # (C, H, W, 3)
    masks = (label[:, None] == np.arange(k, dtype=label.dtype)[None, :, None, None]).astype(np.uint8)
    # an object fully hidden behind nearer ones is absent from the image, so from the factors
    seen = masks.reshape(c, k, h * w).any(-1)
    factors = np.where(seen[..., None], factors, 0.0).astype(np.float32)
    return ProceduralScenes(name, images, masks, factors, FACTOR_NAMES[name], BACKGROUND_CHANNELS[name])


def _shape_masks(shape: np.ndarray, cx: np.ndarray, cy: np.ndarray, size: np.ndarray, s: int) -> np.ndarray:
    """Rasterise squares (0), discs (1) and upward triangles (2) at pixel centres.

    :param shape, cx, cy, size: ``(C, M)``: shape id, centre and side length in pixels.
    :returns: ``(C, M, s, s)`` bool.
    """
    coords = np.arange(s, dtype=np.float32) + 0.5
    dx = coords[None, None, None, :] - cx[..., None, None]  # (C, M, 1, W)
    dy = coords[None, None, :, None] - cy[..., None, None]  # (C, M, H, 1)
    half = (size / 2)[..., None, None]
    sq = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    disc = dx * dx + dy * dy <= half * half
    # apex at the top centre, base of width ``size`` at the bottom
    tri = (dy <= half) & (np.abs(dx) <= (dy + half) / 2)
    sid = shape[..., None, None]
    return np.where(sid == 0, sq, np.where(sid == 1, disc, tri))


# ----------------------------------------------------------------------------- stacks


def _stacks(rng: np.random.Generator, c: int, m: int, s: int) -> ProceduralScenes:
    nb = rng.integers(2, _MAX_BLOCKS + 1, c)
    present = np.arange(_MAX_BLOCKS)[None] < nb[:, None]  # (C, 4)
    h = rng.integers(math.ceil(0.13 * s), math.floor(0.2 * s) + 1, (c, _MAX_BLOCKS))
    w = rng.integers(math.ceil(0.16 * s), math.floor(0.32 * s) + 1, (c, _MAX_BLOCKS))
    h, w = h * present, w * present
    margin = max(2, round(0.06 * s))
    horizon = rng.integers(round(0.4 * s), round(0.7 * s) + 1, c)

    # vertical: lowest block's bottom edge below the horizon (on the floor), top inside the frame
    lo = np.maximum(horizon + margin, margin + h.sum(1))
    hi = np.full(c, s - margin)
    lo = np.minimum(lo, hi)
    bottom0 = lo + np.floor(rng.random(c) * (hi - lo + 1)).astype(np.int64)
    bottoms = bottom0[:, None] - np.concatenate([np.zeros((c, 1), np.int64), np.cumsum(h, 1)[:, :-1]], 1)
    tops = bottoms - h

    # horizontal: each block shifted relative to its support, then the stack checked for balance
    def offsets(k: int, widths: np.ndarray) -> np.ndarray:
        centre = np.cumsum(
            np.concatenate([widths[:, :1] / 2, rng.uniform(-0.35, 0.35, (k, _MAX_BLOCKS - 1)) * widths[:, :-1]], 1),
            1,
        )
        return np.rint(centre - widths / 2).astype(np.int64)

    def balanced(left: np.ndarray, widths: np.ndarray, heights: np.ndarray, pres: np.ndarray) -> np.ndarray:
        centre = left + widths / 2
        mass = widths * heights * pres
        ok = np.ones(left.shape[0], bool)
        for j in range(_MAX_BLOCKS - 1):
            # centre of mass of everything above block j lies over block j (≥ 1 px inside)
            above = mass[:, j + 1 :]
            total = above.sum(1)
            com = (above * centre[:, j + 1 :]).sum(1) / np.maximum(total, 1)
            inside = (com >= left[:, j] + 1) & (com <= left[:, j] + widths[:, j] - 1)
            # and the block right above has its own centre over block j
            own = (centre[:, j + 1] >= left[:, j] + 1) & (centre[:, j + 1] <= left[:, j] + widths[:, j] - 1)
            ok &= (total == 0) | (inside & own)
        return ok

    left = offsets(c, w)
    for _ in range(50):
        bad = ~balanced(left, w, h, present)
        if not bad.any():
            break
        left[bad] = offsets(int(bad.sum()), w[bad])
    bad = ~balanced(left, w, h, present)
    left[bad] = np.rint((w[bad, :1] - w[bad]) / 2).astype(np.int64)  # fall back to a centred stack

    big = 10 * s
    span_l = np.where(present, left, big).min(1)
    span_r = np.where(present, left + w, -big).max(1)
    room = np.maximum(s - 2 * margin - (span_r - span_l), 0)
    shift = margin + np.floor(rng.random(c) * (room + 1)).astype(np.int64) - span_l
    left = left + shift[:, None]

    # colours: wall and floor greyish and distinct; blocks saturated, far from both and from their support
    def bg(k: int) -> np.ndarray:
        return _colours(rng, (k, 2), (0.0, 0.3), (0.3, 0.95))

    wf = _resample_until(bg(c), bg, lambda x: np.linalg.norm(x[:, 0] - x[:, 1], axis=-1) >= 0.2)
    wall, floor = wf[:, 0], wf[:, 1]
    blocks = np.zeros((c, _MAX_BLOCKS, 3))
    for j in range(_MAX_BLOCKS):
        below = blocks[:, j - 1] if j else None

        def ok(x: np.ndarray, below: np.ndarray | None = below) -> np.ndarray:
            fine = segment_distance(x, wall, floor) >= 0.35
            if below is not None:
                fine &= np.linalg.norm(x - below, axis=-1) >= 0.35
                # the blurred seam between two blocks must not look like wall or floor either
                for t in (0.25, 0.5, 0.75):
                    fine &= segment_distance(t * x + (1 - t) * below, wall, floor) >= 0.25
            return fine

        def draw(k: int) -> np.ndarray:
            return _colours(rng, (k,), (0.5, 1.0), (0.55, 1.0))

        blocks[:, j] = _resample_until(draw(c), draw, ok)

    # draw only the first m scenes; the parameters of all c were drawn so that prefixes are stable
    left, w, h, tops, bottoms, present = (a[:m] for a in (left, w, h, tops, bottoms, present))
    horizon, wall, floor, blocks = horizon[:m], wall[:m], floor[:m], blocks[:m]
    cols = np.arange(s)
    in_x = (cols[None, None] >= left[..., None]) & (cols[None, None] < (left + w)[..., None])  # (m, 4, W)
    in_y = (cols[None, None] >= tops[..., None]) & (cols[None, None] < bottoms[..., None])  # (m, 4, H)
    obj = in_y[..., :, None] & in_x[..., None, :] & present[..., None, None]
    label_bg = np.broadcast_to((cols[None, :, None] >= horizon[:, None, None]).astype(np.int16), (m, s, s))
    label = _compose(label_bg, obj, 2)

    palette = np.concatenate([wall[:, None], floor[:, None], blocks], 1)  # (m, 6, 3)
    u = np.clip((cols[None, None] + 0.5 - left[..., None]) / np.maximum(w, 1)[..., None], 0.0, 1.0)
    shade = np.concatenate([np.ones((m, 2, s)), 1.0 - _SHADING * u], 1)  # (m, 6, W)

    fac = np.zeros((m, 6, 9))
    fac[:, 2:] = np.stack(
        [
            (left + w / 2) / s,
            bottoms / s,
            w / s,
            h / s,
            blocks[..., 0],
            blocks[..., 1],
            blocks[..., 2],
            np.broadcast_to(np.arange(_MAX_BLOCKS, dtype=float), (m, _MAX_BLOCKS)),
            np.ones((m, _MAX_BLOCKS)),
        ],
        -1,
    ) * present[..., None]
    return _finish("stacks", label, palette, shade, fac)


# ----------------------------------------------------------------------------- room

_ROOM_OBJECTS = 3


def _room(rng: np.random.Generator, c: int, m: int, s: int) -> ProceduralScenes:
    horizon = rng.uniform(0.4, 0.55, c) * s  # floor's far edge at the corner
    corner = rng.uniform(0.3, 0.7, c) * s
    slope = rng.uniform(0.0, 0.25, c)  # floor edge drops away from the corner
    sky = rng.uniform(0.12, 0.3, c) * s  # wall's top edge at the corner
    sky_slope = rng.uniform(0.0, 1.0, c) * slope  # wall top rises away from the corner

    def backdrop(k: int) -> np.ndarray:
        sky_col = _colours(rng, (k,), (0.1, 0.6), (0.6, 1.0))
        wall = _colours(rng, (k,), (0.2, 0.8), (0.45, 0.95))
        dim = rng.uniform(0.65, 0.85, (k, 1))  # the right half is in shadow
        floor = _colours(rng, (k,), (0.1, 0.7), (0.3, 0.9))
        return np.stack([sky_col, wall, wall * dim, floor], 1)  # (k, 4, 3)

    def distinct(x: np.ndarray) -> np.ndarray:
        d = lambda i, j: np.linalg.norm(x[:, i] - x[:, j], axis=-1)  # noqa: E731
        return (d(0, 1) >= 0.2) & (d(0, 2) >= 0.2) & (d(1, 3) >= 0.2) & (d(2, 3) >= 0.2) & (d(1, 2) >= 0.08)

    backgrounds = _resample_until(backdrop(c), backdrop, distinct)  # sky, left, right, floor

    n_obj = rng.integers(1, _ROOM_OBJECTS + 1, c)
    present = np.arange(_ROOM_OBJECTS)[None] < n_obj[:, None]
    depth0 = rng.uniform(0.05, 0.9, (c, _ROOM_OBJECTS))
    size = s * (0.34 - 0.2 * depth0) * rng.uniform(0.85, 1.15, (c, _ROOM_OBJECTS))
    x = rng.uniform(size / 2, s - size / 2)
    bottom = s - depth0 * (s - horizon[:, None])
    # stand on the floor: the whole base (1 px margin) below the floor's far edge
    reach = np.maximum(np.abs(x - size / 2 - corner[:, None]), np.abs(x + size / 2 - corner[:, None]))
    bottom = np.minimum(np.maximum(bottom, horizon[:, None] + slope[:, None] * reach + 1.0), s)
    depth = (s - bottom) / (s - horizon[:, None])
    shape = rng.integers(0, 3, (c, _ROOM_OBJECTS))

    obj_col = np.zeros((c, _ROOM_OBJECTS, 3))
    for j in range(_ROOM_OBJECTS):
        prev = obj_col[:, :j]

        def ok(col: np.ndarray, prev: np.ndarray = prev) -> np.ndarray:
            fine = np.linalg.norm(col[:, None] - backgrounds, axis=-1).min(1) >= 0.3
            if prev.shape[1]:
                fine &= np.linalg.norm(col[:, None] - prev, axis=-1).min(1) >= 0.2
            return fine

        def draw(k: int) -> np.ndarray:
            return _colours(rng, (k,), (0.5, 1.0), (0.5, 1.0))

        obj_col[:, j] = _resample_until(draw(c), draw, ok)

    # back to front, so that nearer objects are drawn last and occlude; absent ones last of all
    order = np.argsort(np.where(present, bottom, np.inf), axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order, 1)  # noqa: E731
    present, size, x, bottom, depth, shape = map(take, (present, size, x, bottom, depth, shape))
    obj_col = np.take_along_axis(obj_col, order[..., None], 1)

    present, size, x, bottom, depth, shape, obj_col = (a[:m] for a in (present, size, x, bottom, depth, shape, obj_col))
    horizon, corner, slope, sky, sky_slope, backgrounds = (
        a[:m] for a in (horizon, corner, slope, sky, sky_slope, backgrounds)
    )
    coords = np.arange(s, dtype=np.float64) + 0.5
    dist = np.abs(coords[None, None, :] - corner[:, None, None])  # (m, 1, W)
    yy = coords[None, :, None]
    is_floor = yy >= horizon[:, None, None] + slope[:, None, None] * dist
    is_sky = yy < sky[:, None, None] - sky_slope[:, None, None] * dist
    right = coords[None, None, :] >= corner[:, None, None]
    label_bg = np.where(is_floor, 3, np.where(is_sky, 0, np.where(right, 2, 1))).astype(np.int16)
    obj = _shape_masks(shape, x, bottom - size / 2, size, s) & present[..., None, None]
    label = _compose(label_bg, obj, 4)

    palette = np.concatenate([backgrounds, obj_col], 1)  # (m, 7, 3)
    fac = np.zeros((m, 7, 8))
    fac[:, 4:] = np.stack(
        [x / s, depth, size / s, shape, obj_col[..., 0], obj_col[..., 1], obj_col[..., 2], np.ones_like(x)], -1
    ) * present[..., None]
    return _finish("room", label, palette, None, fac)


# ----------------------------------------------------------------------------- sprites

_SPRITES = 4


def _sprites(rng: np.random.Generator, c: int, m: int, s: int) -> ProceduralScenes:
    bg = _colours(rng, (c,), (0.0, 0.5), (0.0, 0.3))
    n_obj = rng.integers(1, _SPRITES + 1, c)
    present = np.arange(_SPRITES)[None] < n_obj[:, None]
    size = rng.uniform(0.18, 0.36, (c, _SPRITES)) * s
    cx = rng.uniform(size / 2, s - size / 2)
    cy = rng.uniform(size / 2, s - size / 2)
    shape = rng.integers(0, 3, (c, _SPRITES))
    col = np.zeros((c, _SPRITES, 3))
    for j in range(_SPRITES):
        prev = col[:, :j]

        def ok(x: np.ndarray, prev: np.ndarray = prev) -> np.ndarray:
            fine = np.linalg.norm(x - bg, axis=-1) >= 0.35
            if prev.shape[1]:
                fine &= np.linalg.norm(x[:, None] - prev, axis=-1).min(1) >= 0.2
            return fine

        def draw(k: int) -> np.ndarray:
            return _colours(rng, (k,), (0.4, 1.0), (0.6, 1.0))

        col[:, j] = _resample_until(draw(c), draw, ok)

    bg, present, size, cx, cy, shape, col = (a[:m] for a in (bg, present, size, cx, cy, shape, col))
    obj = _shape_masks(shape, cx, cy, size, s) & present[..., None, None]
    label = _compose(np.zeros((m, s, s), np.int16), obj, 1)
    palette = np.concatenate([bg[:, None], col], 1)
    fac = np.zeros((m, 5, 8))
    fac[:, 1:] = np.stack(
        [cx / s, cy / s, size / s, shape, col[..., 0], col[..., 1], col[..., 2], np.ones_like(cx)], -1
    ) * present[..., None]
    return _finish("sprites", label, palette, None, fac)


_GENERATORS = {"stacks": _stacks, "room": _room, "sprites": _sprites}


# ----------------------------------------------------------------------------- public API


def _check(name: str, image_size: int, seed: int) -> None:
    if name not in DATASETS:
        raise ValueError(f"name: expected one of {DATASETS}, got {name!r}")
    if not isinstance(image_size, (int, np.integer)) or image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size: expected an int >= {MIN_IMAGE_SIZE}, got {image_size!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")


def _chunk(name: str, image_size: int, seed: int, index: int, count: int) -> ProceduralScenes:
    """The first ``count`` scenes of chunk ``index`` (parameters are drawn for the whole chunk)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), DATASETS.index(name), int(index)]))
    return _GENERATORS[name](rng, CHUNK_SIZE, count, int(image_size))


def generate(name: str, n: int, image_size: int = 64, seed: int = 0) -> ProceduralScenes:
    """Generate ``n`` scenes of one procedural dataset.

    :param name: ``"stacks"``, ``"room"`` or ``"sprites"``.
    :param n: number of scenes, ``>= 0``.
    :param image_size: height = width in pixels, ``>= 32``.
    :param seed: non-negative seed; the same arguments always give the same arrays, and
        ``generate(name, n, ...)`` is a prefix of ``generate(name, m, ...)`` for ``n <= m``.
    :returns: images ``(n, H, W, 3)``, masks ``(n, K, H, W)`` and factors ``(n, K, F)``.

    >>> s = generate("room", 4, image_size=32, seed=1)
    >>> bool((s.masks.sum(1) == 1).all())
    True
    """
    _check(name, image_size, seed)
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n: expected a non-negative int, got {n!r}")
    parts = [
        _chunk(name, image_size, seed, i, min(CHUNK_SIZE, n - i * CHUNK_SIZE))
        for i in range(max(1, math.ceil(n / CHUNK_SIZE)))
    ]
    return ProceduralScenes(
        name,
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.masks for p in parts]),
        np.concatenate([p.factors for p in parts]),
        FACTOR_NAMES[name],
        BACKGROUND_CHANNELS[name],
    )


class ProceduralDataset(IterableDataset):
    """Stream procedural scenes for training, endless or ``n`` long.

    The stream is the sequence of :func:`generate` split into chunks of
    :data:`CHUNK_SIZE`; DataLoader worker ``i`` of ``W`` produces chunks
    ``i, i + W, i + 2W, ...``. Workers therefore never repeat each other, each
    worker's stream depends only on ``(seed, i, W)``, and all workers together
    yield exactly ``generate(name, n, image_size, seed)`` (up to interleaving).
    Iterating again restarts the same stream.

    :param name: dataset name, one of :data:`DATASETS`.
    :param image_size: height = width in pixels, ``>= 32``.
    :param seed: non-negative seed.
    :param value_range: ``(low, high)`` that pixel values 0 and 255 map to.
    :param n: total number of scenes, or ``None`` for an endless stream.
    :param start: skip the stream's first ``start`` scenes (a resumed run continues where
        it stopped; only whole chunks before ``start`` are skipped without being drawn).

    Each item is ``{"image": float32 (3, H, W), "masks": uint8 (K, H, W)}``.

    >>> ds = ProceduralDataset("sprites", image_size=32, n=2)
    >>> [tuple(x["image"].shape) for x in ds]
    [(3, 32, 32), (3, 32, 32)]
    """

    def __init__(
        self,
        name: str,
        image_size: int = 64,
        seed: int = 0,
        value_range: tuple[float, float] = (-1.0, 1.0),
        n: int | None = None,
        start: int = 0,
    ) -> None:
        super().__init__()
        _check(name, image_size, seed)
        if n is not None and (not isinstance(n, (int, np.integer)) or n < 0):
            raise ValueError(f"n: expected None or a non-negative int, got {n!r}")
        if not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"start: expected a non-negative int, got {start!r}")
        if len(value_range) != 2 or not float(value_range[0]) < float(value_range[1]):
            raise ValueError(f"value_range: expected (low, high) with low < high, got {value_range!r}")
        self.name = name
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.n = None if n is None else int(n)
        self.start = int(start)

    def __len__(self) -> int:
        if self.n is None:
            raise TypeError("an endless ProceduralDataset (n=None) has no length")
        return max(0, self.n - self.start)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        low, high = self.value_range
        first, skip = divmod(self.start, CHUNK_SIZE)
        index = first + worker
        while self.n is None or index * CHUNK_SIZE < self.n:
            count = CHUNK_SIZE if self.n is None else min(CHUNK_SIZE, self.n - index * CHUNK_SIZE)
            scenes = _chunk(self.name, self.image_size, self.seed, index, count)
            images = torch.from_numpy(scenes.images).permute(0, 3, 1, 2).float()
            images = images.mul_((high - low) / 255.0).add_(low)  # (count, 3, H, W)
            masks = torch.from_numpy(scenes.masks)
            for i in range(skip if index == first else 0, count):
                yield {"image": images[i], "masks": masks[i]}
            index += workers
