"""Objectives: the LOM ELBO with free bits, and GECO."""

from lom_pyro.infer.elbo import LOMELBO, SiteTerm
from lom_pyro.infer.geco import GECO, GECOConfig, GECOState

__all__ = ["LOMELBO", "SiteTerm", "GECO", "GECOConfig", "GECOState"]
