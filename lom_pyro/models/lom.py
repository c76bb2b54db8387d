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

from typing import Callable

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule, pyro_method
from torch import Tensor, nn
from torch.nn import functional as F

from lom_pyro.handlers import align, order_aware_scale, stop_gradient
from lom_pyro.likelihoods import GaussianLikelihood, ImageLikelihood
from lom_pyro.models.inputs import check_images, check_sampling
from lom_pyro.models.scenes import Encoding, Generated, decoded
from lom_pyro.models.pretrained import load_pretrained
from lom_pyro.nn.attention import xavier_init
from lom_pyro.nn.inference import set_scene_encoder, transformer_scales
from lom_pyro.ops import greedy_match, slerp
from lom_pyro.orderless.base import OrderlessModel, SlotPosterior, missing_members
from lom_pyro.plates import Plates, make_plates
from lom_pyro.priors import as_scene_prior
from lom_pyro.sites import BATCH_PLATE, OBJECTS, OBS, ORDERLESS_OBS, ORDERLESS_SLOTS, SCENE, SLOTS_PLATE
from lom_pyro.slot_priors import AutoregressiveSlots, ChainPrior, SlotPrior, check_slot_prior, trained_prior
from lom_pyro.slot_priors.gaussian import MIN_SCALE

__all__ = ["LOM", "Generated", "Encoding", "AutoregressiveSlots"]

#: parameter names before the slot prior was a component → their names now (old files load)
_RENAMED = {"prior_net.": "slot_prior.net.", "prior_loc.": "slot_prior.loc_head.",
            "prior_scale.": "slot_prior.scale_head."}

