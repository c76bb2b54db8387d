"""The LOM's three effects as Pyro ``Messenger`` s (§3.2, Figure 2).

Each is a class plus a lowercase front door usable as a context manager or decorator,
composing with Pyro's own handlers (``trace``, ``replay``, ``condition``, ``block``,
``scale``). Following Pyro's "annotate, then consume" convention they record what they
did in the site's ``msg["infer"]``, which ``poutine.trace`` keeps:

* :func:`stop_gradient` — the orderless posterior reaches the LOM without gradient
  history (``stop_grad(o)``, §3.3); the orderless model keeps training on its own ELBO.
* :func:`align` — permutes a slot posterior to match the ordered prior means
  (Algorithm 1, or Hungarian); ``infer["permutation"]`` is ``(B, K)`` with
  ``perm[b, k] = j``: ordered slot k received orderless slot j.
* :func:`order_aware_scale` — replaces the aligned posterior's scales by the
  order-aware scales of ``f'_φ`` (Eq. 5); ``reuse_orderless_scales=True`` is
  ablation Model 5.

One more sets what the objective reads rather than what the program samples:

* :func:`free_bits` — the free bits λ of named latent sites (``infer["free_bits"]``,
  which :class:`~lom_pyro.infer.LOMELBO` clamps each KL at); the training loop sets the
  scene's schedule (Eq. 26) through it instead of changing the LOM.

Handlers run innermost first, so write ``with order_aware_scale(...), align(...):``
(alignment happens before the scales see the permuted means).

>>> import torch, pyro, pyro.distributions as dist
>>> from pyro import poutine
>>> prior_loc = torch.tensor([[[5.0], [0.0]]])                       # (B=1, K=2, D=1)
>>> def guide():
...     with align(prior_loc=prior_loc):
...         return pyro.sample("z", dist.Normal(torch.tensor([[[0.1], [4.9]]]), 1.0).to_event(1))
>>> tr = poutine.trace(guide).get_trace()
>>> tr.nodes["z"]["infer"]["permutation"].tolist()
[[1, 0]]
>>> tr.nodes["z"]["fn"].base_dist.loc.flatten().tolist()
[4.900000095367432, 0.10000000149011612]
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Mapping
from typing import Any

import pyro.distributions as dist
import torch
from pyro.distributions.util import detach as detach_distribution
from pyro.poutine.messenger import Messenger
from torch import Tensor

from lom_pyro.ops import greedy_match, hungarian_match, pairwise_sq_dist, permute_slots
from lom_pyro.sites import OBJECTS

__all__ = [
    "StopGradientMessenger", "stop_gradient",
    "AlignMessenger", "align", "MATCHERS",
    "OrderAwareScaleMessenger", "order_aware_scale",
    "FreeBitsMessenger", "free_bits",
    "normal_parts",
]

#: name → matching function; :mod:`lom_pyro.registry` serves this table as its ``"matcher"`` kind
MATCHERS: dict[str, Callable[[Tensor], Tensor]] = {"greedy": greedy_match, "hungarian": hungarian_match}


def normal_parts(fn: Any, site: str) -> tuple[Tensor, Tensor, int]:
    """``(loc, scale, event_dims)`` of a ``Normal`` or ``Independent(Normal)`` site."""
    event_dims = 0
    while isinstance(fn, (dist.Independent, torch.distributions.Independent)):
        event_dims += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    if not isinstance(fn, torch.distributions.Normal):
        raise ValueError(f"site {site!r} must be a Normal (optionally .to_event) distribution, got {type(fn).__name__}")
    return fn.loc, fn.scale, event_dims


def _normal(loc: Tensor, scale: Tensor, event_dims: int) -> dist.TorchDistribution:
    d = dist.Normal(loc, scale)
    return d.to_event(event_dims) if event_dims else d


def _detach_tree(value: Any) -> Any:
    """Detach tensors in (nested) tuples, lists, dicts and dataclasses."""
    if isinstance(value, Tensor):
        return value.detach()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _detach_tree(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_detach_tree(v) for v in value)
    if isinstance(value, dict):
        return {k: _detach_tree(v) for k, v in value.items()}
    return value


class StopGradientMessenger(Messenger):
    """A gradient barrier between an upstream program and the code it feeds (§3.3).

    * As a decorator, the wrapped function receives its tensor arguments detached
      (tensors inside tuples, dicts and dataclasses such as
      :class:`~lom_pyro.orderless.SlotPosterior` included): the LOM guide is called as
      ``stop_gradient(ordered_guide)(orderless_posterior, ...)``.
    * For the sample sites named in ``sites``, the distribution (and a value already set
      by ``replay``/``condition``) reaches inner handlers and the program detached, and
      the site is marked ``infer["stop_gradient"] = True``.

    Parameters of modules used inside keep their gradients: only what crosses the
    barrier is cut. Applying it twice is the same as once.

    :param sites: names of sample sites to detach (default: none).
    """

    def __init__(self, sites: Collection[str] = ()) -> None:
        if isinstance(sites, str):
            raise ValueError(f"sites must be a collection of site names, got the string {sites!r}")
        super().__init__()
        self.sites = frozenset(sites)

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with self:
                return fn(*_detach_tree(args), **_detach_tree(kwargs))

        return wrapped

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] not in self.sites:
            return
        msg["fn"] = detach_distribution(msg["fn"])
        if msg["value"] is not None:
            msg["value"] = msg["value"].detach()
        msg["infer"]["stop_gradient"] = True


def stop_gradient(fn: Callable | None = None, *, sites: Collection[str] = ()):
    """Front door of :class:`StopGradientMessenger` (decorator or context manager)."""
    messenger = StopGradientMessenger(sites)
    return messenger(fn) if fn is not None else messenger


class AlignMessenger(Messenger):
    """Permute the slots of a Gaussian slot posterior to match ordered prior means (§3.2 step 4).

    At the site ``site`` (a ``Normal(loc, scale)`` with ``loc (B, K, D)``) the cost
    ``cost[b, k, j] = ‖prior_loc[b, k] − loc[b, j]‖²`` is matched, ``loc`` and ``scale``
    are permuted by ``perm`` and ``perm`` is recorded in ``infer["permutation"]``. A value
    already set by ``replay``/``condition`` is left as it is (it lives in the ordered
    space already). Applied twice, the second matching is the identity (ties excluded),
    and recorded permutations compose.

    :param prior_loc: ordered prior means ``μ^z`` ``(B, K, D)``.
    :param method: ``"greedy"`` (Algorithm 1, no host sync), ``"hungarian"`` (exact,
        scipy) or a callable ``cost (B, K, K) -> perm (B, K)``.
    :param site: the site to align (default :data:`~lom_pyro.sites.OBJECTS`).
    """

    def __init__(self, prior_loc: Tensor, method: str | Callable[[Tensor], Tensor] = "greedy",
                 site: str = OBJECTS) -> None:
        if isinstance(method, str):
            if method not in MATCHERS:
                raise ValueError(f"method must be one of {sorted(MATCHERS)} or a callable, got {method!r}")
            method = MATCHERS[method]
        if prior_loc.dim() != 3:
            raise ValueError(f"prior_loc must have shape (B, K, D), got {tuple(prior_loc.shape)}")
        super().__init__()
        self.prior_loc = prior_loc
        self.match = method
        self.site = site

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] != self.site:
            return
        loc, scale, event_dims = normal_parts(msg["fn"], self.site)
        if loc.shape[-3:] != self.prior_loc.shape[-3:]:
            raise ValueError(f"align: site {self.site!r} has loc of shape {tuple(loc.shape)} but prior_loc "
                             f"has shape {tuple(self.prior_loc.shape)}; both must be (B, K, D)")
        scale = scale.expand_as(loc)
        with torch.no_grad():
            perm = self.match(pairwise_sq_dist(self.prior_loc.detach(), loc.detach()))
        msg["fn"] = _normal(permute_slots(loc, perm), permute_slots(scale, perm), event_dims)
        earlier = msg["infer"].get("permutation")
        # an inner alignment already permuted the slots: record the composed permutation
        msg["infer"]["permutation"] = perm if earlier is None else torch.gather(earlier, -1, perm)


def align(fn: Callable | None = None, *, prior_loc: Tensor, method: str | Callable = "greedy",
          site: str = OBJECTS):
    """Front door of :class:`AlignMessenger` (decorator or context manager)."""
    messenger = AlignMessenger(prior_loc, method, site)
    return messenger(fn) if fn is not None else messenger


class OrderAwareScaleMessenger(Messenger):
    """Give an aligned slot posterior its order-aware scales (§3.2 step 5, Eq. 5).

    At ``site`` (``Normal(loc, scale)``, ``loc (B, K, D)`` already permuted), the scale is
    replaced by ``scale_fn(loc)`` — in the LOM, ``softplus(w_φ(f'_φ([s, μ_π(1..K−1)])))``.
    The mean stays the permuted orderless mean. With ``reuse_orderless_scales=True``
    (ablation Model 5) the site is left unchanged. Marks ``infer["order_aware_scale"]``.

    :param scale_fn: ``loc (B, K, D) -> scale (B, K, D)``, positive.
    """

    def __init__(self, scale_fn: Callable[[Tensor], Tensor], *, reuse_orderless_scales: bool = False,
                 site: str = OBJECTS) -> None:
        super().__init__()
        self.scale_fn = scale_fn
        self.reuse_orderless_scales = reuse_orderless_scales
        self.site = site

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] != self.site:
            return
        msg["infer"]["order_aware_scale"] = not self.reuse_orderless_scales
        if self.reuse_orderless_scales:
            return
        loc, _, event_dims = normal_parts(msg["fn"], self.site)
        scale = self.scale_fn(loc)
        if scale.shape != loc.shape:
            raise ValueError(f"order_aware_scale: scale_fn returned shape {tuple(scale.shape)}, "
                             f"expected the loc's shape {tuple(loc.shape)}")
        msg["fn"] = _normal(loc, scale, event_dims)


def order_aware_scale(fn: Callable | None = None, *, scale_fn: Callable[[Tensor], Tensor],
                      reuse_orderless_scales: bool = False, site: str = OBJECTS):
    """Front door of :class:`OrderAwareScaleMessenger` (decorator or context manager)."""
    messenger = OrderAwareScaleMessenger(scale_fn, reuse_orderless_scales=reuse_orderless_scales, site=site)
    return messenger(fn) if fn is not None else messenger


class FreeBitsMessenger(Messenger):
    """Set the free bits λ (nats per example) of latent sites, whatever the program says.

    At each sample site named in ``nats`` that is not observed, ``infer["free_bits"]``
    becomes ``nats[name]`` (0: off); :class:`~lom_pyro.infer.LOMELBO` clamps that site's KL
    at λ from below. Wrap the whole loss — model and guide — since the ELBO reads the
    guide site's value first. ``nats`` may be changed between steps (the loop's
    scene schedule, :class:`~lom_pyro.training.hooks.SceneFreeBits`, does).

    :param nats: site name → λ in nats per example, ``>= 0``.
    """

    def __init__(self, nats: Mapping[str, float]) -> None:
        if isinstance(nats, str) or not isinstance(nats, Mapping):
            raise ValueError(f"nats must map site names to nats, got {nats!r}")
        for name, value in nats.items():
            if not value >= 0:
                raise ValueError(f"free bits of site {name!r} must be >= 0 nats, got {value!r}")
        super().__init__()
        self.nats = dict(nats)

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] in self.nats and not msg["is_observed"]:
            # a new dict: a program's own infer dict may be shared between calls
            msg["infer"] = {**msg["infer"], "free_bits": float(self.nats[msg["name"]])}


def free_bits(fn: Callable | None = None, *, nats: Mapping[str, float]):
    """Front door of :class:`FreeBitsMessenger` (decorator or context manager)."""
    messenger = FreeBitsMessenger(nats)
    return messenger(fn) if fn is not None else messenger
