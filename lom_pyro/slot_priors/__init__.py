"""Slot priors ``p(z_{1:K} | s)``: components a :class:`~lom_pyro.models.LOM` is given.

Two are trained with the LOM (the paper's :class:`ChainPrior`, SRI's
:class:`AutoregressivePrior`); two are fitted afterwards to a trained LOM's aggregate
posterior by ``lom-pyro fit-prior`` (:class:`MixtureDensityPrior`, :class:`DiffusionPrior`).
A prior of your own is any module with the :class:`SlotPrior` methods, passed as
``LOM(..., slot_prior=MyPrior(...))``; :func:`register_slot_prior` gives it a name the
command line and the config files can use.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from lom_pyro.slot_priors.base import SlotPrior, check_slot_prior
from lom_pyro.slot_priors.diffusion import DiffusionPrior
from lom_pyro.slot_priors.fitted import FittedSlotPrior, trained_prior
from lom_pyro.slot_priors.gaussian import AutoregressivePrior, AutoregressiveSlots, ChainPrior
from lom_pyro.slot_priors.mixture_density import MixtureDensityPrior

__all__ = ["SlotPrior", "ChainPrior", "AutoregressivePrior", "AutoregressiveSlots", "MixtureDensityPrior",
           "DiffusionPrior", "FittedSlotPrior", "SLOT_PRIORS", "FITTED_PRIORS", "register_slot_prior",
           "build_slot_prior", "check_slot_prior", "slot_prior_name", "trained_prior"]

#: name → class, for the command line and config files (``"transformer"`` is the paper's
#: chain, named as ``LOM(slot_prior=...)`` names it)
SLOT_PRIORS: dict[str, Callable[..., nn.Module]] = {
    "transformer": ChainPrior, "lstm": AutoregressivePrior, "mdn": MixtureDensityPrior, "diffusion": DiffusionPrior,
}
#: the names fitted to a trained LOM's posterior (``lom-pyro fit-prior --prior NAME``)
FITTED_PRIORS = ("mdn", "diffusion")


def register_slot_prior(name: str, cls: Callable[..., nn.Module]) -> None:
    """Make ``cls(num_slots, slot_dim, scene_dim, **options)`` buildable by ``name``."""
    if name in SLOT_PRIORS and SLOT_PRIORS[name] is not cls:
        raise ValueError(f"slot prior name {name!r} is taken by {SLOT_PRIORS[name].__name__}")
    SLOT_PRIORS[name] = cls


def slot_prior_name(prior: nn.Module) -> str:
    """The registered name of ``prior``'s class (its class name if it has none)."""
    return next((name for name, cls in SLOT_PRIORS.items() if type(prior) is cls), type(prior).__name__)


def build_slot_prior(name: str, num_slots: int, slot_dim: int, scene_dim: int, **options) -> nn.Module:
    """The slot prior registered as ``name``; an unknown name or option in one sentence."""
    if name not in SLOT_PRIORS:
        raise ValueError(f"slot prior {name!r} is not one of {sorted(SLOT_PRIORS)}")
    try:
        return SLOT_PRIORS[name](num_slots, slot_dim, scene_dim, **options)
    except TypeError as err:
        shown = {k: v for k, v in options.items() if not isinstance(v, nn.Module)}
        raise ValueError(f"slot prior {name!r} does not take the options {shown} ({err})") from None
