"""Auxiliary orderless slot VAEs (§3.2, appendix A.4.1). Never imports ``lom_pyro.models``."""

from lom_pyro.orderless.base import OrderlessModel, Plates, SlotPosterior, make_plates, standalone
from lom_pyro.orderless.emorl import EMORL
from lom_pyro.orderless.genesis_v2 import GenesisV2

__all__ = ["OrderlessModel", "Plates", "SlotPosterior", "make_plates", "standalone", "EMORL", "GenesisV2"]
