"""The training loop: :func:`train` and :func:`resume` (§3.3, appendix A.3–A.4).

One loop serves LOM-EMORL and the "EMORL alone" baseline: a plain torch Adam over the
module's parameters minimising :class:`~lom_pyro.infer.GECO` over
:class:`~lom_pyro.infer.LOMELBO` (``SVI`` is a single-device convenience; a torch
optimiser is what DDP needs, docs/design.md §9). Two-stage training — fit the orderless model
first (or load it), then the LOM on its frozen posterior — is the same objective on a
schedule: the LOM terms already send no gradient into the orderless model.

Outputs in ``config.out``: ``config.json``; ``log.jsonl`` (scalars as they come);
``checkpoint.pt`` and ``checkpoints/`` (every ``checkpoint_every`` steps, at the end and
when stopped; see :mod:`lom_pyro.training.state`); ``orderless.pt`` after stage 1 of a
two-stage run (usable as ``orderless_checkpoint``); ``figures/step_*.png`` (inputs,
reconstructions, segmentations coloured by slot index, τ = 0.8 samples); and at the end
``metrics.json``, ``curves.json``, ``curves.png``.

A run stops early — with a checkpoint, and ``--resume`` continues it — on SIGINT/SIGTERM,
after ``max_bad_steps`` non-finite losses in a row, or at ``stop_at``. Figures and held-out
checks draw from a forked RNG, so how often they run never changes the training itself.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyro
import torch
from torch import nn
from tqdm import tqdm

from lom_pyro.checkpoint import load_weights
from lom_pyro.infer import GECO
from lom_pyro.models.alone import OrderlessAlone
from lom_pyro.models.lom import LOM
from lom_pyro.sites import OBS, ORDERLESS_OBS
from lom_pyro.training.build import (MAIN_STAGE, ORDERLESS_STAGE, build, config_of, copy_orderless_decoder,
                                     load_initial_weights, load_orderless, parameter_groups)
from lom_pyro.training.config import RESUME_OVERRIDES, TrainConfig, with_absolute_paths
from lom_pyro.training.data import TrainingBatches, is_procedural, open_data
from lom_pyro.training.device import check_compile, check_device
from lom_pyro.training.distributed import LossModule, Ranks, any_rank, check_in_sync, join, leave, wrap
from lom_pyro.training.hooks import DecoderThaw, Hook, LearningRate, Loop, SceneFreeBits
from lom_pyro.training.log import RunLog
from lom_pyro.training.speed import AMP_DTYPES, autocast_networks, compile_networks
from lom_pyro.training.state import RunFolder, rng_state, set_rng_state

__all__ = ["train", "resume", "Stopped"]

LOG_EVERY = 10  # one host sync every 10 steps for the scalars


class Stopped(Exception):
    """Raised inside the loop to end a run early, with a checkpoint of ``step`` steps."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


@dataclasses.dataclass
class _Run:
    """What the stages of one run share."""

    config: TrainConfig
    module: nn.Module
    objective: GECO
    folder: RunFolder
    log: RunLog
    batches: TrainingBatches
    figures: Callable[[nn.Module, Path], Any]
    monitor: Callable[[nn.Module], dict[str, Any]]
    progress: bool
    stop_at: int | None
    signalled: threading.Event
    ranks: Ranks
    device: torch.device
    steps_taken: int = 0  # in this process: a failure before the first step leaves no files

    def save(self, stage: str, stage_step: int, step: int, optimiser: torch.optim.Optimizer) -> None:
        check_in_sync(self.module, self.ranks)
        if not self.ranks.main:
            return
        self.folder.save({"config": dataclasses.asdict(self.config), "model": self.module.state_dict(),
                          "objective": self.objective.state_dict(), "optimiser": optimiser.state_dict(),
                          "stage": stage, "stage_step": stage_step, "step": step,
                          "data_position": self.batches.position, "rng": rng_state()})


