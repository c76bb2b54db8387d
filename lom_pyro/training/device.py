"""Where a run or an evaluation computes: a ``--device`` checked before any work, so a
device that does not exist, or a switch that only slows it, is one sentence up front
rather than an exception after minutes of setup."""

from __future__ import annotations

import torch

__all__ = ["check_device", "check_compile"]


def check_device(text: str, option: str = "--device") -> torch.device:
    """The torch device ``text`` names, if this machine has it (cpu, cuda, cuda:N)."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"{option} {text}: not a device name; expected cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{option} {text}: this machine has no CUDA device that torch can use; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{option} {text}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    elif device.type != "cpu":
        raise ValueError(f"{option} {text}: lom_pyro runs on cpu or cuda, not {device.type}")
    return device


def check_compile(compile_networks: bool, device: torch.device) -> None:
    """Refuse ``--compile`` on the CPU, where it does not pay in the training loop
    (docs/benchmarks/compile_cpu.md)."""
    if compile_networks and device.type == "cpu":
        raise ValueError("--compile is refused on the CPU, where it does not pay: measured here, compiled steps "
                         "were at most 10 % faster after a 30 s compile (4 % with the training loop's figures), and "
                         "an earlier probe measured them 3-5 times slower (docs/benchmarks/compile_cpu.md); leave it "
                         "off, or use it with --device cuda")