class LOM(PyroModule):
    """Latent Object Model over an auxiliary orderless slot VAE.

    Every network and rule the LOM is made of is a component it is given as an object; left
    out, it is the paper's. :mod:`lom_pyro.registry` names them (and the ``"sri"`` bundle) for
    config files and the command line.

    :param orderless: the auxiliary orderless model (e.g. :class:`lom_pyro.EMORL`); see
        :class:`lom_pyro.orderless.OrderlessModel`. Sets K, Dz and the image shape.
    :param scene_dim: Ds (paper: 128).
    :param scene_prior: ``None`` (standard normal), a distribution, or a module
        ``forward(temperature) -> distribution`` with ``dim = scene_dim``
        (e.g. :class:`lom_pyro.priors.MixtureScenePrior`).
    :param slot_prior: ``p(z_{1:K} | s)``, a :class:`~lom_pyro.slot_priors.SlotPrior`; default
        the paper's deterministic chain ``h = f_θ(s)``, slots independent given s
        (:class:`~lom_pyro.slot_priors.ChainPrior`, two SA blocks, width Dz).
        SRI's :class:`~lom_pyro.slot_priors.AutoregressivePrior` is the other trained with a LOM.
    :param scene_encoder: ``g_φ`` (§3.2 step 2), slots ``(B, K, Dz)`` → ``(B, Ds)``; default the
        paper's SA set encoder with sum pooling (:func:`lom_pyro.nn.inference.set_scene_encoder`).
    :param scale_net: ``f'_φ`` (§3.2 step 5), ``(s, μ_π(1..K−1))`` → ``(B, K, Dz)``; default the
        paper's causal transformer (:func:`lom_pyro.nn.inference.transformer_scales`).
    :param matcher: the alignment's matching, cost ``(B, K, K)`` → permutation ``(B, K)``;
        default Algorithm 1, :func:`lom_pyro.ops.greedy_match`.
    :param likelihood: the image distribution of the decoded slots, ``(rgb, mask_logits) ->
        distribution`` with a ``sigma`` (:mod:`lom_pyro.likelihoods`); default
        :class:`~lom_pyro.likelihoods.GaussianLikelihood` with the orderless model's σ (0.7
        Objects Room/ShapeStacks, 0.1 CLEVR6), or ``sigma`` if given.
    :param sigma: σ of the default likelihood (not with ``likelihood``).
    :param decoder: the LOM decoder; default ``orderless.make_decoder()`` (docs/design.md §4).
    :param share_prior_and_scale_nets: ``f'_φ`` is the slot prior's own network (ablation
        Model 6); not with ``scale_net``.
    :param reuse_orderless_scales: no order-aware scales (ablation Model 5).
    :param scene_free_bits: free bits on the scene KL, nats (paper: 0.25·Ds). A schedule
        (Eq. 26: 0.167·Ds for the last 25K steps) overrides it from outside, with
        :func:`~lom_pyro.handlers.free_bits` around the loss, as the training loop does.
    :param slot_free_bits: free bits on the slot KL summed over K (paper: none).
    :param num_slots, slot_dim: if given, checked against the orderless model's.

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
                 slot_prior: SlotPrior | None = None, scene_encoder: nn.Module | None = None,
                 scale_net: nn.Module | None = None, matcher: Callable[[Tensor], Tensor] = greedy_match,
                 likelihood: ImageLikelihood | None = None, sigma: float | None = None,
                 decoder: nn.Module | None = None, share_prior_and_scale_nets: bool = False,
                 reuse_orderless_scales: bool = False, scene_free_bits: float | None = None,
                 slot_free_bits: float | None = None, num_slots: int | None = None,
                 slot_dim: int | None = None) -> None:
        super().__init__()
        if not isinstance(orderless, OrderlessModel):
            raise ValueError(f"orderless must provide {', '.join(map(repr, missing_members(orderless)))} "
                             "(see lom_pyro.orderless.OrderlessModel; OrderlessDefaults has the usual last three)")
        if num_slots is not None and num_slots != orderless.num_slots:
            raise ValueError(f"num_slots={num_slots} does not match the orderless model's K={orderless.num_slots}")
        if slot_dim is not None and slot_dim != orderless.slot_dim:
            raise ValueError(f"slot_dim={slot_dim} does not match the orderless model's Dz={orderless.slot_dim}")
        if scene_dim < 1:
            raise ValueError(f"scene_dim must be >= 1, got {scene_dim}")
        if likelihood is not None and sigma is not None:
            raise ValueError(f"sigma={sigma} is the default likelihood's; the likelihood given, {likelihood!r}, "
                             "has its own")
        if not callable(matcher):
            raise ValueError(f"matcher must be a function cost (B, K, K) -> permutation (B, K), got {matcher!r} "
                             "(lom_pyro.registry names the shipped ones)")
        if likelihood is not None and not (callable(likelihood) and hasattr(likelihood, "sigma")):
            raise ValueError(f"likelihood must be a callable (rgb, mask_logits) -> distribution with a sigma "
                             f"(lom_pyro.likelihoods), got {likelihood!r}")
        if share_prior_and_scale_nets and scale_net is not None:
            raise ValueError("share_prior_and_scale_nets makes f'_φ the slot prior's own network; "
                             "give it or a scale_net, not both")
        self.orderless = orderless
        self.num_slots = k = int(orderless.num_slots)
        self.slot_dim = dz = int(orderless.slot_dim)
        self.image_shape = tuple(orderless.image_shape)
        self.scene_dim = scene_dim
        self.scene_prior = as_scene_prior(scene_prior, scene_dim)
        self.matcher = matcher
        self.likelihood = likelihood if likelihood is not None else GaussianLikelihood(
            sigma if sigma is not None else orderless.sigma)
        self.reuse_orderless_scales = reuse_orderless_scales
        self.scene_free_bits = 0.25 * scene_dim if scene_free_bits is None else scene_free_bits
        self.slot_free_bits = slot_free_bits
        self.score_orderless = True
        # §3.1: the slot prior; §3.2: scene encoder g_φ with its heads, order-aware scale net f'_φ
        # and w_φ (the defaults are built in this order, so a seeded LOM starts where it did)
        self.slot_prior = check_slot_prior(slot_prior if slot_prior is not None else ChainPrior(k, dz, scene_dim),
                                           k, dz, scene_dim)
        self.scene_encoder = (scene_encoder if scene_encoder is not None
                              else set_scene_encoder(k, dz, scene_dim))
        self.scene_loc = nn.Linear(scene_dim, scene_dim)
        self.scene_scale = nn.Linear(scene_dim, scene_dim)
        if share_prior_and_scale_nets:
            net, width = getattr(self.slot_prior, "net", None), getattr(self.slot_prior, "width", None)
            if net is None or width != dz:
                raise ValueError(f"share_prior_and_scale_nets needs a slot prior with a network `net` of width "
                                 f"Dz = {dz} (f'_φ reads Dz-wide means), got {type(self.slot_prior).__name__} "
                                 f"of width {width}")
            self.scale_net = net
        else:
            self.scale_net = scale_net if scale_net is not None else transformer_scales(k, dz, scene_dim)
        self.scale_head = nn.Linear(dz, dz)
        xavier_init(nn.ModuleList([self.scene_loc, self.scene_scale, self.scale_head]))
        self.decoder = decoder if decoder is not None else orderless.make_decoder()
        self._register_load_state_dict_pre_hook(_rename_old_keys)

    @classmethod
    def from_pretrained(cls, name_or_path: str = "stacks32_slot_diffusion_wide", device: str = "cpu") -> LOM:
        """A trained LOM shipped with the package (``lom_pyro.models.pretrained.available()``)
        or from a file written by ``lom-pyro export`` or ``lom-pyro fit-prior``; in eval mode.
        Its training config, step count and metrics are in ``lom.pretrained_info``. The
        default, ``stacks32_slot_diffusion_wide``, is ``stacks32_ar`` generating with a diffusion
        slot prior (a transformer over the slots, width 256) fitted to its aggregate posterior
        (its sharpest samples)."""
        module, info = load_pretrained(name_or_path, device, lom_class=cls)
        if not isinstance(module, cls):
            raise ValueError(f"pretrained model {str(name_or_path)!r} is an orderless model alone, "
                             f"not a {cls.__name__}")
        module.pretrained_info = info
        return module

    @property
    def sigma(self) -> float:
        """The likelihood's σ (GECO's goals are set in its units)."""
        return self.likelihood.sigma

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
        return self.orderless.observation(x)

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
            image = self.likelihood(rgb.unsqueeze(1), logits.unsqueeze(1))
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
            with plates.slots, scales, align(prior_loc=prior_loc, method=self.matcher):   # steps 4, 5
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
        return decoded(self.decode, z, s)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 0.8) -> Generated:
        """Unconditional samples; τ multiplies the prior standard deviations (§4.1)."""
        check_sampling(n, temperature)
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




def _rename_old_keys(state_dict, prefix, *args) -> None:
    """Files written before the slot prior was a component name its weights ``prior_*``."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        for old, new in _RENAMED.items():
            if key.startswith(prefix + old):
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