@contextmanager
def _own_rng():
    """Figures and held-out checks sample too; they do so on a fork of the RNGs."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        yield


def _stage(run: _Run, trained: nn.Module, minimised: GECO, stage: str, steps: int, *, first: int = 0,
           start: int = 0, frozen: nn.Module | None = None, optimiser_state: dict | None = None,
           figures: bool = True) -> int:
    """Train ``trained`` on ``minimised`` from stage step ``first`` to ``steps``; ``start``
    is the global step of the stage's step 0. :return: the stage step reached."""
    config = run.config
    groups = parameter_groups(trained, frozen)
    optimiser = torch.optim.Adam([{"params": g} for g in groups], lr=config.lr, foreach=True)
    if optimiser_state is not None:
        optimiser.load_state_dict(optimiser_state)
    wrapped = lambda: wrap(LossModule(trained, minimised), run.ranks, run.device)
    hooks: list[Hook] = []
    if isinstance(trained, LOM):
        # frozen before DDP wraps the loss (below), so the reducer syncs exactly the trained parameters
        hooks.append(DecoderThaw(trained.decoder, config.lom_decoder_frozen_steps, first, wrapped))
    hooks.append(LearningRate(config.lr, config.warmup, config.decay_every))
    if isinstance(trained, LOM):
        hooks.append(SceneFreeBits(trained.scene_dim, steps, config.scene_free_bits_per_dim,
                                   config.scene_free_bits_final_per_dim, start))
    label = {ORDERLESS_STAGE: "stage 1 (orderless)"}.get(stage, "LOM" if isinstance(trained, LOM) else "orderless")
    bar = tqdm(desc=label, initial=first, total=steps, dynamic_ncols=True, mininterval=1.0,
               disable=not (run.progress and run.ranks.main))
    save = lambda i, loop: run.save(stage, i + 1, start + i + 1, loop.optimiser)
    clock = _Clock(run, bar)
    hooks += [_SkipNonFinite(run, minimised, start, save), _Scalars(run, start, bar), clock]
    if figures and run.ranks.main:
        hooks.append(_Figures(run, trained, start))
    if config.eval_every and run.ranks.main:
        hooks.append(_Checks(run, trained, start))
    hooks.append(_Checkpoints(run, start, save, clock))
    loop = Loop(wrapped(), optimiser, groups, run.batches, run.device, config.grad_clip, hooks)
    if figures and run.ranks.main and first == 0:   # the untrained model, then one per figure_every steps done
        _figure(run, trained, start)
    try:
        return loop.run(first, steps)
    finally:
        bar.close()


class _SkipNonFinite(Hook):
    """A step with a non-finite loss or gradient is skipped and undoes GECO's move too;
    ``max_bad_steps`` of them in a row stop the run with a checkpoint."""

    def __init__(self, run: _Run, objective: GECO, start: int, save: Callable[[int, Loop], None]) -> None:
        self.run, self.objective, self.start, self.save = run, objective, start, save
        self.in_row, self.before_step = 0, {}

    def before(self, loop: Loop, i: int) -> None:
        self.before_step = {k: v.clone() for k, v in self.objective.state_dict().items()}

    def after(self, loop: Loop, i: int) -> None:
        if loop.finite:
            self.in_row = 0
            self.run.steps_taken += 1
            return
        self.objective.load_state_dict(self.before_step)
        self.in_row += 1
        step = self.start + i
        self.run.log.write("train", step, {"skipped_nonfinite": 1})
        if self.in_row >= self.run.config.max_bad_steps:
            self.save(i, loop)
            raise Stopped(f"{self.in_row} non-finite losses in a row up to step {step + 1}; checkpoint written "
                          f"(continue with --resume {self.run.config.out} once the cause is fixed)", step + 1)


