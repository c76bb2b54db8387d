"""GENESIS-v2's UNet feature extractor (Engelcke et al. 2021; paper A.4.1).

``x (B, C, H, W) -> features (B, width, H, W)``: ``blocks`` 3×3 conv-GroupNorm(8)-ReLU
stages going down, nearest-neighbour halving between them; an MLP bottleneck over the
flattened coarsest map; the same number of stages going up, each reading the previous
stage and the skip connection of its resolution, nearest doubling between them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["UNet", "ConvGNReLU", "unet_blocks"]


class ConvGNReLU(nn.Sequential):
    """``Conv2d (no bias) -> GroupNorm(groups) -> ReLU``, "same" padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, groups: int = 8) -> None:
        if out_channels % groups:
            raise ValueError(f"channels ({out_channels}) must be a multiple of the GroupNorm groups ({groups})")
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
                         nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True))


def unet_blocks(image_size: int) -> int:
    """GENESIS-v2's depth: ``log2(H) − 1`` stages, so the bottleneck map is 4×4 for
    power-of-two images (5 stages at 64 px, 4 at 32 px)."""
    return max(2, image_size.bit_length() - 2)


class UNet(nn.Module):
    """See the module docstring.

    :param in_channels: C.
    :param image_size: ``(H, W)``; each must be divisible by ``2 ** (blocks − 1)``.
    :param width: channels of the first and last stages (GENESIS-v2: 64); inner stages
        use twice as many, as the reference's layout (``c, c, 2c, 2c, 2c`` down at 5 stages).
    :param blocks: stages per direction (default :func:`unet_blocks` of H).
    :param bottleneck: hidden width of the bottleneck MLP (128).
    """

    def __init__(self, in_channels: int, image_size: tuple[int, int], width: int = 64, blocks: int | None = None,
                 bottleneck: int = 128) -> None:
        super().__init__()
        height, wide = image_size
        blocks = unet_blocks(min(height, wide)) if blocks is None else blocks
        if blocks < 2:
            raise ValueError(f"blocks must be >= 2, got {blocks}")
        factor = 2 ** (blocks - 1)
        if height % factor or wide % factor:
            raise ValueError(f"a {blocks}-stage UNet needs image sides divisible by {factor}, got {height}x{wide}")
        down_out = [width] * max(blocks - 3, 0) + [2 * width] * min(blocks, 3)
        down_in = [in_channels] + down_out[:-1]
        self.down = nn.ModuleList(ConvGNReLU(i, o) for i, o in zip(down_in, down_out))
        self.coarse = (down_out[-1], height // factor, wide // factor)
        flat = down_out[-1] * self.coarse[1] * self.coarse[2]
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(flat, bottleneck), nn.ReLU(),
                                 nn.Linear(bottleneck, bottleneck), nn.ReLU(),
                                 nn.Linear(bottleneck, flat), nn.ReLU())
        # going up: the first two stages stay wide, the rest at ``width`` (reference layout)
        up_out = [2 * width] * min(2, blocks - 1) + [width] * (blocks - min(2, blocks - 1))
        up_in, previous = [], down_out[-1]
        for skip, out in zip(reversed(down_out), up_out):
            up_in.append(previous + skip)
            previous = out
        self.up = nn.ModuleList(ConvGNReLU(i, o) for i, o in zip(up_in, up_out))
        self.out_channels = up_out[-1]

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        h = x
        for i, block in enumerate(self.down):
            h = block(h)
            skips.append(h)
            if i < len(self.down) - 1:
                h = F.interpolate(h, scale_factor=0.5, mode="nearest")
        h = self.mlp(h).view(x.shape[0], *self.coarse)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips[-1 - i]], dim=1))
            if i < len(self.up) - 1:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        return h

