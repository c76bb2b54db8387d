"""The one place where names meet components.

A :class:`~lom_pyro.models.LOM` is given objects (a slot prior, a scene encoder, ...); the
command line, config files and pretrained files name them instead. This module maps each
name to what builds it, per kind, and is the only list of names in the library:
``--scene-prior``, ``--prior`` of ``fit-prior``, a config's ``lom_kwargs`` and a
pretrained file's architecture are all read through it.

=================  ====================================================  =========================
kind               what ``build(kind, name, ...)`` calls                 names shipped
=================  ====================================================  =========================
``orderless``      ``cls(image_size=..., **options)``                    emorl, genesis_v2
``scene_prior``    ``factory(scene_dim, **options)``                     normal, mixture
``slot_prior``     ``cls(num_slots, slot_dim, scene_dim, **options)``    transformer, lstm, mdn, diffusion,
                                                                         slot_diffusion
``scene_encoder``  ``factory(num_slots, slot_dim, scene_dim, **options)``  transformer, relation
``scale_net``      ``factory(num_slots, slot_dim, scene_dim, **options)``  transformer, lstm
``matcher``        the matching function itself: cost ``(B, K, K)`` →    greedy, hungarian
                   permutation ``(B, K)``
``likelihood``     ``cls(sigma, per_channel=...)``                       gaussian, mixture
=================  ====================================================  =========================

A **bundle** names one choice per network kind: ``"paper"`` (§3) and ``"sri"`` (the
authors' later SRI code: an autoregressive LSTM slot prior, an LSTM scale net and relation
attention in the scene encoder)::

    LOM(emorl, scene_dim=32, **registry.build_networks(6, 32, 32, registry.networks("sri")))

:func:`register` adds your own component under a name.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from lom_pyro.handlers import MATCHERS
from lom_pyro.likelihoods import LIKELIHOODS
from lom_pyro.nn.inference import lstm_scales, relation_scene_encoder, set_scene_encoder, transformer_scales
from lom_pyro.priors import MixtureScenePrior, StandardNormalPrior
from lom_pyro.slot_priors import (AutoregressivePrior, ChainPrior, DiffusionPrior, FittedSlotPrior, MixtureDensityPrior,
                                  SlotDiffusionPrior)

__all__ = ["KINDS", "BUNDLES", "NETWORKS", "register", "unregister", "register_slot_prior", "names", "lookup", "build",
           "name_of", "networks", "build_networks", "fitted_slot_priors", "accepts"]


def _emorl():
    from lom_pyro.orderless.emorl import EMORL

    return EMORL


def _genesis_v2():
    from lom_pyro.orderless.genesis_v2 import GenesisV2

    return GenesisV2


class _Lazy:
    """An orderless class imported only when built (they pull in large networks)."""

    def __init__(self, load: Callable[[], type]) -> None:
        self.load = load

    def __call__(self, *args, **options):
        return self.load()(*args, **options)


#: kind → name → component (the matchers' and likelihoods' tables are the ones the handlers
#: and the orderless models read, so a name registered here is one name everywhere)
_TABLE: dict[str, dict[str, Callable[..., Any]]] = {
    "orderless": {"emorl": _Lazy(_emorl), "genesis_v2": _Lazy(_genesis_v2)},
    "scene_prior": {"normal": StandardNormalPrior, "mixture": MixtureScenePrior},
    "slot_prior": {"transformer": ChainPrior, "lstm": AutoregressivePrior, "mdn": MixtureDensityPrior,
                   "diffusion": DiffusionPrior, "slot_diffusion": SlotDiffusionPrior},
    "scene_encoder": {"transformer": set_scene_encoder, "relation": relation_scene_encoder},
    "scale_net": {"transformer": transformer_scales, "lstm": lstm_scales},
    "matcher": MATCHERS,
    "likelihood": LIKELIHOODS,
}
KINDS = tuple(_TABLE)
#: the kinds a bundle chooses, in the order a LOM builds them
NETWORKS = ("slot_prior", "scene_encoder", "scale_net")

#: named sets of the LOM's three networks
BUNDLES: dict[str, dict[str, str]] = {
    "paper": {"slot_prior": "transformer", "scene_encoder": "transformer", "scale_net": "transformer"},
    "sri": {"slot_prior": "lstm", "scene_encoder": "relation", "scale_net": "lstm"},
}


def _kind(kind: str) -> dict[str, Callable[..., Any]]:
    if kind not in _TABLE:
        raise ValueError(f"component kind {kind!r} is not one of {KINDS}")
    return _TABLE[kind]


def register(kind: str, name: str, component: Callable[..., Any]) -> None:
    """Make ``component`` buildable as ``build(kind, name, ...)`` (see the table above for
    what it is called with). A name already taken by another component is refused."""
    table = _kind(kind)
    if name in table and table[name] is not component:
        raise ValueError(f"{kind} name {name!r} is taken by {getattr(table[name], '__name__', table[name])}")
    table[name] = component


def unregister(kind: str, name: str) -> None:
    """Forget the component registered as ``name`` (an unknown name in one sentence)."""
    lookup(kind, name)
    del _TABLE[kind][name]


def register_slot_prior(name: str, cls: Callable[..., Any]) -> None:
    """``register("slot_prior", name, cls)``: ``cls(num_slots, slot_dim, scene_dim, **options)``."""
    register("slot_prior", name, cls)


def names(kind: str) -> tuple[str, ...]:
    """The names of ``kind``, in the order they were registered."""
    return tuple(_kind(kind))


def lookup(kind: str, name: str) -> Callable[..., Any]:
    """The component registered as ``name``; an unknown name in one sentence."""
    table = _kind(kind)
    if name not in table:
        raise ValueError(f"{kind.replace('_', ' ')} {name!r} is not one of {sorted(table)}")
    return table[name]


def build(kind: str, name: str, *args: Any, **options: Any) -> Any:
    """``lookup(kind, name)(*args, **options)``; an option it does not take in one sentence."""
    component = lookup(kind, name)
    try:
        return component(*args, **options)
    except TypeError as err:
        shown = {k: v for k, v in options.items() if isinstance(v, (bool, int, float, str, type(None)))}
        raise ValueError(f"{kind.replace('_', ' ')} {name!r} does not take the options {shown} ({err})") from None


def name_of(kind: str, component: Any) -> str:
    """The name ``component`` (an instance, or the function itself) is registered under, else its
    class name."""
    for name, made in _kind(kind).items():
        if made is component or (isinstance(made, type) and type(component) is made):
            return name
    return type(component).__name__


def networks(variant: str | None = None, **chosen: str | None) -> dict[str, str]:
    """The names of the three networks: the bundle ``variant``'s (``"paper"`` if ``None``),
    with those ``chosen`` instead; a choice must agree with a bundle named explicitly."""
    if variant is not None and variant not in BUNDLES:
        raise ValueError(f"variant must be one of {sorted(BUNDLES)}, got {variant!r}")
    out = dict(BUNDLES[variant or "paper"])
    for kind, name in chosen.items():
        if kind not in NETWORKS:
            raise ValueError(f"a bundle chooses {NETWORKS}, not {kind!r}")
        if name is None:
            continue
        lookup(kind, name)
        if variant is not None and name != out[kind]:
            raise ValueError(f"variant={variant!r} has {kind}={out[kind]!r}, got {kind}={name!r}")
        out[kind] = name
    return out


def build_networks(num_slots: int, slot_dim: int, scene_dim: int, chosen: dict[str, str],
                   options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The networks named in ``chosen`` (e.g. ``networks("sri")``), built in the LOM's order with
    their ``options``, as keyword arguments of :class:`~lom_pyro.models.LOM`."""
    options = options or {}
    return {kind: build(kind, chosen[kind], num_slots, slot_dim, scene_dim, **options.get(kind, {}))
            for kind in NETWORKS if kind in chosen}


def fitted_slot_priors() -> tuple[str, ...]:
    """The slot priors fitted after training (``lom-pyro fit-prior --prior NAME``)."""
    return tuple(name for name, cls in _TABLE["slot_prior"].items()
                 if isinstance(cls, type) and issubclass(cls, FittedSlotPrior))


def accepts(kind: str, name: str, option: str) -> bool:
    """Whether the component ``name`` takes the keyword ``option``."""
    component = lookup(kind, name)
    target = component.load() if isinstance(component, _Lazy) else component
    params = inspect.signature(target).parameters
    return option in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
