"""Training entry point: ``lom-pyro train`` and :func:`train` (§3.3, appendix A.3–A.4).

One loop serves LOM-EMORL and the "EMORL alone" baseline: a plain torch Adam over the
module's parameters minimising :class:`~lom_pyro.infer.GECO` over
:class:`~lom_pyro.infer.LOMELBO` (``SVI`` is a single-device convenience; a torch
optimiser is what DDP needs, pyro-notes). Two-stage training — fit the orderless model
first (or load it), then the LOM on its frozen posterior — is the same objective on a
schedule: the LOM terms already send no gradient into the orderless model.

Outputs in ``--out``: ``figures/step_*.png`` (inputs, reconstructions, segmentations
coloured by slot index, τ = 0.8 samples), ``curves.png``, ``checkpoint.pt`` (every
``checkpoint_every`` steps and at the end, with the optimiser state; stage 1 of a
two-stage run writes ``orderless.pt``, usable as ``--orderless-checkpoint``),
``metrics.json`` and ``config.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyro
import torch
from torch import Tensor, nn
from tqdm import tqdm

from lom_pyro.checkpoint import load_checkpoint, save_checkpoint
from lom_pyro.infer import GECO, LOMELBO, GECOConfig
from lom_pyro.infer.schedule import learning_rate_factor, scene_free_bits
from lom_pyro.models.lom import LOM
from lom_pyro.orderless.base import standalone
from lom_pyro.sites import OBS, ORDERLESS_OBS

__all__ = ["TrainConfig", "PRESETS", "config_from_preset", "train", "build", "programs", "load_trained",
           "configure", "run"]


@dataclass
class TrainConfig:
    """Everything a run needs; saved with every checkpoint. Paper values in the presets."""

    preset: str = "quickstart"
    dataset: str = "stacks"                  # a procedural dataset name, or an HDF5 file
    orderless: str = "emorl"
    lom: bool = True                         # False: the orderless model alone (baseline)
    steps: int = 1000
    batch_size: int = 16
    image_size: int = 32
    lr: float = 4e-4
    warmup: int = 10_000
    decay_every: int = 100_000
    grad_clip: float = 5.0
    orderless_kwargs: dict[str, Any] = field(default_factory=dict)
    lom_kwargs: dict[str, Any] = field(default_factory=dict)
    lom_decoder: dict[str, Any] = field(default_factory=dict)  # e.g. {"hidden": 16}: a smaller LOM decoder
    goal: float = -0.352                     # paper targets (A.4.2), per pixel·channel
    orderless_goal: float = -0.352
    geco_speedup: float | None = 5.0
    geco_step_size: float = 1e-6
    geco_warmup: int = 1000
    scene_free_bits: float = 0.25            # × Ds (0: off) ...
    scene_free_bits_final: float = 0.167     # ... × Ds for the last 25K steps of longer runs
    scene_prior: str = "normal"              # "normal" or "mixture" (learnable mixture of Gaussians)
    scene_prior_components: int = 10
    checkpoint_every: int = 5000             # also at the end and at the max_minutes deadline
    orderless_steps: int = 0                 # two-stage: steps of stage 1 (orderless alone)
    orderless_checkpoint: str | None = None  # two-stage: start stage 2 from this orderless model
    freeze_orderless: bool = False           # stage 2 with the orderless model frozen
    max_minutes: float | None = None         # stop a stage early after this much wall time
    figure_every: int = 250
    eval_every: int = 0                      # held-out ARI-FG (and S-Acc on stacks) every N steps; 0: end only
    eval_every_scenes: int = 128             # ... on this many of the held-out scenes
    eval_scenes: int = 256
    seed: int = 0
    threads: int = 0                         # 0: leave torch's default
    device: str = "cpu"
    out: str = "runs/quickstart"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "image_size", "eval_scenes", "eval_every_scenes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.orderless not in ORDERLESS_MODELS:
            raise ValueError(f"orderless must be one of {sorted(ORDERLESS_MODELS)}, got {self.orderless!r}")
        for name in ("orderless_steps", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.scene_prior not in ("normal", "mixture"):
            raise ValueError(f"scene_prior must be 'normal' or 'mixture', got {self.scene_prior!r}")
        if self.freeze_orderless and not (self.orderless_checkpoint or self.orderless_steps):
            raise ValueError("freeze_orderless needs a trained orderless model: give orderless_checkpoint "
                             "or orderless_steps")


# Paper settings per dataset (A.4.1–A.4.2) and a CPU quickstart: the same model, smaller numbers.
PRESETS: dict[str, dict[str, Any]] = {
    # CPU: EMORL's cpu setting at 32 px, K = 6, with two changes measured here (150-step runs,
    # docs/benchmarks.md): σ = 0.1 (CLEVR6's) rather than 0.7, and init gain 1 rather than the
    # reference's 0.02 — with both reference values the reconstruction was still flat grey
    # after 1,000 steps; with these it is sharp within 150. Adam lr 1e-3 rather than 4e-4:
    # in a GPU sweep of this setting only lr 1e-3 runs left the background-only plateau
    # (ARI-FG ≈ 0.35) within 6K steps (docs/benchmarks.md, "On a GPU"). GECO: the paper's step
    # 1e-6, EMORL's goal −2.2 (CLEVR6's, for σ = 0.1) and a LOM goal of −1.9 that a LOM reaches
    # at this scale (−1.95 after 2,800 steps at β = 1): with −2.2 and step 1e-5 the LOM's KL
    # weight sat at its floor 1e-10 and its prior never trained (docs/benchmarks.md).
    "quickstart": dict(
        dataset="stacks", image_size=32, batch_size=16, steps=1000, lr=1e-3, warmup=200,
        decay_every=0, geco_warmup=200, geco_step_size=1e-6, figure_every=250, goal=-1.9, orderless_goal=-2.2,
        orderless_kwargs=dict(num_slots=6, slot_dim=32, stochastic_layers=2, refinement_steps=1, sigma=0.1,
                              init_gain=1.0, encoder_width=32, decoder_hidden=32, prior_hidden=64,
                              refinement_hidden=64),
        lom_kwargs=dict(scene_dim=32), out="runs/quickstart"),
    "objects_room": dict(
        dataset="objects_room", image_size=64, batch_size=32, steps=400_000, goal=-0.352, orderless_goal=-0.352,
        geco_speedup=5.0, orderless_kwargs=dict(num_slots=7, refinement_steps=2, sigma=0.7),
        lom_kwargs=dict(scene_dim=128, sigma=0.7), out="runs/objects_room"),
    "shapestacks": dict(
        dataset="shapestacks", image_size=64, batch_size=32, steps=400_000, goal=-0.351, orderless_goal=-0.351,
        geco_speedup=50.0, orderless_kwargs=dict(num_slots=9, refinement_steps=2, sigma=0.7),
        lom_kwargs=dict(scene_dim=128, sigma=0.7), out="runs/shapestacks"),
    "clevr6": dict(
        dataset="clevr6", image_size=64, batch_size=32, steps=400_000, goal=-2.265, orderless_goal=-2.265,
        geco_speedup=10.0, orderless_kwargs=dict(num_slots=7, refinement_steps=2, sigma=0.1),
        lom_kwargs=dict(scene_dim=128, sigma=0.1), out="runs/clevr6"),
}


def _emorl(config: TrainConfig) -> nn.Module:
    from lom_pyro.orderless.emorl import EMORL

    return EMORL(image_size=config.image_size, **config.orderless_kwargs)


ORDERLESS_MODELS = {"emorl": _emorl}


def config_from_preset(preset: str, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a named preset with keyword overrides."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    return TrainConfig(preset=preset, **{**PRESETS[preset], **overrides})


# -- building --------------------------------------------------------------------------------
def _check_goal(name: str, goal: float, sigma: float | None) -> None:
    """A goal at or below ``log σ`` — the unnormalised error per pixel·channel of a perfect
    reconstruction — can never be met: GECO would drive the KL weight to its floor."""
    if sigma is not None and goal <= math.log(sigma):
        raise ValueError(f"{name}={goal} cannot be reached: with sigma={sigma} even a perfect reconstruction "
                         f"has an error of log(sigma) = {math.log(sigma):.3f} per pixel and channel")


def build(config: TrainConfig) -> tuple[nn.Module, GECO]:
    """The trained module (a :class:`LOM`, or the orderless model alone) and its objective."""
    orderless = ORDERLESS_MODELS[config.orderless](config)
    _check_goal("orderless_goal", config.orderless_goal, getattr(orderless, "sigma", None))
    geco = dict(step_size=config.geco_step_size, speedup=config.geco_speedup, warmup_steps=config.geco_warmup)
    # the orderless model's own GECO form where it has one (EMORL's), else the core's
    own_form = getattr(orderless, "geco_config", None)
    goals = {ORDERLESS_OBS: own_form(config.orderless_goal, **geco) if own_form
             else GECOConfig(goal=config.orderless_goal, beta_max=1.0, **geco)}
    if not config.lom:
        return orderless, GECO(LOMELBO(), goals)
    kwargs = dict(config.lom_kwargs)
    kwargs.setdefault("sigma", getattr(orderless, "sigma", 0.7))
    if config.scene_prior == "mixture":
        from lom_pyro.priors import MixtureScenePrior

        kwargs["scene_prior"] = MixtureScenePrior(kwargs.get("scene_dim", 128), config.scene_prior_components)
    if config.lom_decoder:  # the orderless decoder's architecture, narrower or shallower
        try:
            inspect.signature(orderless.make_decoder).bind(**config.lom_decoder)
        except TypeError as err:
            raise ValueError(f"lom_decoder {config.lom_decoder}: the {config.orderless} model's make_decoder "
                             f"does not take these options ({err})") from err
        kwargs["decoder"] = orderless.make_decoder(**config.lom_decoder)
    lom = LOM(orderless, **kwargs)  # the scene free bits follow the schedule of config.scene_free_bits
    _check_goal("goal", config.goal, lom.sigma)
    # β ≤ 1: the KL weight returns to 1 (a valid ELBO) once the goal is met, never beyond
    goals[OBS] = GECOConfig(goal=config.goal, beta_max=1.0, **geco)
    return lom, GECO(LOMELBO(), goals)


def programs(module: nn.Module) -> tuple[Any, Any]:
    """The model/guide pair that trains ``module``."""
    if isinstance(module, LOM):
        return module.model, module.guide
    pair = standalone(module)
    return pair.model, pair.guide


# -- data ------------------------------------------------------------------------------------
def _procedural(name: str) -> bool:
    from lom_pyro.data.procedural import DATASETS

    return name in DATASETS


def training_batches(config: TrainConfig) -> Iterator[Tensor]:
    """Endless image batches ``(B, 3, H, W)`` in [-1, 1]."""
    from torch.utils.data import DataLoader

    if _procedural(config.dataset):
        from lom_pyro.data.procedural import ProceduralDataset

        data = ProceduralDataset(config.dataset, image_size=config.image_size, seed=config.seed)
        loader = DataLoader(data, batch_size=config.batch_size)      # an endless stream
    else:
        from lom_pyro.data.dataset import SceneDataset

        data = SceneDataset(config.dataset, split="train", value_range=(-1.0, 1.0))
        loader = DataLoader(data, batch_size=config.batch_size, shuffle=True, drop_last=True)
    while True:
        for batch in loader:
            yield batch["image"]


def held_out(config: TrainConfig, n: int | None = None, split: str = "test") -> dict[str, Any]:
    """Held-out scenes: ``images`` in [-1, 1], ground-truth ``masks``, ``background``
    channel indices, and ``factors`` / ``factor_names`` where the data has them."""
    n = n or config.eval_scenes
    if _procedural(config.dataset):
        from lom_pyro.data.procedural import generate

        scenes = generate(config.dataset, n, config.image_size, seed=config.seed + 10_000)
        images = torch.from_numpy(scenes.images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return {"images": images, "masks": torch.from_numpy(scenes.masks), "background": scenes.background_channels,
                "factors": torch.from_numpy(scenes.factors), "factor_names": scenes.factor_names}
    from lom_pyro.data.dataset import SceneDataset

    data = SceneDataset(config.dataset, split=split, value_range=(-1.0, 1.0))
    items = [data[i] for i in range(min(n, len(data)))]
    out = {"images": torch.stack([i["image"] for i in items]), "masks": torch.stack([i["masks"] for i in items]),
           "background": tuple(data.info.background_channels)}
    if data.info.factor_names:
        out.update(factors=torch.stack([i["factors"] for i in items]), factor_names=data.info.factor_names)
    return out


# -- the loop --------------------------------------------------------------------------------
def _parameter_groups(module: nn.Module, frozen: nn.Module | None) -> list[list[nn.Parameter]]:
    """The orderless model's trainable parameters and the LOM's own, as separate groups:
    each is clipped on its own, so the LOM's gradient norm never rescales the orderless
    update (its decomposition stays unbiased, §3.3)."""
    skip = {id(p) for p in frozen.parameters()} if frozen is not None else set()
    inner = {id(p) for p in module.orderless.parameters()} if isinstance(module, LOM) else set()
    own = [p for p in module.parameters() if p.requires_grad and id(p) not in skip]
    groups = [[p for p in own if id(p) in inner], [p for p in own if id(p) not in inner]]
    return [g for g in groups if g]


def _payload(config: TrainConfig, module: nn.Module, objective: GECO, optimiser: torch.optim.Optimizer,
             step: int) -> dict[str, Any]:
    return {"config": dataclasses.asdict(config), "model": module.state_dict(), "objective": objective.state_dict(),
            "optimiser": optimiser.state_dict(), "step": step}


def _log_eval(curves: dict[str, list[float]], record: dict[str, float | None]) -> None:
    """Append one evaluation as ``eval/<key>`` columns, NaN where a key is missing (the
    LOM's metrics appear only in stage 2 of a two-stage run)."""
    rows = len(curves.get("eval/step", []))
    for key in {f"eval/{k}" for k in record} | {k for k in curves if k.startswith("eval/")}:
        column = curves.setdefault(key, [float("nan")] * rows)
        value = record.get(key[len("eval/"):])
        column.append(float("nan") if value is None else float(value))


def _stage(module: nn.Module, objective: GECO, config: TrainConfig, steps: int, start: int,
           batches: Iterator[Tensor], out: Path, curves: dict[str, list[float]], label: str,
           frozen: nn.Module | None = None, figures=None, monitor=None, checkpoint: str = "checkpoint.pt",
           progress: bool = True, minimised: GECO | None = None) -> int:
    """Train ``module`` for up to ``steps`` steps; returns the number of steps taken.
    ``monitor(module)`` → metrics, logged as ``eval/*`` every ``config.eval_every`` steps.
    ``minimised`` is the loss (default ``objective``); checkpoints save ``objective``."""
    model, guide = programs(module)
    deadline = time.perf_counter() + 60 * config.max_minutes if config.max_minutes else float("inf")
    groups = _parameter_groups(module, frozen)
    optimiser = torch.optim.Adam([{"params": g} for g in groups], lr=config.lr, foreach=True)
    device = torch.device(config.device)
    started = time.perf_counter()
    bar = tqdm(range(steps), desc=label, dynamic_ncols=True, mininterval=1.0, disable=not progress)
    for i in bar:
        step = start + i
        for group in optimiser.param_groups:
            group["lr"] = config.lr * learning_rate_factor(i, config.warmup, config.decay_every)
        if isinstance(module, LOM):
            module.scene_free_bits = scene_free_bits(step, start + steps, module.scene_dim,
                                                     start=config.scene_free_bits, end=config.scene_free_bits_final)
        x = next(batches).to(device)
        loss, logs = (minimised or objective).compute(model, guide, x)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        for group in groups:
            nn.utils.clip_grad_norm_(group, config.grad_clip)
        optimiser.step()
        if i % 10 == 0 or i == steps - 1:  # one host sync every 10 steps
            values = {k: float(v) for k, v in logs.items()}
            for key, value in values.items():
                curves.setdefault(key, []).append(value)
            curves.setdefault("step", []).append(step)
            # β shown too: a KL weight stuck at its floor means the goal is out of reach
            bar.set_postfix({k.replace("/x_orderless", "/o"): f"{v:.4g}" for k, v in values.items()},
                            refresh=False)
        last = i == steps - 1 or time.perf_counter() > deadline
        if figures is not None and (i % config.figure_every == 0 or last):
            figures(module, out / "figures" / f"step_{step:06d}.png")
        if monitor is not None and config.eval_every and ((i + 1) % config.eval_every == 0 or last):
            _log_eval(curves, {"step": step + 1, "seconds": round(time.perf_counter() - started, 1),
                               **monitor(module)})
        if last or (config.checkpoint_every and (i + 1) % config.checkpoint_every == 0):
            # periodic and final checkpoints: a crash loses at most checkpoint_every steps
            save_checkpoint(out / checkpoint, _payload(config, module, objective, optimiser, step + 1))
        if last:
            bar.close()
            return i + 1
    return steps


def train(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train as configured; write figures, checkpoint, config and metrics to ``config.out``
    (``progress=False``: no progress bar).

    :return: the metrics written to ``metrics.json``.
    """
    from lom_pyro.evaluate import evaluate_module, write_figure

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    pyro.set_rng_seed(config.seed)
    pyro.enable_validation(False)  # a script: validation costs host syncs per step (pyro-notes)
    out = Path(config.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    device = torch.device(config.device)
    module, objective = build(config)
    module.to(device)
    objective.to(device)
    orderless = module.orderless if isinstance(module, LOM) else module
    evaluation = held_out(config)
    figure_batch = evaluation["images"][:8].to(device)
    figures = lambda m, path: write_figure(m, figure_batch, path)
    monitor = _monitor(config, evaluation)
    batches = training_batches(config)
    curves: dict[str, list[float]] = {}
    started = time.perf_counter()
    frozen = None
    if config.orderless_checkpoint:
        geco_state = load_orderless(orderless, config.orderless_checkpoint)
        if geco_state:  # carry on the orderless constraint where that run left it
            objective.states[ORDERLESS_OBS].load_state_dict(geco_state)
        frozen = orderless if config.freeze_orderless else None
    if config.orderless_steps and isinstance(module, LOM):
        # stage 1: the orderless model alone, under its own GECO constraint
        stage1 = GECO(LOMELBO(), {ORDERLESS_OBS: objective.states[ORDERLESS_OBS].config}).to(device)
        orderless_steps = _stage(orderless, stage1, config, config.orderless_steps, 0, batches, out, curves,
                                 "stage 1 (orderless)", monitor=monitor, checkpoint="orderless.pt",
                                 progress=progress)
        objective.states[ORDERLESS_OBS].load_state_dict(stage1.states[ORDERLESS_OBS].state_dict())
        frozen = orderless if config.freeze_orderless else None
    else:
        orderless_steps = 0
    lom_only = None
    with warnings.catch_warnings():
        if frozen is not None:
            frozen.requires_grad_(False)
            # PyroModule warns on every access to a frozen parameter; freezing is the point here
            warnings.filterwarnings("ignore", message=".*not registered in the param store because requires_grad")
            if isinstance(module, LOM):
                # a frozen orderless model's ELBO terms are constants: the LOM's alone is
                # minimised, under its own multiplier (saved with the full objective)
                module.score_orderless = False
                lom_only = objective.restricted(OBS)
        try:
            steps = _stage(module, objective, config, config.steps, orderless_steps, batches, out, curves,
                           "LOM" if isinstance(module, LOM) else "orderless", frozen=frozen, figures=figures,
                           monitor=monitor, progress=progress, minimised=lom_only)
        finally:
            if isinstance(module, LOM):
                module.score_orderless = True
    seconds = time.perf_counter() - started
    metrics = evaluate_module(module, evaluation, objective.elbo, dataset=config.dataset)
    metrics.update(train_seconds=round(seconds, 1), steps=steps, orderless_steps=orderless_steps)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    from lom_pyro.viz import plot_curves

    logged_steps = curves.pop("step", [])
    plot_curves({k: v for k, v in curves.items() if k.startswith(("err", "kl"))}, out / "curves.png",
                xlabel="log point (every 10 steps)")
    if "eval/step" in curves:
        plot_curves({k: v for k, v in curves.items() if k.startswith(("eval/ari", "eval/structure"))},
                    out / "eval_curves.png", title=f"held-out metrics every {config.eval_every} steps",
                    xlabel=f"evaluation (every {config.eval_every} steps)")
    # strict JSON: a missing or non-finite value is null
    finite = {k: [v if math.isfinite(v) else None for v in column] for k, column in curves.items()}
    (out / "curves.json").write_text(json.dumps({"step": logged_steps, **finite}))
    return metrics


def _monitor(config: TrainConfig, evaluation: dict[str, Any]):
    """The periodic held-out check on the first ``eval_every_scenes`` scenes: ARI-FG of
    the posteriors and, on ``stacks``, the structure accuracy of τ = 0.8 samples."""
    from lom_pyro.evaluate import decomposition_metrics

    n = min(config.eval_every_scenes, evaluation["images"].shape[0])
    subset = {**evaluation, "images": evaluation["images"][:n], "masks": evaluation["masks"][:n]}
    return lambda module: decomposition_metrics(module, subset, config.dataset)


def load_orderless(orderless: nn.Module, path: str) -> dict[str, Tensor]:
    """Load orderless weights from a checkpoint of an orderless-alone or a LOM run.

    :return: that run's GECO state of the orderless constraint (empty if it had none)."""
    payload = load_checkpoint(path)
    prefix = f"states.{ORDERLESS_OBS}."
    geco = {k[len(prefix):]: v for k, v in payload.get("objective", {}).items() if k.startswith(prefix)}
    state = payload["model"]
    if any(k.startswith("orderless.") for k in state):
        state = {k[len("orderless."):]: v for k, v in state.items() if k.startswith("orderless.")}
    try:
        orderless.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"--orderless-checkpoint {path}: its weights do not fit this orderless model "
                         f"({str(err).splitlines()[0]})") from err
    return geco


def load_trained(path: str, device: str = "cpu") -> tuple[nn.Module, TrainConfig]:
    """Rebuild the trained module of a checkpoint written by :func:`train`."""
    payload = load_checkpoint(path, map_location=device)
    config = TrainConfig(**payload["config"])
    module, _ = build(config)
    module.load_state_dict(payload["model"])
    return module.to(device).eval(), config


# -- command line ----------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="quickstart", choices=sorted(PRESETS))
    parser.add_argument("--dataset", help="procedural name (stacks, room, sprites) or an HDF5 file")
    parser.add_argument("--orderless", choices=sorted(ORDERLESS_MODELS))
    parser.add_argument("--no-lom", action="store_true", help="train the orderless model alone (baseline)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--lom-decoder-hidden", type=int, help="channels of the LOM's own decoder (default: "
                        "the orderless decoder's)")
    parser.add_argument("--orderless-steps", type=int, help="two-stage: steps fitting the orderless model first")
    parser.add_argument("--orderless-checkpoint", help="two-stage: start from this trained orderless model")
    parser.add_argument("--freeze-orderless", action="store_true", help="keep the orderless model fixed in stage 2")
    parser.add_argument("--max-minutes", type=float, help="stop each stage after this much wall time")
    parser.add_argument("--figure-every", type=int)
    parser.add_argument("--eval-every", type=int, help="held-out ARI-FG / structure accuracy every N steps")
    parser.add_argument("--eval-scenes", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--device")
    parser.add_argument("--out")


def run(args: argparse.Namespace) -> int:
    flags = ("command", "preset", "no_lom", "freeze_orderless", "lom_decoder_hidden")
    overrides = {k: v for k, v in vars(args).items() if k not in flags and v is not None}
    if args.lom_decoder_hidden is not None:
        overrides["lom_decoder"] = {"hidden": args.lom_decoder_hidden}
    if args.no_lom:
        overrides["lom"] = False
    if args.freeze_orderless:
        overrides["freeze_orderless"] = True
    try:
        config = config_from_preset(args.preset, **overrides)
    except ValueError as err:
        print(f"lom-pyro train: {err}")
        return 2
    metrics = train(config)
    print(json.dumps(metrics, indent=2))
    print(f"wrote {config.out}/metrics.json, checkpoint.pt and figures/")
    return 0


