"""The LOM as a Pyro program: gradient isolation, user API, shapes, bad input."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceMeanField_ELBO

from lom_pyro import LOM, LOMELBO
from lom_pyro.likelihoods import GaussianLikelihood, MixtureImage, MixtureLikelihood
from lom_pyro.models.assemble import Architecture, lom_arguments
from lom_pyro.nn.inference import set_scene_encoder, transformer_scales
from lom_pyro.ops import hungarian_match
from lom_pyro.slot_priors import ChainPrior
from lom_pyro.priors import MixtureScenePrior, StandardNormalPrior
from lom_pyro.sites import OBJECTS, OBS, ORDERLESS_OBS, ORDERLESS_SLOTS, SCENE
from toy import ToyOrderless

SHAPE = (3, 6, 6)


@pytest.fixture
def lom():
    torch.manual_seed(0)
    return LOM(ToyOrderless(num_slots=3, slot_dim=4, image_shape=SHAPE), scene_dim=5)


def test_site_shapes_and_permutation_in_trace(lom):
    x = torch.rand(2, *SHAPE)
    tr = poutine.trace(lom.guide).get_trace(x)
    assert tr.nodes[SCENE]["value"].shape == (2, 1, 5)
    assert tr.nodes[OBJECTS]["value"].shape == (2, 3, 4)
    perm = tr.nodes[LOM.SLOTS]["infer"]["permutation"]
    assert perm.shape == (2, 3) and (perm.sort(-1).values == torch.arange(3)).all()
    model = poutine.trace(poutine.replay(lom.model, trace=tr)).get_trace(x)
    assert model.nodes[OBS]["value"].shape == (2, 1, *SHAPE)
    # the ordered posterior mean is the permuted orderless mean (§3.2)
    o_loc = tr.nodes[ORDERLESS_SLOTS]["fn"].base_dist.loc
    z_loc = tr.nodes[OBJECTS]["fn"].base_dist.loc
    assert torch.equal(z_loc, torch.gather(o_loc, 1, perm.unsqueeze(-1).expand(-1, -1, 4)))


def test_lom_terms_send_no_gradient_into_the_orderless_model(lom):
    x = torch.rand(3, *SHAPE)
    terms = LOMELBO().terms(lom.model, lom.guide, x)
    lom_loss = sum(terms[n].loss.sum() for n in (SCENE, OBJECTS, OBS))
    orderless_loss = sum(terms[n].loss.sum() for n in (ORDERLESS_SLOTS, ORDERLESS_OBS))
    params = list(lom.orderless.parameters())
    grads = torch.autograd.grad(lom_loss, params, allow_unused=True, retain_graph=True)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads)
    own = [p for n, p in lom.named_parameters() if not n.startswith("orderless.")]
    assert any(g is not None and torch.count_nonzero(g) > 0
               for g in torch.autograd.grad(lom_loss, own, allow_unused=True, retain_graph=True))
    grads = torch.autograd.grad(orderless_loss, params, allow_unused=True)
    assert all(g is not None for g in grads) and any(torch.count_nonzero(g) > 0 for g in grads)


def test_without_orderless_scoring_the_lom_terms_and_gradients_are_unchanged(lom):
    # two-stage training with the orderless model frozen skips its ELBO terms (constants)
    x = torch.rand(3, *SHAPE)
    own = [p for n, p in lom.named_parameters() if not n.startswith("orderless.")]

    def lom_terms():
        pyro.set_rng_seed(1)
        terms = LOMELBO().terms(lom.model, lom.guide, x)
        return terms, torch.autograd.grad(sum(t.loss.sum() for n, t in terms.items() if n in (SCENE, OBJECTS, OBS)),
                                          own, allow_unused=True)

    full, full_grads = lom_terms()
    lom.score_orderless = False
    alone, alone_grads = lom_terms()
    assert set(full) == {SCENE, OBJECTS, OBS, ORDERLESS_SLOTS, ORDERLESS_OBS} and set(alone) == {SCENE, OBJECTS, OBS}
    for name in alone:
        assert torch.equal(alone[name].value, full[name].value), name
    assert any(g is not None for g in alone_grads)
    for a, b in zip(alone_grads, full_grads):
        assert (a is None and b is None) or torch.equal(a, b)


def test_sample_std_scales_with_temperature():
    torch.manual_seed(0)
    lom = LOM(ToyOrderless(image_shape=SHAPE), scene_dim=5)
    s_hot, s_cold = lom.sample(4000, temperature=1.0).s, lom.sample(4000, temperature=0.5).s
    ratio = s_cold.std() / s_hot.std()
    assert abs(ratio.item() - 0.5) < 0.03
    s = torch.zeros(4000, 5)
    loc, scale = lom.prior_slots(s[:1])
    z = lom.generate(s, temperature=0.8).z
    assert torch.allclose(z.std(0), 0.8 * scale[0], rtol=0.1)
    assert torch.allclose(lom.generate(s[:2], temperature=0.0).z, loc.expand(2, -1, -1).detach())


def test_mixture_prior_temperature():
    prior = MixtureScenePrior(3, components=2)
    hot, cold = prior(1.0).component_distribution.base_dist.scale, prior(0.5).component_distribution.base_dist.scale
    assert torch.allclose(cold, 0.5 * (hot - 1e-5) + 1e-5)


def test_user_api_shapes(lom):
    x = torch.rand(2, *SHAPE)
    out = lom.sample(3)
    assert out.images.shape == (3, *SHAPE) and out.masks.shape == (3, 3, 1, 6, 6)
    assert out.components.shape == (3, 3, *SHAPE) and out.s.shape == (3, 5) and out.z.shape == (3, 3, 4)
    assert torch.allclose(out.masks.sum(1), torch.ones(3, 1, 6, 6))
    frames = lom.interpolate(out.s[0], out.s[1], steps=5)
    assert frames.images.shape == (5, *SHAPE)
    assert torch.allclose(frames.s.norm(dim=-1), torch.full((5,), 5 ** 0.5), rtol=1e-4)
    enc = lom.encode(x)
    assert enc.scene_loc.shape == (2, 5) and enc.slots_loc.shape == (2, 3, 4) and enc.permutation.shape == (2, 3)
    assert torch.equal(enc.s, enc.scene_loc)                # mean_scene=True
    rec = lom.reconstruct(x)
    assert rec.images.shape == x.shape and rec.masks.shape == (2, 3, 1, 6, 6)


def test_dtype_follows_the_module_and_input(lom):
    lom = lom.double()
    out = lom.sample(2)
    assert out.images.dtype == torch.float64
    loss = LOMELBO().differentiable_loss(lom.model, lom.guide, torch.rand(2, *SHAPE, dtype=torch.float64))
    assert loss.dtype == torch.float64


@pytest.mark.parametrize("x, match", [
    (torch.rand(2, 1, 6, 6), r"x must have shape \(B, 3, 6, 6\)"),
    (torch.rand(2, 3, 6, 7), r"x must have shape"),
    (torch.rand(3, 6, 6), r"x must have shape"),
    (torch.full((2, 3, 6, 6), float("nan")), "NaN"),
    (torch.zeros(2, 3, 6, 6, dtype=torch.uint8), "floating-point"),
])
def test_bad_images(lom, x, match):
    with pytest.raises(ValueError, match=match):
        lom.guide(x)
    with pytest.raises(ValueError, match=match):
        lom.model(x)


def test_bad_configuration():
    toy = ToyOrderless(num_slots=3, slot_dim=4, image_shape=SHAPE)
    with pytest.raises(ValueError, match="num_slots=5 does not match"):
        LOM(toy, num_slots=5)
    with pytest.raises(ValueError, match="slot_dim=2 does not match"):
        LOM(toy, slot_dim=2)
    with pytest.raises(ValueError, match="scene_prior.dim must equal scene_dim=8"):
        LOM(toy, scene_dim=8, scene_prior=StandardNormalPrior(4))
    with pytest.raises(ValueError, match="likelihood must be a callable"):
        LOM(toy, likelihood="poisson")
    with pytest.raises(ValueError, match="matcher must be a function"):
        LOM(toy, matcher="hungarian")
    with pytest.raises(ValueError, match="sigma=0.5 is the default likelihood's"):
        LOM(toy, likelihood=GaussianLikelihood(0.2), sigma=0.5)
    with pytest.raises(ValueError, match="give it or a scale_net, not both"):
        LOM(toy, share_prior_and_scale_nets=True, scale_net=transformer_scales(3, 4, 128))
    with pytest.raises(ValueError, match="orderless must provide"):
        LOM(object())
    with pytest.raises(ValueError, match="temperature"):
        LOM(toy, scene_dim=3).sample(2, temperature=-1.0)


def test_mixture_likelihood_and_ablation_switches():
    toy = ToyOrderless(image_shape=SHAPE)
    x = torch.rand(2, *SHAPE)
    for kwargs in (dict(likelihood=MixtureLikelihood(0.3)), dict(reuse_orderless_scales=True),
                   dict(share_prior_and_scale_nets=True),
                   dict(scene_encoder=set_scene_encoder(3, 4, 4, sum_pooling=False)), dict(matcher=hungarian_match)):
        lom = LOM(toy, scene_dim=4, scene_free_bits=0.0, **kwargs)
        pyro.set_rng_seed(5)
        loss = LOMELBO().differentiable_loss(lom.model, lom.guide, x)
        pyro.set_rng_seed(5)   # each switch still gives the ELBO Pyro computes for the same program
        assert torch.allclose(loss, TraceMeanField_ELBO().differentiable_loss(lom.model, lom.guide, x), rtol=1e-6)
    mixture = LOM(toy, scene_dim=4, likelihood=MixtureLikelihood(0.3))
    tr = poutine.trace(poutine.replay(mixture.model, trace=poutine.trace(mixture.guide).get_trace(x))).get_trace(x)
    assert isinstance(tr.nodes[OBS]["fn"], MixtureImage)
    shared = LOM(toy, scene_dim=4, share_prior_and_scale_nets=True)
    assert shared.scale_net is shared.slot_prior.net
    model5 = LOM(toy, scene_dim=4, reuse_orderless_scales=True)
    tr = poutine.trace(model5.guide).get_trace(torch.rand(2, *SHAPE))
    perm = tr.nodes[OBJECTS]["infer"]["permutation"]
    o_scale = tr.nodes[ORDERLESS_SLOTS]["fn"].base_dist.scale
    assert torch.equal(
        tr.nodes[OBJECTS]["fn"].base_dist.scale, torch.gather(o_scale, 1, perm.unsqueeze(-1).expand(-1, -1, 4))
    )


def test_prior_width_widens_f_theta_only():
    toy = ToyOrderless(image_shape=SHAPE)
    wide = LOM(toy, scene_dim=4, slot_prior=ChainPrior(toy.num_slots, toy.slot_dim, 4, width=12))
    loc, scale = wide.prior_slots(torch.randn(3, 4))
    assert loc.shape == scale.shape == (3, toy.num_slots, toy.slot_dim)
    assert wide.slot_prior.net.token.shape == (12,) and wide.slot_prior.loc_head.in_features == 12
    loss = LOMELBO().differentiable_loss(wide.model, wide.guide, torch.rand(2, *SHAPE))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in wide.slot_prior.net.blocks.parameters())
    with pytest.raises(ValueError, match="prior_width"):
        ChainPrior(3, 4, 4, width=0)
    with pytest.raises(ValueError, match="share_prior_and_scale_nets needs a slot prior with a network `net` of width"):
        LOM(toy, scene_dim=4, slot_prior=ChainPrior(3, 4, 4, width=12), share_prior_and_scale_nets=True)


def test_a_config_names_the_components_through_the_registry():
    """lom_kwargs as a config writes them become the same LOM as the objects given directly."""
    toy = ToyOrderless(image_shape=SHAPE)
    arch = Architecture(lom_kwargs={"scene_dim": 4, "prior_width": 12, "encoder_depth": 1, "sum_pooling": False,
                                    "matching": "hungarian", "likelihood": "mixture", "sigma": 0.2})
    kwargs = lom_arguments(arch, toy)
    lom = LOM(toy, **kwargs)
    assert lom.slot_prior.width == 12 and len(lom.scene_encoder.blocks) == 1 and not lom.scene_encoder.sum_pooling
    assert lom.matcher is hungarian_match and isinstance(lom.likelihood, MixtureLikelihood) and lom.sigma == 0.2
    assert type(lom.scene_prior) is StandardNormalPrior
    torch.manual_seed(0)
    paper = LOM(toy, **lom_arguments(Architecture(lom_kwargs={"scene_dim": 4}), toy))
    torch.manual_seed(0)
    direct = LOM(toy, scene_dim=4)
    assert all(torch.equal(a, b) for a, b in zip(paper.state_dict().values(), direct.state_dict().values()))
    assert lom_arguments(Architecture(scene_prior="mixture", scene_prior_components=3,
                                      lom_kwargs={"scene_dim": 4}), toy)["scene_prior"].logits.shape == (3,)


def test_encode_uses_one_orderless_posterior_and_the_mean_scene(lom):
    x = torch.rand(3, *SHAPE)
    enc = lom.encode(x)
    perm = enc.permutation
    assert torch.equal(enc.slots_loc, torch.gather(enc.orderless.loc, 1, perm.unsqueeze(-1).expand(-1, -1, 4)))
    loc, _ = lom.scene_posterior(enc.orderless.loc)
    assert torch.allclose(enc.s, loc) and torch.allclose(enc.scene_loc, loc)
    sampled = lom.encode(x, mean_scene=False)
    assert not torch.allclose(sampled.s, sampled.scene_loc)


def test_fixed_gaussian_prior_follows_dtype_and_rejects_others():
    import pyro.distributions as dist

    toy = ToyOrderless(image_shape=SHAPE)
    prior = dist.Normal(torch.zeros(3), 2.0 * torch.ones(3)).to_event(1)
    lom = LOM(toy, scene_dim=3, scene_prior=prior).double()
    assert lom.scene_prior(0.5).base_dist.scale.dtype == torch.float64
    assert torch.allclose(lom.scene_prior(0.5).base_dist.scale, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="Normal\\(loc, scale\\).to_event\\(1\\)"):
        LOM(toy, scene_dim=3, scene_prior=dist.Gamma(torch.ones(3), 1.0).to_event(1))
