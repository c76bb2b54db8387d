"""GENESIS-v2's instance colouring stick-breaking process (IC-SBP; Engelcke et al. 2021).

Each pixel gets a low-dimensional "colour" embedding. For k = 1..K−1 a seed pixel is
drawn (the argmax of uniform noise times the scope still unexplained), and every pixel's
share of the scope goes to slot k by its kernel similarity to the seed's colour::

    α_k = exp(−‖e − e_seed‖² / σ)            (Gaussian kernel, one learned σ)
    m_k = s_k · α_k,   s_{k+1} = s_k · (1 − α_k),   s_1 = 1,   m_K = s_K

α is clamped to [0.01, 0.99] with the gradient of the unclamped value, so every mask
lies in (0, 1] and the K masks sum to one at every pixel. The slot order comes only from
the random seeds: the masks carry no learned order.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lom_pyro.nn.decoders import pixel_coordinates

__all__ = ["InstanceColouringSBP", "SemiConvEmbedding", "pixel_coordinates", "straight_through_clamp", "KERNELS"]

KERNELS = ("gaussian", "laplacian")


def straight_through_clamp(x: Tensor, low: float, high: float) -> Tensor:
    """``clamp(x, low, high)`` forward, the identity's gradient backward."""
    return x + (x.clamp(low, high) - x).detach()


class SemiConvEmbedding(nn.Module):
    """Semi-convolutional embedding: ``gate · Conv1×1(features) + [0, …, 0, row, col]``.

    The gate starts at zero, so at initialisation the embedding is the pixel position and
    the first masks are spatial blobs; training moves pixels of one object together.
    """

    def __init__(self, in_channels: int, dim: int = 8) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"the embedding needs at least the 2 coordinate channels, got dim={dim}")
        self.conv = nn.Conv2d(in_channels, dim, 1)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, features: Tensor) -> Tensor:
        """``(B, F, H, W) -> (B, dim, H, W)``."""
        out = self.gate * self.conv(features)
        coords = pixel_coordinates(*features.shape[-2:], device=features.device, dtype=out.dtype)
        return torch.cat([out[:, :-2], out[:, -2:] + coords], dim=1)


class InstanceColouringSBP(nn.Module):
    """Masks ``log m (B, K, 1, H, W)`` from features ``(B, F, H, W)``; see the module docstring.

    :param in_channels: F.
    :param num_slots: K (K − 1 seeded steps plus the remaining scope).
    :param dim: embedding channels (8).
    :param kernel: ``"gaussian"`` (GENESIS-v2's default) or ``"laplacian"`` (distance, not squared).
    :param semiconv: add pixel coordinates behind a zero-initialised gate (else a plain 1×1 conv).
    :param clamp: bounds of α (0.01, 0.99).
    """

    def __init__(self, in_channels: int, num_slots: int, dim: int = 8, kernel: str = "gaussian",
                 semiconv: bool = True, clamp: tuple[float, float] = (0.01, 0.99)) -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if not 0.0 < clamp[0] < clamp[1] < 1.0:
            raise ValueError(f"clamp must satisfy 0 < low < high < 1, got {clamp}")
        self.num_slots = num_slots
        self.kernel = kernel
        self.clamp = (float(clamp[0]), float(clamp[1]))
        self.embed = SemiConvEmbedding(in_channels, dim) if semiconv else nn.Conv2d(in_channels, dim, 1)
        # the reference's initial kernel width: 1 / (K ln 2) (Gaussian), 1 / (sqrt(K) ln 2) (Laplacian)
        width = 1.0 / ((num_slots if kernel == "gaussian" else math.sqrt(num_slots)) * math.log(2.0))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(width)))

    def forward(self, features: Tensor, seed_noise: Tensor | None = None) -> Tensor:
        """:param seed_noise: uniform noise ``(B, H, W)`` that picks the seeds (drawn if omitted).
        :return: ``log m (B, K, 1, H, W)``."""
        colour = self.embed(features)                                               # (B, D, H, W)
        b, d, h, w = colour.shape
        if seed_noise is None:
            seed_noise = torch.rand(b, h, w, device=colour.device, dtype=colour.dtype)
        elif tuple(seed_noise.shape) != (b, h, w):
            raise ValueError(f"seed_noise must have shape (B, H, W) = {(b, h, w)}, got {tuple(seed_noise.shape)}")
        flat = colour.flatten(2)                                                    # (B, D, HW)
        noise = seed_noise.reshape(b, h * w).to(colour.dtype)
        log_scope = colour.new_zeros(b, h * w)
        sigma = self.log_sigma.exp()
        low, high = self.clamp
        log_masks = []
        for _ in range(self.num_slots - 1):
            pick = (noise * log_scope.detach().exp()).argmax(dim=1)                # (B,)
            seed = flat.gather(2, pick.view(b, 1, 1).expand(b, d, 1))              # (B, D, 1)
            dist2 = (flat - seed).pow(2).sum(1)                                     # (B, HW)
            distance = dist2 if self.kernel == "gaussian" else dist2.clamp(min=1e-10).sqrt()
            alpha = straight_through_clamp(torch.exp(-distance / sigma), low, high)
            log_masks.append(log_scope + alpha.log())
            log_scope = log_scope + torch.log1p(-alpha)
        log_masks.append(log_scope)
        return torch.stack(log_masks, dim=1).view(b, self.num_slots, 1, h, w)
