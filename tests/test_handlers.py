"""Handler semantics and laws: idempotence and composition with Pyro's handlers."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from lom_pyro.handlers import align, order_aware_scale, stop_gradient
from lom_pyro.orderless import SlotPosterior

B, K, D = 2, 4, 3


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


@pytest.mark.parametrize("method", ["greedy", "hungarian"])
def test_align_twice_equals_once(tensors, method):
    loc, scale, prior_loc = tensors
    once = _site(_guide_factory([align(prior_loc=prior_loc, method=method)], loc, scale))
    twice = _site(_guide_factory([align(prior_loc=prior_loc, method=method),
                                  align(prior_loc=prior_loc, method=method)], loc, scale))
    assert torch.equal(once["infer"]["permutation"], twice["infer"]["permutation"])
    assert torch.equal(once["fn"].base_dist.loc, twice["fn"].base_dist.loc)
    assert torch.equal(once["fn"].base_dist.scale, twice["fn"].base_dist.scale)


def test_order_aware_scale_replaces_scale_after_alignment(tensors):
    loc, scale, prior_loc = tensors
    scale_fn = lambda l: torch.nn.functional.softplus(l.cumsum(1))  # depends on the slot order
    site = _site(_guide_factory([order_aware_scale(scale_fn=scale_fn), align(prior_loc=prior_loc)], loc, scale))
    aligned = site["fn"].base_dist.loc
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


def test_handlers_commute_with_condition(tensors):
    loc, scale, prior_loc = tensors
    value = torch.randn(B, K, D)
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
    assert torch.equal(a["value"], value) and torch.equal(b["value"], value)
    assert torch.equal(a["infer"]["permutation"], b["infer"]["permutation"])
    assert torch.equal(a["fn"].log_prob(value), b["fn"].log_prob(value))


def test_handlers_commute_with_replay(tensors):
    loc, scale, prior_loc = tensors
    guide = _guide_factory([order_aware_scale(scale_fn=lambda l: l.abs() + 1), align(prior_loc=prior_loc)], loc, scale)
    tr = poutine.trace(guide).get_trace()
    replayed = _site(poutine.replay(guide, trace=tr))
    assert torch.equal(replayed["value"], tr.nodes["z"]["value"])
    assert torch.equal(replayed["infer"]["permutation"], tr.nodes["z"]["infer"]["permutation"])
    assert torch.equal(replayed["fn"].base_dist.scale, tr.nodes["z"]["fn"].base_dist.scale)


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
