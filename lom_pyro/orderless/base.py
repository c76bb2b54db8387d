"""What an orderless slot VAE must provide to sit under a LOM (§3.2, docs/design.md §4).

An orderless model is a pair of Pyro programs over an image batch ``x (B, C, H, W)``:

* ``model(x, plates)`` — its prior over slot latents and its own image likelihood,
  observed at :data:`~lom_pyro.sites.ORDERLESS_OBS` (more observation sites are
  allowed, e.g. one per refinement step);
* ``guide(x, plates)`` — its posterior; the slot posterior that the LOM consumes is the
  site :data:`~lom_pyro.sites.ORDERLESS_SLOTS`, a ``Normal(loc, scale).to_event(1)`` with
  batch shape ``(B, K)``, and the guide returns it as a :class:`SlotPosterior`.

Both run inside the caller's ``plates`` (batch at ``dim=-2``, slots at ``dim=-1``) so
that one Pyro ELBO over the LOM and the orderless model is the sum of both ELBOs
(docs/design.md §3). Every latent site should carry ``infer={"geco_group": ORDERLESS_OBS}``
so a GECO objective constrains the orderless reconstruction separately from the LOM's;
an observation site without ``geco_group`` forms its own group, outside the constraint
unless a goal names it (EMORL's intermediate refinement images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from pyro.distributions.util import is_validation_enabled
from torch import Tensor, nn

from lom_pyro.infer.geco import GECOConfig
from lom_pyro.plates import Plates, make_plates

__all__ = ["SlotPosterior", "Plates", "OrderlessModel", "OrderlessDefaults", "missing_members", "make_plates",
           "standalone", "check_images", "size_overrides", "check_positive_integers"]


@dataclass(frozen=True)
class SlotPosterior:
    """An orderless slot posterior ``q(o_{1:K} | x)`` and one sample of it.

    :ivar loc: means ``μ^o`` ``(B, K, Dz)``.
    :ivar scale: standard deviations ``(B, K, Dz)``.
    :ivar sample: the sample drawn at the slot site ``(B, K, Dz)``.
    """

    loc: Tensor
    scale: Tensor
    sample: Tensor

    def detach(self) -> "SlotPosterior":
        return SlotPosterior(self.loc.detach(), self.scale.detach(), self.sample.detach())


@runtime_checkable
class OrderlessModel(Protocol):
    """Structural type of an auxiliary orderless VAE (e.g. :class:`lom_pyro.EMORL`): every
    member that the LOM, training and evaluation read. ``isinstance(m, OrderlessModel)``
    checks that all are present; :class:`OrderlessDefaults` supplies the last three."""

    num_slots: int
    slot_dim: int
    image_shape: tuple[int, int, int]
    #: σ of its image likelihood: a LOM's default σ, and what GECO goals are checked against
    sigma: float
    #: a mixture likelihood mixes each colour channel (True) or whole pixels; a LOM's mixture does the same
    mixture_per_channel: bool
    #: its own decoder (``lom_decoder_init='orderless'`` starts the LOM decoder as a copy)
    decoder: nn.Module

    def model(self, x: Tensor, plates: Plates) -> None: ...

    def guide(self, x: Tensor, plates: Plates) -> SlotPosterior: ...

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Its own decoder: ``z (B, K, Dz) -> (rgb (B, K, C, H, W), mask_logits (B, K, 1, H, W))``,
        RGB in the frame the likelihood observes."""
        ...

    def make_decoder(self, **overrides) -> nn.Module:
        """A fresh decoder of the same architecture (own weights) for the LOM (docs/design.md §4):
        ``z (B, K, Dz) -> (rgb (B, K, C, H, W), mask_logits (B, K, 1, H, W))``.
        ``overrides`` change its sizes (EMORL: ``hidden``, ``num_layers``) for a smaller
        LOM decoder; a model without such options raises ``TypeError`` for any."""
        ...

    def observation(self, x: Tensor) -> Tensor:
        """Input images ``[-1, 1]`` in the frame the likelihood observes (EMORL: [0, 1]); the LOM
        observes the same frame, and figures map it back to [0, 1]."""
        ...

    def geco_config(self, goal: float, *, step_size: float, speedup: float | None,
                    warmup_steps: int) -> GECOConfig:
        """Its GECO constraint on the reconstruction with this ``goal`` (EMORL's own form;
        GENESIS-v2 takes the core one)."""
        ...


class OrderlessDefaults:
    """The usual answers to the last three members of :class:`OrderlessModel`, for a model
    to inherit: the likelihood observes the images as they come, a mixture mixes whole
    pixels, and the GECO constraint is the core (GENESIS) form with β ≤ 1."""

    mixture_per_channel: bool = False

    def observation(self, x: Tensor) -> Tensor:
        return x

    def geco_config(self, goal: float, *, step_size: float = 1e-6, speedup: float | None = None,
                    warmup_steps: int = 0) -> GECOConfig:
        return GECOConfig(goal=goal, step_size=step_size, speedup=speedup, warmup_steps=warmup_steps, beta_max=1.0)


_MEMBERS = (*OrderlessModel.__annotations__, "model", "guide", "decode", "make_decoder", "observation", "geco_config")


def missing_members(module: object) -> list[str]:
    """The members of :class:`OrderlessModel` that ``module`` lacks."""
    return [name for name in _MEMBERS if not hasattr(module, name)]


class _Standalone(nn.Module):
    def __init__(self, orderless: OrderlessModel) -> None:
        super().__init__()
        self.orderless = orderless

    def model(self, x: Tensor) -> None:
        self.orderless.model(x, make_plates(x.shape[0], self.orderless.num_slots))

    def guide(self, x: Tensor) -> SlotPosterior:
        return self.orderless.guide(x, make_plates(x.shape[0], self.orderless.num_slots))


def standalone(orderless: OrderlessModel) -> _Standalone:
    """Wrap an orderless model as an ordinary ``model(x)`` / ``guide(x)`` pair, building
    its own plates: the "EMORL alone" baseline trains with this.

    >>> # svi = SVI(standalone(emorl).model, standalone(emorl).guide, ...)
    """
    return _Standalone(orderless)


def check_images(x: Tensor, image_shape: tuple[int, int, int]) -> None:
    """One sentence unless ``x`` is a batch of finite images ``(B, *image_shape)``."""
    if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be images of shape (B, {', '.join(map(str, image_shape))}), got {got}")
    if is_validation_enabled() and not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite (images in [-1, 1])")


def check_positive_integers(values: dict[str, object]) -> None:
    """One sentence naming the first of ``values`` (name → value) that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def size_overrides(**sizes: int | None) -> dict[str, int]:
    """The sizes given (not None) for a smaller decoder, each checked to be a positive integer."""
    given = {name: value for name, value in sizes.items() if value is not None}
    check_positive_integers(given)
    return given
