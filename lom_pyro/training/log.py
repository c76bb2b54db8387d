"""A run's scalars: one JSON line per record in ``log.jsonl``, written as the run goes, so a
killed run keeps its curves and a resumed one continues them.

Two kinds of line: ``{"kind": "train", "step": s, ...}`` (the step index, every 10 steps)
and ``{"kind": "eval", "step": n, ...}`` (held-out metrics after n steps). At the end the
columns go to ``curves.json`` / ``curves.png`` as before.
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

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / self.NAME

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        record = {"kind": kind, "step": int(step), **{k: _finite(v) for k, v in values.items()}}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

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
