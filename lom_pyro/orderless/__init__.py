"""Auxiliary orderless slot VAEs (§3.2, appendix A.4.1). Never imports ``lom_pyro.models``."""

from lom_pyro.orderless.base import OrderlessDefaults, OrderlessModel, SlotPosterior, standalone
from lom_pyro.orderless.emorl import EMORL
from lom_pyro.orderless.genesis_v2 import GenesisV2
from lom_pyro.plates import Plates, make_plates

__all__ = ["OrderlessModel", "OrderlessDefaults", "Plates", "SlotPosterior", "make_plates", "standalone", "EMORL",
           "GenesisV2"]
