"""Figures: image grids, slot-coloured masks, per-slot components, labelled panels, GIFs, curves.

Plain torch + PIL (no matplotlib). Images are ``(N, 3, H, W)`` floats in
``[0, 1]``; figures come back as ``uint8`` arrays ``(H, W, 3)`` and are
written with :func:`save_png` / :func:`save_gif`.

Masks are coloured by slot index with the fixed :data:`PALETTE`: slot ``k``
always gets the same colour, so segmentations of different images and
models can be compared at a glance (the paper's "masks coloured by slot
index").
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

__all__ = [
    "PALETTE",
    "image_grid",
    "colour_masks",
    "slot_components",
    "to_uint8",
    "save_png",
    "save_gif",
    "panel",
    "plot_curves",
]

#: RGB colours of slots 0, 1, 2, ... (cycled beyond its length); chosen to
#: be distinct from each other and from black/white.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (0, 130, 200),  # blue
    (255, 225, 25),  # yellow
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (170, 110, 40),  # brown
    (0, 128, 128),  # teal
    (250, 190, 212),  # pink
    (128, 128, 0),  # olive
    (220, 190, 255),  # lavender
    (0, 0, 128),  # navy
    (170, 255, 195),  # mint
    (128, 0, 0),  # maroon
)

ArrayLike = Tensor | np.ndarray


def _images(x: ArrayLike, name: str = "images") -> Tensor:
    t = torch.as_tensor(x).detach().cpu()
    if t.ndim != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have shape (N, 3, H, W) (or one channel), got {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    t = t.float().clamp(0.0, 1.0)
    return t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t


def to_uint8(x: ArrayLike) -> np.ndarray:
    """An image as a ``uint8`` array ``(H, W, 3)`` or ``(H, W)``.

    Accepts ``(3, H, W)`` / ``(1, H, W)`` tensors or arrays (channels first),
    ``(H, W, 3)`` arrays (channels last), ``(H, W)`` grey images; floats are
    taken to be in ``[0, 1]``.
    """
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    elif a.ndim == 3 and a.shape[0] in (1, 3) and isinstance(x, Tensor):
        a = np.moveaxis(a, 0, -1)  # tensors are channels-first by convention
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise ValueError(f"expected an image (3, H, W), (H, W, 3) or (H, W), got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.round(np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(a)


def image_grid(images: ArrayLike, nrow: int = 8, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile images into one ``uint8`` array ``(H', W', 3)``.

    :param images: ``(N, 3, H, W)`` in ``[0, 1]``.
    :param nrow: images per row (as in torchvision's ``make_grid``).
    :param padding: pixels between images and around the border.
    :param pad_value: grey level of the padding in ``[0, 1]``.
    :returns: ``(rows * (H + p) + p, ncol * (W + p) + p, 3)`` with
        ``ncol = min(nrow, N)``.
    """
    x = _images(images)
    if nrow < 1 or padding < 0:
        raise ValueError(f"nrow must be >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    n, _, h, w = x.shape
    ncol = min(nrow, max(n, 1))
    rows = max(1, math.ceil(n / ncol))
    grid = torch.full((3, rows * (h + padding) + padding, ncol * (w + padding) + padding), float(pad_value))
    for i in range(n):
        r, c = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[:, top : top + h, left : left + w] = x[i]
    return to_uint8(grid)


def colour_masks(masks: ArrayLike, blend: bool = False, palette: Sequence[tuple[int, int, int]] = PALETTE) -> Tensor:
    """Colour each pixel by its argmax slot: slot ``k`` gets ``palette[k % len(palette)]``.

    :param masks: ``(N, K, H, W)`` mask probabilities.
    :param blend: scale each colour by the winning slot's probability
        (uncertain pixels fade to black).
    :returns: ``(N, 3, H, W)`` float in ``[0, 1]``.
    """
    m = torch.as_tensor(masks).detach().cpu().float()
    if m.ndim != 4:
        raise ValueError(f"masks must have shape (N, K, H, W), got {tuple(m.shape)}")
    if not palette:
        raise ValueError("palette must hold at least one colour")
    k = m.shape[1]
    colours = torch.tensor([palette[i % len(palette)] for i in range(k)], dtype=torch.float32) / 255.0  # (K, 3)
    conf, idx = m.max(dim=1)  # (N, H, W)
    out = colours[idx].permute(0, 3, 1, 2)  # (N, 3, H, W)
    return out * conf.clamp(0.0, 1.0)[:, None] if blend else out


def slot_components(rgb: ArrayLike, masks: ArrayLike, background: float = 1.0) -> Tensor:
    """Each slot's appearance shown through its mask: ``m x + (1 - m) background``.

    :param rgb: per-slot images ``(N, K, 3, H, W)`` in ``[0, 1]``.
    :param masks: ``(N, K, H, W)`` mask probabilities.
    :param background: grey level outside the mask.
    :returns: ``(N, K, 3, H, W)``.
    """
    x, m = torch.as_tensor(rgb).detach().cpu().float(), torch.as_tensor(masks).detach().cpu().float()
    if x.ndim != 5 or x.shape[2] != 3 or m.shape != x.shape[:2] + x.shape[3:]:
        raise ValueError(f"rgb must be (N, K, 3, H, W) and masks (N, K, H, W), got {tuple(x.shape)}, {tuple(m.shape)}")
    m = m[:, :, None]
    return m * x.clamp(0.0, 1.0) + (1.0 - m) * background


def save_png(image: ArrayLike, path: str | os.PathLike[str]) -> Path:
    """Write an image (see :func:`to_uint8`; a batch ``(N, 3, H, W)`` becomes a grid) as PNG."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    a = image_grid(image) if np.ndim(image) == 4 else to_uint8(image)
    Image.fromarray(a).save(p, format="PNG")
    return p


def save_gif(frames: Sequence[ArrayLike], path: str | os.PathLike[str], duration: int = 100, loop: int = 0) -> Path:
    """Write frames as an animated GIF (e.g. a SLERP between two prior samples).

    :param frames: images as accepted by :func:`to_uint8`, all the same size
        (a batch ``(N, 3, H, W)`` frame becomes a grid).
    :param duration: milliseconds per frame.
    :param loop: 0 loops forever.
    """
    if len(frames) == 0:
        raise ValueError("frames must not be empty")
    arrays = [image_grid(f) if np.ndim(f) == 4 else to_uint8(f) for f in frames]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"frames must share one size, got {sorted({a.shape for a in arrays})}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    pil = [Image.fromarray(a).convert("RGB") for a in arrays]
    pil[0].save(p, format="GIF", save_all=True, append_images=pil[1:], duration=duration, loop=loop)
    return p


_Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def _font(size: int = 12) -> _Font:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: _Font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return int(right - left), int(bottom - top)


def panel(
    rows: Mapping[str, ArrayLike],
    path: str | os.PathLike[str] | None = None,
    padding: int = 2,
    scale: int = 1,
    font_size: int = 12,
) -> np.ndarray:
    """A labelled figure: one row of images per entry, its name on the left.

    Used for "inputs / reconstructions / segmentations / samples" figures;
    rows may hold different numbers of images but share ``H`` and ``W``.

    :param rows: name -> ``(N_r, 3, H, W)`` images in ``[0, 1]`` (colour
        masks first with :func:`colour_masks`).
    :param path: if given, the figure is also written there as PNG.
    :param scale: integer nearest-neighbour upscaling of the images.
    :returns: ``uint8`` ``(R * (scale H + p) + p, label_w + C * (scale W + p) + p, 3)``
        where ``C`` is the longest row.
    """
    if not rows:
        raise ValueError("rows must hold at least one named row")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    tensors = {name: _images(x, f"rows[{name!r}]") for name, x in rows.items()}
    shapes = {t.shape[2:] for t in tensors.values()}
    if len(shapes) != 1:
        raise ValueError(f"all rows must share image height and width, got {sorted(tuple(s) for s in shapes)}")
    h, w = (s * scale for s in next(iter(shapes)))
    ncol = max(t.shape[0] for t in tensors.values())
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(_text_size(probe, name, font)[0] for name in tensors) + 2 * padding + 4
    width = label_w + ncol * (w + padding) + padding
    height = len(tensors) * (h + padding) + padding
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (name, imgs) in enumerate(tensors.items()):
        top = padding + r * (h + padding)
        _, th = _text_size(draw, name, font)
        draw.text((padding + 2, top + (h - th) // 2), name, fill=(0, 0, 0), font=font)
        for c in range(imgs.shape[0]):
            tile = Image.fromarray(to_uint8(imgs[c]))
            if scale > 1:
                tile = tile.resize((w, h), Image.Resampling.NEAREST)
            canvas.paste(tile, (label_w + c * (w + padding), top))
    out = np.asarray(canvas)
    if path is not None:
        save_png(out, path)
    return out


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def plot_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str] | None = None,
    size: tuple[int, int] = (640, 400),
    title: str | None = None,
    xlabel: str = "step",
    logy: bool = False,
) -> np.ndarray:
    """A line plot of learning curves drawn with PIL: axes, ticks, legend.

    :param curves: name -> values (x is the index; non-finite values are skipped).
    :param path: if given, also written there as PNG.
    :param size: ``(width, height)`` in pixels.
    :param logy: logarithmic y axis (values must be positive).
    :returns: ``uint8`` ``(height, width, 3)``.
    """
    width, height = size
    if width < 100 or height < 80:
        raise ValueError(f"size must be at least (100, 80), got {size}")
    series = {k: np.asarray(v, dtype=np.float64) for k, v in curves.items()}
    if not series or all(v.size == 0 for v in series.values()):
        raise ValueError("curves must hold at least one non-empty series")
    if logy:
        if any((v[np.isfinite(v)] <= 0).any() for v in series.values()):
            raise ValueError("logy needs positive values")
        series = {k: np.log10(v) for k, v in series.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in series.values()])
    if finite.size == 0:
        raise ValueError("curves hold no finite value")
    ylo, yhi = float(finite.min()), float(finite.max())
    if yhi == ylo:
        ylo, yhi = ylo - 0.5, yhi + 0.5
    margin = 0.05 * (yhi - ylo)
    ylo, yhi = ylo - margin, yhi + margin
    xmax = max(max(v.size - 1 for v in series.values()), 1)

    font = _font(11)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, width - 15, 28 if title else 12, height - 36

    def tx(x: float) -> float:
        return left + (right - left) * x / xmax

    def ty(y: float) -> float:
        return bottom - (bottom - top) * (y - ylo) / (yhi - ylo)

    for y in _nice_ticks(ylo, yhi):
        py = ty(y)
        draw.line([(left, py), (right, py)], fill=(230, 230, 230))
        label = f"{10**y:.3g}" if logy else f"{y:.4g}"
        tw, th = _text_size(draw, label, font)
        draw.text((left - tw - 5, py - th / 2 - 1), label, fill=(0, 0, 0), font=font)
    for x in _nice_ticks(0, xmax):
        px = tx(x)
        draw.line([(px, bottom), (px, bottom + 4)], fill=(0, 0, 0))
        label = f"{x:.4g}"
        tw, _ = _text_size(draw, label, font)
        draw.text((px - tw / 2, bottom + 6), label, fill=(0, 0, 0), font=font)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=(0, 0, 0), width=1)
    xw, _ = _text_size(draw, xlabel, font)
    draw.text(((left + right - xw) / 2, height - 16), xlabel, fill=(0, 0, 0), font=font)
    if title:
        tw, _ = _text_size(draw, title, font)
        draw.text(((width - tw) / 2, 8), title, fill=(0, 0, 0), font=font)

    for i, (name, v) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        ok = np.isfinite(v)
        # Draw each finite run separately so gaps stay gaps.
        run: list[tuple[float, float]] = []
        for x, (y, good) in enumerate(zip(v, ok, strict=True)):
            if good:
                run.append((tx(x), ty(float(y))))
            if (not good or x == v.size - 1) and run:
                if len(run) == 1:
                    (px, py) = run[0]
                    draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
                else:
                    draw.line(run, fill=colour, width=2)
                run = []
        # Legend, top right.
        tw, th = _text_size(draw, name, font)
        ly = top + 6 + i * (th + 6)
        draw.line([(right - tw - 34, ly + th / 2 + 1), (right - tw - 14, ly + th / 2 + 1)], fill=colour, width=3)
        draw.text((right - tw - 8, ly), name, fill=(0, 0, 0), font=font)
    out = np.asarray(img)
    if path is not None:
        save_png(out, path)
    return out
