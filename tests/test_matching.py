"""Algorithm 1 (greedy) and Hungarian matching; alignment invariance."""

import itertools

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine

from lom_pyro import greedy_match, hungarian_match
from lom_pyro.handlers import align
from lom_pyro.ops import pairwise_sq_dist, permute_slots


def greedy_loop(cost: np.ndarray) -> list[int]:
    """Algorithm 1 as written in the paper, one example at a time."""
    k = cost.shape[0]
    taken: list[int] = []
    for i in range(k):
        best, best_j = np.inf, -1
        for j in range(k):
            if j not in taken and cost[i, j] < best:
                best, best_j = cost[i, j], j
        taken.append(best_j)
    return taken


costs = st.integers(1, 7).flatmap(lambda k: st.integers(1, 4).flatmap(
    lambda b: st.lists(st.floats(0, 100, allow_nan=False, width=32), min_size=b * k * k, max_size=b * k * k)
    .map(lambda v: torch.tensor(v).view(b, k, k))))


@settings(max_examples=60, deadline=None)
@given(costs)
def test_greedy_equals_algorithm_1_loop(cost):
    cost = cost + 1e-3 * torch.arange(cost[0].numel()).view_as(cost[0])  # break ties deterministically
    perm = greedy_match(cost)
    for b in range(cost.shape[0]):
        assert perm[b].tolist() == greedy_loop(cost[b].numpy())


@settings(max_examples=60, deadline=None)
@given(costs)
def test_rows_are_permutations_and_hungarian_is_no_worse(cost):
    k = cost.shape[-1]
    for perm in (greedy_match(cost), hungarian_match(cost)):
        assert perm.dtype == torch.long and perm.shape == cost.shape[:2]
        assert (perm.sort(-1).values == torch.arange(k)).all()
    total = lambda p: torch.gather(cost, 2, p.unsqueeze(-1)).sum((-1, -2))
    assert (total(hungarian_match(cost)) <= total(greedy_match(cost)) + 1e-3).all()


def test_hungarian_is_optimal_by_brute_force():
    cost = torch.rand(3, 4, 4)
    for b in range(3):
        best = min(sum(cost[b, i, p[i]] for i in range(4)) for p in itertools.permutations(range(4)))
        got = sum(cost[b, i, j] for i, j in enumerate(hungarian_match(cost)[b].tolist()))
        assert torch.isclose(torch.as_tensor(got), torch.as_tensor(best))


def test_bad_cost_shape():
    with pytest.raises(ValueError, match="cost must have shape"):
        greedy_match(torch.rand(2, 3, 4))


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(0, 10_000), st.sampled_from(["greedy", "hungarian"]))
def test_permuting_orderless_slots_leaves_aligned_posterior_unchanged(k, seed, method):
    g = torch.Generator().manual_seed(seed)
    prior_loc = torch.randn(2, k, 3, generator=g)
    loc, scale = torch.randn(2, k, 3, generator=g), torch.rand(2, k, 3, generator=g) + 0.1
    shuffle = torch.stack([torch.randperm(k, generator=g) for _ in range(2)])

    def aligned(l, s):
        def guide():
            with align(prior_loc=prior_loc, method=method):
                pyro.sample("z", dist.Normal(l, s).to_event(1))
        fn = poutine.trace(guide).get_trace().nodes["z"]["fn"].base_dist
        return fn.loc, fn.scale

    a_loc, a_scale = aligned(loc, scale)
    b_loc, b_scale = aligned(permute_slots(loc, shuffle), permute_slots(scale, shuffle))
    assert torch.equal(a_loc, b_loc) and torch.equal(a_scale, b_scale)


def test_pairwise_sq_dist():
    a, b = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    assert torch.allclose(pairwise_sq_dist(a, b), torch.cdist(a, b) ** 2, atol=1e-5)


def test_slerp_ends_norms_and_opposite_ends():
    from lom_pyro.ops import slerp

    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 0.5])
    path = slerp(a, b, 5)
    assert torch.allclose(path[0], torch.tensor([2 ** 0.5, 0.0])) and torch.allclose(
        path[-1], torch.tensor([0.0, 2 ** 0.5])
    )
    assert torch.allclose(path.norm(dim=-1), torch.full((5,), 2 ** 0.5))
    with pytest.raises(ValueError, match="opposite directions"):
        slerp(a, -a, 3)
