"""Fitting a slot prior to a trained LOM's aggregate posterior (``lom-pyro fit-prior``,
:mod:`lom_pyro.cli.fit_prior`, writes the new pretrained model that generates with it).

The LOM's posterior slot means sit behind a stop-gradient (§3.2), so a prior can be fitted
to them afterwards as density estimation on cached (scene latent, aligned slots) pairs — no
image is decoded while fitting. The alignment is held fixed: the cache is made with the
LOM's own prior, which the fitted prior keeps as its ``reference`` (the guide aligns to it),
so encodings, reconstructions and retrieval stay those of the trained LOM. Each step draws
the scene latent from the cached ``q(s | x)``, so the prior learns the slots given the
scene latents it will meet when the scene is drawn from ``p(s)``.

Progress is printed; ``--state`` keeps the fit's weights, optimiser and RNGs every
``CHECKPOINT_EVERY`` steps, and a rerun with the same arguments resumes from it. The last
``--held-out`` cached scenes are not fitted: the report gives their loss, the S-Acc of
samples by both judges at τ 0.6 / 0.8 / 1.0, the ceiling (their decoded posterior means)
and novelty (the distance of each sample to its nearest fitted scene against that of each
held-out scene).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["fit_slot_prior", "prior_report", "novelty", "load_source", "check_ema", "CACHE_SEED", "TEMPERATURES"]

CHECKPOINT_EVERY = 500
REPORT_EVERY = 500
CACHE_SEED = 50_000        # the scenes of the cache (training uses 0.., held-out evaluation 10,000..)
TEMPERATURES = (0.6, 0.8, 1.0)

def load_source(name_or_path: str, device: str = "cpu") -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """A trained LOM (see :func:`~lom_pyro.training.build.load_model`): the module, its
    architecture (as a dict) and its info (training config, step, metrics)."""
    from lom_pyro.models import LOM
    from lom_pyro.training.build import load_model

    trained = load_model(name_or_path, device)
    if not isinstance(trained.module, LOM):
        raise ValueError(f"{name_or_path}: an orderless model alone has no slot prior to fit; give a LOM")
    return trained.module, trained.architecture.as_dict(), trained.info


def _batch(cache: dict[str, Tensor], index: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """A batch of (s ~ q(s | x), aligned slot means) drawn with replacement from the cached
    scenes ``index``; only torch's RNG is used, so a resumed fit draws what it would have."""
    chunk = index[torch.randint(len(index), (batch_size,), device=index.device)]
    loc, scale = cache["scene_loc"][chunk], cache["scene_scale"][chunk]
    return loc + scale * torch.randn_like(loc), cache["slots"][chunk]


def check_ema(decay: float) -> None:
    """A moving average's decay is in [0, 1); one sentence otherwise."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"--ema {decay} must be in [0, 1): the weight an old average keeps each step")


@torch.no_grad()
def _assign(params: dict[str, Tensor], values: dict[str, Tensor]) -> None:
    for name, value in values.items():
        params[name].copy_(value)


@contextlib.contextmanager
def _weights(params: dict[str, Tensor], values: dict[str, Tensor]):
    """``params`` hold ``values`` inside the block, their own values again after it."""
    kept = {n: params[n].detach().clone() for n in values}
    _assign(params, values)
    try:
        yield
    finally:
        _assign(params, kept)


@torch.no_grad()
def held_out_loss(prior: nn.Module, cache: dict[str, Tensor], index: Tensor) -> float:
    """The prior's fit loss on held-out scenes at their posterior-mean scene latents (a
    fixed seed, so successive reports compare)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        losses = [float(prior.fit_loss(cache["scene_loc"][i], cache["slots"][i])) * len(i) for i in index.split(1024)]
    return sum(losses) / len(index)


