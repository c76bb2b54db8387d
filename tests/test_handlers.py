"""Handler semantics and laws: idempotence and composition with Pyro's handlers, as hypothesis
properties over random batch size B, slot count K and slot width D."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from hypothesis import given, settings
from hypothesis import strategies as st

from lom_pyro.handlers import align, order_aware_scale, stop_gradient
from lom_pyro.ops import permute_slots
from lom_pyro.orderless import SlotPosterior

B, K, D = 2, 4, 3
#: batch B, slots K, slot width D and a seed for the tensors
bkd_seed = st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2 ** 16))


def _draw(b, k, d, seed):
    """Orderless means, scales and ordered prior means ``(B, K, D)`` (ties have probability 0)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, d, generator=g), torch.rand(b, k, d, generator=g) + 0.1, torch.randn(b, k, d, generator=g)


def _guide_factory(handlers, loc, scale):
    def guide():
        fn = lambda: pyro.sample("z", dist.Normal(loc, scale).to_event(1))
        for h in reversed(handlers):  # first handler outermost
            fn = h(fn)
        return fn()
    return guide


def _site(guide):
    return poutine.trace(guide).get_trace().nodes["z"]


@pytest.fixture
def tensors():
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, K, D, generator=g), torch.rand(B, K, D, generator=g) + 0.1, torch.randn(B, K, D, generator=g)


def test_align_permutes_and_records(tensors):
    loc, scale, _ = tensors
    shuffle = torch.tensor([[2, 0, 3, 1], [1, 3, 0, 2]])
    prior_loc = torch.gather(loc, 1, shuffle.unsqueeze(-1).expand(-1, -1, D)) + 0.01
    site = _site(_guide_factory([align(prior_loc=prior_loc)], loc, scale))
    assert torch.equal(site["infer"]["permutation"], shuffle)
    assert torch.allclose(site["fn"].base_dist.loc, prior_loc - 0.01)


@settings(max_examples=40)
@given(bkd_seed, st.sampled_from(["greedy", "hungarian"]))
def test_align_twice_equals_once(shape, method):
    loc, scale, prior_loc = _draw(*shape)
    once = _site(_guide_factory([align(prior_loc=prior_loc, method=method)], loc, scale))
    twice = _site(_guide_factory([align(prior_loc=prior_loc, method=method),
                                  align(prior_loc=prior_loc, method=method)], loc, scale))
    assert torch.equal(once["infer"]["permutation"], twice["infer"]["permutation"])
    assert torch.equal(once["fn"].base_dist.loc, twice["fn"].base_dist.loc)
    assert torch.equal(once["fn"].base_dist.scale, twice["fn"].base_dist.scale)


@settings(max_examples=40)
@given(bkd_seed, st.sampled_from(["greedy", "hungarian"]))
def test_align_applies_the_permutation_it_records_and_ignores_the_input_order(shape, method):
    loc, scale, prior_loc = _draw(*shape)
    b, k, _, seed = shape
    site = _site(_guide_factory([align(prior_loc=prior_loc, method=method)], loc, scale))
    perm = site["infer"]["permutation"]
    assert perm.shape == (b, k) and torch.equal(perm.sort(-1).values, torch.arange(k).expand(b, k))
    assert torch.equal(site["fn"].base_dist.loc, permute_slots(loc, perm))
    assert torch.equal(site["fn"].base_dist.scale, permute_slots(scale, perm))
    # the orderless slots have no order: shuffling them first changes the record, not the result
    shuffle = torch.stack([torch.randperm(k, generator=torch.Generator().manual_seed(seed + i)) for i in range(b)])
    other = _site(_guide_factory([align(prior_loc=prior_loc, method=method)],
                                 permute_slots(loc, shuffle), permute_slots(scale, shuffle)))
    assert torch.equal(other["fn"].base_dist.loc, site["fn"].base_dist.loc)
    assert torch.equal(torch.gather(shuffle, 1, other["infer"]["permutation"]), perm)


@settings(max_examples=30)
@given(bkd_seed)
def test_order_aware_scale_replaces_scale_after_alignment(shape):
    loc, scale, prior_loc = _draw(*shape)
    scale_fn = lambda l: torch.nn.functional.softplus(l.cumsum(1))  # depends on the slot order
    site = _site(_guide_factory([order_aware_scale(scale_fn=scale_fn), align(prior_loc=prior_loc)], loc, scale))
    aligned = site["fn"].base_dist.loc
    assert torch.equal(aligned, permute_slots(loc, site["infer"]["permutation"]))   # the mean is not re-estimated
    assert torch.equal(site["fn"].base_dist.scale, scale_fn(aligned))
    assert site["infer"]["order_aware_scale"] is True
    twice = _site(_guide_factory([order_aware_scale(scale_fn=scale_fn), order_aware_scale(scale_fn=scale_fn),
                                  align(prior_loc=prior_loc)], loc, scale))
    assert torch.equal(twice["fn"].base_dist.scale, site["fn"].base_dist.scale)


