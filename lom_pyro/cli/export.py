"""``lom-pyro export``: a training checkpoint → a pretrained file (:func:`lom_pyro.training.export.export`)."""

from __future__ import annotations

import json
from pathlib import Path

from lom_pyro.cli import refuse
from lom_pyro.training.export import export

__all__ = ["configure", "run"]


def configure(parser) -> None:
    parser.add_argument("checkpoint", help="checkpoint.pt of a run of lom-pyro train, or its run folder")
    parser.add_argument("destination", help="a name to ship inside the package (e.g. stacks32) or a .pt file")
    parser.add_argument("--metrics", metavar="FILE.json", help="metrics to record with the weights "
                        "(default: the run's metrics.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace the destination if it exists "
                        "(a shipped model too)")


def run(args) -> int:
    from lom_pyro.checkpoint import CheckpointError
    from lom_pyro.models.pretrained import PRETRAINED_DIR

    destination = Path(args.destination)
    if destination.suffix != ".pt":
        destination = PRETRAINED_DIR / f"{args.destination}.pt"
    try:
        metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
        path = export(args.checkpoint, destination, metrics, overwrite=args.overwrite)
    except (CheckpointError, ValueError, OSError) as err:
        return refuse("export", err)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return 0
