"""Relation-attention set encoder: the scene encoder of the authors' SRI variant of the LOM,
a permutation-invariant alternative to :class:`~lom_pyro.nn.attention.SetEncoder`.

Each block lets slot i attend over every slot j with a value computed from the pair,
``v_ij = MLP([x_i, x_i − x_j])``::

    a_ij = softmax_j(q(x_i) · k(x_j) / sqrt(D));   x_i ← x_i + Σ_j a_ij v_ij;   x ← x + MLP(LN(x))

then the slots are **sum-pooled** and an MLP maps the sum to the output width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lom_pyro.nn.attention import xavier_init

__all__ = ["RelationBlock", "RelationEncoder"]


class RelationBlock(nn.Module):
    """One relation-attention block over a set ``(B, K, D)``; see the module docstring."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.values = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        k = x.shape[1]
        weights = torch.softmax(self.q(x) @ self.k(x).transpose(1, 2) / math.sqrt(x.shape[-1]), dim=-1)  # (B, K, K)
        xi = x.unsqueeze(2).expand(-1, -1, k, -1)
        pairs = torch.cat([xi, xi - x.unsqueeze(1)], dim=-1)                        # (B, K, K, 2D)
        x = x + (weights.unsqueeze(-1) * self.values(pairs)).sum(2)
        return x + self.mlp(self.norm(x))


class RelationEncoder(nn.Module):
    """``slots (B, K, Dz) -> (B, out_dim)``, invariant to the order of the slots.

    :param slot_dim: Dz. :param out_dim: Ds. :param depth: relation blocks (SRI: 3).
    """

    def __init__(self, slot_dim: int, out_dim: int, depth: int = 3) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.blocks = nn.ModuleList(RelationBlock(slot_dim) for _ in range(depth))
        self.mlp = nn.Sequential(nn.Linear(slot_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        xavier_init(self)

    def forward(self, slots: Tensor) -> Tensor:
        x = slots
        for block in self.blocks:
            x = block(x)
        return self.mlp(x.sum(dim=1))
