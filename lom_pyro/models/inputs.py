"""What a LOM takes as images ``x``, checked at the door: one ValueError naming ``x`` and
what is expected, instead of an error deep inside a Pyro plate or a torch kernel."""

from __future__ import annotations

import warnings

import torch
from pyro.distributions.util import is_validation_enabled
from torch import Tensor

__all__ = ["check_images", "check_sampling"]


def check_images(x: Tensor, image_shape: tuple[int, ...], dtype: torch.dtype) -> None:
    """Refuse images the model cannot take: not a ``(B, *image_shape)`` tensor, an empty
    batch, or a dtype other than the model's (``dtype``). Under Pyro validation also refuse
    NaN/inf and warn about values outside [-1, 1], the range the orderless models expect
    (checking values costs a host sync, so training, which runs without validation, skips it)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a tensor of images (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(f"x must have shape (B, {', '.join(map(str, image_shape))}), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one image, got an empty batch (0 images)")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor in [-1, 1], got dtype {x.dtype}")
    if x.dtype != dtype:
        raise ValueError(f"x must have the model's dtype {dtype}, got {x.dtype} (convert with x.to({dtype}))")
    if is_validation_enabled():
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or infinite values")
        low, high = float(x.min()), float(x.max())
        if low < -1.0 or high > 1.0:
            warnings.warn(f"x should hold images in [-1, 1], got values in [{low:.3g}, {high:.3g}] (images in "
                          f"[0, 255] or [0, 1] scale to [-1, 1] as x / 127.5 - 1 or 2 * x - 1)", stacklevel=5)


def check_sampling(n: int, temperature: float) -> None:
    """One sentence unless ``n >= 1`` samples at a temperature ``>= 0`` are asked for."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
