"""Diffusion slot priors: a denoising diffusion model (DDPM) over all K standardised slots
at once, conditioned on s.

The slots are flattened to one vector of K·Dz numbers; a network reads the noisy vector, s
and the noise level and predicts the noise: an MLP of residual blocks (:class:`DiffusionPrior`)
or a transformer with one token per slot (:class:`SlotDiffusionPrior`). Sampling runs the reverse chain
from pure noise, each step optionally preceded by a Langevin corrector step at that noise
level (predictor–corrector sampling, Song et al. 2021); the temperature τ scales the starting
noise and every step's noise, as it scales a Gaussian prior's σ. It has no tractable density:
it cannot stand at the LOM's slot site in training or in an ELBO, only generate (its
:meth:`distribution` says so).
"""

from __future__ import annotations

import math

import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch import Tensor, nn

from lom_pyro.slot_priors.base import SlotSetDistribution
from lom_pyro.slot_priors.fitted import FittedSlotPrior

__all__ = ["DiffusionChain", "DiffusionPrior", "NoDensity", "SlotDiffusionPrior", "check_corrector_snr"]


class _ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, width),
                                 nn.SiLU(), nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


def check_corrector_snr(value: float) -> float:
    """``value`` as a float if it is a corrector ratio in [0, 1); a ValueError otherwise."""
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"corrector_snr must lie in [0, 1), got {value!r}")
    return float(value)


