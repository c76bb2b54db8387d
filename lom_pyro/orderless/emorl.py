"""EfficientMORL (Emami et al. 2021) as an orderless Pyro VAE (docs/design.md §4, paper A.4.1).

Guide (bottom-up, then top-down)::

    tokens = Encoder(x);  keys, values = Linear(tokens)                 computed once
    z^{-1} ~ N(μ_init, σ(s_init))  for every slot (the noise makes slots exchangeable)
    for l = 0..L-1:   λ_l = SlotAttention(z^{l-1}, λ_{l-1});  z^l ~ q_l = N(μ_l, σ(s_l))
    λ = λ_{L-1}
    for i = 1..I:     g = ∇_λ loss_{i-1};  λ += Refine(λ, LN(g));  z ~ N(μ, σ(s))

Model (the "reversed" hierarchical prior of the reference)::

    z^{L-1} ~ N(0, I);   z^l ~ p(z^l | z^{l+1}) for l < L-1          (per-slot MLP)
    x ~ N(Σ_k m_k x_k, σ²) decoded from z^{L-1}                       iteration 0
    for i = 1..I:  z_i ~ p(z^0 | z^1);   x ~ N(· decoded from z_i)    refinement

Objective: the reference minimises ``Σ_i w_i (nll_i + KL_i)`` with
``w_i = (I + 3 − i) / (I + 1)`` (1.5, 1.25, 1.0, 0.75 for I = 3; earlier iterations
weigh more). Each iteration's sites sit under ``poutine.scale(w_i)`` in both programs,
so an analytic-KL ELBO over them is that sum (over the batch rather than its mean, and
with the likelihood's ½ log 2π, which the reference drops).

Sites (B = batch, K = slots, Dz = slot dim; ``with plates.batch, plates.slots``):

====================================  =============  ===========  =========================
site                                  value shape    scale        meaning
====================================  =============  ===========  =========================
``"o_layer_{l}"``, l = 0..L-1         (B, K, Dz)     w_0          bottom-up layer l
``"x_orderless_0"``                   (B, 1, C,H,W)  w_0          image from layer L-1
``"o_refine_{i}"``, i = 1..I-1        (B, K, Dz)     w_i          refinement step i
``"x_orderless_{i}"``, i = 1..I-1     (B, 1, C,H,W)  w_i          image of step i
``ORDERLESS_SLOTS`` "o"               (B, K, Dz)     w_I          final refined posterior
``ORDERLESS_OBS`` "x_orderless"       (B, 1, C,H,W)  w_I          image of the final step
====================================  =============  ===========  =========================

With I = 0 the last layer's site is ``"o"`` and its image ``"x_orderless"``. Every
latent site carries ``infer={"free_bits": λ, "geco_group": ORDERLESS_OBS}`` (λ = 0.75·Dz
nats by default, paper A.4.2) and ``ORDERLESS_OBS`` carries ``geco_group`` too; the
intermediate images form no GECO group of their own (see :meth:`EMORL.geco_config`).

Images enter in [-1, 1] (paper A.4.1). As in the reference, the likelihood is computed
on ``(x + 1) / 2`` with a sigmoid decoder (``target_range="unit"``), so σ and the
paper's GECO targets keep their meaning; ``target_range="signed"`` observes x itself
with a tanh decoder instead. :meth:`EMORL.observation` maps x to the observed frame.

Differences from the reference code, all deliberate:

* One sample per layer: the KL of layer l < L−1 is taken against ``p(z^l | z^{l+1})`` at
  the sample of layer l+1 that the guide drew (and that queried the next layer); the
  reference draws a second, fresh sample for it. Same expectation, one site per latent.
  As there, each KL is analytic given the sampled parent, so the model's sites run
  top-down while the guide's run bottom-up (``TraceMeanField_ELBO`` warns about the
  order under validation; the value is what the reference computes).
* The refinement input is the gradient of the previous iteration's ``nll + KL`` summed
  over the batch, without free bits or GECO weighting, and without a double-backward
  graph. The reference differentiates the batch *mean* (so its gradient scales with 1/B)
  and, after GECO's warm-up, weighs the NLL by ``softplus(β)``. Each half is
  LayerNorm'ed per slot, so only the relative weight of NLL and KL differs.
* Nothing depends on the batch size, and the position ramps follow (H, W), so
  non-square images work.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule, pyro_method
from torch import Tensor, nn

from lom_pyro.infer.geco import GECOConfig
from lom_pyro.likelihoods import LIKELIHOODS, image_likelihood
from lom_pyro.nn.decoders import SpatialBroadcastDecoder
from lom_pyro.nn.encoders import ConvTokenEncoder
from lom_pyro.nn.refinement import RefinementNetwork
from lom_pyro.nn.slot_attention import StochasticSlotAttention, softplus_to_std
from lom_pyro.ops import compose
from lom_pyro.orderless.base import SlotPosterior, check_images, check_positive_integers, size_overrides
from lom_pyro.plates import Plates, make_plates
from lom_pyro.sites import ORDERLESS_OBS, ORDERLESS_SLOTS

__all__ = ["EMORL", "ConditionalSlotPrior", "PRESETS", "iteration_weights"]

LAYER_SITE = ORDERLESS_SLOTS + "_layer_{}"
REFINE_SITE = ORDERLESS_SLOTS + "_refine_{}"
STEP_OBS_SITE = ORDERLESS_OBS + "_{}"
TARGET_RANGES = ("unit", "signed")

#: Named settings for :meth:`EMORL.preset` (keyword overrides of the reference defaults).
PRESETS: dict[str, dict[str, Any]] = {
    # EfficientMORL's own defaults (Objects Room-like 64×64, K = 7)
    "reference": {},
    # the LOM paper's runs: I = 2 refinement steps (A.4.1)
    "lom": {"refinement_steps": 2},
    # the same model with smaller numbers, for CPU runs at 32 px, K = 6
    "cpu": {"num_slots": 6, "image_size": 32, "slot_dim": 32, "stochastic_layers": 2,
            "refinement_steps": 1, "encoder_width": 32, "decoder_hidden": 32,
            "prior_hidden": 64, "refinement_hidden": 64},
}


def iteration_weights(refinement_steps: int) -> list[float]:
    """EMORL's loss weights ``w_i = (I + 3 − i) / (I + 1)`` for iterations i = 0..I."""
    if refinement_steps < 0:
        raise ValueError(f"refinement_steps must be >= 0, got {refinement_steps}")
    n = refinement_steps
    return [(n + 3 - i) / (n + 1) for i in range(n + 1)]


