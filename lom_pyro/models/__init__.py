"""Generative models built from the pieces below them (nn, priors, handlers, orderless)."""

from lom_pyro.models.lom import LOM, Encoding, Generated
from lom_pyro.models.programs import programs

__all__ = ["LOM", "Encoding", "Generated", "programs"]
