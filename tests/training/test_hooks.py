"""The step loop and its hooks, on a toy loss whose every number can be worked out by hand."""

import itertools
from types import SimpleNamespace

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn

from lom_pyro.sites import SCENE
from lom_pyro.training.hooks import DecoderThaw, Hook, LearningRate, Loop, PrintScalars, SceneFreeBits


class Record(Hook):
    """What the loop showed the hooks at each step."""

    def __init__(self) -> None:
        self.rates, self.finite, self.last = [], [], []

    def before(self, loop, i):
        self.rates.append(loop.optimiser.param_groups[0]["lr"])

    def after(self, loop, i):
        self.finite.append(loop.finite)
        self.last.append(loop.last)


def toy(values, hooks, lr=0.1):
    """``w`` minimising ``(w - x)²`` over the batches ``values`` with plain SGD."""
    w = nn.Parameter(torch.zeros(()))
    optimiser = torch.optim.SGD([w], lr=lr)
    batches = iter(torch.tensor([v]) for v in values)
    loss_of = lambda x: (((w - x) ** 2).sum(), {"w": w.detach()})
    return w, Loop(loss_of, optimiser, [[w]], batches, torch.device("cpu"), grad_clip=100.0, hooks=hooks)


def test_steps_follow_the_gradient_and_the_learning_rate_schedule():
    record = Record()
    w, loop = toy([1.0, 1.0, 1.0, 1.0], [LearningRate(0.4, warmup=2, decay_every=3), record])
    assert loop.run(0, 4) == 4
    # warm-up (i + 1) / 2 for two steps, then halved at step 3 (i // 3 = 1)
    assert record.rates == pytest.approx([0.2, 0.4, 0.4, 0.2])
    expected = 0.0
    for rate in record.rates:    # SGD on (w - 1)²: w ← w - rate · 2 (w - 1)
        expected -= rate * 2 * (expected - 1)
    assert float(w.detach()) == pytest.approx(expected)
    assert record.last == [False, False, False, True]


def test_a_non_finite_step_is_not_taken():
    record = Record()
    w, loop = toy([1.0, float("nan"), 1.0], [record], lr=0.25)
    assert loop.run(0, 3) == 3
    assert record.finite == [True, False, True]
    assert float(w.detach()) == pytest.approx(0.75)    # 0 → 0.5 → (skipped) → 0.75


def test_a_hook_may_end_the_loop_early_and_a_loop_past_its_end_does_nothing():
    class StopAfterTwo(Hook):
        def after(self, loop, i):
            loop.last = loop.last or i == 1

    _, loop = toy(itertools.repeat(1.0), [StopAfterTwo()])
    assert loop.run(0, 10) == 2
    assert loop.run(7, 5) == 7


@pytest.mark.parametrize("offset", [0, 30_000])
def test_scene_free_bits_follow_eq_26(offset):
    hook, total = SceneFreeBits(scene_dim=8, total=40_000 - offset, offset=offset), 40_000
    for step, fraction in [(0, 0.25), (14_999, 0.25), (15_000, 0.167), (39_999, 0.167)]:
        if step >= offset:
            hook.before(None, step - offset)
            assert hook.handler().nats[SCENE] == pytest.approx(fraction * 8), (step, total)


def test_each_steps_loss_runs_under_the_hooks_handlers_and_the_model_is_left_alone():
    """The scene free bits reach the scene site of every step's trace through the hook's
    handler (a 30K-step schedule: 0.25·Ds, then 0.167·Ds for the last 25K steps);
    outside the step the site carries the program's own value again."""
    w = nn.Parameter(torch.zeros(()))

    def program():
        return pyro.sample(SCENE, dist.Normal(w, 1.0), infer={"free_bits": 99.0})

    seen = []

    def loss_of(x):
        site = poutine.trace(program).get_trace().nodes[SCENE]
        seen.append(site["infer"]["free_bits"])
        return ((w - x) ** 2).sum(), {}

    hook = SceneFreeBits(scene_dim=4, total=30_000)
    batches = iter(torch.zeros(1) for _ in range(5))
    loop = Loop(loss_of, torch.optim.SGD([w], lr=0.1), [[w]], batches, torch.device("cpu"), 1.0, [hook])
    loop.run(4_998, 5_001)
    assert seen == pytest.approx([1.0, 1.0, 0.167 * 4])
    assert poutine.trace(program).get_trace().nodes[SCENE]["infer"]["free_bits"] == 99.0


def test_the_decoder_thaws_at_its_step_and_the_loss_is_wrapped_anew():
    decoder = nn.Linear(2, 2)
    wrapped = []
    thaw = DecoderThaw(decoder, frozen_steps=2, first=0, rewrap=lambda: wrapped.append(1) or "new loss")
    loop = SimpleNamespace(loss_of="old loss")
    assert not any(p.requires_grad for p in decoder.parameters())
    thaw.before(loop, 1)
    assert loop.loss_of == "old loss" and not wrapped
    thaw.before(loop, 2)
    assert all(p.requires_grad for p in decoder.parameters()) and loop.loss_of == "new loss" and wrapped == [1]
    thaw.before(loop, 3)
    assert wrapped == [1]
    resumed_late = nn.Linear(2, 2)
    DecoderThaw(resumed_late, frozen_steps=2, first=5, rewrap=lambda: None)
    assert all(p.requires_grad for p in resumed_late.parameters())


def test_print_scalars_every_n_steps_and_at_the_last(capsys):
    _, loop = toy([1.0] * 5, [PrintScalars(5, every=2)])
    loop.run(0, 5)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["1/5", "3/5", "5/5"]
