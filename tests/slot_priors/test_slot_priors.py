"""Slot priors as components: the protocol, the four priors, old files, a user's own prior."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine
from toy import ToyOrderless
from torch import nn

from lom_pyro import LOM, LOMELBO, registry
from lom_pyro.checkpoint import load_checkpoint
from lom_pyro.models.pretrained import pretrained_path
from lom_pyro.sites import OBJECTS
from lom_pyro.slot_priors import (
    AutoregressivePrior,
    ChainPrior,
    DiffusionPrior,
    SlotDiffusionPrior,
    MixtureDensityPrior,
    SlotPrior,
)

SHAPE = (3, 8, 8)


class ShiftedNormalPrior(nn.Module):
    """A user's own prior: slots independent N(s[:Dz] + k, 1), written outside the library."""

    def __init__(self, num_slots, slot_dim, scene_dim):
        super().__init__()
        self.num_slots, self.slot_dim, self.scene_dim = num_slots, slot_dim, scene_dim

    def means(self, s):
        k = torch.arange(self.num_slots, dtype=s.dtype).view(1, -1, 1)
        return s[:, None, : self.slot_dim] + k

    def distribution(self, s, temperature=1.0):
        return dist.Normal(self.means(s), torch.full_like(self.means(s), temperature)).to_event(1)

    def sample(self, s, temperature=1.0):
        return self.distribution(s, max(temperature, 1e-6)).sample()


def test_each_prior_is_a_slot_prior_with_the_shapes_the_lom_needs():
    s = torch.randn(5, 6)
    for prior in (ChainPrior(3, 4, 6), AutoregressivePrior(3, 4, 6), MixtureDensityPrior(3, 4, 6, hidden=8),
                  DiffusionPrior(3, 4, 6, width=8, depth=1, steps=5),
                  SlotDiffusionPrior(3, 4, 6, width=8, depth=1, heads=2, steps=5), ShiftedNormalPrior(3, 4, 6)):
        assert isinstance(prior, SlotPrior)
        assert prior.means(s).shape == prior.sample(s, 0.8).shape == (5, 3, 4)
        site = prior.distribution(s, 0.8)
        assert site.batch_shape == (5, 3) and site.event_shape == (4,)


def test_a_users_own_prior_trains_in_a_lom_and_generates_through_s():
    toy = ToyOrderless(image_shape=SHAPE)
    lom = LOM(toy, scene_dim=5, slot_prior=ShiftedNormalPrior(toy.num_slots, toy.slot_dim, 5))
    x = torch.rand(2, *SHAPE)
    pyro.set_rng_seed(0)
    loss = LOMELBO().differentiable_loss(lom.model, lom.guide, x)
    assert torch.isfinite(loss)
    s = torch.randn(4, 5)
    out = lom.generate(s, temperature=0.0)                # τ = 0 draws the means, which move with s
    assert torch.allclose(out.z, ShiftedNormalPrior(3, 4, 5).means(s), atol=1e-5)
    with pytest.raises(ValueError, match=r"slot_prior has \(num_slots, slot_dim, scene_dim\) = \(3, 4, 6\)"):
        LOM(toy, scene_dim=5, slot_prior=ShiftedNormalPrior(3, 4, 6))
    with pytest.raises(ValueError, match="lom_pyro.slot_priors.SlotPrior"):
        LOM(toy, scene_dim=5, slot_prior=nn.Linear(2, 2))
    registry.register_slot_prior("shifted", ShiftedNormalPrior)
    try:
        assert isinstance(registry.build("slot_prior", "shifted", 3, 4, 5), ShiftedNormalPrior)
        with pytest.raises(ValueError, match="taken by"):
            registry.register_slot_prior("shifted", ChainPrior)
    finally:
        registry.unregister("slot_prior", "shifted")
    assert "shifted" not in registry.names("slot_prior")
    with pytest.raises(ValueError, match="is not one of"):
        registry.build("slot_prior", "flow", 3, 4, 5)
    with pytest.raises(ValueError, match="does not take the options"):
        registry.build("slot_prior", "mdn", 3, 4, 5, colours=3)


