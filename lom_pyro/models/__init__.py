"""Generative models built from the pieces below them (nn, priors, handlers, orderless)."""

from lom_pyro.models.alone import OrderlessAlone
from lom_pyro.models.lom import LOM, Encoding, Generated
from lom_pyro.models.programs import as_trained, programs

__all__ = ["LOM", "OrderlessAlone", "Encoding", "Generated", "programs", "as_trained"]
