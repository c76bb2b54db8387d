"""LOMELBO against hand-computed values and Pyro's TraceMeanField_ELBO; free bits; SVI."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine
from pyro.infer import SVI, TraceMeanField_ELBO

from lom_pyro import LOM, LOMELBO, MixtureScenePrior
from lom_pyro.handlers import free_bits
from lom_pyro.sites import OBJECTS, OBS, ORDERLESS_OBS, ORDERLESS_SLOTS, SCENE
from toy import ToyOrderless


def normal_kl(m1, s1, m2, s2):
    """KL(N(m1, s1²) ‖ N(m2, s2²)) written out."""
    return torch.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5


def normal_logpdf(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - torch.log(torch.as_tensor(s)) - 0.5 * math.log(2 * math.pi)


@pytest.fixture
def lom():
    torch.manual_seed(0)
    return LOM(ToyOrderless(num_slots=3, slot_dim=4, image_shape=(3, 6, 6)), scene_dim=5, scene_free_bits=0.0)


def test_elbo_equals_hand_computed_sum(lom):
    x = torch.rand(2, 3, 6, 6)
    pyro.set_rng_seed(3)
    loss = LOMELBO().differentiable_loss(lom.model, lom.guide, x)
    pyro.set_rng_seed(3)
    g = poutine.trace(lom.guide).get_trace(x)
    m = poutine.trace(poutine.replay(lom.model, trace=g)).get_trace(x)
    elbo = 0.0
    for obs in (OBS, ORDERLESS_OBS):
        d = m.nodes[obs]["fn"].base_dist            # Normal(mean image, σ)
        elbo = elbo + normal_logpdf(x.unsqueeze(1), d.loc, d.scale).sum()
    for site in (SCENE, OBJECTS, ORDERLESS_SLOTS):
        q, p = g.nodes[site]["fn"].base_dist, m.nodes[site]["fn"].base_dist
        elbo = elbo - normal_kl(q.loc, q.scale, p.loc, p.scale).sum()
    assert torch.allclose(loss, -elbo, rtol=1e-5)


def test_elbo_equals_trace_mean_field_without_free_bits(lom):
    x = torch.rand(3, 3, 6, 6)
    pyro.set_rng_seed(7)
    ours = LOMELBO().differentiable_loss(lom.model, lom.guide, x)
    pyro.set_rng_seed(7)
    theirs = TraceMeanField_ELBO().differentiable_loss(lom.model, lom.guide, x)
    assert torch.allclose(ours, theirs, rtol=1e-6)


def test_per_example_terms_have_batch_shape_and_groups(lom):
    terms = LOMELBO().terms(lom.model, lom.guide, torch.rand(4, 3, 6, 6))
    assert set(terms) == {SCENE, OBJECTS, OBS, ORDERLESS_SLOTS, ORDERLESS_OBS}
    assert all(t.value.shape == (4,) for t in terms.values())
    assert terms[SCENE].group == OBS and terms[ORDERLESS_SLOTS].group == ORDERLESS_OBS
    assert terms[OBS].num_elements == 3 * 6 * 6


def _tiny(free_bits):
    m_param = torch.tensor([0.3, -0.2], requires_grad=True)

    def model(x):
        with pyro.plate("batch", 2, dim=-1):
            pyro.sample("z", dist.Normal(0.0, 1.0).expand([2, 3]).to_event(1))
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    def guide(x):
        with pyro.plate("batch", 2, dim=-1):
            loc = m_param.unsqueeze(-1).expand(2, 3)
            pyro.sample("z", dist.Normal(loc, 1.0).to_event(1), infer={"free_bits": free_bits})

    return model, guide, m_param


def test_free_bits_give_exactly_zero_kl_gradient_below_lambda():
    model, guide, m = _tiny(free_bits=10.0)           # KL per example = 3 m²/2 ≪ 10
    loss = LOMELBO().differentiable_loss(model, guide, torch.zeros(2))
    (grad,) = torch.autograd.grad(loss, m)
    assert torch.equal(grad, torch.zeros(2))
    # the clamped KL contributes exactly λ per example
    assert torch.isclose(loss, 2 * 10.0 - dist.Normal(0.0, 1.0).log_prob(torch.zeros(2)).sum())


def test_free_bits_inactive_above_lambda():
    model, guide, m = _tiny(free_bits=0.01)
    loss = LOMELBO().differentiable_loss(model, guide, torch.zeros(2))
    (grad,) = torch.autograd.grad(loss, m)
    assert torch.allclose(grad, 3 * m.detach())        # d/dm of 3 m²/2


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 5.0), st.floats(-2.0, 2.0), st.floats(0.0, 5.0))
def test_the_free_bits_handler_overrides_the_guide_and_clamps_at_its_lambda(own, m, nats):
    """Under ``free_bits`` the site's KL term is max(KL, λ) with the handler's λ, whatever
    λ the guide's own site carries; the raw KL is untouched."""
    model, guide, m_param = _tiny(free_bits=own)
    with torch.no_grad():
        m_param.fill_(m)
    with free_bits(nats={"z": nats}):
        term = LOMELBO().terms(model, guide, torch.zeros(2))["z"]
    kl = torch.full((2,), 1.5 * m ** 2)                            # 3 dims of KL(N(m, 1) ‖ N(0, 1))
    assert torch.allclose(term.raw.detach(), kl, atol=1e-5)
    assert torch.allclose(term.value.detach(), kl.clamp(min=nats), atol=1e-5)
    outside = LOMELBO().terms(model, guide, torch.zeros(2))["z"]  # the handler leaves no trace behind
    assert torch.allclose(outside.value.detach(), kl.clamp(min=own), atol=1e-5)