def test_the_default_prior_is_the_papers_chain_and_lstm_is_sris():
    toy = ToyOrderless(image_shape=SHAPE)
    assert type(LOM(toy, scene_dim=4).slot_prior) is ChainPrior
    sri = registry.build_networks(toy.num_slots, toy.slot_dim, 4, registry.networks("sri"))
    assert type(LOM(toy, scene_dim=4, **sri).slot_prior) is AutoregressivePrior
    assert type(registry.build("slot_prior", "lstm", 3, 4, 4)) is AutoregressivePrior
    assert registry.name_of("slot_prior", ChainPrior(3, 4, 5)) == "transformer"
    assert registry.name_of("slot_prior", ShiftedNormalPrior(3, 4, 5)) == "ShiftedNormalPrior"
    assert registry.fitted_slot_priors() == ("mdn", "diffusion", "slot_diffusion")


@pytest.mark.parametrize("name", ["stacks32", "stacks32_ar"])
def test_files_written_before_priors_were_components_load_bit_identically(name):
    stored = load_checkpoint(pretrained_path(name))["model"]
    assert any(k.startswith("prior_net.") for k in stored)      # the old names are in the file
    state = LOM.from_pretrained(name).state_dict()
    renamed = {"prior_net.": "slot_prior.net.", "prior_loc.": "slot_prior.loc_head.",
               "prior_scale.": "slot_prior.scale_head."}
    for key, value in stored.items():
        new = next((n + key[len(o):] for o, n in renamed.items() if key.startswith(o)), key)
        assert torch.equal(state[new], value), key


def test_mixture_density_prior_is_a_normalised_density():
    torch.manual_seed(0)
    prior = MixtureDensityPrior(2, 1, 3, components=3, hidden=8, layers=1)
    with torch.no_grad():
        prior.shift.fill_(0.5)
        prior.spread.fill_(2.0)
    s = torch.randn(1, 3)
    with torch.no_grad():
        grid = torch.linspace(-40, 40, 4001)
        step = float(grid[1] - grid[0])
        # the first slot's density integrates to one; so does the second's given a fixed first slot
        z = torch.stack([grid, torch.full_like(grid, 0.3)], -1).unsqueeze(-1)      # (G, K=2, Dz=1)
        logp = prior.log_prob_slots(s.expand(len(grid), 3), z)
        assert math.isclose(float(logp[:, 0].exp().sum() * step), 1.0, rel_tol=1e-3)
        z2 = torch.stack([torch.full_like(grid, 0.3), grid], -1).unsqueeze(-1)
        logp2 = prior.log_prob_slots(s.expand(len(grid), 3), z2)
        assert math.isclose(float(logp2[:, 1].exp().sum() * step), 1.0, rel_tol=1e-3)


def test_mixture_density_prior_stands_at_the_lom_slot_site():
    toy = ToyOrderless(image_shape=SHAPE)
    lom = LOM(toy, scene_dim=4)
    lom.use_slot_prior(MixtureDensityPrior(toy.num_slots, toy.slot_dim, 4, hidden=8, reference=lom.slot_prior))
    x = torch.rand(2, *SHAPE)
    guide = poutine.trace(lom.guide).get_trace(x)
    model = poutine.trace(poutine.replay(lom.model, trace=guide)).get_trace(x)
    site = model.nodes[OBJECTS]
    expected = lom.slot_prior.log_prob_slots(site["fn"].s, site["value"])
    assert torch.allclose(site["fn"].log_prob(site["value"]), expected)
    assert torch.isfinite(LOMELBO().differentiable_loss(lom.model, lom.guide, x))


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 4))
def test_a_fitted_prior_keeps_the_alignment_of_its_reference(batch, k, dz):
    toy = ToyOrderless(num_slots=k, slot_dim=dz, image_shape=SHAPE)
    lom = LOM(toy, scene_dim=3)
    x = torch.rand(batch, *SHAPE)
    before = lom.encode(x)
    lom.use_slot_prior(DiffusionPrior(k, dz, 3, width=8, depth=1, steps=4, reference=lom.slot_prior))
    after = lom.encode(x)
    assert torch.equal(before.permutation, after.permutation)
    assert torch.equal(before.slots_loc, after.slots_loc)


