"""What the slot priors fitted after training share (``lom-pyro fit-prior``).

Such a prior is fitted to the aggregate posterior of a trained LOM: cached pairs of a scene
latent and the ordered (aligned) posterior slot means. It keeps the prior the LOM was
trained with as its ``reference``, whose means the guide still aligns to, so the alignment
the cache was made with is held fixed: encoding, reconstructions and retrieval are those of
the trained LOM, and only generation changes. It works on standardised slots: ``shift`` and
``spread`` are the per-slot, per-dimension mean and standard deviation of the cache.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["FittedSlotPrior", "trained_prior"]


class FittedSlotPrior(nn.Module):
    """Base of the fitted priors: sizes, the reference prior and the standardisation.

    :param reference: the prior the LOM was trained with (its :meth:`means` are the
        alignment targets); ``None``: align to this prior's own τ = 0 draw.
    """

    def __init__(self, num_slots: int, slot_dim: int, scene_dim: int, reference: nn.Module | None = None) -> None:
        super().__init__()
        self.num_slots, self.slot_dim, self.scene_dim = int(num_slots), int(slot_dim), int(scene_dim)
        self.reference = reference
        self.register_buffer("shift", torch.zeros(num_slots, slot_dim))
        self.register_buffer("spread", torch.ones(num_slots, slot_dim))

    @torch.no_grad()
    def standardise_like(self, slots: Tensor) -> None:
        """Take ``shift`` and ``spread`` from cached ordered slots ``(N, K, Dz)``."""
        self.shift.copy_(slots.mean(0))
        self.spread.copy_(slots.std(0).clamp_min(1e-3))

    def to_standard(self, z: Tensor) -> Tensor:
        return (z - self.shift) / self.spread

    def from_standard(self, u: Tensor) -> Tensor:
        return u * self.spread + self.shift

    def means(self, s: Tensor) -> Tensor:
        if self.reference is not None:
            return self.reference.means(s)
        return self.sample(s, 0.0)

    def fit_loss(self, s: Tensor, z: Tensor) -> Tensor:
        """The mean loss of one batch of cached scenes ``s (B, Ds)`` and slots ``z (B, K, Dz)``."""
        raise NotImplementedError


def trained_prior(prior: nn.Module) -> nn.Module:
    """The prior a LOM with ``prior`` was trained with: a fitted prior's reference, else ``prior``."""
    reference = getattr(prior, "reference", None)
    return prior if reference is None else reference