def test_the_free_bits_handler_refuses_negative_nats():
    with pytest.raises(ValueError, match="must be >= 0 nats"):
        free_bits(nats={"s": -1.0})
    with pytest.raises(ValueError, match="must map site names"):
        free_bits(nats="s")


def test_monte_carlo_kl_for_mixture_prior():
    torch.manual_seed(0)
    lom = LOM(ToyOrderless(image_shape=(3, 6, 6)), scene_dim=4, scene_prior=MixtureScenePrior(4, components=3),
              scene_free_bits=0.0)
    x = torch.rand(2, 3, 6, 6)
    pyro.set_rng_seed(0)
    g = poutine.trace(lom.guide).get_trace(x)
    m = poutine.trace(poutine.replay(lom.model, trace=g)).get_trace(x)
    pyro.set_rng_seed(0)
    terms = LOMELBO().terms(lom.model, lom.guide, x)
    s = g.nodes[SCENE]["value"]
    expected = (g.nodes[SCENE]["fn"].log_prob(s) - m.nodes[SCENE]["fn"].log_prob(s)).squeeze(-1)
    assert torch.allclose(terms[SCENE].raw, expected, rtol=1e-5)
    many = LOMELBO(kl_samples=64).terms(lom.model, lom.guide, x)[SCENE].raw
    # q(s | x) reads the orderless means only, so it is the same in every guide run: 64 draws
    # estimate its KL to the mixture within a few standard errors of a 20,000-draw estimate
    q, p = g.nodes[SCENE]["fn"], m.nodes[SCENE]["fn"]
    draws = q.sample((20_000,))
    gap = (q.log_prob(draws) - p.log_prob(draws)).squeeze(-1).detach()          # (20000, B)
    assert many.shape == (2,)
    assert ((many.detach() - gap.mean(0)).abs() < 5 * gap.std(0) / 8).all()
    assert (gap.mean(0) > 0).all()                                              # a KL is positive


def _params(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize("prior", [None, "mixture"])
def test_svi_changes_every_parameter(prior):
    torch.manual_seed(0)
    scene_prior = MixtureScenePrior(5, components=2) if prior else None
    lom = LOM(ToyOrderless(image_shape=(3, 6, 6)), scene_dim=5, scene_prior=scene_prior)
    before = _params(lom)
    svi = SVI(lom.model, lom.guide, pyro.optim.Adam({"lr": 1e-2}), loss=LOMELBO())
    x = torch.rand(4, 3, 6, 6)
    for _ in range(3):
        assert math.isfinite(svi.step(x))
    after = _params(lom)
    unchanged = [n for n in before if torch.equal(before[n], after[n])]
    assert not unchanged, f"parameters not trained: {unchanged}"
