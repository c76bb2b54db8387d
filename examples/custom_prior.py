"""Your own scene prior p(s) in a LOM (§3.1: the prior is swappable), and Pyro's Predictive.

    python examples/custom_prior.py --procedural --small --steps 300

A learnable mixture of round Gaussians, written here as a user would write it, replaces
the standard normal scene prior; the LOM trains a few hundred steps on the procedural
"stacks" scenes, writes τ = 0.8 samples, then draws from the prior predictive and the
posterior predictive with ``pyro.infer.Predictive``.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from _common import Schedule, run
from pyro.infer import Predictive
from torch import Tensor, nn

from lom_pyro import EMORL, GECO, LOM, LOMELBO
from lom_pyro.data.procedural import generate
from lom_pyro.sites import OBS, ORDERLESS_OBS


class RoundGaussianMixture(nn.Module):
    """``p(s) = Σ_c π_c N(s; μ_c, σ_c² I)``: C learnable round Gaussians.

    What LOM needs of a scene prior (lom_pyro/priors.py): ``dim = Ds``, and ``forward(τ)``
    returning a distribution with event shape ``(Ds,)`` and no batch shape, whose standard
    deviations τ multiplies (§4.1). A mixture has no closed-form KL to the Gaussian
    posterior, so LOMELBO estimates the scene KL by Monte Carlo.
    """

    def __init__(self, dim: int, components: int = 8) -> None:
        super().__init__()
        self.dim = dim
        self.logits = nn.Parameter(torch.zeros(components))
        self.locs = nn.Parameter(torch.randn(components, dim))
        self.log_scales = nn.Parameter(torch.zeros(components, 1))  # one scale per component

    def forward(self, temperature: float = 1.0) -> dist.TorchDistribution:
        scales = (self.log_scales.exp() * temperature).expand_as(self.locs)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), dist.Normal(self.locs, scales).to_event(1))


def build(image_size: int, small: bool) -> tuple[LOM, GECO]:
    """EMORL with K = 6 (the stacks' wall, floor and up to four blocks), the mixture as p(s)."""
    emorl = EMORL.preset("cpu" if small else "lom", num_slots=6, image_size=image_size)
    scene_dim = 32 if small else 128
    lom = LOM(emorl, scene_dim=scene_dim, scene_prior=RoundGaussianMixture(scene_dim))
    constraint = EMORL.geco_config(-0.352, speedup=5.0, step_size=1e-6)  # §3.3, A.4.2
    return lom, GECO(LOMELBO(), {ORDERLESS_OBS: constraint, OBS: constraint})


def prior_predictive(lom: LOM, num_samples: int, batch_size: int) -> dict[str, Tensor]:
    """Every site of the generative model (§3.1) run without data: ``s (N, B, 1, Ds)``,
    ``z (N, B, K, Dz)`` and ``x (N, B, 1, C, H, W)``, images with the likelihood's noise."""
    return Predictive(lom.model, num_samples=num_samples)(batch_size=batch_size)


def posterior_predictive(lom: LOM, x: Tensor, num_samples: int) -> dict[str, Tensor]:
    """``s`` and ``z`` drawn by the guide for the images ``x`` (§3.2) and new images ``x``
    generated from them. Predictive passes its arguments to both programs; a model given
    ``x`` would observe it (and hand it back as the ``x`` site), so this one takes ``x`` for
    the guide's sake and generates a batch of that size."""

    def model_generating(x: Tensor) -> Tensor:
        return lom.model(batch_size=x.shape[0])

    return Predictive(model_generating, guide=lom.guide, num_samples=num_samples)(x)


def main(argv: list[str] | None = None) -> LOM:
    # a short run: 100 warm-up steps and a constant rate rather than the paper's 10K and halvings
    lom = run(argv, build, "stacks", __doc__, schedule=Schedule(warmup=100, decay_every=0), steps=300,
              batch_size=16, image_size=32, out="runs/example_custom_prior")
    device = next(lom.parameters()).device
    scenes = generate("stacks", 4, image_size=lom.image_shape[-1], seed=1)  # unseen scenes, [0, 255]
    images = scenes.model_images().to(device)
    for name, draws in [("prior predictive", prior_predictive(lom, 3, batch_size=4)),
                        ("posterior predictive", posterior_predictive(lom, images, 3))]:
        print(f"{name}: " + ", ".join(f"{site} {tuple(value.shape)}" for site, value in draws.items()))
    return lom


if __name__ == "__main__":
    main()
