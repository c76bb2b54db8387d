"""GENESIS-v2 (Engelcke et al. 2021) as an orderless Pyro VAE (docs/design.md §4, paper A.4.1).

Guide::

    f = UNet(x)                                          per-pixel features (B, F, H, W)
    log m_{1:K} = IC-SBP(ConvGNReLU(f))                  instance colouring stick-breaking
    g_k = Σ_hw m_k · FeatureHead(f) / (Σ_hw m_k + 1e-5)  mask-pooled features (B, K, 2F)
    μ_k, s_k = MLP(LayerNorm(g_k));  o_k ~ N(μ_k, softplus(s_k + 0.5) + 1e-8)

Model (the LOM paper's: GENESIS-v2's autoregressive prior replaced by an independent
Gaussian slot prior, A.4.1)::

    o_k ~ N(0, I) for every slot;   x ~ p(x | decode(o_{1:K}))

with the likelihood ``"gaussian"`` (mask-weighted mean, one global σ = 0.7: the paper's
"GENv2-G") or ``"mixture"`` (GENESIS-v2's own, "GENv2-MoG"). The reference forms the mixture
per colour channel (``log Σ_k m_k N(x_c; x_kc, σ)`` for each channel c); that is the default
here too, and ``mixture_per_channel=False`` mixes whole pixels instead (GENESIS's paper).

Sites (``with plates.batch, plates.slots``): ``ORDERLESS_SLOTS`` "o" (B, K, Dz) and
``ORDERLESS_OBS`` "x_orderless" (B, 1, C, H, W), both in the GECO group ``ORDERLESS_OBS``.
GENESIS-v2's GECO is the core (GENESIS) form of :class:`~lom_pyro.infer.GECOConfig`.

Images enter in [-1, 1] like every model of this library; GENESIS-v2 works on [0, 1]
(docs/design.md §8), so the encoder and the likelihood see ``(x + 1) / 2`` (:meth:`observation`).

Differences from the reference code, all deliberate:

* The feature head runs once per batch and is pooled by every mask in one product; the
  reference recomputes it inside its loop over slots (~55 % of a batch-32 step here).
* All slots are decoded in one batched call; the reference loops over slots.
* Seeds are gathered in one vectorised step, and the noise that picks them may be given
  (``seed_noise``), which makes the guide a deterministic function of it for tests.
* Not built: the optional mask-consistency KL (``klm_loss``, off in the reference's
  default) and dynamic K.
"""

from __future__ import annotations

import math
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule, pyro_method
from torch import Tensor, nn
from torch.nn import functional as F

from lom_pyro.likelihoods import LIKELIHOODS, image_likelihood
from lom_pyro.nn.decoders import BroadcastDeconvDecoder
from lom_pyro.nn.icsbp import KERNELS, InstanceColouringSBP
from lom_pyro.nn.unet import ConvGNReLU, UNet
from lom_pyro.ops import compose
from lom_pyro.orderless.base import (OrderlessDefaults, SlotPosterior, check_images, check_positive_integers,
                                     size_overrides)
from lom_pyro.plates import Plates
from lom_pyro.sites import ORDERLESS_OBS, ORDERLESS_SLOTS

__all__ = ["GenesisV2", "PRESETS", "pool_by_masks"]

#: Named settings for :meth:`GenesisV2.preset` (keyword overrides of the defaults).
PRESETS: dict[str, dict[str, Any]] = {
    # GENESIS-v2's architecture at 64×64 (K = 9 as for ShapeStacks), as in the LOM paper
    "reference": {},
    # the same model with smaller numbers, for CPU runs at 32 px, K = 6
    "cpu": {"num_slots": 6, "image_size": 32, "slot_dim": 32, "feature_dim": 32, "decoder_hidden": 32},
}


def pool_by_masks(masks: Tensor, features: Tensor, eps: float = 1e-5) -> Tensor:
    """Mask-weighted means of a feature map, every slot at once.

    :param masks: ``(B, K, 1, H, W)``. :param features: ``(B, C, H, W)``.
    :return: ``Σ_hw m_k f / (Σ_hw m_k + eps)`` ``(B, K, C)``.
    """
    weights = masks.flatten(2)                                                    # (B, K, HW)
    summed = torch.bmm(weights, features.flatten(2).transpose(1, 2))             # (B, K, C)
    return summed / (weights.sum(-1, keepdim=True) + eps)


