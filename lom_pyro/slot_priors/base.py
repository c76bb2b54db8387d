"""What the LOM asks of a slot prior ``p(z_{1:K} | s)`` (§3.1).

A slot prior is an ``nn.Module`` with ``num_slots``, ``slot_dim`` and ``scene_dim`` and three
methods. The LOM calls :meth:`~SlotPrior.distribution` at its slot site (batch ``(B, K)``,
event ``(Dz,)``: the ELBO scores the ordered slots under it), :meth:`~SlotPrior.means` in
the guide (the ordered targets the orderless slots are aligned to, §3.2 step 3) and
:meth:`~SlotPrior.sample` when it generates. The temperature τ multiplies the prior's
standard deviations (§4.1); it is 1 in training.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import constraints

__all__ = ["SlotPrior", "SlotSetDistribution", "check_slot_prior"]

_NO_SHAPE = torch.Size()


@runtime_checkable
class SlotPrior(Protocol):
    """The ordered slots given the scene latent. ``s`` is ``(B, Ds)``; slots are ``(B, K, Dz)``."""

    num_slots: int
    slot_dim: int
    scene_dim: int

    def distribution(self, s: Tensor, temperature: float = 1.0) -> TorchDistribution:
        """``p(z_{1:K} | s)`` with batch shape ``(B, K)`` and event ``(Dz,)``."""

    def means(self, s: Tensor) -> Tensor:
        """The ordered slots the guide aligns the orderless posterior to ``(B, K, Dz)``."""

    def sample(self, s: Tensor, temperature: float = 1.0) -> Tensor:
        """Draw ``z (B, K, Dz)``; at τ = 0 a deterministic draw."""


def check_slot_prior(prior: object, num_slots: int, slot_dim: int, scene_dim: int) -> SlotPrior:
    """``prior`` if it is a :class:`SlotPrior` of these sizes; one sentence otherwise."""
    if not isinstance(prior, SlotPrior):
        raise ValueError("slot_prior must be a registered name or an object with num_slots, slot_dim, scene_dim, "
                         f"distribution, means and sample (lom_pyro.slot_priors.SlotPrior), got {type(prior).__name__}")
    got = (prior.num_slots, prior.slot_dim, prior.scene_dim)
    if got != (num_slots, slot_dim, scene_dim):
        raise ValueError(f"slot_prior has (num_slots, slot_dim, scene_dim) = {got}, the LOM needs "
                         f"{(num_slots, slot_dim, scene_dim)}")
    return prior


class SlotSetDistribution(TorchDistribution):
    """A prior whose slots are not independent, as one site over all K slots: batch
    ``(B, K)``, event ``(Dz,)``, so it sits in the slots plate like the paper's prior (the
    plate only shapes the site). A draw is ``prior.sample(s, τ)``, one per scene; it is not
    broadcast. Subclasses give ``log_prob``."""

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self, prior, s: Tensor, temperature: float = 1.0, validate_args=None) -> None:
        self.prior, self.s, self.temperature = prior, s, float(temperature)
        super().__init__(torch.Size([s.shape[0], prior.num_slots]), torch.Size([prior.slot_dim]),
                         validate_args=validate_args)

    def _one_per_scene(self, sample_shape: torch.Size) -> None:
        if sample_shape:
            raise NotImplementedError(f"{type(self).__name__} draws one sample per scene")

    def sample(self, sample_shape: torch.Size = _NO_SHAPE) -> Tensor:
        self._one_per_scene(sample_shape)
        with torch.no_grad():
            return self.prior.sample(self.s, self.temperature)

    def expand(self, batch_shape, _instance=None):
        if tuple(batch_shape) != tuple(self.batch_shape):
            raise NotImplementedError(f"{type(self).__name__} cannot be broadcast to {tuple(batch_shape)}")
        return self
