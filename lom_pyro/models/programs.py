"""The model/guide pair that trains a module: a LOM's own, or an orderless model's alone."""

from __future__ import annotations

from typing import Any

from torch import nn

from lom_pyro.models.lom import LOM
from lom_pyro.orderless.base import standalone

__all__ = ["programs"]


def programs(module: nn.Module) -> tuple[Any, Any]:
    """``(model, guide)`` of a :class:`LOM`, or of an orderless model trained alone."""
    if isinstance(module, LOM):
        return module.model, module.guide
    pair = standalone(module)
    return pair.model, pair.guide
