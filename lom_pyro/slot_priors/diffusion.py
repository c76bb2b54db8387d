"""A diffusion slot prior: a denoising diffusion model (DDPM) over all K standardised slots
at once, conditioned on s.

The slots are flattened to one vector of K·Dz numbers; an MLP of residual blocks reads the
noisy vector, s and the noise level and predicts the noise. Sampling runs the reverse chain
from pure noise; the temperature τ scales the starting noise and every step's noise, as it
scales a Gaussian prior's σ. It has no tractable density: it cannot stand at the LOM's slot
site in training or in an ELBO, only generate (its :meth:`distribution` says so).
"""

from __future__ import annotations

import math

import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch import Tensor, nn

from lom_pyro.slot_priors.base import SlotSetDistribution
from lom_pyro.slot_priors.fitted import FittedSlotPrior

__all__ = ["DiffusionPrior", "NoDensity"]


class _ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, width),
                                 nn.SiLU(), nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class DiffusionPrior(FittedSlotPrior):
    """``p(z | s)`` as a DDPM with ``steps`` noise levels (the cosine schedule, β at most
    0.999) and an ε-predicting MLP of ``depth`` residual blocks of ``width``.
    """

    def __init__(self, num_slots: int, slot_dim: int, scene_dim: int, *, width: int = 512, depth: int = 4,
                 steps: int = 200, reference: nn.Module | None = None) -> None:
        super().__init__(num_slots, slot_dim, scene_dim, reference)
        if width < 1 or depth < 1 or steps < 2:
            raise ValueError(f"width and depth must be >= 1 and steps >= 2, got {width}, {depth}, {steps}")
        self.steps = int(steps)
        dim = num_slots * slot_dim
        self.inp = nn.Linear(dim + scene_dim + width, width)
        self.blocks = nn.Sequential(*[_ResidualBlock(width) for _ in range(depth)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))
        nn.init.zeros_(self.out[1].weight)   # start by predicting no noise
        nn.init.zeros_(self.out[1].bias)
        # the cosine schedule: ᾱ falls smoothly from ~1 to ~0 whatever the number of steps
        grid = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((grid + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        alpha_bar = torch.cumprod(1 - betas, 0)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)

    def _time_features(self, t: Tensor) -> Tensor:
        half = self.inp.out_features // 2
        freq = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
        angle = t.float().unsqueeze(-1) * freq
        features = torch.cat([angle.sin(), angle.cos()], -1)
        return nn.functional.pad(features, (0, self.inp.out_features - 2 * half))

    def predict_noise(self, u_t: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """ε̂ for flattened noisy standardised slots ``u_t (B, K·Dz)`` at levels ``t (B,)``."""
        h = self.inp(torch.cat([u_t, s, self._time_features(t)], -1))
        return self.out(self.blocks(h))

    def fit_loss(self, s: Tensor, z: Tensor) -> Tensor:
        """The DDPM's simple loss: mean squared error of the predicted noise."""
        u = self.to_standard(z).flatten(1)
        t = torch.randint(0, self.steps, (u.shape[0],), device=u.device)
        noise = torch.randn_like(u)
        a = self.alpha_bar[t].unsqueeze(-1)
        return (self.predict_noise(a.sqrt() * u + (1 - a).sqrt() * noise, s, t) - noise).pow(2).mean()

    def sample(self, s: Tensor, temperature: float = 1.0) -> Tensor:
        """The reverse chain (σ_t² = β_t); τ scales the starting and every step's noise."""
        u = temperature * torch.randn(s.shape[0], self.num_slots * self.slot_dim, device=s.device, dtype=s.dtype)
        return self.denoise(u, s, self.steps - 1, temperature)

    def denoise(self, u: Tensor, s: Tensor, level: int, temperature: float = 1.0) -> Tensor:
        """Run the reverse chain from noise level ``level`` down to 0 on flattened standardised
        slots ``u (B, K·Dz)``; :return: the slots ``(B, K, Dz)``."""
        for t in reversed(range(level + 1)):
            beta, a = self.betas[t], self.alpha_bar[t]
            noise = self.predict_noise(u, s, torch.full((s.shape[0],), t, device=s.device))
            u = (u - beta / (1 - a).sqrt() * noise) / (1 - beta).sqrt()
            if t > 0:
                u = u + temperature * beta.sqrt() * torch.randn_like(u)
        return self.from_standard(u.unflatten(-1, (self.num_slots, self.slot_dim)))

    def distribution(self, s: Tensor, temperature: float = 1.0) -> TorchDistribution:
        return NoDensity(self, s, temperature)


class NoDensity(SlotSetDistribution):
    """A prior that can only be sampled, as a site; ``log_prob`` refuses in one sentence."""

    has_rsample = False

    def log_prob(self, value: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self.prior).__name__} has no tractable density: it generates, but a LOM "
                                  "with it cannot be trained or scored by an ELBO (use its reference prior or "
                                  "MixtureDensityPrior for that)")
