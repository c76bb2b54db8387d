"""Generative models built from the pieces below them (nn, priors, handlers, orderless)."""

from lom_pyro.models.lom import LOM, Encoding, Generated

__all__ = ["LOM", "Encoding", "Generated"]
