"""Hand labelling of generated images, for the structure accuracy S-Acc.

The paper labels 100 generated ShapeStacks images by hand: an image counts
as correct when every block of its stack touches the next. :func:`write_labelling_sheet`
writes a numbered contact sheet, a CSV to fill in and instructions;
:func:`read_labelling_sheet` reads the filled CSV back as an accuracy.
(On procedural stacks, ``lom_pyro.metrics.structure`` computes S-Acc
automatically.)
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

__all__ = ["SHEET_PNG", "SHEET_CSV", "SHEET_README", "contact_sheet", "write_labelling_sheet", "read_labelling_sheet"]

SHEET_PNG = "sheet.png"
SHEET_CSV = "labels.csv"
SHEET_README = "README.txt"

_TRUE = {"1", "y", "yes", "true", "t"}
_FALSE = {"0", "n", "no", "false", "f"}

_README = """\
Structure accuracy (S-Acc) labelling sheet
==========================================

{png} shows {n} generated images, numbered 0 to {last} (left to right, top
to bottom). For each image, decide whether the stack is physically
plausible: ALL blocks of the stack touch each other (no floating or
detached block).

Fill in the `label` column of {csv} for every row:
  1 (or y / yes)  -- all blocks touch
  0 (or n / no)   -- some block does not touch the stack

Leave the `index` column as it is. Then compute the accuracy with

    from lom_pyro.metrics import read_labelling_sheet
    read_labelling_sheet("{csv_path}")
"""


def contact_sheet(images: Tensor, ncol: int, scale: int, first_number: int = 0) -> Image.Image:
    """Numbered images on one sheet, upscaled ``scale`` times with nearest neighbours (so any
    blur is the image's, not the sheet's), for counting or labelling by eye.

    :param images: ``(N, 3, H, W)`` floats in ``[0, 1]``.
    :param first_number: the number written above the first image; the rest count up.
    """
    n, _, h, w = images.shape
    th, tw = h * scale, w * scale
    caption, pad = 16, 4
    rows = math.ceil(n / ncol)
    sheet = Image.new("RGB", (ncol * (tw + pad) + pad, rows * (th + caption + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    pixels = np.round(images.permute(0, 2, 3, 1).numpy() * 255.0).astype(np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        left, top = pad + c * (tw + pad), pad + r * (th + caption + pad)
        draw.text((left + 2, top + 1), str(first_number + i), fill=(0, 0, 0), font=font)
        tile = Image.fromarray(pixels[i]).resize((tw, th), Image.Resampling.NEAREST)
        sheet.paste(tile, (left, top + caption))
    return sheet


def write_labelling_sheet(
    images: Tensor | np.ndarray, out_dir: str | os.PathLike[str], ncol: int = 10, scale: int | None = None
) -> Path:
    """Write ``sheet.png`` (numbered images), ``labels.csv`` (``index,label``, labels empty) and ``README.txt``.

    :param images: ``(N, 3, H, W)`` in ``[0, 1]``.
    :param out_dir: folder to write into (created; existing sheet files are
        not overwritten, to protect filled-in labels).
    :param ncol: images per row of the sheet.
    :param scale: integer upscaling of each image; default enlarges small
        images to at least 128 pixels.
    :returns: the path of the CSV to fill in.
    """
    x = torch.as_tensor(images).detach().cpu()
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[0] == 0:
        raise ValueError(f"images must have shape (N >= 1, 3, H, W), got {tuple(x.shape)}")
    if ncol < 1:
        raise ValueError(f"ncol must be >= 1, got {ncol}")
    x = x.float().clamp(0.0, 1.0)
    scale = scale if scale is not None else max(1, math.ceil(128 / max(x.shape[2], x.shape[3])))
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / SHEET_CSV
    if csv_path.exists():
        raise FileExistsError(f"{csv_path} exists; refusing to overwrite labels (choose another out_dir)")
    contact_sheet(x, min(ncol, x.shape[0]), scale).save(out / SHEET_PNG)
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label"])
        writer.writerows([i, ""] for i in range(x.shape[0]))
    (out / SHEET_README).write_text(
        _README.format(png=SHEET_PNG, csv=SHEET_CSV, n=x.shape[0], last=x.shape[0] - 1, csv_path=csv_path)
    )
    return csv_path


def read_labelling_sheet(csv_path: str | os.PathLike[str]) -> float:
    """Accuracy (fraction labelled 1/y/yes/true) from a filled ``index,label`` CSV.

    :raises ValueError: naming the row (file line and image index) of a
        missing, unrecognised or duplicated entry, or a wrong header.
    """
    path = Path(csv_path)
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["index", "label"]:
            raise ValueError(f"{path}: the first line must be the header 'index,label', got {header}")
        labels: dict[int, bool] = {}
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line
            index_text = row[0].strip()
            try:
                index = int(index_text)
            except ValueError:
                raise ValueError(f"{path}, line {line}: index {index_text!r} is not an integer") from None
            value = row[1].strip().lower() if len(row) > 1 else ""
            if not value:
                raise ValueError(f"{path}, line {line}: image {index} has no label (expected 1/0 or y/n)")
            if value not in _TRUE | _FALSE:
                raise ValueError(f"{path}, line {line}: image {index} has label {row[1]!r}, expected 1/0 or y/n")
            if index in labels:
                raise ValueError(f"{path}, line {line}: image {index} is labelled twice")
            labels[index] = value in _TRUE
    if not labels:
        raise ValueError(f"{path} holds no labelled rows")
    return sum(labels.values()) / len(labels)
