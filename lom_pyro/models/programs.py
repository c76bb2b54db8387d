"""The model/guide pair that trains a module: a LOM's own, or an orderless model's alone."""

from __future__ import annotations

from typing import Any

from torch import nn

from lom_pyro.models.alone import OrderlessAlone
from lom_pyro.models.lom import LOM

__all__ = ["programs", "as_trained"]


def as_trained(module: nn.Module) -> LOM | OrderlessAlone:
    """A :class:`LOM` or an :class:`OrderlessAlone` as it is; a bare orderless model as
    trained alone (so the functions that take a module accept one too)."""
    return module if isinstance(module, (LOM, OrderlessAlone)) else OrderlessAlone(module)


def programs(module: nn.Module) -> tuple[Any, Any]:
    """``(model, guide)`` of a :class:`LOM` or an :class:`OrderlessAlone` (a bare orderless
    model: trained alone)."""
    module = as_trained(module)
    return module.model, module.guide
