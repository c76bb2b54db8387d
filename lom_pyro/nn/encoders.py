"""Image encoders that turn an image into a set of per-pixel tokens.

* :class:`ConvTokenEncoder` — the Slot Attention CNN encoder used by EfficientMORL
  (Locatello et al. 2020; Emami et al. 2021): stride-1 convolutions, position ramps
  projected and added, LayerNorm and an MLP; one token per pixel.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn

from lom_pyro.nn.decoders import position_ramps

__all__ = ["ConvTokenEncoder"]


class ConvTokenEncoder(nn.Module):
    """``x (B, C, H, W) -> tokens (B, H·W, width)``.

    ``num_layers`` "same"-padded ``kernel``×``kernel`` convolutions with ReLU (EMORL: four
    5×5, 64 channels, stride 1), then ``Linear(4 -> width)`` of the four position ramps is
    added, then ``LayerNorm -> Linear -> ReLU -> Linear`` per token.

    The ramps are built from (H, W) at call time, so any image size works and nothing
    depends on the batch size (EMORL bakes both into a buffer).

    :param in_channels: C.
    :param width: channels of the convolutions and width of the tokens (EMORL: 64).
    :param kernel: odd convolution kernel size (EMORL: 5).
    :param num_layers: convolutions (EMORL: 4).
    """

    def __init__(self, in_channels: int = 3, width: int = 64, kernel: int = 5, num_layers: int = 4) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd, got {kernel}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(num_layers):
            layers += [nn.Conv2d(c, width, kernel, padding=kernel // 2), nn.ReLU()]
            c = width
        self.convs = nn.Sequential(*layers)
        self.position = nn.Linear(4, width)
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.width = width

    def forward(self, x: Tensor) -> Tensor:
        """:param x: images ``(B, C, H, W)``. :return: tokens ``(B, H·W, width)``."""
        h, w = x.shape[-2:]
        feats = rearrange(self.convs(x), "b c h w -> b h w c")                  # (B, H, W, width)
        ramps = rearrange(position_ramps(h, w, device=x.device, dtype=x.dtype), "c h w -> h w c")
        feats = feats + self.position(ramps)                                     # (B, H, W, width)
        return self.mlp(rearrange(feats, "b h w c -> b (h w) c"))               # (B, HW, width)
