"""Several processes through ``torchrun`` and PyTorch's own DistributedDataParallel.

``torchrun --nproc-per-node N -m lom_pyro.cli train ...`` starts N ranks; each builds the
same module (DDP broadcasts rank 0's weights), takes its share of every global batch
(``batch_size`` is the global batch, as the paper's "batch 32" over 8 GPUs), and calls
:class:`LossModule` wrapped in DDP — a module whose ``forward`` computes the objective, so
that DDP's hooks all-reduce the gradients (``SVI.step`` bypasses them: ranks would
silently diverge, docs/design.md §9). GECO all-reduces its constraint itself
(:class:`~lom_pyro.infer.geco.GECOState`). Rank 0 alone logs, writes figures and
checkpoints; decisions to stop are all-reduced so every rank stops at the same step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lom_pyro.models.programs import programs

__all__ = ["Ranks", "join", "leave", "LossModule", "wrap", "any_rank", "check_in_sync"]


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False    # join() created the process group, so leave() destroys it

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def join(device: str) -> Ranks:
    """Join the process group ``torchrun`` describes in the environment (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR/PORT``); a plain run is rank 0 of 1.
    NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 and not dist.is_initialized():
        return Ranks()
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
    return Ranks(dist.get_rank(), dist.get_world_size(), local, owns_group=created)


def leave(ranks: Ranks) -> None:
    """Destroy the process group :func:`join` created, once every rank has got here (the end
    of training), rather than at interpreter shutdown, where a rank that exits first tears its
    gloo group down under a live peer (our torchrun test once lost rank 1 to a SIGABRT at exit)."""
    if ranks.owns_group and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class LossModule(nn.Module):
    """What DDP wraps: ``forward(x)`` → ``(loss, logs)`` of ``objective`` over the trained
    module's model and guide. The objective (its GECO multipliers) is not a submodule:
    DDP syncs the trained parameters; GECO syncs its own constraint."""

    def __init__(self, trained: nn.Module, objective: Any) -> None:
        super().__init__()
        self.trained = trained
        self.__dict__["objective"] = objective  # deliberately not registered

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        model, guide = programs(self.trained)
        return self.objective.compute(model, guide, x)


def wrap(loss: LossModule, ranks: Ranks, device: torch.device) -> nn.Module:
    """``loss`` itself in one process, else in DistributedDataParallel."""
    if not ranks.distributed:
        return loss
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else ranks.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(loss, device_ids=ids)


def any_rank(flags: tuple[bool, ...], ranks: Ranks) -> tuple[bool, ...]:
    """Each flag true on every rank when it is true on any (one tiny all-reduce)."""
    if not ranks.distributed:
        return flags
    value = torch.tensor([float(f) for f in flags], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return tuple(bool(v > 0) for v in value.tolist())


@torch.no_grad()
def check_in_sync(module: nn.Module, ranks: Ranks) -> None:
    """Every rank must hold exactly rank 0's parameters (checked at each checkpoint)."""
    if not ranks.distributed:
        return
    mine = torch.cat([p.detach().reshape(-1) for p in module.parameters()]).float()
    theirs = mine.clone()
    dist.broadcast(theirs, src=0)
    differs = torch.tensor([float(not torch.equal(mine, theirs))], device=mine.device)
    dist.all_reduce(differs, op=dist.ReduceOp.MAX)
    if differs.item() > 0:
        raise RuntimeError(f"rank {ranks.rank}: parameters differ between ranks (max difference "
                           f"{float((mine - theirs).abs().max()):.3g}); gradients were not synchronised")