def _kl_normal(loc: Tensor, scale: Tensor, p_loc: Tensor | float, p_scale: Tensor | float) -> Tensor:
    """Elementwise ``KL(N(loc, scale) ‖ N(p_loc, p_scale))``."""
    p_scale = torch.as_tensor(p_scale, dtype=loc.dtype, device=loc.device)
    var_ratio = (scale / p_scale) ** 2
    return 0.5 * (var_ratio + ((loc - p_loc) / p_scale) ** 2 - 1.0 - var_ratio.log())


def _version(t: Tensor) -> int:
    """In-place version counter (inference tensors have none and cannot change)."""
    return -1 if t.is_inference() else t._version


class _DecodeCache:
    """Decoder outputs of guide samples, reused by the model replayed on the same trace.

    Entries are keyed on the sample's identity and in-place version. An entry goes when
    the model takes it, when its sample dies, or at the start of the next guide run — so a
    guide run whose model never runs holds at most one batch's decodes (the decoded graph
    may itself keep the sample alive). Copies and pickles of the module start empty.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref, int, tuple[Tensor, Tensor]]] = {}

    def put(self, z: Tensor, decoded: tuple[Tensor, Tensor]) -> None:
        key, entries = id(z), self._entries
        entries[key] = (weakref.ref(z, lambda _: entries.pop(key, None)), _version(z), decoded)

    def pop(self, z: Tensor) -> tuple[Tensor, Tensor] | None:
        entry = self._entries.get(id(z))
        if entry is None or entry[0]() is not z or entry[1] != _version(z):
            return None
        del self._entries[id(z)]
        return entry[2]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __deepcopy__(self, memo: dict) -> "_DecodeCache":
        return _DecodeCache()

    def __reduce__(self):
        return (_DecodeCache, ())


def _xavier_normal_(module: nn.Module, gain: float) -> None:
    """EMORL's ``init_weights(·, 'xavier')``: xavier-normal(gain) weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConditionalSlotPrior(nn.Module):
    """Per-slot conditional prior ``p(z^l | z^{l+1})``: ``Linear(Dz, h) → ELU → (μ, s)``,
    ``σ = softplus_to_std(s)`` (EMORL's ``IndependentPrior``).

    :param slot_dim: Dz. :param hidden: h (EMORL: 128).
    """

    def __init__(self, slot_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(slot_dim, hidden), nn.ELU())
        self.loc = nn.Linear(hidden, slot_dim)
        self.raw_scale = nn.Linear(hidden, slot_dim)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """:param z: ``(B, K, Dz)``. :return: ``loc, scale`` ``(B, K, Dz)``."""
        h = self.body(z)
        return self.loc(h), softplus_to_std(self.raw_scale(h))