class _Scalars(Hook):
    """The step's scalars to ``log.jsonl`` and the progress bar, every ``LOG_EVERY`` steps."""

    def __init__(self, run: _Run, start: int, bar: tqdm) -> None:
        self.run, self.start, self.bar, self.started = run, start, bar, time.perf_counter()

    def after(self, loop: Loop, i: int) -> None:
        if loop.finite and (i % LOG_EVERY == 0 or loop.last):
            values = {k: float(v) for k, v in loop.logs.items()}
            self.run.log.write("train", self.start + i,
                               {**values, "seconds": round(time.perf_counter() - self.started, 2)})
            # β shown too: a KL weight stuck at its floor means the goal is out of reach
            self.bar.set_postfix({k.replace("/x_orderless", "/o"): f"{v:.4g}" for k, v in values.items()},
                                 refresh=False)


class _Clock(Hook):
    """Ends the loop after this step when ``max_minutes`` are up, and notes a signal; every
    rank takes the same decision, whatever its clock or signals say."""

    def __init__(self, run: _Run, bar: tqdm) -> None:
        minutes = run.config.max_minutes
        self.run, self.bar, self.signalled = run, bar, False
        self.deadline = time.perf_counter() + 60 * minutes if minutes else float("inf")

    def after(self, loop: Loop, i: int) -> None:
        time_up, self.signalled = any_rank((time.perf_counter() > self.deadline, self.run.signalled.is_set()),
                                           self.run.ranks)
        loop.last = loop.last or time_up
        self.bar.update(1)


class _Figures(Hook):
    """A figure every ``figure_every`` steps and at the last."""

    def __init__(self, run: _Run, trained: nn.Module, start: int) -> None:
        self.run, self.trained, self.start = run, trained, start

    def after(self, loop: Loop, i: int) -> None:
        if (i + 1) % self.run.config.figure_every == 0 or loop.last:
            _figure(self.run, self.trained, self.start + i + 1)


class _Checks(Hook):
    """The held-out check every ``eval_every`` steps and at the last."""

    def __init__(self, run: _Run, trained: nn.Module, start: int) -> None:
        self.run, self.trained, self.start, self.started = run, trained, start, time.perf_counter()

    def after(self, loop: Loop, i: int) -> None:
        if (i + 1) % self.run.config.eval_every == 0 or loop.last:
            with _own_rng():
                metrics = self.run.monitor(self.trained)
            self.run.log.write("eval", self.start + i + 1,
                               {"seconds": round(time.perf_counter() - self.started, 1), **metrics})


class _Checkpoints(Hook):
    """A checkpoint every ``checkpoint_every`` steps, at the last, and before stopping on a
    signal or at ``stop_at`` (a crash loses at most ``checkpoint_every`` steps)."""

    def __init__(self, run: _Run, start: int, save: Callable[[int, Loop], None], clock: _Clock) -> None:
        self.run, self.start, self.save, self.clock = run, start, save, clock

    def after(self, loop: Loop, i: int) -> None:
        run, step = self.run, self.start + i
        stop = "stop_at" if run.stop_at is not None and step + 1 >= run.stop_at else None
        stop = "signal" if self.clock.signalled else stop
        every = run.config.checkpoint_every
        if loop.last or stop or (every and (i + 1) % every == 0):
            self.save(i, loop)
        if stop:
            raise Stopped(f"stopped by {'a signal' if stop == 'signal' else 'stop_at'} after step {step + 1}; "
                          f"continue with --resume {run.config.out}", step + 1)


def _figure(run: _Run, trained: nn.Module, done: int) -> None:
    """``figures/step_<done>.png``, named by the steps done (the checkpoint's step)."""
    png = Path(run.config.out) / "figures" / f"step_{done:06d}.png"
    with _own_rng():
        run.figures(trained, png)
    run.log.image("figures", png, done)


