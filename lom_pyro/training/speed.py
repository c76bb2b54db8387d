"""Faster networks, same program: bf16 autocast and ``torch.compile`` applied to the
plain-torch networks inside a module (encoders, slot attention, transformers, decoders),
never to the Pyro program around them — distributions, log-densities, KLs and GECO stay
eager and float32 (compiling the whole Pyro loss breaks the graph 16 times and runs 22×
slower, docs/design.md §9)."""

from __future__ import annotations

import functools
from typing import Any

import torch
from pyro.nn import PyroModule
from torch import nn

__all__ = ["network_parts", "autocast_networks", "compile_networks", "AMP_DTYPES"]

AMP_DTYPES = {"bf16": torch.bfloat16}


def network_parts(module: nn.Module) -> list[nn.Module]:
    """The plain-torch networks with parameters directly under the Pyro modules of ``module``."""
    parts = []
    for owner in module.modules():
        if isinstance(owner, PyroModule):
            parts += [child for child in owner.children()
                      if not isinstance(child, PyroModule) and any(True for _ in child.parameters())]
    return parts


def _to_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.float()
    if isinstance(value, (tuple, list)):
        return type(value)(_to_float32(v) for v in value)
    return value


def autocast_networks(module: nn.Module, dtype: torch.dtype, device_type: str) -> None:
    """Run each network under autocast to ``dtype``; its outputs come back as float32."""
    for part in network_parts(module):
        forward = part.forward

        @functools.wraps(forward)
        def mixed(*args, _forward=forward, **kwargs):
            with torch.autocast(device_type, dtype=dtype):
                return _to_float32(_forward(*args, **kwargs))

        part.forward = mixed   # an instance attribute: state_dict and checkpoints are unchanged


def compile_networks(module: nn.Module, **options: Any) -> None:
    """``torch.compile`` each network in place (``nn.Module.compile``; weights and
    state_dict keys unchanged)."""
    import torch._functorch.config

    # EMORL's refinement takes gradients through the decoder with retain_graph=True; once a
    # figure (no gradients, eval mode) has recompiled it, a backward with donated buffers
    # refuses that, and training failed at its next step (docs/benchmarks/compile_cpu.md)
    torch._functorch.config.donated_buffer = False
    for part in network_parts(module):
        part.compile(**options)
