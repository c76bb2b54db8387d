"""A run's scalars: one JSON line per record in ``log.jsonl``, written as the run goes, so a
killed run keeps its curves and a resumed one continues them.

Two kinds of line: ``{"kind": "train", "step": s, ..., "seconds": t}`` (the step index,
every 10 steps; ``t`` since the stage began in this process) and ``{"kind": "eval",
"step": n, ...}`` (held-out metrics after n steps). At the end the
columns go to ``curves.json`` / ``curves.png`` as before.

With ``tensorboard`` installed (``pip install lom_pyro[tensorboard]``) the same scalars
and the training figures also go to ``tensorboard/`` in the run folder
(``tensorboard --logdir runs``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["RunLog"]


def _finite(value: Any) -> Any:
    """Strict JSON: NaN and ±inf become null."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


class RunLog:
    """Append-only scalar log of a run (see the module docstring)."""

    NAME = "log.jsonl"

    def __init__(self, folder: str | Path, enabled: bool = True, resumed_at: int | None = None) -> None:
        self.path = Path(folder) / self.NAME
        self.enabled = enabled  # off on all ranks but the first of a distributed run
        self._board = _tensorboard(Path(folder) / "tensorboard", resumed_at) if enabled else None

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": int(step), **{k: _finite(v) for k, v in values.items()}}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._board is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and key != "seconds":
                    self._board.add_scalar(f"{kind}/{key}", value, step)
            self._board.flush()

    def image(self, tag: str, png: Path, step: int) -> None:
        """A figure written during training, to TensorBoard too (when it is installed)."""
        if self._board is None:
            return
        import numpy as np
        from PIL import Image

        self._board.add_image(tag, np.asarray(Image.open(png).convert("RGB")), step, dataformats="HWC")
        self._board.flush()

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
        return out

    def truncate(self, steps_done: int) -> None:
        """Keep what a run had logged after ``steps_done`` steps (resuming from a checkpoint
        taken then): training lines of earlier steps, evaluations up to it."""
        kept = [r for r in self.records()
                if (r["step"] < steps_done if r["kind"] == "train" else r["step"] <= steps_done)]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def columns(self) -> dict[str, list[Any]]:
        """``step`` and one column per logged key (``eval/<key>`` for evaluations), aligned
        within each kind, null where a record lacks a key (e.g. the LOM's metrics in stage 1)."""
        columns: dict[str, list[Any]] = {}
        for kind, prefix, step_key in (("train", "", "step"), ("eval", "eval/", "eval/step")):
            rows = [r for r in self.records() if r["kind"] == kind]
            keys = {k for r in rows for k in r if k not in ("kind", "step")}
            if rows:
                columns[step_key] = [r["step"] for r in rows]
            for key in sorted(keys):
                columns[prefix + key] = [r.get(key) for r in rows]
        return columns


def _tensorboard(folder: Path, resumed_at: int | None):
    """A TensorBoard writer (a resumed run drops events from ``resumed_at`` on, as the JSONL
    log does), or None when ``tensorboard`` is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder), purge_step=resumed_at)