def _monitor(config: TrainConfig, evaluation: dict[str, Any]):
    """The periodic held-out check on the first ``eval_every_scenes`` scenes: ARI-FG of
    the posteriors and, on ``stacks``, the structure accuracy of τ = 0.8 samples."""
    from lom_pyro.evaluation.assess import decomposition_metrics

    n = min(config.eval_every_scenes, evaluation["images"].shape[0])
    subset = {**evaluation, "images": evaluation["images"][:n], "masks": evaluation["masks"][:n]}
    return lambda module: decomposition_metrics(module, subset, config.dataset)


@contextmanager
def _stop_on_signals(event: threading.Event):
    """SIGINT/SIGTERM end the current step, then the run stops with a checkpoint."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda *_: event.set())
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _prepare_folder(folder: RunFolder, resuming: bool, overwrite: bool) -> bool:
    """Refuse to mix a new run into an old one. :return: whether the folder was created."""
    if resuming:
        return False
    if not folder.is_empty():
        if not overwrite:
            raise ValueError(f"out={folder.path} is not empty: continue that run with --resume {folder.path}, "
                             f"replace it with --overwrite, or choose another --out")
        folder.clear_outputs()
    created = not folder.path.exists()
    folder.path.mkdir(parents=True, exist_ok=True)
    return created


def train(config: TrainConfig, progress: bool = True, *, overwrite: bool = False, stop_at: int | None = None,
          _payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train as configured into ``config.out`` (see the module docstring).

    :param progress: show a progress bar.
    :param overwrite: replace a previous run's outputs in ``config.out`` (else refused).
    :param stop_at: stop with a checkpoint once this many steps (both stages) are done.
    :return: the metrics written to ``metrics.json``, or ``{"stopped": reason, "step": n}``
        when the run stopped early.
    """
    from lom_pyro.evaluation.assess import evaluate_module, write_figure

    check_compile(config.compile, check_device(config.device))
    data = open_data(config)   # checked before any work, and opened once
    if _payload is None:
        config = with_absolute_paths(config)   # so --resume finds them from any folder
    if config.threads:
        torch.set_num_threads(config.threads)
    pyro.enable_validation(False)  # a script: validation costs host syncs per step (docs/design.md §9)
    ranks = join(config.device)
    if config.batch_size % ranks.world:
        raise ValueError(f"batch_size={config.batch_size} (the global batch) must divide among {ranks.world} ranks")
    device = torch.device(f"cuda:{ranks.local_rank}" if config.device == "cuda" and ranks.distributed
                          else config.device)
    torch.manual_seed(config.seed)
    pyro.set_rng_seed(config.seed)
    module, objective = build(config)
    module.to(device)
    objective.to(device)
    orderless = module.orderless
    if _payload is not None:
        load_weights(module, _payload["model"],
                     f"--resume {config.out}: its checkpoint's weights do not fit the model of its own config")
        objective.load_state_dict(_payload["objective"])
    elif config.init_from:
        load_initial_weights(module, config.init_from)
    if _payload is None and config.orderless_checkpoint:
        geco_state = load_orderless(orderless, config.orderless_checkpoint)
        if geco_state:  # carry on the orderless constraint where that run left it
            objective.states[ORDERLESS_OBS].load_state_dict(geco_state)
    if config.amp != "off":
        autocast_networks(module, AMP_DTYPES[config.amp], device.type)
    if config.compile:
        compile_networks(module)
    evaluation = data.held_out(config.eval_scenes) if ranks.main else None   # figures and checks: rank 0 only
    batches = TrainingBatches(config, _payload["data_position"] if _payload else 0, ranks, data)
    folder = RunFolder(config.out, config.keep_checkpoints)
    created = _prepare_folder(folder, _payload is not None, overwrite) if ranks.main else False
    figures = (lambda m, path: write_figure(m, evaluation["images"][:8].to(device), path)) if ranks.main else None
    log = RunLog(config.out, enabled=ranks.main, resumed_at=_payload["step"] if _payload else None)
    run = _Run(config, module, objective, folder, log, batches, figures,
               _monitor(config, evaluation) if ranks.main else None, progress, stop_at, threading.Event(), ranks,
               device)
    started = time.perf_counter()
    try:
        if ranks.main:
            (folder.path / "figures").mkdir(exist_ok=True)
            (folder.path / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
        if _payload is not None:
            run.log.truncate(_payload["step"])
        if ranks.distributed:
            # each rank draws its own noise; a resumed DDP run continues with fresh per-rank seeds
            # (bit-identical resume is a one-process property)
            step = _payload["step"] if _payload else 0
            pyro.set_rng_seed(config.seed * 1_000_003 + ranks.rank * 10_007 + step)
        elif _payload is not None:
            set_rng_state(_payload["rng"])
        with _stop_on_signals(run.signalled):
            orderless_steps = _orderless_stage(run, orderless, _payload)
            steps = _main_stage(run, orderless, orderless_steps, _payload)
    except Stopped as stop:
        if ranks.main:
            _write_curves(run)
        leave(ranks)
        return {"stopped": str(stop), "step": stop.step}
    except BaseException:
        if ranks.main and run.steps_taken == 0 and _payload is None:  # nothing trained: leave no files behind
            folder.clear_outputs()
            if created and folder.is_empty():
                folder.path.rmdir()
        raise
    leave(ranks)    # before rank 0 evaluates alone (no collectives there): no rank waits on it
    if not ranks.main:
        return {"rank": ranks.rank, "steps": steps, "orderless_steps": orderless_steps}
    seconds = time.perf_counter() - started
    metrics = evaluate_module(module, evaluation, objective.elbo, dataset=config.dataset, progress=progress)
    metrics.update(train_seconds=round(seconds, 1), steps=steps, orderless_steps=orderless_steps,
                   world_size=ranks.world)
    (folder.path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _write_curves(run)
    return metrics


def _orderless_stage(run: _Run, orderless: nn.Module, payload: dict[str, Any] | None) -> int:
    """Stage 1 of a two-stage run: the orderless model alone, under its own GECO
    constraint (the multiplier it shares with the full objective). :return: its steps."""
    config = run.config
    if not (config.orderless_steps and config.lom):
        return 0
    if payload is not None and payload["stage"] == MAIN_STAGE:
        return payload["step"] - payload["stage_step"]  # stage 1 was over when the checkpoint was taken
    resuming = payload is not None
    steps = _stage(run, OrderlessAlone(orderless), run.objective.restricted(ORDERLESS_OBS), ORDERLESS_STAGE,
                   config.orderless_steps,
                   first=payload["stage_step"] if resuming else 0,
                   optimiser_state=payload["optimiser"] if resuming else None, figures=False)
    # the orderless model on its own, for --orderless-checkpoint and for evaluating it alone
    from lom_pyro.checkpoint import save_checkpoint

    if run.ranks.main:
        save_checkpoint(run.folder.path / "orderless.pt",
                        {"config": dataclasses.asdict(config), "model": orderless.state_dict(),
                         "objective": run.objective.state_dict(), "stage": ORDERLESS_STAGE, "step": steps})
    return steps


def _main_stage(run: _Run, orderless: nn.Module, start: int, payload: dict[str, Any] | None) -> int:
    config, module = run.config, run.module
    resuming = payload is not None and payload["stage"] == MAIN_STAGE
    frozen = orderless if config.freeze_orderless and config.lom else None
    if config.lom_decoder_init == "orderless" and not resuming:
        copy_orderless_decoder(module)
    minimised = run.objective
    with warnings.catch_warnings():
        if frozen is not None or config.lom_decoder_frozen_steps:
            # PyroModule warns on every access to a frozen parameter; freezing is the point here
            warnings.filterwarnings("ignore", message=".*not registered in the param store because requires_grad")
        if frozen is not None:
            frozen.requires_grad_(False)
            # a frozen orderless model's ELBO terms are constants: the LOM's alone is
            # minimised, under its own multiplier (saved with the full objective)
            module.score_orderless = False
            minimised = run.objective.restricted(OBS)
        try:
            return _stage(run, module, minimised, MAIN_STAGE, config.steps, start=start,
                          first=payload["stage_step"] if resuming else 0, frozen=frozen,
                          optimiser_state=payload["optimiser"] if resuming else None)
        finally:
            if frozen is not None:
                module.score_orderless = True


def _write_curves(run: _Run) -> None:
    """``curves.json`` (strict JSON, null where a value is missing or non-finite) and the
    plots, from the whole log of the run (resumed parts included)."""
    from lom_pyro.viz import plot_curves

    curves = run.log.columns()
    out, config = run.folder.path, run.config
    (out / "curves.json").write_text(json.dumps(curves))
    numbers = lambda column: [float("nan") if v is None else v for v in column]
    train_curves = {k: numbers(v) for k, v in curves.items() if k.startswith(("err", "kl"))}
    if train_curves:
        plot_curves(train_curves, out / "curves.png", xlabel=f"log point (every {LOG_EVERY} steps)")
    if "eval/step" in curves:
        plot_curves({k: numbers(v) for k, v in curves.items() if k.startswith(("eval/ari", "eval/structure"))},
                    out / "eval_curves.png", title=f"held-out metrics every {config.eval_every} steps",
                    xlabel=f"evaluation (every {config.eval_every} steps)")


def resume(out: str | Path, progress: bool = True, *, stop_at: int | None = None, **overrides: Any) -> dict[str, Any]:
    """Continue the run in ``out`` from its latest readable checkpoint. ``overrides`` may
    change only how long and how visibly it goes on (:data:`RESUME_OVERRIDES`, e.g.
    ``steps`` to extend it), never what it trains."""
    folder = RunFolder(out)
    payload = folder.load_latest()
    for skipped in folder.skipped:   # an older kept checkpoint stands in: say so
        print(f"--resume {out}: skipped {skipped}; resuming from {folder.loaded_from} at step {payload.get('step')}",
              file=sys.stderr)
    config = config_of(payload, str(folder.loaded_from))
    changed = {k for k, v in overrides.items() if getattr(config, k, object()) != v}
    refused = sorted(changed - RESUME_OVERRIDES)
    if refused:
        raise ValueError(f"--resume {out}: cannot change {', '.join(refused)} of a run being resumed (only "
                         f"{', '.join(sorted(RESUME_OVERRIDES))} may change)")
    missing = {"stage", "stage_step", "data_position", "rng", "optimiser", "objective"} - set(payload)
    if missing:
        raise ValueError(f"--resume {out}: its checkpoint lacks {sorted(missing)} (written by an older lom_pyro); "
                         f"start a new run from its weights instead")
    config = dataclasses.replace(config, out=str(out), **{k: overrides[k] for k in changed})
    if not is_procedural(config.dataset) and not Path(config.dataset).is_file():
        raise ValueError(f"--resume {out}: the run's dataset {config.dataset} is no longer there (moved or deleted); "
                         f"put it back at that path to continue")
    done = _finished(payload, config, folder)
    if done is not None:
        return {"nothing_to_do": done, "step": payload["step"]}
    folder.remove_orphans()
    return train(config, progress, stop_at=stop_at, _payload=payload)


def _finished(payload: dict[str, Any], config: TrainConfig, folder: RunFolder) -> str | None:
    """Why resuming would do nothing (the run reached its steps and was evaluated), or None."""
    if payload["stage"] != MAIN_STAGE or payload["stage_step"] < config.steps:
        return None
    if not (folder.path / "metrics.json").is_file():   # stopped before its final evaluation: that is left to do
        return None
    return (f"--resume {folder.path}: the run is finished at step {payload['step']} (steps={config.steps}) and "
            f"evaluated; nothing to do, no file changed (give --steps above {config.steps} to train further)")
