"""Importance-weighted log-likelihood bound (Burda et al. 2016) — not reported in the paper.

``log p(x) ≥ E[log (1/k) Σ_i p(x, z_i) / q(z_i | x)]``, ``z_i ~ q``. With k = 1 it is the
Monte-Carlo ELBO; it rises towards ``log p(x)`` as k grows.

For a :class:`~lom_pyro.LOM` the bound is over the LOM's own sites (scene, slots and
image); the orderless model is part of the proposal. Each draw re-runs the whole guide,
so the orderless posterior's own randomness ``u`` is drawn afresh as well: the weights
``p(x, z_i) / q(z_i | x, u_i)`` with ``u_i ~ p(u)`` still have expectation ``p(x)``, so
the estimate is a valid lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from lom_pyro.infer.elbo import _per_example, replayed_traces
from lom_pyro.sites import BATCH_PLATE, OBJECTS, OBS, SCENE

__all__ = ["log_weights", "iwae_bound"]


def log_weights(model, guide, x: Tensor, latent_sites: Sequence[str] = (SCENE, OBJECTS),
                observed_sites: Sequence[str] = (OBS,), batch_plate: str = BATCH_PLATE) -> Tensor:
    """One draw of ``log p(x, z) − log q(z | x)`` per example ``(B,)`` over the given sites."""
    model_trace, guide_trace = replayed_traces(model, guide, (x,), {})
    total = 0.0
    for name in (*latent_sites, *observed_sites):
        site = model_trace.nodes.get(name)
        if site is None:
            raise ValueError(f"site {name!r} is not in the model")
        total = total + _per_example(site, site["fn"].log_prob(site["value"]), batch_plate)
    for name in latent_sites:
        site = guide_trace.nodes[name]
        total = total - _per_example(site, site["fn"].log_prob(site["value"]), batch_plate)
    return total


@torch.no_grad()
def iwae_bound(model, guide, x: Tensor, k: int = 1, **sites) -> Tensor:
    """The k-sample importance-weighted bound per example ``(B,)``, in nats."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    logw = torch.stack([log_weights(model, guide, x, **sites) for _ in range(k)])   # (k, B)
    return torch.logsumexp(logw, dim=0) - math.log(k)
