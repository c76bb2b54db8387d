"""What the example scripts share: their command line, the data, the outputs, and the
library's training loop (:class:`lom_pyro.training.hooks.Loop`) with the paper's schedule.

``lom-pyro train`` runs the same loop with more hooks (resuming, logs, figures during
training, held-out checks, checkpoints); here it has only the learning rate, the scene free
bits and printing. Copy this file with a script and edit both freely.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyro
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from lom_pyro import GECO, LOM
from lom_pyro.checkpoint import save_checkpoint
from lom_pyro.data.dataset import SceneDataset
from lom_pyro.data.procedural import ProceduralDataset
from lom_pyro.training import parameter_groups
from lom_pyro.training.hooks import LearningRate, Loop, PrintScalars, SceneFreeBits
from lom_pyro.viz import colour_masks, panel

LOG_EVERY = 100
SAMPLES = 8


@dataclass(frozen=True)
class Schedule:
    """Adam's learning rate (linear warm-up, then ×0.5 every ``decay_every`` steps; 0: never)
    and the gradient-norm clip, applied to each parameter group on its own."""

    lr: float = 4e-4
    warmup: int = 10_000
    decay_every: int = 100_000
    grad_clip: float = 5.0


#: A.4.2, LOM-EMORL: Adam at 4e-4, 10K warm-up steps, halved every 100K steps, clip 5
PAPER_SCHEDULE = Schedule()

#: ``build(image_size, small)``: a script's LOM and its GECO objective
Builder = Callable[[int, bool], tuple[LOM, GECO]]


def parse_args(argv: list[str] | None, description: str, *, steps: int, batch_size: int,
               image_size: int, out: str) -> argparse.Namespace:
    """The flags every example takes; the defaults are the script's."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="FILE.h5", help="a converted HDF5 file (docs/data.md), its train split")
    source.add_argument("--procedural", action="store_true", help="the built-in procedural scenes (offline)")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--image-size", type=int, default=image_size,
                        help="procedural scenes' size (>= 32); with --data the file's size is used")
    parser.add_argument("--small", action="store_true",
                        help="the orderless model's CPU setting and Ds = 32, for CPU runs")
    parser.add_argument("--out", default=out, help="folder for checkpoint.pt and samples.png")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def _forever(loader: DataLoader) -> Iterator[Tensor]:
    while True:  # a finite dataset is reshuffled every epoch
        for batch in loader:
            yield batch["image"]


def image_batches(args: argparse.Namespace, procedural: str) -> tuple[Iterator[Tensor], int]:
    """Endless batches ``(B, 3, H, W)`` in [-1, 1] (EMORL's range, A.4.1; GENESIS-v2 maps them
    to its [0, 1] itself) and their size H."""
    if args.data:
        data = SceneDataset(args.data, split="train", value_range=(-1, 1), masks=False, factors=False)
        loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, drop_last=True)
        return _forever(loader), data.info.image_size[0]
    data = ProceduralDataset(procedural, image_size=args.image_size, seed=args.seed, value_range=(-1, 1))
    return _forever(DataLoader(data, batch_size=args.batch_size)), args.image_size


def train(lom: LOM, geco: GECO, batches: Iterator[Tensor], steps: int, device: torch.device,
          schedule: Schedule = PAPER_SCHEDULE) -> torch.optim.Adam:
    """Minimise the GECO objective over both ELBOs with a plain torch Adam (§3.3): one ELBO
    over the orderless VAE and the LOM, a GECO multiplier per observation site."""
    groups = parameter_groups(lom, frozen=None)   # clipped apart: the orderless model's and the LOM's own
    optimiser = torch.optim.Adam([{"params": group} for group in groups], lr=schedule.lr)
    hooks = [LearningRate(schedule.lr, schedule.warmup, schedule.decay_every),
             SceneFreeBits(lom.scene_dim, steps),   # Eq. 26: 0.25·Ds nats, then 0.167·Ds for the last 25K steps
             PrintScalars(steps, LOG_EVERY)]
    loss_of = lambda x: geco.compute(lom.model, lom.guide, x)
    Loop(loss_of, optimiser, groups, batches, device, schedule.grad_clip, hooks).run(0, steps)
    return optimiser


def save_outputs(out: Path, lom: LOM, geco: GECO, optimiser: torch.optim.Optimizer, args: argparse.Namespace) -> None:
    """``checkpoint.pt`` (weights, GECO multipliers, optimiser) and ``samples.png``:
    τ = 0.8 samples (§4.1) with their slot masks coloured by slot index."""
    save_checkpoint(out / "checkpoint.pt", {"model": lom.state_dict(), "objective": geco.state_dict(),
                                            "optimiser": optimiser.state_dict(), "step": args.steps,
                                            "args": vars(args)})
    samples = lom.sample(SAMPLES, temperature=0.8)
    panel({"samples t=0.8": samples.images.clamp(0, 1).cpu(), "slot masks": colour_masks(samples.masks.squeeze(2))},
          out / "samples.png", scale=2)
    print(f"wrote {out / 'checkpoint.pt'} and {out / 'samples.png'}")


def run(argv: list[str] | None, build: Builder, procedural: str, description: str, *,
        schedule: Schedule = PAPER_SCHEDULE, **defaults: Any) -> LOM:
    """Parse the flags (``defaults``: the script's, see :func:`parse_args`), build the
    script's model for the chosen data, train it and save the outputs."""
    args = parse_args(argv, description, **defaults)
    pyro.set_rng_seed(args.seed)
    pyro.enable_validation(False)  # validation costs a host sync per site and step
    batches, image_size = image_batches(args, procedural)
    lom, geco = build(image_size, args.small)
    device = torch.device(args.device)
    lom.to(device)
    geco.to(device)
    optimiser = train(lom, geco, batches, args.steps, device, schedule)
    save_outputs(Path(args.out), lom, geco, optimiser, args)
    return lom
