"""GECO (Rezende & Viola 2018) as a plain-torch state machine (§3.3, appendix A.3).

GENESIS form, one multiplier per group (an observation site and its KL terms)::

    loss_g = err_g + β_g · KL_g
    err_ema ← d · err_ema + (1 − d) · err          (all-reduced when distributed)
    C       = goal_err − err_ema                   (> 0 once the goal is reached)
    β_g     ← clamp(β_g · exp(η · s · C), β_min, β_max),   s = speedup if C > 0 else 1

EMORL's form (``update="additive"``) moves the reconstruction's multiplier instead,
``λ = 1/β = softplus(ρ)``, by additive steps ``ρ ← ρ − η·s·C`` (then clamped so β stays
in [β_min, β_max]): while the goal is out of reach, λ grows linearly and β falls like
1/t — not exponentially, as the GENESIS form's does (down to β_min within a few thousand
steps, which leaves the KL terms no weight at all).

Goals are the paper's numbers as they are (A.4.2: −0.352 Objects Room, −0.351
ShapeStacks, −2.265 CLEVR6): a target **per pixel·channel** for the reconstruction error
of an unnormalised Gaussian, i.e. the negative log-likelihood with ½ log 2π dropped, as
in the reference code's ``C = target − nll``. (With σ = 0.7 on [0, 1] targets, −0.352
asks for a mean squared error of about 0.005.) We compute the normalised
``err = −log p(x | z)``, so ``goal_err = (goal + log_normaliser) · C·H·W``.
Everything is tensors in buffers: no host sync, ``state_dict`` round-trips, and
``.eval()`` freezes the multipliers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import Tensor, nn

__all__ = ["GECOConfig", "GECOState"]

UPDATES = ("multiplicative", "additive")


def _softplus_inverse(y: Tensor) -> Tensor:
    return y + torch.log(-torch.expm1(-y))


@dataclass(frozen=True)
class GECOConfig:
    """Settings of one GECO constraint.

    :param goal: target of the unnormalised reconstruction error per pixel·channel
        (e.g. −0.352 for Objects Room; see the module docstring).
    :param step_size: η (paper: 1e-6).
    :param speedup: factor on η once the goal is reached (paper: 5 / 50 / 10); ``None`` = 1.
    :param ema_decay: d of the error's moving average.
    :param beta_init, beta_min, beta_max: the multiplier's start and clamp.
        ``beta_max=1`` gives EMORL's form, where the reconstruction weight never drops below 1.
    :param warmup_steps: steps before the multiplier starts to move (EMORL: 1,000).
    :param log_normaliser: per-element constant the goal leaves out of the error
        (½ log 2π for an "unnormalised Gaussian"; 0 if the goal is already normalised).
    :param update: ``"multiplicative"`` (GENESIS, the LOM's) or ``"additive"`` (EMORL's;
        see the module docstring).
    """

    goal: float
    step_size: float = 1e-6
    speedup: float | None = None
    ema_decay: float = 0.99
    beta_init: float = 1.0
    beta_min: float = 1e-10
    beta_max: float = 1e10
    warmup_steps: int = 0
    log_normaliser: float = 0.5 * math.log(2 * math.pi)
    update: str = "multiplicative"

    def __post_init__(self) -> None:
        if self.update not in UPDATES:
            raise ValueError(f"GECO update must be one of {UPDATES}, got {self.update!r}")
        if not math.isfinite(self.goal):
            raise ValueError(f"GECO goal must be finite, got {self.goal}")
        if self.step_size < 0:
            raise ValueError(f"GECO step_size must be >= 0, got {self.step_size}")
        if self.speedup is not None and self.speedup <= 0:
            raise ValueError(f"GECO speedup must be > 0 or None, got {self.speedup}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"GECO ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 < self.beta_min <= self.beta_init <= self.beta_max:
            raise ValueError("GECO needs 0 < beta_min <= beta_init <= beta_max, got "
                             f"{self.beta_min}, {self.beta_init}, {self.beta_max}")

    def goal_error(self, num_elements: int) -> float:
        """The target of ``err = −log p(x|z)`` per image for ``num_elements = C·H·W``."""
        return (self.goal + self.log_normaliser) * num_elements


class GECOState(nn.Module):
    """Multiplier β and error EMA of one constraint; buffers, so checkpoints carry them."""

    def __init__(self, config: GECOConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("beta", torch.tensor(float(config.beta_init)))
        self.register_buffer("err_ema", torch.tensor(float("nan")))
        self.register_buffer("step", torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def update(self, err: Tensor, num_elements: int) -> None:
        """Advance one step with this batch's mean error per image (a 0-d tensor)."""
        cfg = self.config
        err = err.detach().to(self.beta.dtype)
        if torch_dist.is_available() and torch_dist.is_initialized():
            err = err.clone()
            torch_dist.all_reduce(err)
            err /= torch_dist.get_world_size()
        first = torch.isnan(self.err_ema)
        self.err_ema.copy_(torch.where(first, err, cfg.ema_decay * self.err_ema + (1 - cfg.ema_decay) * err))
        constraint = cfg.goal_error(num_elements) - self.err_ema
        rate = cfg.step_size * torch.where(constraint > 0, cfg.speedup or 1.0, 1.0)
        if cfg.update == "additive":   # EMORL: λ = 1/β = softplus(ρ), ρ ← ρ − η·s·C
            rho = _softplus_inverse(1.0 / self.beta) - rate * constraint
            moved = (1.0 / nn.functional.softplus(rho)).clamp(cfg.beta_min, cfg.beta_max)
        else:
            moved = (self.beta * torch.exp(rate * constraint)).clamp(cfg.beta_min, cfg.beta_max)
        self.beta.copy_(torch.where(self.step >= cfg.warmup_steps, moved, self.beta))
        self.step += 1


