"""An :class:`Architecture` — what a trained module is made of, without how it was trained —
and :func:`assemble`, which builds the module from it. Training builds its modules this
way, and a pretrained file stores an architecture beside its weights."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from lom_pyro import registry

__all__ = ["Architecture", "assemble", "lom_arguments"]

#: the LOM options of a config that configure one of its networks → that network's option
NETWORK_OPTIONS = {"slot_prior": {"prior_depth": "depth", "prior_width": "width"},
                   "scene_encoder": {"encoder_depth": "depth", "sum_pooling": "sum_pooling"},
                   "scale_net": {"scale_depth": "depth"}}


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
    scene_prior: str = "normal"                                # a name in lom_pyro.registry ("mixture": learnable)
    scene_prior_components: int = 10
    # a slot prior fitted after training ({"name", "options"}, lom-pyro fit-prior); the prior
    # lom_kwargs name stays its reference, which the guide aligns to
    fitted_slot_prior: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def lom_arguments(arch: Architecture, orderless: nn.Module) -> dict[str, Any]:
    """The keyword arguments of the LOM ``arch`` describes over ``orderless``: its
    ``lom_kwargs`` with every name (``variant``, ``slot_prior``, ``scene_encoder``,
    ``scale_net``, ``matching``, ``likelihood``) and network option (``prior_depth``, ...)
    turned into the component it names, through :mod:`lom_pyro.registry`."""
    kwargs = dict(arch.lom_kwargs)
    scene_dim = int(kwargs.get("scene_dim", 128))
    extra = {"components": arch.scene_prior_components} if registry.accepts(
        "scene_prior", arch.scene_prior, "components") else {}
    kwargs["scene_prior"] = registry.build("scene_prior", arch.scene_prior, scene_dim, **extra)
    names = registry.networks(kwargs.pop("variant", None), **{kind: kwargs.pop(kind, None) for kind in NETWORK_OPTIONS})
    options = {kind: {new: kwargs.pop(old) for old, new in table.items() if old in kwargs}
               for kind, table in NETWORK_OPTIONS.items()}
    share = bool(kwargs.get("share_prior_and_scale_nets", False))
    if share and names["scale_net"] != names["slot_prior"]:
        raise ValueError("share_prior_and_scale_nets needs scale_net and slot_prior of one kind, got "
                         f"{names['scale_net']!r} and {names['slot_prior']!r}")
    # The paper's networks are the LOM's defaults and are built by it, in its order; if any
    # network differs, all three are built here (prior, encoder, scale net: the same order).
    if names != registry.networks("paper") or any(options.values()):
        if share:
            del names["scale_net"]
        kwargs.update(registry.build_networks(int(orderless.num_slots), int(orderless.slot_dim), scene_dim, names,
                                              options))
    if "matching" in kwargs:
        kwargs["matcher"] = registry.lookup("matcher", kwargs.pop("matching"))
    if "likelihood" in kwargs:
        sigma = kwargs.pop("sigma", orderless.sigma)
        kwargs["likelihood"] = registry.build("likelihood", kwargs.pop("likelihood"), sigma,
                                              per_channel=orderless.mixture_per_channel)
    return kwargs


def assemble(arch: Architecture, lom_class: type | None = None) -> nn.Module:
    """The module ``arch`` describes, freshly initialised (from torch's global RNG): the
    orderless model alone (an :class:`~lom_pyro.models.alone.OrderlessAlone`), or ``lom_class``
    (:class:`~lom_pyro.models.LOM` or a subclass) over it. A name or keyword its component does
    not take is refused, naming it."""
    registry.lookup("orderless", arch.orderless)
    try:
        orderless = registry.build("orderless", arch.orderless, image_size=arch.image_size, **arch.orderless_kwargs)
    except ValueError as err:
        raise ValueError(f"orderless_kwargs {arch.orderless_kwargs}: {err}") from None
    if not arch.lom:
        from lom_pyro.models.alone import OrderlessAlone

        return OrderlessAlone(orderless)
    if lom_class is None:
        raise ValueError("this architecture is a LOM: give the class to build it with (lom_class=LOM)")
    kwargs = lom_arguments(arch, orderless)
    if arch.lom_decoder:  # the orderless decoder's architecture, narrower or shallower
        try:
            inspect.signature(orderless.make_decoder).bind(**arch.lom_decoder)
        except TypeError as err:
            raise ValueError(f"lom_decoder {arch.lom_decoder}: the {arch.orderless} model's make_decoder "
                             f"does not take these options ({err})") from err
        kwargs["decoder"] = orderless.make_decoder(**arch.lom_decoder)
    try:
        lom = lom_class(orderless, **kwargs)
    except TypeError as err:
        raise ValueError(f"lom_kwargs {arch.lom_kwargs}: {err}") from None
    if arch.fitted_slot_prior:
        fitted = arch.fitted_slot_prior
        lom.use_slot_prior(registry.build("slot_prior", fitted["name"], lom.num_slots, lom.slot_dim, lom.scene_dim,
                                          reference=lom.slot_prior, **fitted.get("options", {})))
    return lom
