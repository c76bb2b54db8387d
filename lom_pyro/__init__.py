"""lom_pyro — Latent Object Models as composable Pyro programs.

>>> from lom_pyro import LOM   # doctest: +SKIP
"""

from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _version

from lom_pyro import registry, sites
from lom_pyro.handlers import align, free_bits, order_aware_scale, stop_gradient
from lom_pyro.infer import GECO, LOMELBO, GECOConfig
from lom_pyro.models import LOM
from lom_pyro.ops import greedy_match, hungarian_match, slerp
from lom_pyro.orderless import EMORL, GenesisV2, OrderlessModel, SlotPosterior, standalone
from lom_pyro.priors import MixtureScenePrior, StandardNormalPrior

__all__ = [
    "LOM", "EMORL", "GenesisV2", "LOMELBO", "GECO", "GECOConfig",
    "align", "free_bits", "order_aware_scale", "stop_gradient",
    "greedy_match", "hungarian_match", "slerp",
    "OrderlessModel", "SlotPosterior", "standalone",
    "MixtureScenePrior", "StandardNormalPrior", "registry", "sites",
]

try:  # the installed distribution's version; a source tree on sys.path has none
    __version__ = _version("lom_pyro")
except _NotInstalled:
    __version__ = "0+unknown"
