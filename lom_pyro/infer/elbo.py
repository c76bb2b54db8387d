"""The LOM objective as a Pyro ELBO with per-example terms and free bits (§3.3, Eq. 26).

``L = Σ_obs E_q[log p(x | ·)] − Σ_latent KL(q ‖ p)`` over one guide trace and the
model replayed on it. The model and guide of a :class:`~lom_pyro.LOM` contain both the
orderless VAE's sites and the LOM's, so this is the sum of both ELBOs (docs/design.md §3).

* KLs are analytic where ``kl_divergence`` is registered (TraceMeanField-style, using
  the guide site's scale and mask) and Monte-Carlo otherwise (e.g. a mixture scene
  prior) with ``kl_samples`` draws. A prior with a ``conditional(value)`` method (an
  autoregressive slot prior, :class:`~lom_pyro.models.lom.AutoregressiveSlots`) is first
  conditioned on the guide's sample: ``Σ_k KL(q_k ‖ p(· | z_{<k}))``, analytic per slot.
* Every site is reduced to **per-example** terms ``(B,)`` by summing over all dims but
  the batch plate's — no host synchronisation.
* **Free bits** are read from the site's ``infer["free_bits"]`` (guide site wins over
  model site): per example ``max(λ, KL_i)``, the slot KL summed over K first.
* ``infer["geco_group"]`` names the observation site whose GECO multiplier a site's
  KL shares (see :class:`~lom_pyro.infer.GECO`); by default an observation site is its
  own group and a latent belongs to the only observation site, if there is one.

With free bits inactive, :meth:`LOMELBO.differentiable_loss` equals
``pyro.infer.TraceMeanField_ELBO``'s (a sum over the batch, Pyro's convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import ELBO
from pyro.infer.util import torch_item
from pyro.poutine.util import prune_subsample_sites
from torch import Tensor
from torch.distributions import kl_divergence

from lom_pyro.sites import BATCH_PLATE

__all__ = ["SiteTerm", "LOMELBO", "replayed_traces"]


@dataclass(frozen=True)
class SiteTerm:
    """One site's contribution, per example.

    :ivar name: site name.
    :ivar kind: ``"loglik"`` (observation site) or ``"kl"`` (latent site).
    :ivar value: ``(B,)`` — the scaled log-likelihood, or the scaled KL *after* free bits.
    :ivar raw: ``(B,)`` — the same before free bits (equal for observation sites).
    :ivar group: GECO group (an observation site name).
    :ivar num_elements: number of observed elements per example (C·H·W), 0 for latents.
    :ivar scale: the site's ``poutine.scale`` factor (already applied to ``value``).
    """

    name: str
    kind: str
    value: Tensor
    raw: Tensor
    group: str
    num_elements: int = 0
    scale: float | Tensor = 1.0

    @property
    def loss(self) -> Tensor:
        """Contribution to the loss (negative ELBO), per example."""
        return -self.value if self.kind == "loglik" else self.value


def replayed_traces(model, guide, args: tuple, kwargs: dict):
    """One guide trace and the model replayed on it, subsample sites pruned:
    ``(model_trace, guide_trace)``."""
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    return prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)


def _per_example(site: dict, tensor: Tensor, batch_plate: str) -> Tensor:
    """Sum ``tensor`` over every dim except the batch plate's."""
    dim = next((f.dim for f in site["cond_indep_stack"] if f.name == batch_plate), None)
    if dim is None or tensor.dim() < -dim:
        return tensor.sum().reshape(1)
    moved = tensor.movedim(dim, 0)
    return moved.reshape(moved.shape[0], -1).sum(-1)


def _infer(model_site: dict, guide_site: dict | None, key: str):
    if guide_site is not None and key in guide_site["infer"]:
        return guide_site["infer"][key]
    return model_site["infer"].get(key)


