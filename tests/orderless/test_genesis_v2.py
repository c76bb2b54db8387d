"""GENESIS-v2 as an orderless Pyro VAE: IC-SBP masks, slot order from the seeds alone,
ELBO terms against hand computation, the pooled/batched rewrites against the reference's
per-slot loops, the LOM on top of it, and bad input (tiny configs)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine

from lom_pyro.models.assemble import Architecture, lom_arguments
from lom_pyro import LOM, LOMELBO
from lom_pyro.nn.decoders import BroadcastDeconvDecoder
from lom_pyro.nn.icsbp import InstanceColouringSBP, straight_through_clamp
from lom_pyro.nn.unet import UNet
from lom_pyro.orderless.base import OrderlessModel, standalone
from lom_pyro.plates import make_plates
from lom_pyro.orderless.genesis_v2 import PRESETS, GenesisV2, pool_by_masks
from lom_pyro.sites import OBJECTS, OBS, ORDERLESS_OBS, ORDERLESS_SLOTS, SCENE

B, K, D, S = 2, 3, 4, 16


def tiny(**kwargs) -> GenesisV2:
    cfg = dict(num_slots=K, image_size=S, slot_dim=D, feature_dim=8, decoder_hidden=8)
    cfg.update(kwargs)
    return GenesisV2(**cfg)


def images(b: int = B) -> torch.Tensor:
    return torch.rand(b, 3, S, S) * 2 - 1


# -- IC-SBP ------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(k=st.integers(2, 6), h=st.integers(2, 9), w=st.integers(2, 9), gate=st.floats(-3.0, 3.0),
       kernel=st.sampled_from(["gaussian", "laplacian"]), seed=st.integers(0, 2**16))
def test_icsbp_masks_sum_to_one_and_lie_in_the_unit_interval(k, h, w, gate, kernel, seed):
    torch.manual_seed(seed)
    sbp = InstanceColouringSBP(5, k, kernel=kernel).double()
    with torch.no_grad():
        sbp.embed.gate.fill_(gate)
    masks = sbp(torch.randn(3, 5, h, w, dtype=torch.float64)).exp()
    assert masks.shape == (3, k, 1, h, w)
    assert torch.allclose(masks.sum(1), torch.ones(3, 1, h, w, dtype=torch.float64), atol=1e-12)
    assert bool((masks > 0).all()) and bool((masks <= 1).all())


def test_clamp_passes_the_gradient_of_the_unclamped_value():
    x = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    y = straight_through_clamp(x, 0.01, 0.99)
    assert torch.allclose(y.detach(), torch.tensor([0.01, 0.5, 0.99]))
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([1.0, 2.0, 3.0]))


def _two_region_sbp():
    """An IC-SBP whose embedding is the features themselves, on an image whose left and
    right halves have far-apart features: each seed claims its half (α at the clamp)."""
    sbp = InstanceColouringSBP(2, 3, dim=2, semiconv=False).double()
    with torch.no_grad():
        sbp.embed.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        sbp.embed.bias.zero_()
    features = torch.zeros(1, 2, 4, 6, dtype=torch.float64)
    features[:, 0, :, :3] = 5.0
    features[:, 1, :, 3:] = 5.0
    return sbp, features


def test_the_slot_order_comes_from_the_seeds_alone():
    # visiting the same two seed pixels in the other order swaps the two seeded slots; the
    # masks agree to within the clamp (α ∈ [0.01, 0.99]), the pooled features likewise
    sbp, features = _two_region_sbp()
    left_first = torch.zeros(1, 4, 6, dtype=torch.float64)
    left_first[0, 1, 1], left_first[0, 2, 4] = 1.0, 0.9
    right_first = torch.zeros_like(left_first)
    right_first[0, 1, 1], right_first[0, 2, 4] = 0.9, 1.0
    a = sbp(features, left_first).exp()
    b = sbp(features, right_first).exp()
    assert a[0, 0, 0, :, :3].min() > 0.98 and b[0, 0, 0, :, 3:].min() > 0.98
    swapped = b[:, [1, 0, 2]]
    assert (a - swapped).abs().max() < 0.02
    feats = torch.randn(1, 5, 4, 6, dtype=torch.float64)
    assert torch.allclose(pool_by_masks(a, feats), pool_by_masks(swapped, feats), atol=0.05)


# -- the reference's loops ---------------------------------------------------------------------
def test_pooling_once_equals_the_reference_per_slot_loop():
    torch.manual_seed(0)
    m = tiny().double()
    x = images().double()
    features = m.encoder(m.observation(x))
    masks = m.icsbp(m.seg_head(features), torch.rand(B, S, S, dtype=torch.float64)).exp()
    pooled = pool_by_masks(masks, m.feature_head(features))
    loop = []
    for k in range(K):  # the reference: the feature head recomputed inside the loop over slots
        mask = masks[:, k]
        loop.append((mask * m.feature_head(features)).sum((2, 3)) / (mask.sum((2, 3)) + 1e-5))
    assert torch.allclose(pooled, torch.stack(loop, 1), rtol=1e-12, atol=1e-12)


def test_batched_decoding_equals_the_per_slot_loop():
    torch.manual_seed(0)
    dec = BroadcastDeconvDecoder(D, (3, S, S), hidden=8).double()
    z = torch.randn(B, K, D, dtype=torch.float64)
    rgb, logits = dec(z)
    per_slot = [dec(z[:, k:k + 1]) for k in range(K)]
    assert torch.allclose(rgb, torch.cat([r for r, _ in per_slot], 1), atol=1e-12)
    assert torch.allclose(logits, torch.cat([m for _, m in per_slot], 1), atol=1e-12)
    assert rgb.shape == (B, K, 3, S, S) and logits.shape == (B, K, 1, S, S)
    assert bool((rgb > 0).all()) and bool((rgb < 1).all())
    # it runs channels-last for speed: the same numbers as in the default memory format
    grid = torch.cat([z.reshape(B * K, D, 1, 1), dec.coords.expand(B * K, 2, 1, 1)], dim=1)
    plain = dec.net(grid.contiguous()).view(B, K, 4, S, S)
    assert torch.allclose(rgb, torch.sigmoid(plain[:, :, :3]), atol=1e-12)
    assert torch.allclose(logits, plain[:, :, 3:], atol=1e-12)


@pytest.mark.parametrize("size,blocks", [(16, 3), (32, 4), (64, 5), (96, 5)])
def test_unet_depth_follows_the_image_size(size, blocks):
    net = UNet(3, (size, size), width=8)
    assert len(net.down) == blocks == len(net.up)
    assert net(torch.rand(1, 3, size, size)).shape == (1, 8, size, size)


# -- Pyro programs -----------------------------------------------------------------------------
def test_sites_protocol_and_geco_groups():
    m = tiny()
    assert isinstance(m, OrderlessModel)
    x = images()
    plates = make_plates(B, K)
    guide = poutine.trace(m.guide).get_trace(x, plates)
    model = poutine.trace(poutine.replay(m.model, trace=guide)).get_trace(x, make_plates(B, K))
    assert guide.nodes[ORDERLESS_SLOTS]["value"].shape == (B, K, D)
    assert model.nodes[ORDERLESS_OBS]["value"].shape == (B, 1, 3, S, S)
    for tr, name in ((guide, ORDERLESS_SLOTS), (model, ORDERLESS_SLOTS), (model, ORDERLESS_OBS)):
        assert tr.nodes[name]["infer"]["geco_group"] == ORDERLESS_OBS
    # the observed frame is [0, 1]
    assert torch.allclose(model.nodes[ORDERLESS_OBS]["value"].squeeze(1), (x + 1) / 2)


@pytest.mark.parametrize("likelihood,per_channel", [("gaussian", True), ("mixture", True), ("mixture", False)])
def test_elbo_terms_match_a_hand_computation(likelihood, per_channel):
    torch.manual_seed(0)
    m = tiny(likelihood=likelihood, mixture_per_channel=per_channel, sigma=0.4).double()
    x = images().double()
    noise = torch.rand(B, S, S, dtype=torch.float64)
    sa = standalone(m)

    def guide(x):
        return m.guide(x, make_plates(B, K), seed_noise=noise)

    torch.manual_seed(1)
    terms = LOMELBO().terms(sa.model, guide, x)
    torch.manual_seed(1)
    loc, scale, _ = m.encode(x, noise)
    o = loc + scale * torch.randn_like(loc)                 # the guide's one draw
    kl = 0.5 * (scale ** 2 + loc ** 2 - 1 - 2 * scale.log()).sum((1, 2))
    rgb, logits = m.decoder(o)
    target = (x + 1) / 2
    log_m = torch.log_softmax(logits, dim=1)
    comp = -0.5 * ((target.unsqueeze(1) - rgb) / 0.4) ** 2 - math.log(0.4) - 0.5 * math.log(2 * math.pi)
    if likelihood == "gaussian":
        mean = (log_m.exp() * rgb).sum(1)
        loglik = (-0.5 * ((target - mean) / 0.4) ** 2 - math.log(0.4) - 0.5 * math.log(2 * math.pi)).sum((1, 2, 3))
    elif per_channel:
        loglik = torch.logsumexp(log_m + comp, dim=1).sum((1, 2, 3))
    else:
        loglik = torch.logsumexp(log_m + comp.sum(2, keepdim=True), dim=1).sum((1, 2, 3))
    assert torch.allclose(terms[ORDERLESS_SLOTS].value, kl, rtol=1e-10)
    assert torch.allclose(terms[ORDERLESS_OBS].value, loglik, rtol=1e-10)


def test_the_model_is_exchangeable_over_slots():
    # independent N(0, I) slot prior and a decoder applied per slot with a softmax over slots
    torch.manual_seed(0)
    m = tiny().double()
    x = images().double()
    o = torch.randn(B, K, D, dtype=torch.float64)
    perm = torch.tensor([2, 0, 1])

    def log_joint(slots):
        cond = poutine.condition(m.model, data={ORDERLESS_SLOTS: slots})
        return poutine.trace(cond).get_trace(x, make_plates(B, K)).log_prob_sum()

    assert torch.allclose(log_joint(o), log_joint(o[:, perm]), rtol=1e-12)


def test_lom_on_genesis_v2_isolates_gradients_and_decodes_in_its_frame():
    torch.manual_seed(0)
    lom = LOM(tiny(), scene_dim=6)
    assert lom.sigma == 0.7 and isinstance(lom.decoder, BroadcastDeconvDecoder)
    assert lom.decoder is not lom.orderless.decoder
    x = images(3)
    terms = LOMELBO().terms(lom.model, lom.guide, x)
    lom_loss = sum(terms[n].loss.sum() for n in (SCENE, OBJECTS, OBS))
    grads = torch.autograd.grad(lom_loss, list(lom.orderless.parameters()), allow_unused=True)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads)
    out = lom.sample(4)
    assert out.images.shape == (4, 3, S, S) and bool((out.images >= 0).all()) and bool((out.images <= 1).all())


def test_reconstruct_returns_both_mask_kinds_in_the_input_frame():
    m = tiny()
    out = m.reconstruct(images())
    assert out["image"].shape == (B, 3, S, S) and out["image"].min() >= -1 and out["image"].max() <= 1
    for key in ("masks", "attention"):
        assert torch.allclose(out[key].sum(1), torch.ones(B, 1, S, S), atol=1e-5)
    assert not any(p.grad is not None for p in m.parameters())


def test_make_decoder_has_its_own_weights_and_options():
    m = tiny()
    dec = m.make_decoder(hidden=16)
    assert dec.net[0].out_channels == 16 and all(p is not q for p, q in zip(dec.parameters(), m.decoder.parameters()))
    with pytest.raises(ValueError, match="hidden"):
        m.make_decoder(hidden=0)


def test_presets():
    m = GenesisV2.preset("cpu")
    assert (m.num_slots, m.image_shape, m.slot_dim) == (6, (3, 32, 32), 32)
    assert set(PRESETS) == {"reference", "cpu"}
    with pytest.raises(ValueError, match="name"):
        GenesisV2.preset("nope")


@pytest.mark.parametrize("kwargs,match", [
    (dict(image_size=24), "divisible by 16"),
    (dict(num_slots=1), "num_slots"),
    (dict(feature_dim=12), "multiple of 8"),
    (dict(sigma=0.0), "sigma"),
    (dict(likelihood="poisson"), "likelihood"),
    (dict(kernel="box"), "kernel"),
])
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_bad_input():
    m = tiny()
    with pytest.raises(ValueError, match=r"shape \(B, 3, 16, 16\)"):
        m.guide(torch.rand(2, 3, 8, 8), make_plates(2, K))
    with pytest.raises(ValueError, match="seed_noise"):
        m.guide(images(), make_plates(B, K), seed_noise=torch.rand(B, 4, 4))


@pytest.mark.parametrize("per_channel", [True, False])
def test_the_lom_forms_its_mixture_as_its_orderless_model_does(per_channel):
    orderless = tiny(likelihood="mixture", mixture_per_channel=per_channel)
    lom = LOM(orderless, **lom_arguments(Architecture(lom_kwargs={"scene_dim": 6, "likelihood": "mixture"}), orderless))
    x = images()
    model = poutine.trace(poutine.replay(lom.model, trace=poutine.trace(lom.guide).get_trace(x))).get_trace(x)
    assert model.nodes[OBS]["fn"].per_channel is per_channel
    assert model.nodes[ORDERLESS_OBS]["fn"].per_channel is per_channel
