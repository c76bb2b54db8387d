"""The two Gaussian slot priors a LOM is trained with.

* :class:`ChainPrior` — the paper's (§3.1): a deterministic causal transformer
  ``h_{1:K} = f_θ(s)`` and ``z_k ~ N(μ(h_k), σ(h_k))``, the slots independent given s.
* :class:`AutoregressivePrior` — the authors' later SRI code: an LSTM fed s, then each
  *sampled* previous slot, ``p(z_k | s, z_{<k})``.

Both have a Gaussian of every slot given the earlier ones (:meth:`loc_scale_given`), so the
ELBO takes their slot KL in closed form.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch import Tensor, nn
from torch.nn import functional as F

from lom_pyro.nn.attention import CausalTransformer, xavier_init
from lom_pyro.nn.recurrent import LSTMChain
from lom_pyro.slot_priors.base import SlotSetDistribution

__all__ = ["ChainPrior", "AutoregressivePrior", "AutoregressiveSlots", "MIN_SCALE"]

MIN_SCALE = 1e-4
_NO_SHAPE = torch.Size()


class _GaussianHeads(nn.Module):
    """``loc = W_μ h``, ``scale = softplus(W_σ h) + 1e-4`` on the network's outputs ``h``."""

    def __init__(self, num_slots: int, slot_dim: int, scene_dim: int, net: nn.Module, width: int) -> None:
        super().__init__()
        self.num_slots, self.slot_dim, self.scene_dim = int(num_slots), int(slot_dim), int(scene_dim)
        self.net = net
        self.width = width
        self.loc_head = nn.Linear(width, slot_dim)
        self.scale_head = nn.Linear(width, slot_dim)
        xavier_init(nn.ModuleList([self.loc_head, self.scale_head]))

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.loc_head(h), F.softplus(self.scale_head(h)) + MIN_SCALE


class ChainPrior(_GaussianHeads):
    """The paper's prior (§3.1): ``h = f_θ(s)``, a causal transformer of ``depth`` SA blocks
    over K learned tokens with s as context; ``z_k ~ N(μ(h_k), σ(h_k))`` independently.

    :param width: token width of ``f_θ`` (default Dz, the paper's).
    """

    def __init__(self, num_slots: int, slot_dim: int, scene_dim: int, *, depth: int = 2,
                 width: int | None = None) -> None:
        width = slot_dim if width is None else int(width)
        if width < 1:
            raise ValueError(f"prior_width must be >= 1, got {width}")
        super().__init__(num_slots, slot_dim, scene_dim,
                         CausalTransformer(scene_dim, width, num_slots, depth=depth), width)

    def loc_scale(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """Loc and scale ``(B, K, Dz)`` of ``p(z | h = f_θ(s))``."""
        return self.heads(self.net(s))

    def loc_scale_given(self, s: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """As :meth:`loc_scale`: the slots are independent given s."""
        return self.loc_scale(s)

    def distribution(self, s: Tensor, temperature: float = 1.0) -> TorchDistribution:
        loc, scale = self.loc_scale(s)
        return dist.Normal(loc, scale * temperature).to_event(1)

    def means(self, s: Tensor) -> Tensor:
        return self.loc_scale(s)[0]

    def sample(self, s: Tensor, temperature: float = 1.0) -> Tensor:
        loc, scale = self.loc_scale(s)
        return loc + temperature * scale * torch.randn_like(loc)


class AutoregressivePrior(_GaussianHeads):
    """SRI's prior ``Π_k p(z_k | s, z_{<k})``: an LSTM over ``[proj(s), z_1, …, z_{K−1}]``.
    Its :meth:`means` are the rollout that feeds each slot's mean forward (what SRI aligns to).

    :param hidden: LSTM width (default 4·Dz).
    """

    def __init__(self, num_slots: int, slot_dim: int, scene_dim: int, *, hidden: int | None = None) -> None:
        super().__init__(num_slots, slot_dim, scene_dim, LSTMChain(scene_dim, slot_dim, hidden), slot_dim)

    def loc_scale(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """Loc and scale ``(B, K, Dz)`` along the rollout of means."""
        return self.rollout(s, temperature=0.0)[1:]

    def loc_scale_given(self, s: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Loc and scale of ``p(z_k | s, z_{<k})`` for every k at once (teacher forcing)."""
        return self.heads(self.net(s, z[:, :-1]))

    def rollout(self, s: Tensor, temperature: float) -> tuple[Tensor, Tensor, Tensor]:
        """Sample slot by slot, ``z_k = μ_k + τ σ_k ε`` fed to the next step.
        :return: ``z``, loc, scale ``(B, K, Dz)``."""
        x, state = self.net.first(s), None
        zs, locs, scales = [], [], []
        for _ in range(self.num_slots):
            h, state = self.net.step(x, state)
            loc, scale = self.heads(h)
            x = loc + temperature * scale * torch.randn_like(loc) if temperature > 0 else loc
            zs.append(x)
            locs.append(loc)
            scales.append(scale)
        return torch.stack(zs, 1), torch.stack(locs, 1), torch.stack(scales, 1)

    def distribution(self, s: Tensor, temperature: float = 1.0) -> TorchDistribution:
        return AutoregressiveSlots(self, s, temperature)

    def means(self, s: Tensor) -> Tensor:
        return self.rollout(s, 0.0)[1]

    def sample(self, s: Tensor, temperature: float = 1.0) -> Tensor:
        return self.rollout(s, temperature)[0]


class AutoregressiveSlots(SlotSetDistribution):
    """``Π_k p(z_k | s, z_{<k})`` as one site over all K slots.

    ``log_prob(z)`` feeds ``z``'s own earlier slots (teacher forcing); ``rsample`` rolls the
    prior out; :meth:`conditional` is the Gaussian of every slot given the earlier ones of
    ``z``, from which :class:`~lom_pyro.infer.LOMELBO` takes the slot KL in closed form,
    ``Σ_k KL(q(z_k) ‖ p(z_k | s, z_{<k}))`` at the guide's sample (SRI's estimator).
    """

    has_rsample = True

    def conditional(self, value: Tensor):
        """``p(z_k | s, value_{<k})`` for every k: ``Normal`` with batch ``(B, K)``, event ``(Dz,)``."""
        loc, scale = self.prior.loc_scale_given(self.s, value)
        return dist.Normal(loc, scale * self.temperature).to_event(1)

    def log_prob(self, value: Tensor) -> Tensor:
        return self.conditional(value).log_prob(value)

    def rsample(self, sample_shape: torch.Size = _NO_SHAPE) -> Tensor:
        self._one_per_scene(sample_shape)
        return self.prior.rollout(self.s, self.temperature)[0]
