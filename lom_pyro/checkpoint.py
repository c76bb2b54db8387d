"""Checkpoints: written atomically, loaded without executing pickled code.

A checkpoint is a dict of plain data (config dicts, numbers, strings) and tensors
(state dicts), saved with ``torch.save`` to a temporary file in the destination's
folder, flushed, then renamed over the destination — an interrupted save never
leaves a half-written file nor damages the previous checkpoint. Loading uses
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["save_checkpoint", "load_checkpoint", "load_weights", "checkpoint_file", "remove_orphans", "load_error",
           "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or not a lom_pyro checkpoint."""


FORMAT = "lom_pyro-checkpoint-v1"


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus a format tag) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent, glob.escape(path.name))
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


def remove_orphans(folder: str | os.PathLike, pattern: str) -> list[Path]:
    """Delete the temporary files that killed writes of the files ``pattern`` (a glob) left
    in ``folder``: each save writes ``.<name>.*.tmp`` first, and a file has one writer, so
    none of them is live. :return: the files removed."""
    folder = Path(folder)
    orphans = sorted(folder.glob(f".{pattern}.*.tmp")) if folder.is_dir() else []
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    return orphans


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


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The checkpoint a command was given: a file, or a run folder's ``checkpoint.pt``."""
    path = Path(path)
    if path.is_dir():
        if not (path / "checkpoint.pt").is_file():
            raise CheckpointError(f"checkpoint {path}: a folder without checkpoint.pt; expected a checkpoint file "
                                  f"or a run folder")
        return path / "checkpoint.pt"
    return path


def load_error(err: Exception) -> str:
    """What matters in torch's error about a file it cannot load, in one line: for a file
    holding pickled objects, which one and that it could run code (not torch's advice to
    load it unsafely); else the error's first line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    unsafe = re.search(r"Unsupported global: (.+?) was not an allowed global", text)
    if unsafe:
        return (f"it holds a pickled Python object ({unsafe.group(1)}), and loading such a file could run "
                f"arbitrary code, so it is refused")
    return f"{type(err).__name__}: {(text.splitlines() or [''])[0].strip()[:200]}"


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain data only)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path}: a folder; expected a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated/garbled/unsafe files
        reason = load_error(err)
        raise CheckpointError(f"checkpoint {path}: cannot be read as a lom_pyro checkpoint ({reason})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a lom_pyro checkpoint (expected format {FORMAT!r})")
    return payload


def _first(keys: list[str], what: str) -> str:
    more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
    return f"{what} {keys[0]}{more}"


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], context: str) -> None:
    """``module.load_state_dict(state)``; a mismatch is one :class:`CheckpointError`,
    ``context`` followed by the first missing, unexpected and mis-shaped keys."""
    try:   # first, so that a module's load hooks (renamed keys of older files) take part
        module.load_state_dict(state)
        return
    except RuntimeError as err:
        first_line = str(err).splitlines()[0]
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    parts = [_first(missing, "missing") if missing else "", _first(unexpected, "unexpected") if unexpected else ""]
    if shaped:
        k = shaped[0]
        parts.append(_first(shaped, "shape differs for") + f" ({tuple(state[k].shape)} in the file, "
                     f"{tuple(own[k].shape)} in the model)")
    raise CheckpointError(f"{context} ({'; '.join(p for p in parts if p) or first_line})") from None
