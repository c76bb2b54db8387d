"""Checkpoints: written atomically, loaded without executing pickled code.

A checkpoint is a dict of plain data (config dicts, numbers, strings) and tensors
(state dicts), saved with ``torch.save`` to a temporary file in the destination's
folder, flushed, then renamed over the destination — an interrupted save never
leaves a half-written file nor damages the previous checkpoint. Loading uses
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or not a lom_pyro checkpoint."""


FORMAT = "lom_pyro-checkpoint-v1"


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus a format tag) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            try:   # mkstemp's 0600 would hide the file from a shared group; a plain file's mode instead
                os.fchmod(handle.fileno(), 0o666 & ~_umask())
            except OSError:   # a file system that refuses chmod: keep 0600 rather than fail the save
                pass
            torch.save({"format": FORMAT, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    try:                 # Linux tells it without changing it (other threads may be creating files)
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)   # elsewhere reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain data only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated/garbled/unsafe files
        raise CheckpointError(f"checkpoint {path}: cannot be read as a lom_pyro checkpoint "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a lom_pyro checkpoint (expected format {FORMAT!r})")
    return payload