class EMORL(PyroModule):
    """EfficientMORL as an :class:`~lom_pyro.orderless.OrderlessModel`; see the module docstring.

    Defaults are the reference's (K = 7, Dz = 64, L = 3, I = 3, 64×64, σ = 0.7, "iodine"
    decoder with 64 channels, xavier-normal init with gain 0.02 nearly everywhere).

    :param num_slots: K.
    :param image_size: H = W, or ``(H, W)`` (non-square images work).
    :param channels: C.
    :param slot_dim: Dz.
    :param stochastic_layers: L ≥ 1, bottom-up layers with shared weights.
    :param refinement_steps: I ≥ 0 (reference 3, LOM paper 2). A plain attribute, so a
        curriculum may lower it during training (the reference goes 3 → 1 at 100K steps);
        the site names and weights follow it.
    :param sigma: global likelihood standard deviation (0.7; 0.1 for CLEVR6), in the frame
        of ``target_range``.
    :param likelihood: ``"gaussian"`` (mask-weighted mean) or ``"mixture"`` (EMORL's "GMM",
        per colour channel).
    :param target_range: ``"unit"`` — observe ``(x + 1) / 2`` with a sigmoid decoder (the
        reference); ``"signed"`` — observe x with a tanh decoder.
    :param encoder_width: channels of the image encoder and token width (64).
    :param decoder_hidden: channels of the broadcast decoder (64).
    :param decoder_layers: hidden 3×3 convolutions of the decoder (4, "iodine").
    :param prior_hidden: hidden width of the conditional prior MLP (128).
    :param refinement_hidden: hidden width of the refinement input MLP (128).
    :param free_bits: λ in nats per example on every EMORL KL term (default 0.75·Dz; 0 = off).
    :param init_gain: gain of the xavier-normal init (0.02).
    """

    def __init__(self, num_slots: int = 7, image_size: int | tuple[int, int] = 64, *, channels: int = 3,
                 slot_dim: int = 64, stochastic_layers: int = 3, refinement_steps: int = 3,
                 sigma: float = 0.7, likelihood: str = "gaussian", target_range: str = "unit",
                 encoder_width: int = 64, decoder_hidden: int = 64, decoder_layers: int = 4,
                 prior_hidden: int = 128, refinement_hidden: int = 128, free_bits: float | None = None,
                 init_gain: float = 0.02) -> None:
        super().__init__()
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        check_positive_integers({"num_slots": num_slots, "channels": channels, "slot_dim": slot_dim,
                                 "image height": height, "image width": width,
                                 "stochastic_layers": stochastic_layers, "encoder_width": encoder_width,
                                 "decoder_hidden": decoder_hidden, "decoder_layers": decoder_layers,
                                 "prior_hidden": prior_hidden, "refinement_hidden": refinement_hidden})
        if not (isinstance(sigma, (int, float)) and sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {tuple(LIKELIHOODS)}, got {likelihood!r}")
        if target_range not in TARGET_RANGES:
            raise ValueError(f"target_range must be one of {TARGET_RANGES}, got {target_range!r}")
        if free_bits is not None and not free_bits >= 0:
            raise ValueError(f"free_bits must be >= 0 nats or None, got {free_bits!r}")
        if not init_gain > 0:
            raise ValueError(f"init_gain must be > 0, got {init_gain!r}")

        self.num_slots = num_slots
        self.slot_dim = slot_dim
        self.image_shape = (channels, height, width)
        self.stochastic_layers = stochastic_layers
        self.refinement_steps = refinement_steps
        self.sigma = float(sigma)
        self.likelihood = likelihood
        self.mixture_per_channel = True   # EMORL's "GMM" mixes each colour channel on its own
        self.target_range = target_range
        self.free_bits = 0.75 * slot_dim if free_bits is None else float(free_bits)
        self.init_gain = float(init_gain)
        self._decoder_kwargs = {"hidden": decoder_hidden, "num_layers": decoder_layers, "kernel": 3,
                                "rgb_activation": "sigmoid" if target_range == "unit" else "tanh"}

        self.encoder = ConvTokenEncoder(channels, encoder_width)
        self.attention = StochasticSlotAttention(slot_dim, token_dim=encoder_width)
        # one learned (μ, s) shared by all K slots (row 0: μ = 0, row 1: s = 1)
        self.init_posterior = nn.Parameter(torch.stack([torch.zeros(slot_dim), torch.ones(slot_dim)]))
        # the reversed prior needs p(z^l | z^{l+1}) only when there is a layer below the top
        self.prior = ConditionalSlotPrior(slot_dim, prior_hidden) if stochastic_layers > 1 else None
        self.refine = RefinementNetwork(slot_dim, refinement_hidden)
        self.decoder = self._new_decoder()

        # Reference init: xavier-normal(0.02) for convs and linears of the encoder, attention,
        # prior, refinement MLP/heads and decoder; LayerNorms, the encoder's position
        # projection and the refinement GRU keep PyTorch's default; the dual GRU's
        # parameters are N(0, 1) (the reference's DualGRU is built from torch.randn).
        for part in (self.encoder.convs, self.encoder.mlp, self.attention.to_q, self.attention.to_k,
                     self.attention.to_v, self.attention.mlp_mu, self.attention.mlp_scale,
                     self.refine.encoding, self.refine.delta_mu, self.refine.delta_scale):
            _xavier_normal_(part, self.init_gain)
        if self.prior is not None:
            _xavier_normal_(self.prior, self.init_gain)
        for p in self.attention.gru.parameters():
            nn.init.normal_(p)
        # decoder outputs of guide samples, reused by the model (see _decode_cached)
        self._decoded = _DecodeCache()

    # -- configuration ----------------------------------------------------------------------
    @property
    def refinement_steps(self) -> int:
        return self._refinement_steps

    @refinement_steps.setter
    def refinement_steps(self, value: int) -> None:
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"refinement_steps must be a non-negative integer, got {value!r}")
        self._refinement_steps = value

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "EMORL":
        """Build a named setting from :data:`PRESETS` (``"reference"``, ``"lom"``, ``"cpu"``)."""
        if name not in PRESETS:
            raise ValueError(f"name must be one of {sorted(PRESETS)}, got {name!r}")
        return cls(**{**PRESETS[name], **overrides})

    @staticmethod
    def geco_config(goal: float = -0.352, *, speedup: float | None = 5.0, step_size: float = 1e-6,
                    ema_decay: float = 0.99, warmup_steps: int = 1000) -> GECOConfig:
        """EMORL's GECO expressed as options of the core (GENESIS-form) GECO.

        :param goal: the paper's target per pixel·channel (A.4.2: −0.352 Objects Room,
            −0.351 ShapeStacks, −2.265 CLEVR6 with σ = 0.1): in the reference code a target
            for the *negative* log-likelihood without ½ log 2π (``C = target − nll``; its
            CLEVR6 config −61000 = −2.206·96·96·3), which is :class:`GECOConfig`'s
            convention. The targets assume the reference frame, ``target_range="unit"``.
        :param speedup: acceleration once the target is met (5 / 50 / 10 for Objects Room /
            ShapeStacks / CLEVR6); the reference code has none, the LOM paper adds it.

        Mapping of the reference (``loss = KL − softplus(β)·(C_t + sg(C_ema − C_t))``,
        ``β ← max(β − η·C_ema, 0.55)`` from step 1,000, β₀ = 0.55) onto
        ``loss = err + β'·KL``:

        * ``β' = 1 / softplus(β)``: dividing the loss by ``softplus(β)`` changes its scale,
          not its minimiser; the floor ``softplus(0.55) ≈ 1`` becomes ``beta_max = 1`` and
          the start ``beta_init = 1``.
        * no constraint for the first 1,000 steps → ``warmup_steps = 1000`` (the EMA still
          runs, as the reference initialises it at step 1,000).
        * step η = 1e-6 on the same per-image error scale, and the reference's additive step
          on β: ``update="additive"`` moves ρ = softplus⁻¹(1/β') by −η·C, so while the
          target is out of reach β' falls like 1/t, as in the reference (the GENESIS form's
          multiplicative step would drive it to ``beta_min`` exponentially fast).
        * the constraint is measured on the final reconstruction only (the reference's
          ``C_ema`` uses the last iteration's NLL); intermediate images carry no group.
        """
        return GECOConfig(goal=goal, step_size=step_size, speedup=speedup, ema_decay=ema_decay,
                          beta_init=1.0, beta_max=1.0, warmup_steps=warmup_steps,
                          log_normaliser=0.5 * math.log(2 * math.pi), update="additive")

    # -- site names -------------------------------------------------------------------------
    def layer_site(self, layer: int) -> str:
        """Site of bottom-up layer ``layer`` (``"o"`` for the last one when I = 0)."""
        if self.refinement_steps == 0 and layer == self.stochastic_layers - 1:
            return ORDERLESS_SLOTS
        return LAYER_SITE.format(layer)

    def refinement_site(self, step: int) -> str:
        """Site of refinement step ``step`` ∈ 1..I (``"o"`` for the last)."""
        return ORDERLESS_SLOTS if step == self.refinement_steps else REFINE_SITE.format(step)

    def observation_site(self, iteration: int) -> str:
        """Image site of iteration ``iteration`` ∈ 0..I (``"x_orderless"`` for the last)."""
        return ORDERLESS_OBS if iteration == self.refinement_steps else STEP_OBS_SITE.format(iteration)

    def latent_sites(self) -> list[str]:
        """All latent site names, guide order."""
        return ([self.layer_site(l) for l in range(self.stochastic_layers)]
                + [self.refinement_site(i) for i in range(1, self.refinement_steps + 1)])

    def observation_sites(self) -> list[str]:
        """All image site names, iteration order."""
        return [self.observation_site(i) for i in range(self.refinement_steps + 1)]

    def iteration_weights(self) -> list[float]:
        """``w_i`` for i = 0..I (see :func:`iteration_weights`)."""
        return iteration_weights(self.refinement_steps)

    # -- helpers ----------------------------------------------------------------------------
    def _new_decoder(self, **overrides: Any) -> SpatialBroadcastDecoder:
        decoder = SpatialBroadcastDecoder(self.slot_dim, self.image_shape, **{**self._decoder_kwargs, **overrides})
        _xavier_normal_(decoder, self.init_gain)
        return decoder

    def _check_input(self, x: Tensor) -> None:
        check_images(x, self.image_shape)

    def _latent_infer(self) -> dict[str, Any]:
        return {"free_bits": self.free_bits, "geco_group": ORDERLESS_OBS}

    def observation(self, x: Tensor) -> Tensor:
        """The image as the likelihood sees it: ``(x + 1) / 2`` ("unit") or ``x`` ("signed").
        A LOM reusing :meth:`make_decoder` should observe this too."""
        return (x + 1.0) / 2.0 if self.target_range == "unit" else x

    def _image_dist(self, rgb: Tensor, mask_logits: Tensor):
        return image_likelihood(rgb, mask_logits, self.sigma, kind=self.likelihood,
                                per_channel=self.mixture_per_channel)

    def _decode_cached(self, z: Tensor) -> tuple[Tensor, Tensor]:
        # The guide decodes every sample but the last to get its refinement gradient; the
        # model replayed on the guide receives the very same tensors, so it reuses those
        # decodes instead of paying for them twice (the decoder dominates the cost).
        cached = self._decoded.pop(z)
        return self.decoder(z) if cached is None else cached

    def _step_loss(self, target: Tensor, mu: Tensor, raw: Tensor, z: Tensor, prior: tuple[Any, Any],
                   lower: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One iteration's loss ``Σ_b [−log p(x | z) + KL]`` (free bits and GECO aside) and
        the decoder output of ``z``. ``lower`` = (loc, scale) of layer L−2, whose prior is
        conditioned on ``z`` at iteration 0."""
        rgb, logits = self.decoder(z)
        nll = -self._image_dist(rgb, logits).log_prob(target)                        # (B,)
        kl = _kl_normal(mu, softplus_to_std(raw), *prior).sum()
        if lower is not None:
            p_loc, p_scale = self.prior(z)
            kl = kl + _kl_normal(lower[0], lower[1], p_loc, p_scale).sum()
        return nll.sum() + kl, (rgb, logits)

    def _loss_gradient(self, target: Tensor, mu: Tensor, raw: Tensor, z: Tensor, prior: tuple[Any, Any],
                       lower: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
        """∇_λ of the previous iteration's loss, λ = (μ, s); caches the decode of ``z``.

        ``create_graph=False``: the reference builds the double-backward graph and then
        detaches the result, paying memory for nothing. When λ carries no graph (the guide
        under ``torch.no_grad()``), the loss is rebuilt from a detached λ with the same
        noise ``ε = (z − μ)/σ``, inside ``torch.enable_grad()``.
        """
        if torch.is_grad_enabled() and mu.requires_grad and raw.requires_grad:
            loss, decoded = self._step_loss(target, mu, raw, z, prior, lower)
            g_mu, g_raw = torch.autograd.grad(loss, [mu, raw], retain_graph=True, allow_unused=True)
            g_mu = torch.zeros_like(mu) if g_mu is None else g_mu
            g_raw = torch.zeros_like(raw) if g_raw is None else g_raw
        else:
            eps = ((z - mu) / softplus_to_std(raw)).detach()
            # clones turn inference-mode tensors into ordinary ones autograd may save
            with torch.inference_mode(False), torch.enable_grad():
                mu_ = mu.detach().clone().requires_grad_(True)
                raw_ = raw.detach().clone().requires_grad_(True)
                z_ = mu_ + softplus_to_std(raw_) * eps.clone()
                low = None if lower is None else (lower[0].detach().clone(), lower[1].detach().clone())
                const = tuple(p.clone() if isinstance(p, Tensor) else p for p in prior)
                loss, decoded = self._step_loss(target.clone(), mu_, raw_, z_, const, low)
                g_mu, g_raw = torch.autograd.grad(loss, [mu_, raw_])
            decoded = (decoded[0].detach(), decoded[1].detach())
        self._decoded.put(z, decoded)
        return g_mu, g_raw

    # -- Pyro programs ----------------------------------------------------------------------
    @pyro_method
    def model(self, x: Tensor, plates: Plates) -> None:
        """Hierarchical prior and one image likelihood per iteration (see module docstring).

        :param x: images in [-1, 1] ``(B, C, H, W)``.
        :param plates: from :func:`~lom_pyro.orderless.make_plates` (batch dim −2, slots −1).
        """
        self._check_input(x)
        target = self.observation(x).unsqueeze(1)                                   # (B, 1, C, H, W)
        b, k, d = x.shape[0], self.num_slots, self.slot_dim
        n_layers, n_steps = self.stochastic_layers, self.refinement_steps
        weights = self.iteration_weights()
        prior = self.prior
        standard = dist.Normal(x.new_zeros(()), x.new_ones(())).expand([b, k, d]).to_event(1)
        with plates.batch:
            z: list[Tensor | None] = [None] * n_layers
            with plates.slots, poutine.scale(scale=weights[0]):
                # reversed prior: the last layer is N(0, I), each earlier one p(z^l | z^{l+1})
                for layer in reversed(range(n_layers)):
                    fn = standard if layer == n_layers - 1 else dist.Normal(*prior(z[layer + 1])).to_event(1)
                    z[layer] = pyro.sample(self.layer_site(layer), fn, infer=self._latent_infer())
            with poutine.scale(scale=weights[0]):
                self._observe(self.observation_site(0), target, z[-1])
            if n_steps:
                # refinement KLs are against the first layer's conditional prior (reference)
                refine_prior = dist.Normal(*prior(z[1])).to_event(1) if n_layers > 1 else standard
                for step in range(1, n_steps + 1):
                    with poutine.scale(scale=weights[step]):
                        with plates.slots:
                            zi = pyro.sample(self.refinement_site(step), refine_prior, infer=self._latent_infer())
                        self._observe(self.observation_site(step), target, zi)

    def _observe(self, name: str, target: Tensor, z: Tensor) -> None:
        rgb, logits = self._decode_cached(z)                                         # (B, K, C|1, H, W)
        fn = self._image_dist(rgb.unsqueeze(1), logits.unsqueeze(1))                 # batch (B, 1)
        infer = {"geco_group": ORDERLESS_OBS} if name == ORDERLESS_OBS else {}
        pyro.sample(name, fn, obs=target, infer=infer)

    @pyro_method
    def guide(self, x: Tensor, plates: Plates, *, slot_noise: Tensor | None = None) -> SlotPosterior:
        """Bottom-up stochastic slot attention, then top-down refinement.

        :param x: images in [-1, 1] ``(B, C, H, W)``.
        :param plates: as for :meth:`model`.
        :param slot_noise: standard-normal noise ``(B, K, Dz)`` of the initial slot sample
            (drawn with ``torch.randn`` if omitted). Permuting it along K permutes every
            slot output: the posterior has no slot order.
        :return: the final posterior (site ``"o"``) and its sample.
        """
        self._check_input(x)
        b, k, d = x.shape[0], self.num_slots, self.slot_dim
        if slot_noise is not None and tuple(slot_noise.shape) != (b, k, d):
            raise ValueError(f"slot_noise must have shape (B, K, Dz) = {(b, k, d)}, got {tuple(slot_noise.shape)}")
        n_layers, n_steps = self.stochastic_layers, self.refinement_steps
        weights = self.iteration_weights()
        attention = self.attention
        self._decoded.clear()

        keys, values = attention.project(self.encoder(x))                            # (B, HW, Dz) each
        init_mu, init_raw = self.init_posterior
        mu, raw = init_mu.expand(b, k, d), init_raw.expand(b, k, d)
        noise = torch.randn(b, k, d, dtype=x.dtype, device=x.device) if slot_noise is None else slot_noise
        z = mu + softplus_to_std(raw) * noise.to(x.dtype)                            # (B, K, Dz)
        layers: list[tuple[Tensor, Tensor, Tensor]] = []
        with plates.batch, plates.slots:
            with poutine.scale(scale=weights[0]):
                for layer in range(n_layers):
                    mu, raw = attention(z, mu, raw, keys, values)
                    fn = dist.Normal(mu, softplus_to_std(raw)).to_event(1)
                    z = pyro.sample(self.layer_site(layer), fn, infer=self._latent_infer())
                    layers.append((mu, raw, z))
            if n_steps:
                target = self.observation(x)
                refine, prior = self.refine, self.prior
                zero = (x.new_zeros(()), x.new_ones(()))
                if n_layers > 1:
                    with torch.no_grad():
                        refine_prior = prior(layers[1][2])
                    lower = (layers[-2][0], softplus_to_std(layers[-2][1]))
                else:
                    refine_prior, lower = zero, None
                state = refine.initial_state(mu)
                for step in range(1, n_steps + 1):
                    # iteration 0's loss has the top layer's KL against N(0, I) and the layer
                    # below's KL against p(· | z^{L-1}); later ones the refinement KL
                    p = zero if step == 1 else refine_prior
                    g_mu, g_raw = self._loss_gradient(target, mu, raw, z, p, lower if step == 1 else None)
                    d_mu, d_raw, state = refine(mu, raw, g_mu, g_raw, state)
                    mu, raw = mu + d_mu, raw + d_raw
                    with poutine.scale(scale=weights[step]):
                        fn = dist.Normal(mu, softplus_to_std(raw)).to_event(1)
                        z = pyro.sample(self.refinement_site(step), fn, infer=self._latent_infer())
        return SlotPosterior(mu, softplus_to_std(raw), z)

    # -- conveniences -----------------------------------------------------------------------
    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """:param z: slots ``(B, K, Dz)``.
        :return: ``rgb (B, K, C, H, W)`` (in the likelihood frame) and mask logits ``(B, K, 1, H, W)``."""
        return self.decoder(z)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> dict[str, Tensor]:
        """Decode the final posterior means (no Pyro effects escape).

        :param x: images in [-1, 1] ``(B, C, H, W)``.
        :return: ``image (B, C, H, W)`` and per-slot ``rgb (B, K, C, H, W)`` in the input's
            [-1, 1] frame, ``masks (B, K, 1, H, W)`` (softmax over K), ``slots (B, K, Dz)``.
        """
        with poutine.block():
            post = self.guide(x, make_plates(x.shape[0], self.num_slots))
        self._decoded.clear()
        rgb, logits = self.decoder(post.loc)
        image, masks = compose(rgb, logits)
        if self.target_range == "unit":
            rgb, image = 2.0 * rgb - 1.0, 2.0 * image - 1.0
        return {"image": image, "rgb": rgb, "masks": masks, "slots": post.loc}

    def make_decoder(self, *, hidden: int | None = None, num_layers: int | None = None) -> SpatialBroadcastDecoder:
        """A fresh decoder of the same architecture and init, with its own weights (the
        LOM's, docs/design.md §4); ``hidden`` / ``num_layers`` make it narrower or shallower."""
        overrides = size_overrides(hidden=hidden, num_layers=num_layers)
        ref = self.init_posterior
        return self._new_decoder(**overrides).to(device=ref.device, dtype=ref.dtype)

    def extra_repr(self) -> str:
        c, h, w = self.image_shape
        return (f"K={self.num_slots}, Dz={self.slot_dim}, image=({c}, {h}, {w}), L={self.stochastic_layers}, "
                f"I={self.refinement_steps}, sigma={self.sigma}, likelihood={self.likelihood!r}, "
                f"target_range={self.target_range!r}, free_bits={self.free_bits}")
