"""An :class:`Architecture` — what a trained module is made of, without how it was trained —
and :func:`assemble`, which builds the module from it. Training builds its modules this
way, and a pretrained file stores an architecture beside its weights."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from lom_pyro.models.lom import LOM

__all__ = ["Architecture", "assemble", "ORDERLESS_CLASSES"]


def _emorl():
    from lom_pyro.orderless.emorl import EMORL

    return EMORL


def _genesis_v2():
    from lom_pyro.orderless.genesis_v2 import GenesisV2

    return GenesisV2


#: orderless model name → a function returning its class (imported only when used)
ORDERLESS_CLASSES = {"emorl": _emorl, "genesis_v2": _genesis_v2}


@dataclass(frozen=True)
class Architecture:
    """The constructor arguments of a LOM and its orderless model (or of the orderless model
    alone, ``lom=False``). Plain data: it round-trips through JSON and checkpoints."""

    orderless: str = "emorl"
    image_size: int = 64
    orderless_kwargs: dict[str, Any] = field(default_factory=dict)
    lom: bool = True
    lom_kwargs: dict[str, Any] = field(default_factory=dict)
    lom_decoder: dict[str, Any] = field(default_factory=dict)  # options of make_decoder for a different LOM decoder
    scene_prior: str = "normal"                                # or "mixture" (learnable mixture of Gaussians)
    scene_prior_components: int = 10
    # a slot prior fitted after training ({"name", "options"}, lom-pyro fit-prior); the prior
    # lom_kwargs name stays its reference, which the guide aligns to
    fitted_slot_prior: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def assemble(arch: Architecture) -> nn.Module:
    """The module ``arch`` describes, freshly initialised (from torch's global RNG).
    A keyword a constructor does not take is refused, naming the option."""
    if arch.orderless not in ORDERLESS_CLASSES:
        raise ValueError(f"orderless must be one of {sorted(ORDERLESS_CLASSES)}, got {arch.orderless!r}")
    try:
        orderless = ORDERLESS_CLASSES[arch.orderless]()(image_size=arch.image_size, **arch.orderless_kwargs)
    except TypeError as err:
        raise ValueError(f"orderless_kwargs {arch.orderless_kwargs}: {err}") from None
    if not arch.lom:
        return orderless
    kwargs = dict(arch.lom_kwargs)
    kwargs.setdefault("sigma", getattr(orderless, "sigma", 0.7))
    if arch.scene_prior == "mixture":
        from lom_pyro.priors import MixtureScenePrior

        kwargs["scene_prior"] = MixtureScenePrior(kwargs.get("scene_dim", 128), arch.scene_prior_components)
    elif arch.scene_prior != "normal":
        raise ValueError(f"scene_prior must be 'normal' or 'mixture', got {arch.scene_prior!r}")
    if arch.lom_decoder:  # the orderless decoder's architecture, narrower or shallower
        try:
            inspect.signature(orderless.make_decoder).bind(**arch.lom_decoder)
        except TypeError as err:
            raise ValueError(f"lom_decoder {arch.lom_decoder}: the {arch.orderless} model's make_decoder "
                             f"does not take these options ({err})") from err
        kwargs["decoder"] = orderless.make_decoder(**arch.lom_decoder)
    try:
        lom = LOM(orderless, **kwargs)
    except TypeError as err:
        raise ValueError(f"lom_kwargs {arch.lom_kwargs}: {err}") from None
    if arch.fitted_slot_prior:
        from lom_pyro.slot_priors import build_slot_prior

        fitted = arch.fitted_slot_prior
        lom.use_slot_prior(build_slot_prior(fitted["name"], lom.num_slots, lom.slot_dim, lom.scene_dim,
                                            reference=lom.slot_prior, **fitted.get("options", {})))
    return lom
