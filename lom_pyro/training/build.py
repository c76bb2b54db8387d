"""From a config to modules: the trained module, its objective, its optimiser groups,
and modules rebuilt from checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from lom_pyro.checkpoint import CheckpointError, checkpoint_file, load_checkpoint, load_weights
from lom_pyro.infer import GECO, LOMELBO, GECOConfig
from lom_pyro.models.alone import OrderlessAlone
from lom_pyro.models.assemble import Architecture, assemble
from lom_pyro.models.lom import LOM
from lom_pyro.models.pretrained import is_pretrained_file, module_of_pretrained, pretrained_path
from lom_pyro.sites import OBS, ORDERLESS_OBS
from lom_pyro.training.config import LIKELIHOOD_CHOICES, TrainConfig

#: the ``stage`` of a checkpoint written while fitting the orderless model alone (stage 1)
ORDERLESS_STAGE = "orderless"
MAIN_STAGE = "main"

__all__ = ["architecture", "build", "parameter_groups", "load_orderless", "load_initial_weights", "load_trained",
           "load_model", "Trained", "config_of", "copy_orderless_decoder"]


def _check_goal(name: str, goal: float, sigma: float) -> None:
    """A goal at or below ``log σ`` — the unnormalised error per pixel·channel of a perfect
    reconstruction — can never be met: GECO would drive the KL weight to its floor."""
    if goal <= math.log(sigma):
        raise ValueError(f"{name}={goal} cannot be reached: with sigma={sigma} even a perfect reconstruction "
                         f"has an error of log(sigma) = {math.log(sigma):.3f} per pixel and channel")


def architecture(config: TrainConfig) -> Architecture:
    """The module part of a config; ``likelihood``, when set, is both models'."""
    orderless_kwargs, lom_kwargs = dict(config.orderless_kwargs), dict(config.lom_kwargs)
    if config.likelihood is not None:
        orderless_kwargs["likelihood"] = lom_kwargs["likelihood"] = LIKELIHOOD_CHOICES[config.likelihood]
    return Architecture(orderless=config.orderless, image_size=config.image_size,
                        orderless_kwargs=orderless_kwargs, lom=config.lom, lom_kwargs=lom_kwargs,
                        lom_decoder=config.lom_decoder, scene_prior=config.scene_prior,
                        scene_prior_components=config.scene_prior_components)


def build(config: TrainConfig) -> tuple[nn.Module, GECO]:
    """The trained module (a :class:`LOM`, or the orderless model alone) and its objective."""
    module = assemble(architecture(config), LOM)
    orderless = module.orderless
    _check_goal("orderless_goal", config.orderless_goal, orderless.sigma)
    geco = dict(step_size=config.geco_step_size, speedup=config.geco_speedup, warmup_steps=config.geco_warmup)
    # the orderless model's own GECO form (EMORL's; the core's for GENESIS-v2)
    goals = {ORDERLESS_OBS: orderless.geco_config(config.orderless_goal, **geco)}
    if config.lom:
        _check_goal("goal", config.goal, module.sigma)
        # A.4.2: LOM-EMORL runs EMORL's GECO code for the LOM's constraint too (its additive
        # update: β falls like 1/t while the goal is unmet); "genesis" is the multiplicative
        # form. Either way β ≤ 1 by default: the KL weight returns to 1 (a valid ELBO) once the
        # goal is met; lom_beta_max > 1 lets it rise further (SRI's clamp is 1e10).
        if config.lom_geco == "orderless":
            goals[OBS] = dataclasses.replace(orderless.geco_config(config.goal, **geco), beta_max=config.lom_beta_max)
        else:
            goals[OBS] = GECOConfig(goal=config.goal, beta_max=config.lom_beta_max, **geco)
    return module, GECO(LOMELBO(), goals)


def parameter_groups(module: nn.Module, frozen: nn.Module | None) -> list[list[nn.Parameter]]:
    """The orderless model's trainable parameters and the LOM's own, as separate groups:
    each is clipped on its own, so the LOM's gradient norm never rescales the orderless
    update (its decomposition stays unbiased, §3.3)."""
    skip = {id(p) for p in frozen.parameters()} if frozen is not None else set()
    inner = {id(p) for p in module.orderless.parameters()}
    own = [p for p in module.parameters() if p.requires_grad and id(p) not in skip]
    groups = [[p for p in own if id(p) in inner], [p for p in own if id(p) not in inner]]
    return [g for g in groups if g]


def _weights_for(module: nn.Module, state: dict[str, Tensor], source: str, note: str = "") -> None:
    """Load ``state`` into ``module``; an orderless model takes the ``orderless.`` part of a
    LOM's weights. A mismatch is one sentence naming ``source`` and the first keys that
    differ, then ``note``."""
    if isinstance(module, OrderlessAlone) and any(k.startswith("orderless.") for k in state):
        state = {k[len("orderless."):]: v for k, v in state.items() if k.startswith("orderless.")}
    try:
        load_weights(module, state, f"{source}: its weights do not fit this model")
    except CheckpointError as err:
        raise CheckpointError(f"{err}{note}") from None


