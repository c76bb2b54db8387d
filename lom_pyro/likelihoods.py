"""Image likelihoods of a slot decoder (docs/design.md §1).

Both take per-slot RGB ``(..., K, C, H, W)`` and mask logits ``(..., K, 1, H, W)``
(masks are a softmax over the K slots) and return a distribution over images with
event shape ``(C, H, W)`` and batch shape ``...``.

* ``"gaussian"`` — ``N(x; Σ_k m_k x_k, σ²)`` with one global σ (LOM-EMORL, GENv2-G).
* ``"mixture"`` — ``Σ_k m_k N(x; x_k, σ²)`` per pixel (GENESIS, SRI, GENv2-MoG); with
  ``per_channel=True`` the mixture is formed per colour channel (EMORL's "GMM").
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch import Tensor
from torch.distributions import constraints

__all__ = ["image_likelihood", "MixtureImage", "LIKELIHOODS"]

LIKELIHOODS = ("gaussian", "mixture")
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


def image_likelihood(rgb: Tensor, mask_logits: Tensor, sigma: float, kind: str = "gaussian",
                     per_channel: bool = False) -> TorchDistribution:
    """The image distribution of a slot decoder's output; see the module docstring.

    :return: batch shape ``rgb.shape[:-4]``, event shape ``(C, H, W)``.
    """
    if kind == "gaussian":
        masks = torch.softmax(mask_logits, dim=-4)
        mean = (masks * rgb).sum(-4)                                            # (..., C, H, W)
        return dist.Normal(mean, torch.as_tensor(sigma, dtype=mean.dtype, device=mean.device)).to_event(3)
    if kind == "mixture":
        return MixtureImage(rgb, mask_logits, sigma, per_channel=per_channel)
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {kind!r}")
