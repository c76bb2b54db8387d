"""The LOM's inference networks (§3.2) as components: each is built from the LOM's sizes
``(num_slots, slot_dim, scene_dim)`` and its own options, so that a LOM can be given any of
them, and :mod:`lom_pyro.registry` can name them.

* A **scene encoder** ``g_φ`` maps the orderless posterior means ``(B, K, Dz)`` to a hidden
  scene vector ``(B, Ds)``, whatever the order of the slots; the LOM's heads read μ and σ of
  ``q(s | ·)`` from it.
* An **order-aware scale network** ``f'_φ`` maps ``(s (B, Ds), μ_π(1..K−1) (B, K−1, Dz))`` to
  ``(B, K, Dz)``; output k may read only the slots before k. The LOM's head ``w_φ`` turns it
  into the posterior scales.
"""

from __future__ import annotations

from torch import nn

from lom_pyro.nn.attention import CausalTransformer, SetEncoder
from lom_pyro.nn.recurrent import LSTMChain
from lom_pyro.nn.relation import RelationEncoder

__all__ = ["set_scene_encoder", "relation_scene_encoder", "transformer_scales", "lstm_scales"]


def set_scene_encoder(num_slots: int, slot_dim: int, scene_dim: int, *, depth: int = 3,
                      sum_pooling: bool = True) -> nn.Module:
    """The paper's ``g_φ``: ``depth`` SA blocks over the slots and a scene token, summed."""
    return SetEncoder(slot_dim, scene_dim, depth=depth, sum_pooling=sum_pooling)


def relation_scene_encoder(num_slots: int, slot_dim: int, scene_dim: int, *, depth: int = 3) -> nn.Module:
    """SRI's ``g_φ``: ``depth`` blocks of relation attention."""
    return RelationEncoder(slot_dim, scene_dim, depth=depth)


def transformer_scales(num_slots: int, slot_dim: int, scene_dim: int, *, depth: int = 2) -> nn.Module:
    """The paper's ``f'_φ``: a causal transformer of ``depth`` SA blocks over ``[s, μ_π(1..K−1)]``."""
    return CausalTransformer(scene_dim, slot_dim, num_slots, depth=depth, learned_tokens=False)


def lstm_scales(num_slots: int, slot_dim: int, scene_dim: int, *, hidden: int | None = None) -> nn.Module:
    """SRI's ``f'_φ``: an LSTM over ``[s, μ_π(1..K−1)]`` (width ``hidden``, default 4·Dz)."""
    return LSTMChain(scene_dim, slot_dim, hidden)
