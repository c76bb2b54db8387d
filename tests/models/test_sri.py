"""The authors' SRI variant as a LOM configuration: the LSTM chain is causal, the relation
encoder ignores slot order, the autoregressive slot prior's density, samples and KL agree
with a slot-by-slot hand computation, and a 3-step CLI run trains every parameter group."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine

from lom_pyro import LOM, LOMELBO, registry
from lom_pyro.cli import main
from lom_pyro.models.assemble import Architecture, assemble
from lom_pyro.models.lom import AutoregressiveSlots
from lom_pyro.nn.recurrent import LSTMChain
from lom_pyro.nn.relation import RelationEncoder
from lom_pyro.sites import OBJECTS, OBS, SCENE
from toy import ToyOrderless

SHAPE = (3, 6, 6)
TINY_EMORL = {"num_slots": 3, "slot_dim": 4, "encoder_width": 8, "decoder_hidden": 8, "prior_hidden": 8,
              "refinement_hidden": 8, "stochastic_layers": 1, "refinement_steps": 0}


def sri_lom(**kwargs) -> LOM:
    torch.manual_seed(0)
    toy = ToyOrderless(num_slots=4, slot_dim=3, image_shape=SHAPE)
    return LOM(toy, scene_dim=5, **registry.build_networks(4, 3, 5, registry.networks("sri")), **kwargs)


@settings(max_examples=20, deadline=None)
@given(perm=st.permutations(range(5)), seed=st.integers(0, 2**16))
def test_relation_encoder_ignores_the_slot_order(perm, seed):
    torch.manual_seed(seed)
    enc = RelationEncoder(4, 6).double()
    slots = torch.randn(2, 5, 4, dtype=torch.float64)
    assert torch.allclose(enc(slots), enc(slots[:, list(perm)]), atol=1e-10)


def test_lstm_chain_output_t_sees_only_the_tokens_before_t():
    torch.manual_seed(0)
    chain = LSTMChain(5, 3).double()
    context, tokens = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 4, 3, dtype=torch.float64)
    out = chain(context, tokens)
    assert out.shape == (2, 5, 3)
    changed = tokens.clone()
    changed[:, 2] += 1.0
    other = chain(context, changed)
    assert torch.equal(out[:, :3], other[:, :3]) and not torch.allclose(out[:, 3:], other[:, 3:])
    # the step-by-step form is the same network
    x, state, steps = chain.first(context), None, []
    for t in range(5):
        h, state = chain.step(x, state)
        steps.append(h)
        x = tokens[:, t] if t < 4 else x
    assert torch.allclose(torch.stack(steps, 1), out, atol=1e-12)


def test_autoregressive_prior_density_and_kl_match_slot_by_slot_computation():
    lom = sri_lom().double()
    s = torch.randn(2, 5, dtype=torch.float64)
    prior = lom.slot_prior_distribution(s, temperature=0.7)
    assert isinstance(prior, AutoregressiveSlots) and prior.batch_shape == (2, 4) and prior.event_shape == (3,)
    z = torch.randn(2, 4, 3, dtype=torch.float64)
    # slot by slot: the LSTM fed s, then each earlier slot of z
    x, state, logp, kl = lom.slot_prior.net.first(s), None, [], []
    q_loc, q_scale = torch.randn(2, 4, 3, dtype=torch.float64), torch.rand(2, 4, 3, dtype=torch.float64) + 0.1
    for k in range(4):
        h, state = lom.slot_prior.net.step(x, state)
        heads = lom.slot_prior
        loc, scale = heads.loc_head(h), (torch.nn.functional.softplus(heads.scale_head(h)) + 1e-4) * 0.7
        logp.append(torch.distributions.Normal(loc, scale).log_prob(z[:, k]).sum(-1))
        kl.append(torch.distributions.kl_divergence(torch.distributions.Normal(q_loc[:, k], q_scale[:, k]),
                                                    torch.distributions.Normal(loc, scale)).sum(-1))
        x = z[:, k]
    assert torch.allclose(prior.log_prob(z), torch.stack(logp, 1), atol=1e-12)
    q = torch.distributions.Independent(torch.distributions.Normal(q_loc, q_scale), 1)
    model_site = {"fn": prior}
    guide_site = {"fn": q, "value": z, "scale": 1.0, "mask": None}
    assert torch.allclose(LOMELBO()._kl(model_site, guide_site), torch.stack(kl, 1), atol=1e-12)


def test_autoregressive_prior_samples_feed_each_slot_forward():
    lom = sri_lom().double()
    s = torch.randn(3, 5, dtype=torch.float64)
    means = lom.prior_slots(s)[0]
    # at temperature 0 the rollout feeds its means, so teacher-forcing them gives them back
    assert torch.allclose(lom.prior_given(s, means)[0], means, atol=1e-12)
    torch.manual_seed(1)
    z = lom.slot_prior_distribution(s, temperature=0.8).rsample()
    torch.manual_seed(1)
    assert torch.allclose(lom.generate(s, temperature=0.8).z, z, atol=1e-12)
    assert not torch.allclose(z, means)


def test_sri_lom_isolates_gradients_and_trains_its_prior_through_the_kl():
    lom = sri_lom()
    assert type(lom.scene_encoder) is RelationEncoder
    assert type(lom.scale_net) is LSTMChain and lom.scale_net is not lom.slot_prior.net
    x = torch.rand(3, *SHAPE)
    model_trace = poutine.trace(poutine.replay(lom.model, trace=poutine.trace(lom.guide).get_trace(x))).get_trace(x)
    assert isinstance(model_trace.nodes[OBJECTS]["fn"], AutoregressiveSlots)
    terms = LOMELBO().terms(lom.model, lom.guide, x)
    lom_loss = sum(terms[n].loss.sum() for n in (SCENE, OBJECTS, OBS))
    grads = torch.autograd.grad(lom_loss, list(lom.orderless.parameters()), allow_unused=True, retain_graph=True)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads)
    prior_grads = torch.autograd.grad(terms[OBJECTS].loss.sum(), list(lom.slot_prior.parameters()), allow_unused=True)
    assert all(g is not None and torch.count_nonzero(g) > 0 for g in prior_grads)


def test_variant_options_are_checked():
    with pytest.raises(ValueError, match="variant"):
        registry.networks("genesis")
    with pytest.raises(ValueError, match="variant='sri' has slot_prior='lstm'"):
        registry.networks("sri", slot_prior="transformer")
    with pytest.raises(ValueError, match="scene encoder 'gnn' is not one of"):
        registry.networks(scene_encoder="gnn")
    with pytest.raises(ValueError, match="share_prior_and_scale_nets needs scale_net and slot_prior of one kind"):
        assemble(Architecture(orderless="emorl", image_size=16, orderless_kwargs=TINY_EMORL,
                              lom_kwargs={"slot_prior": "lstm", "share_prior_and_scale_nets": True}), LOM)
    with pytest.raises(ValueError, match="slot prior 'lstm' does not take the options"):   # prior_depth
        assemble(Architecture(orderless="emorl", image_size=16, orderless_kwargs=TINY_EMORL,
                              lom_kwargs={"slot_prior": "lstm", "prior_depth": 3}), LOM)
    names = registry.networks(slot_prior="lstm")                       # one SRI part on the paper's LOM
    mixed = LOM(ToyOrderless(), scene_dim=4, **registry.build_networks(3, 4, 4, names))
    assert type(mixed.slot_prior.net) is LSTMChain and type(mixed.scene_encoder) is not RelationEncoder
    shared = assemble(Architecture(orderless="emorl", image_size=16, orderless_kwargs=TINY_EMORL,
                                   lom_kwargs={"variant": "sri", "share_prior_and_scale_nets": True}), LOM)
    assert shared.scale_net is shared.slot_prior.net and type(shared.scene_encoder) is RelationEncoder


@pytest.mark.slow
def test_cli_trains_sri_on_genesis_v2_and_every_parameter_group(tmp_path):
    from runs import TINY, still_groups

    out = tmp_path / "run"
    assert main(["train", "--orderless", "genesis_v2", "--likelihood", "mog", "--lom-kwargs",
                 json.dumps({"scene_dim": 16, "variant": "sri"}), *TINY, "--out", str(out)]) == 0
    assert not still_groups(out), "every parameter group of SRI trains"
