"""Crop and resize helpers shared by the converters and the EfficientMORL reader.

Images are resized with PIL's bilinear filter (antialiased when shrinking, as
``torchvision.transforms.Resize`` does on PIL images); masks and label maps with PIL's
nearest-neighbour sampling, applied as a cached index map so that K channels cost one
numpy gather instead of K PIL calls.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

__all__ = ["CLEVR_CROP", "center_crop_box", "crop_resize_image", "crop_resize_masks"]

#: ``(top, bottom, left, right)``: the 192×192 CLEVR crop, rows 29:221, cols 64:256.
CLEVR_CROP = (29, 221, 64, 256)


def center_crop_box(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of a centred ``size``×``size`` crop (torchvision rounding)."""
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return top, top + size, left, left + size


@functools.cache
def _nearest_index(src: int, dst: int) -> np.ndarray:
    """Source index that PIL's NEAREST resize picks for each of ``dst`` outputs, (dst,) int64."""
    ramp = Image.fromarray(np.arange(src, dtype=np.int32)[None, :].repeat(2, axis=0), mode="I")
    return np.asarray(ramp.resize((dst, 2), Image.Resampling.NEAREST), dtype=np.int64)[0]


def crop_resize_image(image: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Crop ``image`` (H, W, 3) uint8 to ``box`` and resize bilinearly to (size, size, 3) uint8."""
    top, bottom, left, right = box
    pil = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(pil, dtype=np.uint8)


def crop_resize_masks(masks: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Crop ``masks`` (..., H, W) to ``box`` and resize with nearest sampling to (..., size, size)."""
    top, bottom, left, right = box
    rows = top + _nearest_index(bottom - top, size)
    cols = left + _nearest_index(right - left, size)
    return masks[..., rows[:, None], cols[None, :]]
