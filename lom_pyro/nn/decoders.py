"""Slot decoders (docs/design.md §1): EMORL's spatial broadcast decoder ("iodine" variant by
default) and GENESIS-v2's broadcast-and-upsample decoder."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["SpatialBroadcastDecoder", "BroadcastDeconvDecoder", "position_ramps", "pixel_coordinates"]

_RGB_ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "none": lambda t: t}


def position_ramps(height: int, width: int, *, device=None, dtype=None) -> Tensor:
    """Four linear ramps (left, right, top, bottom), each in [0, 1]: ``(4, H, W)``.

    Built from (height, width) separately, so non-square images work (EMORL's
    ramps swap H and W and are correct only for square images).
    """
    ys = torch.linspace(0.0, 1.0, height, device=device, dtype=dtype).view(height, 1).expand(height, width)
    xs = torch.linspace(0.0, 1.0, width, device=device, dtype=dtype).view(1, width).expand(height, width)
    return torch.stack([xs, 1.0 - xs, ys, 1.0 - ys])


def pixel_coordinates(height: int, width: int, *, device=None, dtype=None) -> Tensor:
    """Row and column coordinates, each in [−1, 1]: ``(2, H, W)``."""
    rows = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype).view(height, 1).expand(height, width)
    cols = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype).view(1, width).expand(height, width)
    return torch.stack([rows, cols])


class SpatialBroadcastDecoder(nn.Module):
    """Decode each slot independently into RGB and one mask logit.

    The slot vector is broadcast to a grid, a ``Linear(4 -> Dz)`` of the position ramps
    is added, then ``num_layers`` convolutions with ELU and a final convolution to
    ``channels + 1`` outputs. Unpadded convolutions (default) broadcast to
    ``H + (num_layers + 1)(kernel - 1)`` so the output is exactly H×W.

    :param slot_dim: Dz.
    :param image_shape: ``(C, H, W)``.
    :param hidden: convolution width (EMORL "iodine": 64).
    :param kernel: convolution kernel size (3).
    :param num_layers: hidden convolutions (4).
    :param padded: use "same" padding and broadcast to H×W instead.
    :param rgb_activation: ``"sigmoid"`` (targets in [0, 1]), ``"tanh"`` ([-1, 1]) or ``"none"``.
    """

    def __init__(self, slot_dim: int, image_shape: tuple[int, int, int], hidden: int = 64,
                 kernel: int = 3, num_layers: int = 4, padded: bool = False,
                 rgb_activation: str = "tanh") -> None:
        super().__init__()
        if rgb_activation not in _RGB_ACTIVATIONS:
            raise ValueError(f"rgb_activation must be one of {sorted(_RGB_ACTIVATIONS)}, got {rgb_activation!r}")
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd, got {kernel}")
        channels, height, width = image_shape
        self.image_shape = (channels, height, width)
        self.rgb_activation = rgb_activation
        self.padded = padded
        grow = 0 if padded else (num_layers + 1) * (kernel - 1)
        self.grid = (height + grow, width + grow)
        pad = kernel // 2 if padded else 0
        self.position = nn.Linear(4, slot_dim)
        layers: list[nn.Module] = []
        width_in = slot_dim
        for _ in range(num_layers):
            layers += [nn.Conv2d(width_in, hidden, kernel, padding=pad), nn.ELU()]
            width_in = hidden
        layers.append(nn.Conv2d(width_in, channels + 1, kernel, padding=pad))
        self.net = nn.Sequential(*layers)
        self.register_buffer("ramps", position_ramps(*self.grid), persistent=False)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """:param z: slots ``(B, K, Dz)``.
        :return: ``rgb (B, K, C, H, W)`` and mask logits ``(B, K, 1, H, W)``."""
        b, k, _ = z.shape
        pos = rearrange(self.position(rearrange(self.ramps.to(z.dtype), "c h w -> h w c")), "h w d -> 1 d h w")
        if self.padded:
            out = self.net(rearrange(z, "b k d -> (b k) d 1 1") + pos)
        else:
            # An unpadded conv of (broadcast z + pos) is conv(pos) + (Σ_ij W) z: the big
            # (B·K, Dz, H', W') broadcast is never built (~20% of an EMORL step, half its memory).
            first = self.net[0]
            h = F.conv2d(pos, first.weight, first.bias) + (z.reshape(b * k, -1) @ first.weight.sum((2, 3)).t())[
                :, :, None, None]
            h = h.contiguous(memory_format=torch.channels_last)
            for layer in self.net[1:]:
                h = F.elu(h, inplace=True) if isinstance(layer, nn.ELU) else layer(h)
            out = h
        out = rearrange(out, "(b k) c h w -> b k c h w", b=b, k=k)                  # (B, K, C+1, H, W)
        rgb = _RGB_ACTIVATIONS[self.rgb_activation](out[:, :, :-1])
        return rgb, out[:, :, -1:]


class BroadcastDeconvDecoder(nn.Module):
    """GENESIS-v2's slot decoder: each slot is broadcast to an ``H/2^L × W/2^L`` grid with
    two coordinate channels (rows, columns in [−1, 1]), then ``num_layers`` stride-2 5×5
    transposed convolutions with GroupNorm(8) and ReLU double it back to H×W, and a 1×1
    convolution gives ``channels + 1`` outputs. All B·K slots are decoded in one call
    (the reference loops over slots; GroupNorm is per sample, so the result is the same).

    :param slot_dim: Dz.
    :param image_shape: ``(C, H, W)``; H and W divisible by ``2 ** num_layers``.
    :param hidden: channels (GENESIS-v2: 64).
    :param num_layers: transposed convolutions (4).
    :param rgb_activation: as :class:`SpatialBroadcastDecoder` (GENESIS-v2: ``"sigmoid"``).
    """

    def __init__(self, slot_dim: int, image_shape: tuple[int, int, int], hidden: int = 64, num_layers: int = 4,
                 rgb_activation: str = "sigmoid") -> None:
        super().__init__()
        if rgb_activation not in _RGB_ACTIVATIONS:
            raise ValueError(f"rgb_activation must be one of {sorted(_RGB_ACTIVATIONS)}, got {rgb_activation!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if hidden % 8:
            raise ValueError(f"hidden must be a multiple of 8 (GroupNorm(8)), got {hidden}")
        channels, height, width = image_shape
        factor = 2 ** num_layers
        if height % factor or width % factor:
            raise ValueError(f"a decoder with {num_layers} upsampling layers needs image sides divisible by "
                             f"{factor}, got {height}x{width}")
        self.image_shape = (channels, height, width)
        self.rgb_activation = rgb_activation
        self.grid = (height // factor, width // factor)
        layers: list[nn.Module] = []
        width_in = slot_dim + 2
        for _ in range(num_layers):
            layers += [nn.ConvTranspose2d(width_in, hidden, 5, stride=2, padding=2, output_padding=1),
                       nn.GroupNorm(8, hidden), nn.ReLU(inplace=True)]
            width_in = hidden
        layers.append(nn.Conv2d(width_in, channels + 1, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("coords", pixel_coordinates(*self.grid), persistent=False)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """:param z: slots ``(B, K, Dz)``.
        :return: ``rgb (B, K, C, H, W)`` and mask logits ``(B, K, 1, H, W)``."""
        b, k, d = z.shape
        grid = z.reshape(b * k, d, 1, 1).expand(b * k, d, *self.grid)
        coords = self.coords.to(z.dtype).expand(b * k, 2, *self.grid)
        # channels-last: mkldnn's transposed and 1×1 convolutions are much faster in it on the
        # CPU (a GENESIS-v2 step 0.68 vs 0.93 s at batch 8, benchmarks/train_step.py)
        h = torch.cat([grid, coords], dim=1).contiguous(memory_format=torch.channels_last)
        out = self.net(h).reshape(b, k, -1, *self.image_shape[1:])                    # (B, K, C+1, H, W)
        return _RGB_ACTIVATIONS[self.rgb_activation](out[:, :, :-1]), out[:, :, -1:]
