"""A mixture-density slot prior: each slot a mixture of C diagonal Gaussians given s and the
earlier slots, read from a GRU over ``[proj(s), z_1, …, z_{K−1}]``.

Unlike the Gaussian priors a LOM is trained with, each slot can be multimodal (a block of
one of several colours, at one of several places), and its density is exact, so it has a
held-out log-likelihood and can stand at the LOM's slot site (the ELBO then estimates the
slot KL by Monte Carlo).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch import Tensor, nn
from torch.nn import functional as F

from lom_pyro.slot_priors.base import SlotSetDistribution
from lom_pyro.slot_priors.fitted import FittedSlotPrior

__all__ = ["MixtureDensityPrior", "MixtureDensitySlots"]



class MixtureDensityPrior(FittedSlotPrior):
    """``Π_k Σ_c π_kc N(z_k; μ_kc, σ_kc)`` with every parameter a function of s and ``z_{<k}``.

    :param components: C. :param hidden: GRU width. :param layers: GRU layers.
    """

    def __init__(self, num_slots: int, slot_dim: int, scene_dim: int, *, components: int = 16,
                 hidden: int = 256, layers: int = 2, reference: nn.Module | None = None) -> None:
        super().__init__(num_slots, slot_dim, scene_dim, reference)
        if components < 1 or hidden < 1 or layers < 1:
            raise ValueError(f"components, hidden and layers must be >= 1, got {components}, {hidden}, {layers}")
        self.components = int(components)
        self.scene_proj = nn.Linear(scene_dim, hidden)
        self.slot_proj = nn.Linear(slot_dim, hidden)
        self.slot_embedding = nn.Parameter(torch.zeros(num_slots, hidden))   # which slot is next
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, components * (1 + 2 * slot_dim))

    def _mixture(self, h: Tensor, temperature: float):
        """The mixture for the outputs ``h (..., H)`` in standardised units."""
        c, dz = self.components, self.slot_dim
        logits, loc, raw = self.out(h).split([c, c * dz, c * dz], dim=-1)
        scale = (F.softplus(raw) + 1e-3).unflatten(-1, (c, dz)) * temperature
        return dist.MixtureSameFamily(dist.Categorical(logits=logits),
                                      dist.Normal(loc.unflatten(-1, (c, dz)), scale).to_event(1))

    def _inputs(self, s: Tensor, u_prev: Tensor) -> Tensor:
        x = torch.cat([self.scene_proj(s).unsqueeze(1), self.slot_proj(u_prev)], dim=1)
        return x + self.slot_embedding[: x.shape[1]]

    def mixtures_given(self, s: Tensor, z: Tensor, temperature: float = 1.0):
        """Every slot's mixture given s and the earlier slots of ``z`` (standardised units)."""
        h, _ = self.gru(self._inputs(s, self.to_standard(z)[:, :-1]))
        return self._mixture(h, temperature)

    def log_prob_slots(self, s: Tensor, z: Tensor, temperature: float = 1.0) -> Tensor:
        """``log p(z_k | s, z_{<k})`` for every slot, ``(B, K)``, in the slots' own units."""
        u = self.to_standard(z)
        jacobian = self.spread.log().sum(-1)                                   # (K,)
        return self.mixtures_given(s, z, temperature).log_prob(u) - jacobian

    def fit_loss(self, s: Tensor, z: Tensor) -> Tensor:
        """Negative log-likelihood per scene, in nats."""
        return -self.log_prob_slots(s, z).sum(-1).mean()

    def sample(self, s: Tensor, temperature: float = 1.0) -> Tensor:
        """Roll the GRU out slot by slot; at τ = 0 each slot is its most probable component's mean."""
        state, x, slots = None, self.scene_proj(s).unsqueeze(1), []
        for k in range(self.num_slots):
            h, state = self.gru(x + self.slot_embedding[k], state)
            mixture = self._mixture(h[:, 0], max(temperature, 1e-6))
            if temperature > 0:
                u = mixture.sample()
            else:
                best = mixture.mixture_distribution.logits.argmax(-1)
                u = mixture.component_distribution.base_dist.loc[torch.arange(len(best)), best]
            slots.append(u)
            x = self.slot_proj(u).unsqueeze(1)
        return self.from_standard(torch.stack(slots, 1))

    def distribution(self, s: Tensor, temperature: float = 1.0) -> TorchDistribution:
        return MixtureDensitySlots(self, s, temperature)


class MixtureDensitySlots(SlotSetDistribution):
    """The prior as one site over all K slots; ``log_prob`` is each slot's density given the
    earlier slots of the value."""

    has_rsample = False

    def __init__(self, prior: MixtureDensityPrior, s: Tensor, temperature: float = 1.0, validate_args=None) -> None:
        super().__init__(prior, s, max(float(temperature), 1e-6), validate_args)

    def log_prob(self, value: Tensor) -> Tensor:
        return self.prior.log_prob_slots(self.s, value, self.temperature)


