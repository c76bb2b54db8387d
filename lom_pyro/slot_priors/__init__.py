"""Slot priors ``p(z_{1:K} | s)``: components a :class:`~lom_pyro.models.LOM` is given.

Two are trained with the LOM (the paper's :class:`ChainPrior`, SRI's
:class:`AutoregressivePrior`); three are fitted afterwards to a trained LOM's aggregate
posterior by ``lom-pyro fit-prior`` (:class:`MixtureDensityPrior`, :class:`DiffusionPrior`,
:class:`SlotDiffusionPrior`).
A prior of your own is any module with the :class:`SlotPrior` methods, passed as
``LOM(..., slot_prior=MyPrior(...))``; :func:`lom_pyro.registry.register_slot_prior` gives it
a name the command line and the config files can use.
"""

from __future__ import annotations

from lom_pyro.slot_priors.base import SlotPrior, check_slot_prior
from lom_pyro.slot_priors.diffusion import DiffusionChain, DiffusionPrior, SlotDiffusionPrior
from lom_pyro.slot_priors.fitted import FittedSlotPrior, trained_prior
from lom_pyro.slot_priors.gaussian import AutoregressivePrior, AutoregressiveSlots, ChainPrior
from lom_pyro.slot_priors.mixture_density import MixtureDensityPrior

__all__ = ["SlotPrior", "ChainPrior", "AutoregressivePrior", "AutoregressiveSlots", "MixtureDensityPrior",
           "DiffusionChain", "DiffusionPrior", "SlotDiffusionPrior", "FittedSlotPrior", "check_slot_prior",
           "trained_prior"]
