"""Image likelihoods of a slot decoder (docs/design.md §1).

Both take per-slot RGB ``(..., K, C, H, W)`` and mask logits ``(..., K, 1, H, W)``
(masks are a softmax over the K slots) and return a distribution over images with
event shape ``(C, H, W)`` and batch shape ``...``.

* ``"gaussian"`` — ``N(x; Σ_k m_k x_k, σ²)`` with one global σ (LOM-EMORL, GENv2-G).
* ``"mixture"`` — ``Σ_k m_k N(x; x_k, σ²)`` per pixel (GENESIS, SRI, GENv2-MoG); with
  ``per_channel=True`` the mixture is formed per colour channel (EMORL's "GMM").
"""

from __future__ import annotations

from typing import Callable

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch import Tensor
from torch.distributions import constraints

__all__ = ["image_likelihood", "MixtureImage", "GaussianLikelihood", "MixtureLikelihood", "ImageLikelihood",
           "LIKELIHOODS"]

_EMPTY_SHAPE = torch.Size()


class MixtureImage(TorchDistribution):
    """Per-pixel mixture of Gaussians over K slot images.

    :param rgb: component means ``(..., K, C, H, W)``.
    :param mask_logits: ``(..., K, 1, H, W)``; mixture weights are their softmax over K.
    :param sigma: component standard deviation (scalar).
    :param per_channel: mix each colour channel separately instead of whole pixels.
    """

    arg_constraints = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, rgb: Tensor, mask_logits: Tensor, sigma: float, per_channel: bool = False,
                 validate_args=None) -> None:
        self.rgb = rgb
        self.log_masks = torch.log_softmax(mask_logits, dim=-4)
        self.sigma = float(sigma)
        self.per_channel = per_channel
        super().__init__(rgb.shape[:-4], rgb.shape[-3:], validate_args=validate_args)

    @property
    def mean(self) -> Tensor:
        return (self.log_masks.exp() * self.rgb).sum(-4)

    def log_prob(self, value: Tensor) -> Tensor:
        comp = dist.Normal(self.rgb, self.sigma).log_prob(value.unsqueeze(-4))   # (..., K, C, H, W)
        if self.per_channel:
            return torch.logsumexp(self.log_masks + comp, dim=-4).sum((-3, -2, -1))
        per_pixel = comp.sum(-3, keepdim=True)                                 # (..., K, 1, H, W)
        return torch.logsumexp(self.log_masks + per_pixel, dim=-4).sum((-3, -2, -1))

    def sample(self, sample_shape=_EMPTY_SHAPE) -> Tensor:
        with torch.no_grad():
            logits = self.log_masks.movedim(-4, -1)                            # (..., 1, H, W, K)
            if self.per_channel:
                logits = logits.expand(*self.rgb.shape[:-4], *self.rgb.shape[-3:], logits.shape[-1])
            k = dist.Categorical(logits=logits).sample(sample_shape)
            rgb = self.rgb.movedim(-4, -1).expand(*sample_shape, *self.rgb.shape[:-4], *self.rgb.shape[-3:],
                                                  self.rgb.shape[-4])
            chosen = torch.gather(rgb, -1, k.unsqueeze(-1).expand(*rgb.shape[:-1], 1)).squeeze(-1)
            return chosen + self.sigma * torch.randn_like(chosen)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        rgb = self.rgb.expand(*batch_shape, *self.rgb.shape[-4:])
        # log-softmax of log-masks is the identity, so they pass as logits unchanged
        logits = self.log_masks.expand(*batch_shape, *self.log_masks.shape[-4:])
        return MixtureImage(rgb, logits, self.sigma, self.per_channel)


class GaussianLikelihood:
    """``N(x; Σ_k m_k x_k, σ²)``: the mask-weighted mean image with one global σ.
    (``per_channel`` is taken, and means nothing, so that every likelihood is built alike.)"""

    def __init__(self, sigma: float, per_channel: bool = False) -> None:
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)

    def __call__(self, rgb: Tensor, mask_logits: Tensor) -> TorchDistribution:
        masks = torch.softmax(mask_logits, dim=-4)
        mean = (masks * rgb).sum(-4)                                            # (..., C, H, W)
        return dist.Normal(mean, torch.as_tensor(self.sigma, dtype=mean.dtype, device=mean.device)).to_event(3)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma})"


class MixtureLikelihood(GaussianLikelihood):
    """``Σ_k m_k N(x; x_k, σ²)`` per pixel, or per colour channel (:class:`MixtureImage`)."""

    def __init__(self, sigma: float, per_channel: bool = False) -> None:
        super().__init__(sigma)
        self.per_channel = bool(per_channel)

    def __call__(self, rgb: Tensor, mask_logits: Tensor) -> TorchDistribution:
        return MixtureImage(rgb, mask_logits, self.sigma, per_channel=self.per_channel)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma}, per_channel={self.per_channel})"


#: what a LOM or an orderless model calls for its image distribution: per-slot RGB and mask
#: logits in, a distribution with event shape ``(C, H, W)`` out (it has a ``sigma``)
ImageLikelihood = Callable[[Tensor, Tensor], TorchDistribution]

#: name → class, taking ``(sigma, per_channel=...)``; the one table of likelihood names, which
#: :mod:`lom_pyro.registry` serves as its ``"likelihood"`` kind
LIKELIHOODS: dict[str, type[GaussianLikelihood]] = {"gaussian": GaussianLikelihood, "mixture": MixtureLikelihood}


def image_likelihood(rgb: Tensor, mask_logits: Tensor, sigma: float, kind: str = "gaussian",
                     per_channel: bool = False) -> TorchDistribution:
    """The image distribution of a slot decoder's output under the likelihood named ``kind``
    (see the module docstring).

    :return: batch shape ``rgb.shape[:-4]``, event shape ``(C, H, W)``.
    """
    if kind not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {tuple(LIKELIHOODS)}, got {kind!r}")
    return LIKELIHOODS[kind](sigma, per_channel=per_channel)(rgb, mask_logits)