def test_reuse_orderless_scales_keeps_permuted_scales(tensors):
    loc, scale, prior_loc = tensors
    site = _site(_guide_factory([order_aware_scale(scale_fn=lambda l: l.exp(), reuse_orderless_scales=True),
                                 align(prior_loc=prior_loc)], loc, scale))
    perm = site["infer"]["permutation"]
    assert torch.equal(site["fn"].base_dist.scale, torch.gather(scale, 1, perm.unsqueeze(-1).expand(-1, -1, D)))
    assert site["infer"]["order_aware_scale"] is False


@settings(max_examples=30)
@given(bkd_seed)
def test_handlers_commute_with_condition(shape):
    loc, scale, prior_loc = _draw(*shape)
    value = torch.randn(loc.shape, generator=torch.Generator().manual_seed(shape[-1] + 1))
    scale_fn = lambda l: l.abs() + 1

    def sample():
        return pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def condition_inside():
        with order_aware_scale(scale_fn=scale_fn), align(prior_loc=prior_loc):
            return poutine.condition(sample, data={"z": value})()

    def handlers_inside():
        with order_aware_scale(scale_fn=scale_fn), align(prior_loc=prior_loc):
            return sample()

    a, b = _site(condition_inside), _site(poutine.condition(handlers_inside, data={"z": value}))
    free = _site(handlers_inside)
    assert torch.equal(a["value"], value) and torch.equal(b["value"], value)
    assert torch.equal(a["infer"]["permutation"], b["infer"]["permutation"])
    assert torch.equal(a["infer"]["permutation"], free["infer"]["permutation"])
    assert torch.equal(a["fn"].log_prob(value), b["fn"].log_prob(value))
    assert torch.equal(a["fn"].log_prob(value), free["fn"].log_prob(value))


@settings(max_examples=30)
@given(bkd_seed)
def test_handlers_commute_with_replay(shape):
    loc, scale, prior_loc = _draw(*shape)
    guide = _guide_factory([order_aware_scale(scale_fn=lambda l: l.abs() + 1), align(prior_loc=prior_loc)], loc, scale)
    tr = poutine.trace(guide).get_trace()
    replayed = _site(poutine.replay(guide, trace=tr))
    assert torch.equal(replayed["value"], tr.nodes["z"]["value"])
    assert torch.equal(replayed["infer"]["permutation"], tr.nodes["z"]["infer"]["permutation"])
    assert torch.equal(replayed["fn"].base_dist.scale, tr.nodes["z"]["fn"].base_dist.scale)
    assert torch.equal(replayed["fn"].log_prob(replayed["value"]), tr.nodes["z"]["fn"].log_prob(tr.nodes["z"]["value"]))


def test_handlers_respect_block_and_scale(tensors):
    loc, scale, prior_loc = tensors
    guide = _guide_factory([align(prior_loc=prior_loc)], loc, scale)
    assert "z" not in poutine.trace(poutine.block(guide)).get_trace().nodes
    site = _site(poutine.scale(guide, scale=0.5))
    assert site["scale"] == 0.5 and "permutation" in site["infer"]


def test_stop_gradient_detaches_arguments_and_named_sites():
    w = torch.tensor(2.0, requires_grad=True)
    own = torch.tensor(3.0, requires_grad=True)

    def downstream(post: SlotPosterior, scale: torch.Tensor):
        assert not post.loc.requires_grad and not scale.requires_grad
        return (post.loc * own).sum() + scale

    post = SlotPosterior(w * torch.ones(2), w * torch.ones(2), w * torch.ones(2))
    out = stop_gradient(downstream)(post, w * 1.0)
    out.backward()
    assert w.grad is None and own.grad is not None

    def guide():
        with stop_gradient(sites=["z"]):
            return pyro.sample("z", dist.Normal(w, 1.0))
    tr = poutine.trace(guide).get_trace()
    assert not tr.nodes["z"]["value"].requires_grad and tr.nodes["z"]["infer"]["stop_gradient"]
    twice = stop_gradient(stop_gradient(downstream))(post, w * 1.0)
    assert torch.equal(twice, out)


def test_front_doors_validate():
    with pytest.raises(ValueError, match="method must be one of"):
        align(prior_loc=torch.zeros(1, 2, 3), method="nope")
    with pytest.raises(ValueError, match="prior_loc must have shape"):
        align(prior_loc=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="collection of site names"):
        stop_gradient(sites="z")

    def guide():
        with align(prior_loc=torch.zeros(1, 2, 1)):
            pyro.sample("z", dist.Gamma(torch.ones(1, 2, 1), 1.0).to_event(1))
    with pytest.raises(ValueError, match="must be a Normal"):
        poutine.trace(guide).get_trace()
