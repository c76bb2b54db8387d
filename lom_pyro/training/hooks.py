"""The training step, and the concerns around it as hooks (§3.3, appendix A.3–A.4).

:class:`Loop` takes Adam steps on a loss: draw a batch, backward, clip each parameter group
on its own, step unless the loss or a gradient norm is not finite. Everything else a run
does each step is a :class:`Hook` the loop calls before and after the step: the learning
rate (:class:`LearningRate`), the scene free bits (:class:`SceneFreeBits`), thawing the
LOM decoder (:class:`DecoderThaw`), printing (:class:`PrintScalars`); ``lom-pyro train``
adds non-finite steps, its log, figures, held-out checks, checkpoints and stopping
(:mod:`lom_pyro.training.loop`). The example scripts run the same loop with fewer hooks.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import torch
from pyro.poutine.messenger import Messenger
from torch import Tensor, nn

from lom_pyro.handlers import FreeBitsMessenger
from lom_pyro.infer.schedule import learning_rate_factor, scene_free_bits
from lom_pyro.sites import SCENE

__all__ = ["Loop", "Hook", "LearningRate", "SceneFreeBits", "DecoderThaw", "PrintScalars"]

#: ``loss_of(images)``: the loss to minimise and the scalars to log
LossOf = Callable[[Tensor], tuple[Tensor, dict[str, Tensor]]]


class Hook:
    """One concern of the loop. :meth:`before` runs before step ``i`` draws its batch,
    :meth:`after` once the step is taken or skipped; both may read and change the loop.
    :meth:`handler`, when not None, is a Pyro handler the loss of every step runs under
    (how a hook changes what the objective reads without changing the model)."""

    def before(self, loop: Loop, i: int) -> None:
        pass

    def handler(self) -> Messenger | None:
        return None

    def after(self, loop: Loop, i: int) -> None:
        pass


@dataclasses.dataclass
class Loop:
    """Steps ``first`` to ``steps`` of Adam (or any optimiser) on ``loss_of``.

    During a step the hooks see ``logs`` (its scalars), ``finite`` (whether it was taken)
    and ``last`` (whether the loop ends after it; a hook may set it to end early).
    """

    loss_of: LossOf
    optimiser: torch.optim.Optimizer
    groups: list[list[nn.Parameter]]
    batches: Iterator[Tensor]
    device: torch.device
    grad_clip: float
    hooks: list[Hook]
    logs: dict[str, Tensor] = dataclasses.field(default_factory=dict)
    finite: bool = True
    last: bool = False

    def run(self, first: int, steps: int) -> int:
        """:return: the step reached (``steps``, or fewer when a hook ended the loop)."""
        for i in range(first, steps):
            self.last = i == steps - 1
            for hook in self.hooks:
                hook.before(self, i)
            x = next(self.batches).to(self.device)
            with contextlib.ExitStack() as handlers:
                for hook in self.hooks:
                    handler = hook.handler()
                    if handler is not None:
                        handlers.enter_context(handler)
                loss, self.logs = self.loss_of(x)
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            # clipped per group: the LOM's gradient norm never rescales the orderless update
            norms = [nn.utils.clip_grad_norm_(group, self.grad_clip) for group in self.groups]
            self.finite = bool(torch.isfinite(torch.stack([loss.detach(), *norms])).all())
            if self.finite:   # a non-finite loss or gradient (bad input, overflow) is not stepped
                self.optimiser.step()
            for hook in self.hooks:
                hook.after(self, i)
            if self.last:
                return i + 1
        return max(first, steps)   # nothing left to do: started at or past the end


@dataclasses.dataclass
class LearningRate(Hook):
    """Every group's rate: ``lr`` with a linear warm-up, then halved every ``decay_every``
    steps (A.4.2: 4e-4, 10K, 100K; 0: never)."""

    lr: float
    warmup: int = 10_000
    decay_every: int = 100_000

    def before(self, loop: Loop, i: int) -> None:
        for group in loop.optimiser.param_groups:
            group["lr"] = self.lr * learning_rate_factor(i, self.warmup, self.decay_every)


@dataclasses.dataclass
class SceneFreeBits(Hook):
    """Eq. 26: free bits on the scene KL of ``start·Ds`` nats, then ``end·Ds`` for the last
    25K of ``total`` steps (``start``, ``end``: nats per scene dimension). Set on the scene
    site by a :class:`~lom_pyro.handlers.FreeBitsMessenger` around each step's loss; the
    LOM itself is left as it is. ``offset``: the run's steps before this loop's step 0."""

    scene_dim: int
    total: int
    start: float = 0.25
    end: float = 0.167
    offset: int = 0
    messenger: FreeBitsMessenger = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.messenger = FreeBitsMessenger({SCENE: self.start * self.scene_dim})

    def before(self, loop: Loop, i: int) -> None:
        self.messenger.nats[SCENE] = scene_free_bits(self.offset + i, self.offset + self.total, self.scene_dim,
                                                     start=self.start, end=self.end)

    def handler(self) -> Messenger:
        return self.messenger


class DecoderThaw(Hook):
    """No weight gradients for ``decoder`` before step ``frozen_steps`` (Adam leaves a
    parameter without gradient as it is); it trains from then on. ``rewrap()`` builds the
    loss anew once it thaws (under DDP the reducer must sync exactly the trained parameters).
    Made before the loss is first wrapped, since it freezes at once when ``first`` is early."""

    def __init__(self, decoder: nn.Module, frozen_steps: int, first: int, rewrap: Callable[[], LossOf]) -> None:
        self.held = decoder if first < frozen_steps else None
        self.frozen_steps, self.rewrap = frozen_steps, rewrap
        if self.held is not None:
            self.held.requires_grad_(False)

    def before(self, loop: Loop, i: int) -> None:
        if self.held is not None and i >= self.frozen_steps:
            self.held.requires_grad_(True)
            self.held = None
            loop.loss_of = self.rewrap()


@dataclasses.dataclass
class PrintScalars(Hook):
    """Print the step's scalars every ``every`` steps and at the last."""

    steps: int
    every: int = 100

    def after(self, loop: Loop, i: int) -> None:
        if i % self.every == 0 or loop.last:
            print(f"step {i + 1}/{self.steps}  " + "  ".join(f"{k} {float(v):.4g}"
                                                           for k, v in sorted(loop.logs.items())))