class LOMELBO(ELBO):
    """ELBO over a model/guide pair with analytic KLs, per-example terms and free bits.

    Works as ``loss=`` in :class:`pyro.infer.SVI` and through :meth:`differentiable_loss`
    with plain torch optimisers (and DDP, by wrapping it in a module).

    :param num_particles: Monte-Carlo particles (averaged).
    :param kl_samples: draws for Monte-Carlo KLs (sites without a closed form).
    :param batch_plate: name of the plate that indexes examples.
    """

    def __init__(self, num_particles: int = 1, kl_samples: int = 1, batch_plate: str = BATCH_PLATE) -> None:
        if kl_samples < 1:
            raise ValueError(f"kl_samples must be >= 1, got {kl_samples}")
        super().__init__(num_particles=num_particles, max_plate_nesting=float("inf"))
        self.kl_samples = kl_samples
        self.batch_plate = batch_plate

    # -- traces -------------------------------------------------------------------------
    def _get_trace(self, model, guide, args, kwargs):
        return replayed_traces(model, guide, args, kwargs)

    def _kl(self, model_site: dict, guide_site: dict) -> Tensor:
        q, p = guide_site["fn"], model_site["fn"]
        conditional = getattr(p, "conditional", None)
        if conditional is not None:
            # an autoregressive prior: each element's Gaussian given the earlier ones of the
            # guide's sample, so the KL is analytic per element at that sample
            p = conditional(guide_site["value"])
        try:
            kl = kl_divergence(q, p)
        except NotImplementedError:
            # no closed form (e.g. a mixture prior): Monte Carlo with the guide's sample + extra draws
            value = guide_site["value"]
            kl = q.log_prob(value) - p.log_prob(value)
            if self.kl_samples > 1:
                extra = q.rsample((self.kl_samples - 1,))
                kl = (kl + (q.log_prob(extra) - p.log_prob(extra)).sum(0)) / self.kl_samples
        return scale_and_mask(kl, scale=guide_site["scale"], mask=guide_site["mask"])

    def terms(self, model, guide, *args, **kwargs) -> dict[str, SiteTerm]:
        """Per-site, per-example terms of one particle (see :class:`SiteTerm`)."""
        model_trace, guide_trace = self._get_trace(model, guide, args, kwargs)
        observed = [n for n, s in model_trace.nodes.items() if s["type"] == "sample" and s["is_observed"]]
        default_group = observed[0] if len(observed) == 1 else None
        terms: dict[str, SiteTerm] = {}
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                logp = scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"])
                per = _per_example(site, logp, self.batch_plate)
                group = site["infer"].get("geco_group", name)
                numel = int(torch.Size(site["fn"].event_shape).numel())
                terms[name] = SiteTerm(name, "loglik", per, per, group, numel, site["scale"])
                continue
            guide_site = guide_trace.nodes.get(name)
            if guide_site is None or guide_site["type"] != "sample":
                raise ValueError(f"latent site {name!r} of the model has no site in the guide")
            raw = _per_example(guide_site, self._kl(site, guide_site), self.batch_plate)
            free_bits = _infer(site, guide_site, "free_bits")
            value = raw if not free_bits else raw.clamp(min=float(free_bits) * _scale_of(guide_site))
            group = _infer(site, guide_site, "geco_group") or default_group
            if group is None:
                raise ValueError(f"latent site {name!r} needs infer['geco_group'] naming one of the "
                                 f"observation sites {observed}")
            terms[name] = SiteTerm(name, "kl", value, raw, group, 0, guide_site["scale"])
        for name, site in guide_trace.nodes.items():
            if site["type"] == "sample" and not site["is_observed"] and name not in model_trace.nodes:
                raise ValueError(f"guide site {name!r} has no site in the model")
        return terms

    # -- ELBO interface -----------------------------------------------------------------
    def differentiable_loss(self, model, guide, *args, **kwargs) -> Tensor:
        """Negative ELBO summed over the batch (Pyro's convention), averaged over particles."""
        total = 0.0
        for _ in range(self.num_particles):
            terms = self.terms(model, guide, *args, **kwargs)
            total = total + sum(t.loss.sum() for t in terms.values())
        return total / self.num_particles

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if getattr(loss, "requires_grad", False):
            loss.backward()
        return torch_item(loss)


def _scale_of(site: dict) -> float | Tensor:
    """Free bits are in nats of the unscaled KL; a site scaled by w gets a floor of w·λ."""
    scale = site["scale"]
    return scale if isinstance(scale, Tensor) else float(scale)