def fit_slot_prior(prior: nn.Module, cache: dict[str, Tensor], fit_index: Tensor, held_index: Tensor, *,
                   steps: int, batch_size: int = 256, lr: float = 1e-3, state_path: str | Path | None = None,
                   state_key: dict[str, Any] | None = None, max_minutes: float | None = None,
                   ema: float = 0.0, progress: bool = True) -> dict[str, Any]:
    """Minimise ``prior.fit_loss`` with Adam (learning rate decayed along a cosine to a tenth)
    over ``steps`` batches; resume from ``state_path`` if it holds a fit with ``state_key``.
    With ``ema`` > 0 the prior ends with (and the held-out loss is of) an exponential moving
    average of its weights with that decay, as diffusion models are usually sampled.

    :return: steps done, seconds, the last training loss and the held-out loss curve.
    """
    from lom_pyro.checkpoint import load_checkpoint, save_checkpoint
    from lom_pyro.training.state import rng_state, set_rng_state

    optimiser = torch.optim.Adam(prior.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.1 + 0.45 * (1 + math.cos(math.pi * min(step, steps) / steps)))
    check_ema(ema)
    # the reference is not fitted (fit_loss never reads it), so it is not averaged either
    trained = {n: p for n, p in prior.named_parameters() if p.requires_grad and not n.startswith("reference.")}
    averaged = {n: p.detach().clone() for n, p in trained.items()} if ema else {}
    step, curve, seconds = 0, [], 0.0
    if state_path is not None and Path(state_path).is_file():
        state = load_checkpoint(state_path)
        if state.get("key") != state_key:
            raise ValueError(f"--state {state_path}: holds a fit of {state.get('key')}, not of {state_key}; "
                             "give another file or remove it")
        prior.load_state_dict(state["prior"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        step, curve, seconds = int(state["step"]), list(state["curve"]), float(state["seconds"])
        averaged = dict(state.get("ema", averaged))
        set_rng_state(state["rng"])
        if progress:
            print(f"resumed the fit at step {step} from {state_path}", file=sys.stderr)

    def save() -> None:
        if state_path is not None:
            save_checkpoint(state_path, {"key": state_key, "prior": prior.state_dict(), "step": step,
                                         "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(),
                                         "curve": curve, "seconds": seconds, "rng": rng_state(),
                                         **({"ema": averaged} if averaged else {})})

    started, loss = time.monotonic() - seconds, float("nan")
    deadline = time.monotonic() + 60 * max_minutes if max_minutes is not None else float("inf")   # this call's
    prior.train()
    while step < steps:
        s, z = _batch(cache, fit_index, batch_size)
        value = prior.fit_loss(s, z)
        optimiser.zero_grad(set_to_none=True)
        value.backward()
        nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            for name, mean in averaged.items():
                mean.lerp_(trained[name].detach(), 1.0 - ema)
        step, loss = step + 1, float(value.detach())
        seconds = time.monotonic() - started
        if step % REPORT_EVERY == 0 or step == steps:
            prior.eval()
            with _weights(trained, averaged):
                curve.append({"step": step, "train_loss": loss,
                              "held_out_loss": held_out_loss(prior, cache, held_index)})
            prior.train()
            if progress:
                print(f"step {step}/{steps}  loss {loss:.4f}  held-out {curve[-1]['held_out_loss']:.4f}  "
                      f"{seconds:.0f} s", file=sys.stderr, flush=True)
        if step % CHECKPOINT_EVERY == 0 or step == steps:
            save()
        if time.monotonic() > deadline and step < steps:
            save()
            if progress:
                print(f"stopped after {max_minutes} minutes at step {step}; rerun to resume", file=sys.stderr)
            break
    prior.eval()
    if step >= steps:
        _assign(trained, averaged)
    return {"steps_done": step, "seconds": round(seconds, 1), "train_loss": loss, "curve": curve}


@torch.no_grad()
def novelty(samples: Tensor, fitted: Tensor, held: Tensor, spread: Tensor) -> dict[str, float]:
    """Median distance of each sample's slots to the nearest fitted scene, and of each
    held-out scene's to the nearest fitted scene (slots divided by ``spread``, flattened).
    A prior that copies its training scenes has samples much nearer than held-out scenes."""
    def nearest(a: Tensor) -> Tensor:
        a = (a / spread).flatten(1)
        b = (fitted / spread).flatten(1)
        return torch.cat([torch.cdist(part, b).min(1).values for part in a.split(512)])

    sample_d, held_d = nearest(samples), nearest(held)
    return {"sample_to_nearest_fitted": float(sample_d.median()),
            "held_out_to_nearest_fitted": float(held_d.median()),
            "ratio": float(sample_d.median() / held_d.median())}


@torch.no_grad()
def prior_report(lom: nn.Module, cache: dict[str, Tensor], fit_index: Tensor, held_index: Tensor,
                 samples: int, temperatures: tuple[float, ...] = TEMPERATURES) -> dict[str, Any]:
    """S-Acc by both judges of ``samples`` samples per temperature (through s ~ p(s)), the
    ceiling (the held-out scenes' decoded posterior means), novelty at the temperature
    nearest 0.8, and, where the prior has a density, the held-out log-density of the slots."""
    from lom_pyro.evaluation.assess import EVAL_SEED, evaluation_mode, unit_frame
    from lom_pyro.metrics.structure import s_acc_by_judge

    device = next(lom.parameters()).device

    def judged(images: Tensor) -> dict[str, float]:
        return s_acc_by_judge(unit_frame(lom, images).cpu(), value_range=(0.0, 1.0))

    report: dict[str, Any] = {"samples": samples}
    shown = held_index[:samples]
    report["ceiling"] = judged(torch.cat([lom.render(cache["slots"][i].to(device)).images for i in shown.split(128)]))
    drawn: dict[float, Tensor] = {}
    with evaluation_mode(lom, seed=EVAL_SEED):
        for tau in temperatures:
            out = [lom.sample(min(128, samples - i), tau) for i in range(0, samples, 128)]
            drawn[tau] = torch.cat([o.z.cpu() for o in out])
            report[f"tau_{tau:g}"] = judged(torch.cat([o.images for o in out]))
    tau = min(temperatures, key=lambda t: abs(t - 0.8))
    report["novelty"] = {"temperature": tau, **novelty(drawn[tau], cache["slots"][fit_index],
                                                       cache["slots"][shown], cache["slots"].std(0))}
    try:   # log p(z | s) of the held-out scenes' slots at their posterior-mean scene latents
        lp = torch.cat([lom.slot_prior.distribution(cache["scene_loc"][i]).log_prob(cache["slots"][i]).sum(-1)
                        for i in held_index.split(1024)])
        report["held_out_log_density_per_scene"] = float(lp.mean())
    except NotImplementedError:   # a prior that only samples
        report["held_out_log_density_per_scene"] = None
    return report
