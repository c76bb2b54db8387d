"""Latent Object Model: scene → K ordered slots → pixels (§3, Figure 2).

Read next to §3 of the paper:

* :meth:`LOM.model` — §3.1: ``s ~ p(s)``; ``h_{1:K} = f_θ(s)``;
  ``z_k ~ N(μ(h_k), σ(h_k))``; pixels from the slot decoder. The auxiliary orderless
  model's own prior and likelihood run alongside (§3.3: the two ELBOs are summed).
* :meth:`LOM.guide` — §3.2, Figure 2, steps 1–5: (1) orderless posterior; behind a
  stop-gradient barrier (2) ``q_φ(s | g_φ(μ^o))``, (3) prior means ``μ^z = μ(f_θ(s))``,
  (4) greedy alignment π, (5) order-aware scales ``f'_φ``; ``q(z_π(k)) = N(μ^o_π(k), σ_π(k))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule, pyro_method
from torch import Tensor, nn
from torch.nn import functional as F

from lom_pyro.handlers import align, order_aware_scale, stop_gradient
from lom_pyro.likelihoods import LIKELIHOODS, image_likelihood
from lom_pyro.models.inputs import check_images
from lom_pyro.nn.attention import CausalTransformer, SetEncoder, xavier_init
from lom_pyro.nn.recurrent import LSTMChain
from lom_pyro.nn.relation import RelationEncoder
from lom_pyro.ops import compose, slerp
from lom_pyro.orderless.base import OrderlessModel, Plates, SlotPosterior, make_plates
from lom_pyro.priors import as_scene_prior
from lom_pyro.sites import BATCH_PLATE, OBJECTS, OBS, ORDERLESS_OBS, ORDERLESS_SLOTS, SCENE, SLOTS_PLATE
from lom_pyro.slot_priors import (AutoregressivePrior, AutoregressiveSlots, ChainPrior, SlotPrior, check_slot_prior,
                                  slot_prior_name, trained_prior)
from lom_pyro.slot_priors.gaussian import MIN_SCALE

__all__ = ["LOM", "Generated", "Encoding", "AutoregressiveSlots", "VARIANTS"]

#: parameter names before the slot prior was a component → their names now (old files load)
_RENAMED = {"prior_net.": "slot_prior.net.", "prior_loc.": "slot_prior.loc_head.",
            "prior_scale.": "slot_prior.scale_head."}

#: Named sets of the LOM's networks: the paper's (§3) and the authors' later SRI code, which
#: samples each slot given the sampled previous one (an LSTM), reads its posterior scales
#: with an LSTM and encodes the scene with relation attention.
VARIANTS = {"paper": dict(slot_prior="transformer", scale_net="transformer", scene_encoder="transformer"),
            "sri": dict(slot_prior="lstm", scale_net="lstm", scene_encoder="relation")}


@dataclass(frozen=True)
class Generated:
    """Decoded scenes.

    :ivar images: mean images ``(N, C, H, W)``.
    :ivar masks: slot masks ``(N, K, 1, H, W)`` (softmax over K).
    :ivar components: per-slot RGB ``(N, K, C, H, W)``.
    :ivar s: scene latents ``(N, Ds)``.
    :ivar z: ordered slots ``(N, K, Dz)``.
    """

    images: Tensor
    masks: Tensor
    components: Tensor
    s: Tensor
    z: Tensor


@dataclass(frozen=True)
class Encoding:
    """The posterior of a batch (one guide run).

    :ivar scene_loc, scene_scale: ``q(s | x)`` ``(B, Ds)``.
    :ivar s: the scene latent the alignment used ``(B, Ds)``.
    :ivar slots_loc, slots_scale: the ordered slot posterior ``(B, K, Dz)``.
    :ivar permutation: ``(B, K)``, ordered slot k ← orderless slot ``permutation[b, k]``.
    :ivar orderless: the orderless posterior.
    """

    scene_loc: Tensor
    scene_scale: Tensor
    s: Tensor
    slots_loc: Tensor
    slots_scale: Tensor
    permutation: Tensor
    orderless: SlotPosterior


class LOM(PyroModule):
    """Latent Object Model over an auxiliary orderless slot VAE.

    :param orderless: the auxiliary orderless model (e.g. :class:`lom_pyro.EMORL`); see
        :class:`lom_pyro.orderless.OrderlessModel`. Sets K, Dz and the image shape.
    :param scene_dim: Ds (paper: 128).
    :param scene_prior: ``None`` (standard normal), a distribution, or a module
        ``forward(temperature) -> distribution`` with ``dim = scene_dim``
        (e.g. :class:`lom_pyro.priors.MixtureScenePrior`).
    :param prior_depth: SA blocks in ``f_θ`` (2). :param scale_depth: in ``f'_φ`` (2).
    :param prior_width: token width of the transformer ``f_θ`` (default Dz, the paper's; its
        two linear heads map it to Dz). Not in the paper: at Dz = 32 a 128-wide ``f_θ``
        explained more of the slot means, not better samples (docs/notes/benchmarks.md).
    :param encoder_depth: SA blocks in ``g_φ`` (3).
    :param sum_pooling: ``g_φ`` pools by sum (False: the scene token, an ablation).
    :param share_prior_and_scale_nets: ``f'_φ`` reuses ``f_θ``'s weights (ablation Model 6).
    :param reuse_orderless_scales: no order-aware scales (ablation Model 5).
    :param matching: ``"greedy"`` (Algorithm 1) or ``"hungarian"``.
    :param likelihood: ``"gaussian"`` (global σ) or ``"mixture"``; a mixture is formed per
        colour channel or per pixel as the orderless model forms its own (its
        ``mixture_per_channel``; per pixel if it has none).
    :param sigma: the likelihood's σ (0.7 Objects Room/ShapeStacks, 0.1 CLEVR6).
    :param scene_free_bits: free bits on the scene KL, nats (paper: 0.25·Ds); an
        attribute, so a schedule may lower it (0.167·Ds for the last 25K steps).
    :param slot_free_bits: free bits on the slot KL summed over K (paper: none).
    :param decoder: the LOM decoder; default ``orderless.make_decoder()`` (docs/design.md §4).
    :param num_slots, slot_dim: if given, checked against the orderless model's.
    :param variant: ``"paper"`` (default) or ``"sri"``, a set of the three options below
        (:data:`VARIANTS`); options given explicitly must agree with it.
    :param slot_prior: a :class:`~lom_pyro.slot_priors.SlotPrior` object, or the name of one
        trained with the LOM: ``"transformer"`` — the paper's deterministic chain
        ``h = f_θ(s)``, slots independent given s (:class:`~lom_pyro.slot_priors.ChainPrior`,
        built with ``prior_depth`` and ``prior_width``); ``"lstm"`` — SRI's stochastic
        autoregressive prior ``p(z_k | s, z_{<k})``, an LSTM fed s, then each sampled
        previous slot (:class:`~lom_pyro.slot_priors.AutoregressivePrior`).
    :param scale_net: ``f'_φ`` as a causal ``"transformer"`` or an ``"lstm"`` (SRI).
    :param scene_encoder: ``g_φ`` as the SA ``"transformer"`` or SRI's ``"relation"`` attention.

    ``score_orderless`` (attribute, default True): the model scores the data under the
    orderless model too (§3.3: the two ELBOs are summed). Set it False while the orderless
    model is frozen (two-stage training): its ELBO terms are then constants with no
    gradient, so they are not computed and its posterior is a fixed input to the guide —
    the same LOM gradient, in 0.52–0.62× the step time on EMORL (benchmarks/frozen_stage.py).
    """

    SCENE = SCENE
    SLOTS = OBJECTS  # the ordered slot site; ``tr.nodes[LOM.SLOTS]["infer"]["permutation"]``
    OBS = OBS
    ORDERLESS_SLOTS = ORDERLESS_SLOTS
    ORDERLESS_OBS = ORDERLESS_OBS
    BATCH_PLATE = BATCH_PLATE
    SLOTS_PLATE = SLOTS_PLATE

    def __init__(self, orderless: OrderlessModel, *, scene_dim: int = 128, scene_prior=None,
                 prior_depth: int = 2, scale_depth: int = 2, encoder_depth: int = 3,
                 prior_width: int | None = None,
                 sum_pooling: bool = True, share_prior_and_scale_nets: bool = False,
                 reuse_orderless_scales: bool = False, matching: str = "greedy",
                 likelihood: str = "gaussian", sigma: float = 0.7,
                 scene_free_bits: float | None = None, slot_free_bits: float | None = None,
                 decoder: nn.Module | None = None, num_slots: int | None = None,
                 slot_dim: int | None = None, variant: str | None = None,
                 slot_prior: str | SlotPrior | None = None,
                 scale_net: str | None = None, scene_encoder: str | None = None) -> None:
        super().__init__()
        needed = ("num_slots", "slot_dim", "image_shape", "model", "guide", "decode") + (
            () if decoder is not None else ("make_decoder",))
        for attr in needed:
            if not hasattr(orderless, attr):
                raise ValueError(f"orderless must provide {attr!r} (see lom_pyro.orderless.OrderlessModel)")
        if num_slots is not None and num_slots != orderless.num_slots:
            raise ValueError(f"num_slots={num_slots} does not match the orderless model's K={orderless.num_slots}")
        if slot_dim is not None and slot_dim != orderless.slot_dim:
            raise ValueError(f"slot_dim={slot_dim} does not match the orderless model's Dz={orderless.slot_dim}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if matching not in ("greedy", "hungarian"):
            raise ValueError(f"matching must be 'greedy' or 'hungarian', got {matching!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if scene_dim < 1:
            raise ValueError(f"scene_dim must be >= 1, got {scene_dim}")
        given_prior = None if slot_prior is None or isinstance(slot_prior, str) else slot_prior
        networks = _networks(variant, slot_prior=None if given_prior is not None else slot_prior,
                             scale_net=scale_net, scene_encoder=scene_encoder)
        self.orderless = orderless
        self.num_slots = k = int(orderless.num_slots)
        self.slot_dim = dz = int(orderless.slot_dim)
        self.image_shape = tuple(orderless.image_shape)
        self.scene_dim = scene_dim
        self.scene_prior = as_scene_prior(scene_prior, scene_dim)
        self.matching = matching
        self.likelihood = likelihood
        self.mixture_per_channel = bool(getattr(orderless, "mixture_per_channel", False))
        self.sigma = float(sigma)
        self.reuse_orderless_scales = reuse_orderless_scales
        self.scene_free_bits = 0.25 * scene_dim if scene_free_bits is None else scene_free_bits
        self.slot_free_bits = slot_free_bits
        self.score_orderless = True
        width = dz if prior_width is None else int(prior_width)
        if width != dz and (given_prior is not None or networks["slot_prior"] != "transformer"):
            raise ValueError(f"prior_width={prior_width} needs slot_prior='transformer' (SRI's LSTM prior "
                             f"feeds Dz-wide slots back in; a prior object is built with its own width), "
                             f"got slot_prior={slot_prior if isinstance(slot_prior, str) else given_prior!r}")
        if width != dz and share_prior_and_scale_nets:
            raise ValueError(f"share_prior_and_scale_nets needs prior_width = Dz = {dz} (f'_φ reads Dz-wide "
                             f"means), got prior_width={prior_width}")
        # §3.1: the slot prior — f_θ with its two linear heads unless another is given
        if given_prior is not None:
            self.slot_prior = check_slot_prior(given_prior, k, dz, scene_dim)
        elif networks["slot_prior"] == "transformer":
            self.slot_prior = ChainPrior(k, dz, scene_dim, depth=prior_depth, width=width)
        else:
            self.slot_prior = AutoregressivePrior(k, dz, scene_dim)
        # §3.2: scene encoder g_φ with its heads, order-aware scale net f'_φ and w_φ
        self.scene_encoder = (SetEncoder(dz, scene_dim, depth=encoder_depth, sum_pooling=sum_pooling)
                              if networks["scene_encoder"] == "transformer"
                              else RelationEncoder(dz, scene_dim, depth=encoder_depth))
        self.scene_loc = nn.Linear(scene_dim, scene_dim)
        self.scene_scale = nn.Linear(scene_dim, scene_dim)
        if share_prior_and_scale_nets:
            kind = slot_prior_name(self.slot_prior)
            if networks["scale_net"] != kind:
                raise ValueError("share_prior_and_scale_nets needs scale_net and slot_prior of one kind, got "
                                 f"{networks['scale_net']!r} and {kind!r}")
            self.scale_net = self.slot_prior.net
        else:
            self.scale_net = (CausalTransformer(scene_dim, dz, k, depth=scale_depth, learned_tokens=False)
                              if networks["scale_net"] == "transformer" else LSTMChain(scene_dim, dz))
        self.scale_head = nn.Linear(dz, dz)
        xavier_init(nn.ModuleList([self.scene_loc, self.scene_scale, self.scale_head]))
        self.decoder = decoder if decoder is not None else orderless.make_decoder()
        self._register_load_state_dict_pre_hook(_rename_old_keys)

    @classmethod
    def from_pretrained(cls, name_or_path: str = "stacks32_diffusion", device: str = "cpu") -> LOM:
        """A trained LOM shipped with the package (``lom_pyro.models.pretrained.available()``)
        or from a file written by ``lom-pyro export`` or ``lom-pyro fit-prior``; in eval mode.
        Its training config, step count and metrics are in ``lom.pretrained_info``. The
        default, ``stacks32_diffusion``, is ``stacks32_ar`` generating with a diffusion slot
        prior fitted to its aggregate posterior (its sharpest samples)."""
        from lom_pyro.models.pretrained import load_pretrained

        module, info = load_pretrained(name_or_path, device)
        if not isinstance(module, cls):
            raise ValueError(f"pretrained model {str(name_or_path)!r} is an orderless model alone, "
                             f"not a {cls.__name__}")
        module.pretrained_info = info
        return module

    # -- deterministic pieces --------------------------------------------------------------
    def use_slot_prior(self, prior: SlotPrior) -> None:
        """Generate with ``prior`` from now on (e.g. one fitted by ``lom-pyro fit-prior``)."""
        self.slot_prior = check_slot_prior(prior, self.num_slots, self.slot_dim, self.scene_dim)

    def _gaussian_prior(self):
        """The Gaussian prior the LOM was trained with: its own, or a fitted prior's reference."""
        prior = trained_prior(self.slot_prior)
        if not hasattr(prior, "loc_scale_given"):
            raise ValueError(f"the slot prior {type(prior).__name__} has no Gaussian loc and scale")
        return prior

    def prior_slots(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """``p_θ(z | h = f_θ(s))``: loc and scale ``(B, K, Dz)`` for ``s (B, Ds)`` (§3.1). With
        SRI's autoregressive prior: those of the rollout that feeds each slot's mean forward
        (what SRI aligns to). A fitted prior answers with its reference's."""
        return self._gaussian_prior().loc_scale(s)

    def prior_given(self, s: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Loc and scale of ``p(z_k | s, z_{<k})`` for every k at once, given the slots ``z``
        (teacher forcing; for the paper's prior they do not depend on ``z``)."""
        return self._gaussian_prior().loc_scale_given(s, z)

    def slot_prior_distribution(self, s: Tensor, temperature: float = 1.0):
        """``p(z_{1:K} | s)`` as the model's slot site samples it: batch shape ``(B, K)``,
        event ``(Dz,)``; standard deviations times ``temperature``."""
        return self.slot_prior.distribution(s, temperature)

    def scene_posterior(self, orderless_loc: Tensor) -> tuple[Tensor, Tensor]:
        """``q_φ(s | g_φ(μ^o))``: loc and scale ``(B, Ds)`` (§3.2 step 2)."""
        hidden = self.scene_encoder(orderless_loc)
        return self.scene_loc(hidden), F.softplus(self.scene_scale(hidden)) + MIN_SCALE

    def order_aware_scales(self, s: Tensor, aligned_loc: Tensor) -> Tensor:
        """``softplus(w_φ(f'_φ([s, μ_π(1)..μ_π(K−1)])))`` ``(B, K, Dz)`` (§3.2 step 5)."""
        out = self.scale_net(s, aligned_loc[:, :-1])
        return F.softplus(self.scale_head(out)) + MIN_SCALE

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``z (B, K, Dz)`` → ``rgb (B, K, C, H, W)``, mask logits ``(B, K, 1, H, W)``."""
        return self.decoder(z)

    def observation(self, x: Tensor) -> Tensor:
        """The image as the LOM likelihood sees it: the orderless model's frame (its
        ``observation(x)``, e.g. EMORL maps [-1, 1] to [0, 1]), since the LOM reuses its
        decoder architecture. Images returned by :meth:`sample` are in this frame."""
        observe = getattr(self.orderless, "observation", None)
        return observe(x) if observe is not None else x

    # -- Pyro programs ---------------------------------------------------------------------
    def _check_images(self, x: Tensor) -> None:
        check_images(x, self.image_shape, self._reference().dtype)

    @pyro_method
    def model(self, x: Tensor | None = None, *, batch_size: int | None = None,
              temperature: float = 1.0) -> Tensor:
        """Generative model (§3.1). With ``x`` it scores the data under both the orderless
        model and the LOM; without, it samples ``batch_size`` scenes.

        :return: the ordered slots ``z (B, K, Dz)``.
        """
        if x is not None:
            self._check_images(x)
            batch_size = x.shape[0]
        elif batch_size is None:
            raise ValueError("model needs images x or a batch_size")
        plates = make_plates(batch_size, self.num_slots)
        if x is not None and self.score_orderless:
            self.orderless.model(x, plates)
        temperature = max(temperature, 1e-6)  # τ = 0 would be a degenerate Normal
        with plates.batch:
            prior = self.scene_prior(temperature)
            s = pyro.sample(SCENE, prior.expand([batch_size, 1]), infer={"geco_group": OBS})    # (B, 1, Ds)
            with plates.slots:
                z = pyro.sample(OBJECTS, self.slot_prior_distribution(s.squeeze(-2), temperature),
                                infer={"geco_group": OBS})                                      # (B, K, Dz)
            rgb, logits = self.decode(z)
            image = image_likelihood(rgb.unsqueeze(1), logits.unsqueeze(1), self.sigma, self.likelihood,
                                     per_channel=self.mixture_per_channel)
            pyro.sample(OBS, image, obs=None if x is None else self.observation(x).unsqueeze(1))
        return z

    @pyro_method
    def guide(self, x: Tensor, *, batch_size: int | None = None, temperature: float = 1.0) -> Tensor:
        """Inference (§3.2, Figure 2). Keyword arguments mirror :meth:`model` and are unused.

        :return: the ordered slots ``z (B, K, Dz)``.
        """
        self._check_images(x)
        plates = make_plates(x.shape[0], self.num_slots)
        orderless = self.orderless.guide if self.score_orderless else poutine.block(self.orderless.guide)
        posterior = orderless(x, plates)                                   # step 1
        expected = (x.shape[0], self.num_slots, self.slot_dim)
        if tuple(posterior.loc.shape) != expected:
            raise ValueError(f"the orderless guide returned a posterior of shape {tuple(posterior.loc.shape)}, "
                             f"expected {expected}")
        return stop_gradient(self._ordered_guide)(posterior, plates)

    def _ordered_guide(self, posterior: SlotPosterior, plates: Plates) -> Tensor:
        """Steps 2–5 of Figure 2; ``posterior`` arrives detached (stop_grad(o))."""
        with plates.batch:
            s_loc, s_scale = self.scene_posterior(posterior.loc)              # step 2
            s = pyro.sample(SCENE, dist.Normal(s_loc.unsqueeze(-2), s_scale.unsqueeze(-2)).to_event(1),
                            infer={"free_bits": self.scene_free_bits, "geco_group": OBS}).squeeze(-2)
            with torch.no_grad():                                              # step 3: only its argmin is used
                prior_loc = self.slot_prior.means(s)
            scales = order_aware_scale(scale_fn=lambda loc: self.order_aware_scales(s, loc),
                                       reuse_orderless_scales=self.reuse_orderless_scales)
            with plates.slots, scales, align(prior_loc=prior_loc, method=self.matching):   # steps 4, 5
                return pyro.sample(OBJECTS, dist.Normal(posterior.loc, posterior.scale).to_event(1),
                                   infer={"free_bits": self.slot_free_bits, "geco_group": OBS})

    # -- user API --------------------------------------------------------------------------
    def _reference(self) -> Tensor:
        return next(self.parameters())

    @torch.no_grad()
    def generate(self, s: Tensor, temperature: float = 0.8) -> Generated:
        """Decode scene latents ``s (N, Ds)``: ``z = μ + τ σ ε`` (τ = 0: the prior means)."""
        if s.dim() != 2 or s.shape[-1] != self.scene_dim:
            raise ValueError(f"s must have shape (N, {self.scene_dim}), got {tuple(s.shape)}")
        return self.render(self.slot_prior.sample(s, temperature), s)

    @torch.no_grad()
    def render(self, z: Tensor, s: Tensor | None = None) -> Generated:
        """Decode ordered slots ``z (N, K, Dz)`` into images, masks and components; ``s``
        is carried along as the scene latent they came from (if any)."""
        rgb, logits = self.decode(z)
        images, masks = compose(rgb, logits)
        return Generated(images=images, masks=masks, components=rgb, s=s, z=z)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 0.8) -> Generated:
        """Unconditional samples; τ multiplies the prior standard deviations (§4.1)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        ref = self._reference()
        s = self.scene_prior(max(temperature, 1e-6)).sample((n,)).to(ref.device, ref.dtype)
        return self.generate(s, temperature)

    @torch.no_grad()
    def interpolate(self, s0: Tensor, s1: Tensor, steps: int = 8, temperature: float = 0.0) -> Generated:
        """SLERP between two scene latents (appendix A.7: each end normalised, ×sqrt(Ds)),
        decoded with slots at ``temperature`` (0: the prior means)."""
        return self.generate(slerp(s0, s1, steps), temperature)

    @torch.no_grad()
    def encode(self, x: Tensor, *, mean_scene: bool = True) -> Encoding:
        """Run the guide on ``x (B, C, H, W)`` (one orderless posterior, then Figure 2's
        steps 2–5). With ``mean_scene`` the scene site is conditioned on its posterior mean,
        so the alignment and the scales are those of the mean scene, not of a sample."""
        self._check_images(x)
        plates = make_plates(x.shape[0], self.num_slots)
        with poutine.block():
            posterior = self.orderless.guide(x, plates)
        ordered = self._ordered_guide
        if mean_scene:
            scene_loc, _ = self.scene_posterior(posterior.loc)
            ordered = poutine.condition(ordered, data={SCENE: scene_loc.unsqueeze(-2)})
        tr = poutine.trace(ordered).get_trace(posterior.detach(), plates)
        scene, slots = tr.nodes[SCENE], tr.nodes[OBJECTS]
        return Encoding(
            scene_loc=scene["fn"].base_dist.loc.squeeze(-2), scene_scale=scene["fn"].base_dist.scale.squeeze(-2),
            s=scene["value"].squeeze(-2),
            slots_loc=slots["fn"].base_dist.loc, slots_scale=slots["fn"].base_dist.scale,
            permutation=slots["infer"]["permutation"], orderless=posterior,
        )

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Generated:
        """Decode the ordered posterior means of ``x``: images, masks and components in
        LOM slot order."""
        enc = self.encode(x)
        return self.render(enc.slots_loc, enc.s)




def _networks(variant: str | None, **chosen: str | None) -> dict[str, str]:
    """The three network options: the variant's, overridden by those given (which must
    agree with an explicitly named variant)."""
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    base = VARIANTS[variant or "paper"]
    allowed = {"slot_prior": ("transformer", "lstm"), "scale_net": ("transformer", "lstm"),
               "scene_encoder": ("transformer", "relation")}
    out = dict(base)
    for name, value in chosen.items():
        if value is None:
            continue
        if value not in allowed[name]:
            raise ValueError(f"{name} must be one of {allowed[name]}, got {value!r}")
        if variant is not None and value != base[name]:
            raise ValueError(f"variant={variant!r} has {name}={base[name]!r}, got {name}={value!r}")
        out[name] = value
    return out


def _rename_old_keys(state_dict, prefix, *args) -> None:
    """Files written before the slot prior was a component name its weights ``prior_*``."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        for old, new in _RENAMED.items():
            if key.startswith(prefix + old):
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