@pytest.mark.parametrize("network", [DiffusionPrior, SlotDiffusionPrior])
def test_fitting_a_diffusion_prior_recovers_two_separate_modes(network):
    """Slots that are ±3 (the sign set by s) are learnt: samples land near the right mode."""
    torch.manual_seed(0)
    prior = network(2, 1, 1, width=64, depth=2, steps=50)
    s = torch.randn(4096, 1).sign()
    z = (3 * s).view(-1, 1, 1).expand(-1, 2, 1) + 0.1 * torch.randn(4096, 2, 1)
    prior.standardise_like(z)
    optimiser = torch.optim.Adam(prior.parameters(), lr=3e-3)
    first = None
    for _ in range(600):
        i = torch.randint(0, 4096, (256,))
        loss = prior.fit_loss(s[i], z[i])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < 0.5 * first
    with torch.no_grad():
        drawn = prior.sample(torch.tensor([[1.0], [-1.0]]).repeat(100, 1), 1.0)
    assert (drawn[0::2] - 3).abs().median() < 0.5 and (drawn[1::2] + 3).abs().median() < 0.5
    with pytest.raises(NotImplementedError, match="no tractable density"):
        prior.distribution(torch.zeros(1, 1)).log_prob(torch.zeros(1, 2, 1))


def test_the_slot_diffusion_network_starts_by_predicting_no_noise_and_refuses_bad_sizes():
    prior = SlotDiffusionPrior(3, 4, 2, width=8, heads=2, depth=1)
    u, s, t = torch.randn(5, 12), torch.randn(5, 2), torch.randint(0, 200, (5,))
    assert torch.equal(prior.predict_noise(u, s, t), torch.zeros(5, 12))
    with pytest.raises(ValueError, match="heads dividing width"):
        SlotDiffusionPrior(3, 4, 2, width=10, heads=4)


class _ExactForStandardNormal(SlotDiffusionPrior):
    """A chain whose noise prediction is exact for standard normal slots: noised, they stay
    N(0, I), so E[ε | u_t] = √(1−ᾱ_t)·u_t and the score is −u_t at every level."""

    def predict_noise(self, u_t, s, t):
        return (1 - self.alpha_bar[t]).sqrt().unsqueeze(-1) * u_t


def test_a_corrector_step_follows_the_score_with_its_drift_to_noise_ratio_at_r():
    prior = _ExactForStandardNormal(1, 2, 1, width=8, heads=2, depth=1, steps=10, corrector_snr=0.25)
    u, t = torch.tensor([[3.0, 4.0]]), torch.tensor([6])
    torch.manual_seed(3)
    z = torch.randn(1, 2)
    torch.manual_seed(3)
    moved = prior.correct(u, torch.zeros(1, 1), t, temperature=0.5)
    # score −u has norm 5: the step is 2·(1 − β_6)·(0.25·‖z‖/5)²
    step = 2 * (1 - float(prior.betas[6])) * (0.25 * float(z.norm()) / 5) ** 2
    assert torch.allclose(moved, u - step * u + 0.5 * (2 * step) ** 0.5 * z, atol=1e-6)


@pytest.mark.parametrize("snr", [0.0, 0.16])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_with_an_exact_noise_prediction_the_chain_draws_the_fitted_normal_scaled_by_tau(snr, temperature):
    """Plain or with correctors, the reverse chain on exact noise predictions for N(0, I)
    slots draws N(0, τ²I) (the temperature scales the spread, not the centre); a Langevin
    step ε wide widens it by 1/√(1 − ε/2), about 5 % at τ 0.5."""
    torch.manual_seed(0)
    prior = _ExactForStandardNormal(2, 16, 1, width=8, heads=2, depth=1, steps=50, corrector_snr=snr)
    with torch.no_grad():
        drawn = prior.sample(torch.zeros(2000, 1), temperature)
    assert drawn.mean().abs() < 0.05
    assert abs(float(drawn.std()) / temperature - 1) < 0.07


def test_the_corrector_snr_is_checked_when_built_and_when_set():
    with pytest.raises(ValueError, match="corrector_snr"):
        SlotDiffusionPrior(3, 4, 2, width=8, heads=2, depth=1, corrector_snr=-0.1)
    prior = SlotDiffusionPrior(3, 4, 2, width=8, heads=2, depth=1)
    prior.corrector_snr = 0.16
    assert prior.corrector_snr == 0.16
    with pytest.raises(ValueError, match="corrector_snr"):
        prior.corrector_snr = 1.5
    assert prior.corrector_snr == 0.16