def load_orderless(orderless: nn.Module, path: str) -> dict[str, Tensor]:
    """Load orderless weights from a checkpoint of an orderless-alone or a LOM run.

    :return: that run's GECO state of the orderless constraint (empty if it had none)."""
    payload = load_checkpoint(path)
    prefix = f"states.{ORDERLESS_OBS}."
    geco = {k[len(prefix):]: v for k, v in payload.get("objective", {}).items() if k.startswith(prefix)}
    _weights_for(orderless, _field(payload, "model", path), f"--orderless-checkpoint {path}")
    # an orderless model's weights may fit any K (EMORL's do), so another K than the one it was
    # trained with loads without an error: say so, as it is rarely meant
    trained_k = (_stored_config(payload).get("orderless_kwargs") or {}).get("num_slots")
    if trained_k is not None and trained_k != getattr(orderless, "num_slots", trained_k):
        warnings.warn(f"--orderless-checkpoint {path}: trained with {trained_k} slots, loaded into a model with "
                      f"{orderless.num_slots} (--orderless-kwargs replaces the preset's whole dict: give all of "
                      f"its keys, with num_slots {trained_k}, to keep its K)", stacklevel=2)
    return geco


def _stored_config(payload: dict[str, Any]) -> dict[str, Any]:
    """The config a file records: a training checkpoint's own, or the one an exported file keeps in its info."""
    return payload.get("config") or (payload.get("info") or {}).get("config") or {}


def copy_orderless_decoder(lom: LOM) -> None:
    """Start the LOM decoder as a copy of its trained orderless model's (``lom_decoder_init``
    'orderless'). The ordered posterior is centred on the aligned orderless means (§3.2), which
    that decoder already maps to images, so the LOM begins from the orderless reconstructions
    and its stage spends its steps on the prior instead of relearning to decode."""
    _weights_for(lom.decoder, lom.orderless.decoder.state_dict(), "lom_decoder_init='orderless'")


def load_initial_weights(module: nn.Module, source: str) -> None:
    """Start from trained weights (``init_from``): a shipped pretrained name such as
    ``stacks32``, a file written by ``lom-pyro export``, or a training checkpoint."""
    path = pretrained_path(source)
    payload = load_checkpoint(path)
    trained = _stored_config(payload)   # says how it was built
    note = (f"; {source} was trained with --lom-kwargs '{json.dumps(trained['lom_kwargs'])}'"
            if "lom_kwargs" in trained else "")
    _weights_for(module, _field(payload, "model", str(path)), f"--init-from {source}", note)


def _field(payload: dict[str, Any], key: str, path: str) -> Any:
    if key not in payload:
        raise CheckpointError(f"checkpoint {path}: has no {key!r} entry (not written by lom-pyro train?)")
    return payload[key]


def config_of(payload: dict[str, Any], path: str) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint was written with (one clear error if it has none
    or one this version cannot read)."""
    try:
        return TrainConfig(**_field(payload, "config", path))
    except TypeError as err:
        raise CheckpointError(f"checkpoint {path}: its config does not fit this version of lom_pyro ({err})") from None


def load_trained(path: str, device: str = "cpu") -> tuple[nn.Module, TrainConfig]:
    """Rebuild the trained module of a checkpoint written by :func:`~lom_pyro.training.train`
    (``path``: the file, or a run folder)."""
    path = str(checkpoint_file(path))
    payload = load_checkpoint(path, map_location=device)
    return _module_of_checkpoint(payload, path, device)


def _module_of_checkpoint(payload: dict[str, Any], path: str, device: str) -> tuple[nn.Module, TrainConfig]:
    config = config_of(payload, path)
    if payload.get("stage") == ORDERLESS_STAGE:   # stage 1 of a two-stage run: the orderless model alone
        config = dataclasses.replace(config, lom=False)
    module, _ = build(config)
    load_weights(module, _field(payload, "model", path),
                 f"checkpoint {path}: its weights do not fit the model of its own config")
    return module.to(device).eval(), config


@dataclass(frozen=True)
class Trained:
    """A trained module and what is known of it.

    :ivar module: the LOM or orderless model, in eval mode.
    :ivar config: the config it was trained with.
    :ivar architecture: what it is made of (a fitted slot prior included).
    :ivar info: step, metrics and source (a pretrained file's ``info``).
    """

    module: nn.Module
    config: TrainConfig
    architecture: Architecture
    info: dict[str, Any]


def load_model(name_or_path: str | os.PathLike, device: str = "cpu") -> Trained:
    """The one loader of every command that takes a trained model: a shipped pretrained name
    (``stacks32_ar``), a file written by ``lom-pyro export`` or ``fit-prior``, a training
    checkpoint or its run folder. The file is read once."""
    path = pretrained_path(name_or_path)
    path = Path(checkpoint_file(path)) if path.is_dir() else path
    payload = load_checkpoint(path, map_location=device)
    if is_pretrained_file(payload):
        module, info = module_of_pretrained(payload, path, device, lom_class=LOM)
        return Trained(module, config_of(info, str(path)), Architecture(**payload["architecture"]), info)
    module, config = _module_of_checkpoint(payload, str(path), device)
    info = {"config": payload["config"], "step": int(payload.get("step", 0)), "metrics": {}, "source": path.name}
    return Trained(module, config, architecture(config), info)
