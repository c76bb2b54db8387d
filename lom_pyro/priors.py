"""Scene priors ``p(s)`` (§3.1): swappable in one line.

A scene prior is any ``nn.Module`` (or callable) that, called with a ``temperature``,
returns a distribution over ``s ∈ R^Ds`` with ``event_shape == (Ds,)`` and empty batch
shape, and exposes ``dim = Ds``::

    class MyPrior(nn.Module):
        dim = 128
        def forward(self, temperature: float = 1.0):
            return dist.Normal(self.loc, self.scale * temperature).to_event(1)

    LOM(orderless, scene_prior=MyPrior())

The temperature τ multiplies the prior standard deviations when sampling (§4.1); it is
1 during training. A fixed diagonal Gaussian (``Normal(loc, scale).to_event(1)``) is
accepted as well (:func:`as_scene_prior` wraps it); any other fixed distribution goes
in a module, so that ``.to(device)`` moves it with the model.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ScenePrior", "StandardNormalPrior", "MixtureScenePrior", "FixedScenePrior", "as_scene_prior"]


@runtime_checkable
class ScenePrior(Protocol):
    """What the LOM asks of a scene prior: ``dim = Ds``, and a call with a temperature that
    returns a distribution with event shape ``(Ds,)``. :func:`as_scene_prior` checks it."""

    dim: int

    def __call__(self, temperature: float = 1.0) -> dist.TorchDistribution: ...


class StandardNormalPrior(nn.Module):
    """``N(0, τ² I)`` over ``R^dim`` — the paper's default."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.register_buffer("loc", torch.zeros(dim), persistent=False)

    def forward(self, temperature: float = 1.0) -> dist.TorchDistribution:
        return dist.Normal(self.loc, torch.full_like(self.loc, temperature)).to_event(1)


class MixtureScenePrior(nn.Module):
    """A learnable mixture of diagonal Gaussians ``Σ_c π_c N(μ_c, diag σ_c²)``.

    There is no closed-form KL to a Gaussian posterior, so the ELBO falls back to a
    Monte-Carlo estimate for this site. Temperature scales every component's σ.

    :param dim: Ds. :param components: number of mixture components C.
    :param init_scale: spread of the initial component means.
    """

    def __init__(self, dim: int, components: int = 10, init_scale: float = 1.0) -> None:
        super().__init__()
        if dim < 1 or components < 1:
            raise ValueError(f"dim and components must be >= 1, got {dim} and {components}")
        self.dim = dim
        self.logits = nn.Parameter(torch.zeros(components))
        self.locs = nn.Parameter(init_scale * torch.randn(components, dim))
        # softplus(0.5413) = 1: components start as unit Gaussians
        self.raw_scales = nn.Parameter(torch.full((components, dim), 0.5413))

    def forward(self, temperature: float = 1.0) -> dist.TorchDistribution:
        scales = F.softplus(self.raw_scales) * temperature + 1e-5
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits),
                                      dist.Normal(self.locs, scales).to_event(1))


class FixedScenePrior(nn.Module):
    """A fixed diagonal Gaussian ``N(loc, diag scale²)``; its parameters are buffers, so the
    prior follows the model's device and dtype. Temperature multiplies the scale."""

    def __init__(self, distribution: torch.distributions.Distribution) -> None:
        super().__init__()
        base = distribution.base_dist if isinstance(distribution, torch.distributions.Independent) else None
        if not isinstance(base, torch.distributions.Normal) or len(distribution.event_shape) != 1 \
                or len(distribution.batch_shape) != 0:
            raise ValueError("scene_prior: a fixed distribution must be Normal(loc, scale).to_event(1) with "
                             f"event_shape (Ds,), got {type(distribution).__name__} with event "
                             f"{tuple(distribution.event_shape)} and batch {tuple(distribution.batch_shape)}; "
                             "put any other distribution in a module whose forward(temperature) returns it")
        self.register_buffer("loc", base.loc.expand(distribution.event_shape).clone())
        self.register_buffer("scale", base.scale.expand(distribution.event_shape).clone())
        self.dim = int(distribution.event_shape[0])

    def forward(self, temperature: float = 1.0) -> dist.TorchDistribution:
        return dist.Normal(self.loc, self.scale * temperature).to_event(1)


def as_scene_prior(prior: object, dim: int) -> nn.Module:
    """Return a scene-prior module of dimension ``dim`` for ``prior``: ``None`` gives
    :class:`StandardNormalPrior`, a distribution is wrapped, a module is checked."""
    if prior is None:
        return StandardNormalPrior(dim)
    if isinstance(prior, torch.distributions.Distribution):
        prior = FixedScenePrior(prior)
    if not isinstance(prior, ScenePrior):
        raise ValueError("scene_prior must be a distribution or a module with a dim and forward(temperature) "
                         f"(lom_pyro.priors.ScenePrior), got {type(prior).__name__}")
    if prior.dim != dim:
        raise ValueError(f"scene_prior.dim must equal scene_dim={dim}, got {prior.dim}")
    return prior  # type: ignore[return-value]