class GECO(nn.Module):
    """GECO-constrained objective over a :class:`~lom_pyro.infer.LOMELBO` (§3.3).

    For every group ``g`` with a goal, ``loss_g = err_g + β_g · KL_g`` where ``err_g`` is
    the batch-mean negative log-likelihood of the group's observation sites and ``KL_g``
    the batch-mean of its (free-bits) KL terms; groups without a goal contribute the
    plain negative ELBO (batch mean). The constraint measures the error without the
    sites' ``poutine.scale`` weights (EMORL weighs its final image by ``w_I``). The multipliers update after each
    call in ``.train()`` mode (not in ``.eval()``).

    Usable as ``loss=`` of :class:`pyro.infer.SVI` (it is a callable returning a
    differentiable loss) and directly with torch optimisers::

        geco = GECO(LOMELBO(), goals={"x": -0.352, "x_orderless": -0.352})
        loss = geco(lom.model, lom.guide, images); loss.backward()

    :param elbo: the ELBO producing per-site terms.
    :param goals: observation-site name → the paper's goal per pixel·channel (float) or a
        :class:`GECOConfig`.
    :param defaults: keyword defaults for goals given as floats (e.g. ``speedup=10``).
    """

    def __init__(self, elbo, goals: dict[str, float | GECOConfig], **defaults) -> None:
        super().__init__()
        if not goals:
            raise ValueError("goals must name at least one observation site")
        self.elbo = elbo
        self.states = nn.ModuleDict({
            name: GECOState(goal if isinstance(goal, GECOConfig) else GECOConfig(goal=float(goal), **defaults))
            for name, goal in goals.items()
        })

    def beta(self, group: str) -> Tensor:
        return self.states[group].beta

    def restricted(self, *groups: str) -> "GECO":
        """The same objective over ``groups`` only, sharing their multipliers (their state
        moves in ``self`` too): e.g. the LOM's part while a frozen orderless model's terms
        are left out."""
        unknown = set(groups) - set(self.states)
        if unknown:
            raise ValueError(f"restricted() names groups {sorted(unknown)} without goals here; "
                             f"the goals are {sorted(self.states)}")
        part = GECO(self.elbo, {g: self.states[g].config for g in groups})
        for group in groups:
            part.states[group] = self.states[group]
        return part

    def compute(self, model, guide, *args, **kwargs) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss and a dict of 0-d tensors to log (no host sync): per group ``err/<g>``,
        ``kl/<g>``, ``beta/<g>``, and ``elbo`` (per example)."""
        terms = self.elbo.terms(model, guide, *args, **kwargs)
        err: dict[str, Tensor] = {}
        measured: dict[str, Tensor] = {}   # the constraint sees the error without site scales
        kl: dict[str, Tensor] = {}
        numel: dict[str, int] = {}
        elbo = 0.0
        for t in terms.values():
            elbo = elbo - t.raw.mean() if t.kind == "kl" else elbo + t.raw.mean()
            target = err if t.kind == "loglik" else kl
            target[t.group] = target.get(t.group, 0.0) + t.loss.mean()
            if t.kind == "loglik":
                measured[t.group] = measured.get(t.group, 0.0) + t.loss.detach().mean() / t.scale
                numel[t.group] = numel.get(t.group, 0) + t.num_elements
        unknown = set(self.states) - set(err)
        if unknown:
            raise ValueError(f"GECO goals name {sorted(unknown)} but the model observes only {sorted(err)}")
        loss = 0.0
        logs: dict[str, Tensor] = {"elbo": torch.as_tensor(elbo).detach()}
        for group in set(err) | set(kl):
            e, k = err.get(group, 0.0), kl.get(group, 0.0)
            # a copy: the update below changes the buffer in place before backward runs
            beta = self.states[group].beta.clone() if group in self.states else None
            loss = loss + e + (beta * k if beta is not None else k)
            logs[f"err/{group}"] = torch.as_tensor(e).detach()
            logs[f"kl/{group}"] = torch.as_tensor(k).detach()
            if beta is not None:
                logs[f"beta/{group}"] = beta
        if self.training:
            for group, state in self.states.items():
                state.update(torch.as_tensor(measured[group]), numel[group])
        return loss, logs

    def forward(self, model, guide, *args, **kwargs) -> Tensor:
        return self.compute(model, guide, *args, **kwargs)[0]

