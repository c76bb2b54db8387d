"""Pretrained models shipped inside the package (``lom_pyro/pretrained/<name>.pt``) or
given as a file: weights, the :class:`~lom_pyro.models.assemble.Architecture` they fit,
and where they came from (the training config, step count and the metrics reached).

A pretrained file is a checkpoint (atomic write, ``weights_only=True`` load) written by
``lom-pyro export``, never by hand: ``{"architecture", "model", "info"}``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from lom_pyro.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from lom_pyro.models.assemble import Architecture, assemble

__all__ = ["PRETRAINED_DIR", "available", "is_pretrained_file", "load_pretrained", "module_of_pretrained",
           "save_pretrained", "pretrained_path"]

#: where the package's own pretrained models live
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
MAX_BYTES = 20 * 2**20   # what we ship stays small


def available() -> list[str]:
    """Names of the pretrained models shipped with this installation."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))


def pretrained_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped model's file by name (``"stacks32"``), or the given path to a file."""
    path = Path(name_or_path)
    if path.suffix == ".pt" or path.exists():
        return path
    shipped = PRETRAINED_DIR / f"{name_or_path}.pt"
    if not shipped.is_file():
        names = ", ".join(available()) or "none in this installation"
        raise ValueError(f"pretrained model {str(name_or_path)!r}: not a file and not a shipped name ({names})")
    return shipped


def is_pretrained_file(payload: dict[str, Any]) -> bool:
    """Whether a loaded checkpoint is a pretrained file (not a training checkpoint)."""
    return {"architecture", "model"} <= set(payload)


def load_pretrained(name_or_path: str | os.PathLike, device: str = "cpu", *,
                    lom_class: type | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The module (in eval mode) and its ``info`` (training config, steps, metrics). A LOM is
    built as ``lom_class`` (:class:`~lom_pyro.models.LOM`, or a subclass of it); an orderless
    model alone needs none. ``LOM.from_pretrained`` is the usual way in."""
    path = pretrained_path(name_or_path)
    return module_of_pretrained(load_checkpoint(path, map_location=device), path, device, lom_class=lom_class)


def module_of_pretrained(payload: dict[str, Any], path: str | os.PathLike, device: str = "cpu", *,
                         lom_class: type | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_pretrained` of a file already read (``payload``, from ``path``)."""
    if not is_pretrained_file(payload):
        raise CheckpointError(f"{path}: not a pretrained model (a training checkpoint? use load_trained for those)")
    try:
        module = assemble(Architecture(**payload["architecture"]), lom_class)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its architecture cannot be built by this lom_pyro ({err})") from None
    load_weights(module, payload["model"], f"{path}: its weights do not fit its architecture")
    return module.to(device).eval(), payload.get("info", {})


def save_pretrained(path: str | os.PathLike, module: nn.Module, architecture: Architecture,
                    info: dict[str, Any], half: frozenset[str] = frozenset()) -> Path:
    """Write the weights (no optimiser state) with their architecture and ``info``; refuses a
    file over 20 MB, which would not be shipped. Weights are float32, but the floating-point
    tensors named in ``half`` are stored as float16 (loading casts them back; the caller
    rounds them first if its numbers are to be those of the file)."""
    state = {k: (v.half() if v.is_floating_point() and k in half else v).detach().cpu().clone()
             for k, v in module.state_dict().items()}
    path = save_checkpoint(path, {"architecture": architecture.as_dict(), "model": state, "info": info})
    if path.stat().st_size > MAX_BYTES:
        size = path.stat().st_size / 2**20
        path.unlink()
        raise ValueError(f"{path}: {size:.1f} MB is over the {MAX_BYTES // 2**20} MB a shipped model may take")
    return path