class DiffusionChain(FittedSlotPrior):
    """What a DDPM over the K standardised slots needs besides its noise predictor: ``steps``
    noise levels on the cosine schedule (β at most 0.999), the ε loss, and the reverse chain.
    A subclass defines :meth:`predict_noise` and sets ``time_width``, the width of the
    sinusoidal noise-level features it reads.

    :param corrector_snr: the signal-to-noise ratio r that sizes a Langevin corrector step
        taken before each reverse step (0.16 is Song et al.'s); 0, the default, runs the plain
        DDPM chain with half the network calls. It only changes sampling, so it can be set on a
        fitted prior at any time.
    """

    time_width: int

    def __init__(self, num_slots: int, slot_dim: int, scene_dim: int, *, steps: int = 200,
                 corrector_snr: float = 0.0, reference: nn.Module | None = None) -> None:
        super().__init__(num_slots, slot_dim, scene_dim, reference)
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        self.steps = int(steps)
        self.corrector_snr = corrector_snr
        # the cosine schedule: ᾱ falls smoothly from ~1 to ~0 whatever the number of steps
        grid = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((grid + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        alpha_bar = torch.cumprod(1 - betas, 0)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)

    @property
    def corrector_snr(self) -> float:
        return self._corrector_snr

    @corrector_snr.setter
    def corrector_snr(self, value: float) -> None:
        # checked here, not only in __init__: the documented way to switch it on is assignment
        self._corrector_snr = check_corrector_snr(value)

    def predict_noise(self, u_t: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """ε̂ for flattened noisy standardised slots ``u_t (B, K·Dz)`` at levels ``t (B,)``."""
        raise NotImplementedError

    def _time_features(self, t: Tensor) -> Tensor:
        half = self.time_width // 2
        freq = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
        angle = t.float().unsqueeze(-1) * freq
        features = torch.cat([angle.sin(), angle.cos()], -1)
        return nn.functional.pad(features, (0, self.time_width - 2 * half))

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
            at_t = torch.full((s.shape[0],), t, device=s.device)
            if self.corrector_snr > 0:
                u = self.correct(u, s, at_t, temperature)
            noise = self.predict_noise(u, s, at_t)
            u = (u - beta / (1 - a).sqrt() * noise) / (1 - beta).sqrt()
            if t > 0:
                u = u + temperature * beta.sqrt() * torch.randn_like(u)
        return self.from_standard(u.unflatten(-1, (self.num_slots, self.slot_dim)))

    def correct(self, u: Tensor, s: Tensor, t: Tensor, temperature: float = 1.0) -> Tensor:
        """One Langevin step on ``u`` at noise levels ``t`` (all equal), toward where the
        noised slots are dense: the score is −ε̂/√(1−ᾱ_t), and the step ε = 2α_t(r‖z‖/‖score‖)²
        keeps the ratio of the step's drift to its noise z at r (Song et al. 2021, Algorithm 5).
        It moves the chain back onto the density its own errors have drifted off."""
        level = int(t[0])
        score = -self.predict_noise(u, s, t) / (1 - self.alpha_bar[level]).sqrt()
        z = torch.randn_like(u)
        # norms averaged over the batch, as Song et al. do: one slot set's own norm can be
        # near 0 in few dimensions, and its step would then blow up
        ratio = self.corrector_snr * z.norm(dim=-1).mean() / score.norm(dim=-1).mean().clamp_min(1e-12)
        step = 2 * (1 - self.betas[level]) * ratio.pow(2)
        return u + step * score + temperature * (2 * step).sqrt() * z

    def distribution(self, s: Tensor, temperature: float = 1.0) -> TorchDistribution:
        return NoDensity(self, s, temperature)


class DiffusionPrior(DiffusionChain):
    """``p(z | s)`` as a DDPM whose noise predictor is an MLP of ``depth`` residual blocks of
    ``width`` over all K·Dz numbers at once, with s and the noise level at its input."""

    def __init__(self, num_slots: int, slot_dim: int, scene_dim: int, *, width: int = 512, depth: int = 4,
                 steps: int = 200, corrector_snr: float = 0.0, reference: nn.Module | None = None) -> None:
        super().__init__(num_slots, slot_dim, scene_dim, steps=steps, corrector_snr=corrector_snr,
                         reference=reference)
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1, got {width}, {depth}")
        self.time_width = int(width)
        dim = num_slots * slot_dim
        self.inp = nn.Linear(dim + scene_dim + width, width)
        self.blocks = nn.Sequential(*[_ResidualBlock(width) for _ in range(depth)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))
        nn.init.zeros_(self.out[1].weight)   # start by predicting no noise
        nn.init.zeros_(self.out[1].bias)

    def predict_noise(self, u_t: Tensor, s: Tensor, t: Tensor) -> Tensor:
        h = self.inp(torch.cat([u_t, s, self._time_features(t)], -1))
        return self.out(self.blocks(h))


class SlotDiffusionPrior(DiffusionChain):
    """``p(z | s)`` as a DDPM whose noise predictor is a transformer over the slots: one token
    per slot (its noisy standardised vector plus a learned embedding of its place in the order)
    and one token for s and the noise level, which is also added to every slot token. What a
    slot's denoising learns is shared by all K places, and the slots meet only by attention.
    """

    def __init__(self, num_slots: int, slot_dim: int, scene_dim: int, *, width: int = 192, depth: int = 4,
                 heads: int = 4, expansion: int = 2, steps: int = 200, corrector_snr: float = 0.0,
                 reference: nn.Module | None = None) -> None:
        super().__init__(num_slots, slot_dim, scene_dim, steps=steps, corrector_snr=corrector_snr,
                         reference=reference)
        if width < 1 or depth < 1 or expansion < 1 or heads < 1 or width % heads:
            raise ValueError(f"width, depth, heads and expansion must be >= 1 with heads dividing width, got "
                             f"{width}, {depth}, {heads}, {expansion}")
        self.time_width = int(width)
        self.slot_in = nn.Linear(slot_dim, width)
        self.place = nn.Parameter(0.02 * torch.randn(num_slots, width))
        self.condition = nn.Sequential(nn.Linear(scene_dim + width, width), nn.SiLU(), nn.Linear(width, width))
        layer = nn.TransformerEncoderLayer(width, heads, expansion * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.slot_out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, slot_dim))
        nn.init.zeros_(self.slot_out[1].weight)   # start by predicting no noise
        nn.init.zeros_(self.slot_out[1].bias)

    def predict_noise(self, u_t: Tensor, s: Tensor, t: Tensor) -> Tensor:
        condition = self.condition(torch.cat([s, self._time_features(t)], -1)).unsqueeze(-2)
        slots = self.slot_in(u_t.unflatten(-1, (self.num_slots, self.slot_dim))) + self.place + condition
        h = self.layers(torch.cat([condition, slots], -2))[..., 1:, :]
        return self.slot_out(h).flatten(-2)


class NoDensity(SlotSetDistribution):
    """A prior that can only be sampled, as a site; ``log_prob`` refuses in one sentence."""

    has_rsample = False

    def log_prob(self, value: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self.prior).__name__} has no tractable density: it generates, but a LOM "
                                  "with it cannot be trained or scored by an ELBO (use its reference prior or "
                                  "MixtureDensityPrior for that)")
