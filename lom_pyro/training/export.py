"""A training checkpoint → a pretrained file (weights, architecture,
provenance), e.g. the package's own ``lom_pyro/pretrained/stacks32.pt``. The shipped
weights are always produced by this command, never edited by hand."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

__all__ = ["export"]


def export(checkpoint: str | Path, destination: str | Path, metrics: dict[str, Any] | None = None, *,
           overwrite: bool = False) -> Path:
    """Write the module of a training ``checkpoint`` as a pretrained file. ``info`` holds
    the run's config, its step count and ``metrics`` (default: the run's ``metrics.json``).
    An existing ``destination`` (a shipped model too) is replaced only with ``overwrite``."""
    from lom_pyro.checkpoint import checkpoint_file, load_checkpoint
    from lom_pyro.models.pretrained import save_pretrained
    from lom_pyro.training.build import architecture, load_trained

    if Path(destination).exists() and not overwrite:
        raise ValueError(f"{destination} already exists; give --overwrite to replace it, or choose another name")
    checkpoint = checkpoint_file(checkpoint)
    module, config = load_trained(str(checkpoint))
    payload = load_checkpoint(checkpoint)
    if metrics is None:
        run_metrics = Path(checkpoint).parent / "metrics.json"
        metrics = json.loads(run_metrics.read_text()) if run_metrics.is_file() else {}
    info = {"config": payload["config"], "step": int(payload["step"]), "metrics": metrics,
            "source": Path(checkpoint).name, "exported": time.strftime("%Y-%m-%d")}
    return save_pretrained(destination, module, architecture(config), info)
