"""A run's resumable state on disk: checkpoints (atomic, the last N kept) and RNG states.

``checkpoint.pt`` in the run folder is always the latest checkpoint; ``checkpoints/``
keeps the last ``keep_checkpoints`` of them by step. Each holds the config, the module,
the objective (GECO multipliers and EMAs), the optimiser (its step count too: the LR
schedule is a function of the step), the stage and its step, the data position and every
RNG state — everything ``--resume`` needs to continue bit for bit on the same device.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lom_pyro.checkpoint import CheckpointError, load_checkpoint, remove_orphans, save_checkpoint

__all__ = ["rng_state", "set_rng_state", "RunFolder"]

LATEST = "checkpoint.pt"
HISTORY = "checkpoints"


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from, as tensors and plain lists (loadable with
    ``weights_only=True``): torch's (CPU and CUDA), numpy's global and Python's."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"state": list(random.getstate()[1]), "gauss_next": random.getstate()[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached_gaussian"]))
    random.setstate((3, tuple(state["python"]["state"]), state["python"]["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RunFolder:
    """The checkpoint files of one run folder."""

    #: what a run writes into its folder, and what ``lom-pyro evaluate`` and ``visualize``
    #: add by default (``--overwrite`` removes these and nothing else: no output of an old
    #: run stays beside a new one's)
    OUTPUTS = (LATEST, f".{LATEST}.link", HISTORY, "orderless.pt", "config.json", "log.jsonl", "metrics.json",
               "curves.json", "curves.png", "eval_curves.png", "figures", "tensorboard", "eval.json", "eval.md",
               "s_acc_sheet.png", "s_acc_sheet.json", "visualize")

    def __init__(self, path: str | os.PathLike, keep: int = 2) -> None:
        self.path = Path(path)
        self.keep = keep
        self.loaded_from: Path | None = None
        self.skipped: list[str] = []

    @property
    def latest(self) -> Path:
        return self.path / LATEST

    def save(self, payload: dict[str, Any]) -> Path:
        """Write ``payload`` as ``checkpoints/step_<step>.pt`` and make it the latest; each
        file is replaced atomically, so a kill at any moment leaves a readable latest."""
        self.remove_orphans()
        kept = save_checkpoint(self.path / HISTORY / f"step_{payload['step']:09d}.pt", payload)
        tmp = self.path / f".{LATEST}.link"
        tmp.unlink(missing_ok=True)
        try:
            os.link(kept, tmp)           # no second copy of the bytes where the file system allows
        except OSError:
            save_checkpoint(tmp, payload)
        os.replace(tmp, self.latest)
        for old in sorted((self.path / HISTORY).glob("step_*.pt"))[:-self.keep]:
            old.unlink()
        return self.latest

    def remove_orphans(self) -> list[Path]:
        """Delete the temporary files of checkpoint writes that were killed."""
        return [*remove_orphans(self.path, LATEST), *remove_orphans(self.path / HISTORY, "step_*.pt")]

    def load_latest(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """The latest checkpoint; if it cannot be read, the newest kept one that can. Sets
        :attr:`loaded_from` (that file) and :attr:`skipped` (why each newer one was not used)."""
        candidates = [self.latest, *sorted((self.path / HISTORY).glob("step_*.pt"), reverse=True)]
        errors = []
        for path in candidates:
            if path.is_file():
                try:
                    payload = load_checkpoint(path, map_location=map_location)
                except CheckpointError as err:
                    errors.append(str(err))
                    continue
                self.loaded_from, self.skipped = path, errors
                return payload
        detail = "; ".join(errors) if errors else f"no {LATEST} and no checkpoints/step_*.pt there"
        raise CheckpointError(f"--resume {self.path}: no readable checkpoint ({detail})")

    def is_empty(self) -> bool:
        return not self.path.exists() or not any(self.path.iterdir())

    def clear_outputs(self) -> None:
        """Remove a previous run's outputs (``--overwrite``); other files stay."""
        import shutil

        for name in self.OUTPUTS:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