class GenesisV2(OrderlessDefaults, PyroModule):
    """GENESIS-v2 as an :class:`~lom_pyro.orderless.OrderlessModel`; see the module docstring.

    :param num_slots: K (9 ShapeStacks, 7 Objects Room / CLEVR6).
    :param image_size: H = W, or ``(H, W)``; sides divisible by 16 (the decoder's four
        upsampling steps) and by the UNet's ``2 ** (stages − 1)``.
    :param channels: C.
    :param slot_dim: Dz (64; the reference ties it to ``feature_dim``).
    :param feature_dim: F, the UNet's width and the pooled features' half-width (64).
    :param sigma: the likelihood's global σ (0.7), in the [0, 1] frame.
    :param likelihood: ``"gaussian"`` (GENv2-G, the paper's) or ``"mixture"`` (GENv2-MoG).
    :param mixture_per_channel: the mixture per colour channel (the reference) or per pixel.
    :param decoder_hidden: channels of the decoder (64). :param decoder_layers: its upsampling steps (4).
    :param embedding_dim: IC-SBP colour embedding channels (8).
    :param kernel: IC-SBP kernel, ``"gaussian"`` or ``"laplacian"``.
    :param semiconv: semi-convolutional embedding (pixel coordinates behind a gate).
    :param unet_blocks: UNet stages (default ``log2(H) − 1``).
    """

    def __init__(self, num_slots: int = 9, image_size: int | tuple[int, int] = 64, *, channels: int = 3,
                 slot_dim: int = 64, feature_dim: int = 64, sigma: float = 0.7, likelihood: str = "gaussian",
                 mixture_per_channel: bool = True, decoder_hidden: int = 64, decoder_layers: int = 4,
                 embedding_dim: int = 8, kernel: str = "gaussian", semiconv: bool = True,
                 unet_blocks: int | None = None) -> None:
        super().__init__()
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        check_positive_integers({"num_slots": num_slots, "channels": channels, "slot_dim": slot_dim,
                                 "feature_dim": feature_dim, "image height": height, "image width": width,
                                 "decoder_hidden": decoder_hidden, "decoder_layers": decoder_layers,
                                 "embedding_dim": embedding_dim})
        if num_slots < 2:
            raise ValueError(f"num_slots must be >= 2 (K − 1 seeded masks and the remaining scope), got {num_slots}")
        if feature_dim % 8:
            raise ValueError(f"feature_dim must be a multiple of 8 (GroupNorm(8)), got {feature_dim}")
        if not (isinstance(sigma, (int, float)) and sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {tuple(LIKELIHOODS)}, got {likelihood!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.num_slots = num_slots
        self.slot_dim = slot_dim
        self.image_shape = (channels, height, width)
        self.sigma = float(sigma)
        self.likelihood = likelihood
        self.mixture_per_channel = bool(mixture_per_channel)
        self._decoder_kwargs = {"hidden": decoder_hidden, "num_layers": decoder_layers}

        self.encoder = UNet(channels, (height, width), width=feature_dim, blocks=unet_blocks)
        self.seg_head = ConvGNReLU(self.encoder.out_channels, feature_dim)
        self.icsbp = InstanceColouringSBP(feature_dim, num_slots, dim=embedding_dim, kernel=kernel,
                                          semiconv=semiconv)
        self.feature_head = nn.Sequential(ConvGNReLU(self.encoder.out_channels, feature_dim),
                                          nn.Conv2d(feature_dim, 2 * feature_dim, 1))
        self.posterior_head = nn.Sequential(nn.LayerNorm(2 * feature_dim), nn.Linear(2 * feature_dim, 2 * feature_dim),
                                            nn.ReLU(), nn.Linear(2 * feature_dim, 2 * slot_dim))
        self.decoder = self._new_decoder()

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> GenesisV2:
        """Build a named setting from :data:`PRESETS` (``"reference"``, ``"cpu"``)."""
        if name not in PRESETS:
            raise ValueError(f"name must be one of {sorted(PRESETS)}, got {name!r}")
        return cls(**{**PRESETS[name], **overrides})

    # -- helpers ----------------------------------------------------------------------------
    def _new_decoder(self, **overrides: Any) -> BroadcastDeconvDecoder:
        return BroadcastDeconvDecoder(self.slot_dim, self.image_shape, **{**self._decoder_kwargs, **overrides})

    def _check_input(self, x: Tensor) -> None:
        check_images(x, self.image_shape)

    def _infer(self) -> dict[str, Any]:
        return {"geco_group": ORDERLESS_OBS}

    def observation(self, x: Tensor) -> Tensor:
        """GENESIS-v2's frame: images in [0, 1] (``(x + 1) / 2``); the LOM observes it too."""
        return (x + 1.0) / 2.0

    def _image_dist(self, rgb: Tensor, mask_logits: Tensor):
        return image_likelihood(rgb, mask_logits, self.sigma, kind=self.likelihood,
                                per_channel=self.mixture_per_channel)

    # -- inference network ------------------------------------------------------------------
    def encode(self, x: Tensor, seed_noise: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The slot posterior's parameters and the IC-SBP masks.

        :param x: images in [-1, 1] ``(B, C, H, W)``.
        :param seed_noise: uniform noise ``(B, H, W)`` picking the IC-SBP seeds (drawn if omitted).
        :return: ``loc, scale (B, K, Dz)`` and ``log_masks (B, K, 1, H, W)``.
        """
        features = self.encoder(self.observation(x))                                # (B, F', H, W), ReLU'd
        log_masks = self.icsbp(self.seg_head(features), seed_noise)                 # (B, K, 1, H, W)
        pooled = pool_by_masks(log_masks.exp(), self.feature_head(features))       # (B, K, 2F)
        loc, raw = self.posterior_head(pooled).chunk(2, dim=-1)
        return loc, F.softplus(raw + 0.5) + 1e-8, log_masks

    # -- Pyro programs ----------------------------------------------------------------------
    @pyro_method
    def model(self, x: Tensor, plates: Plates) -> None:
        """Independent slot prior ``N(0, I)`` and the image likelihood (module docstring).

        :param x: images in [-1, 1] ``(B, C, H, W)``.
        :param plates: from :func:`~lom_pyro.orderless.make_plates` (batch dim −2, slots −1).
        """
        self._check_input(x)
        b, k, d = x.shape[0], self.num_slots, self.slot_dim
        prior = dist.Normal(x.new_zeros(()), x.new_ones(())).expand([b, k, d]).to_event(1)
        with plates.batch:
            with plates.slots:
                o = pyro.sample(ORDERLESS_SLOTS, prior, infer=self._infer())
            rgb, logits = self.decoder(o)
            image = self._image_dist(rgb.unsqueeze(1), logits.unsqueeze(1))          # batch (B, 1)
            pyro.sample(ORDERLESS_OBS, image, obs=self.observation(x).unsqueeze(1), infer=self._infer())

    @pyro_method
    def guide(self, x: Tensor, plates: Plates, *, seed_noise: Tensor | None = None) -> SlotPosterior:
        """IC-SBP masks, mask-pooled features, one Gaussian per slot.

        :param seed_noise: see :meth:`encode`. The slot order comes only from it.
        :return: the posterior (site ``"o"``) and its sample.
        """
        self._check_input(x)
        loc, scale, _ = self.encode(x, seed_noise)
        with plates.batch, plates.slots:
            o = pyro.sample(ORDERLESS_SLOTS, dist.Normal(loc, scale).to_event(1), infer=self._infer())
        return SlotPosterior(loc, scale, o)

    # -- conveniences -----------------------------------------------------------------------
    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """:param z: slots ``(B, K, Dz)``.
        :return: ``rgb (B, K, C, H, W)`` in [0, 1] and mask logits ``(B, K, 1, H, W)``."""
        return self.decoder(z)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> dict[str, Tensor]:
        """Decode the posterior means (no Pyro effects escape).

        :return: ``image (B, C, H, W)`` and ``rgb (B, K, C, H, W)`` in the input's [-1, 1]
            frame, decoder ``masks (B, K, 1, H, W)``, IC-SBP ``attention (B, K, 1, H, W)``
            and ``slots (B, K, Dz)``.
        """
        self._check_input(x)
        with poutine.block():
            loc, _, log_masks = self.encode(x)
        rgb, logits = self.decoder(loc)
        image, masks = compose(rgb, logits)
        return {"image": 2.0 * image - 1.0, "rgb": 2.0 * rgb - 1.0, "masks": masks, "attention": log_masks.exp(),
                "slots": loc}

    def make_decoder(self, *, hidden: int | None = None, num_layers: int | None = None) -> BroadcastDeconvDecoder:
        """A fresh decoder of the same architecture with its own weights (the LOM's, docs/design.md
        §4); ``hidden`` / ``num_layers`` make it narrower or shallower."""
        overrides = size_overrides(hidden=hidden, num_layers=num_layers)
        ref = self.icsbp.log_sigma
        return self._new_decoder(**overrides).to(device=ref.device, dtype=ref.dtype)

    def extra_repr(self) -> str:
        c, h, w = self.image_shape
        return (f"K={self.num_slots}, Dz={self.slot_dim}, image=({c}, {h}, {w}), sigma={self.sigma}, "
                f"likelihood={self.likelihood!r}, mixture_per_channel={self.mixture_per_channel}")

