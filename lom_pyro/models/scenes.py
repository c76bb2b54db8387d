"""What a model returns: decoded scenes (:class:`Generated`) and a batch's posterior
(:class:`Encoding`). Plain data, shared by the LOM and the orderless baseline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from lom_pyro.ops import compose
from lom_pyro.orderless.base import SlotPosterior

__all__ = ["Generated", "Encoding", "decoded"]


@dataclass(frozen=True)
class Generated:
    """Decoded scenes.

    :ivar images: mean images ``(N, C, H, W)``.
    :ivar masks: slot masks ``(N, K, 1, H, W)`` (softmax over K).
    :ivar components: per-slot RGB ``(N, K, C, H, W)``.
    :ivar s: scene latents ``(N, Ds)``.
    :ivar z: ordered slots ``(N, K, Dz)``.
    """

    images: Tensor
    masks: Tensor
    components: Tensor
    s: Tensor
    z: Tensor


@dataclass(frozen=True)
class Encoding:
    """The posterior of a batch (one guide run).

    :ivar scene_loc, scene_scale: ``q(s | x)`` ``(B, Ds)``.
    :ivar s: the scene latent the alignment used ``(B, Ds)``.
    :ivar slots_loc, slots_scale: the ordered slot posterior ``(B, K, Dz)``.
    :ivar permutation: ``(B, K)``, ordered slot k ← orderless slot ``permutation[b, k]``.
    :ivar orderless: the orderless posterior.
    """

    scene_loc: Tensor
    scene_scale: Tensor
    s: Tensor
    slots_loc: Tensor
    slots_scale: Tensor
    permutation: Tensor
    orderless: SlotPosterior


def decoded(decode: Callable[[Tensor], tuple[Tensor, Tensor]], z: Tensor, s: Tensor | None) -> Generated:
    """Decode slots ``z (N, K, Dz)`` with ``decode`` and composite them; ``s`` is carried along."""
    rgb, logits = decode(z)
    images, masks = compose(rgb, logits)
    return Generated(images=images, masks=masks, components=rgb, s=s, z=z)
