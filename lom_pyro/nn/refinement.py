"""Top-down iterative refinement of EfficientMORL (Emami et al. 2021, §3.2).

One refinement step maps the current posterior parameters λ = (μ, s) and the gradient
of the previous iteration's loss w.r.t. them to an additive update Δλ::

    g_μ, g_s = LayerNorm(∇_μ L), LayerNorm(∇_s L)      (no affine; treated as constants)
    h        = GRU(Linear(ELU(Linear([μ, s, g_μ, g_s]))), h)
    Δμ, Δs   = Linear_μ(h), Linear_s(h)

The gradient itself is computed by the caller (it needs the decoder and likelihood).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["RefinementNetwork"]


class RefinementNetwork(nn.Module):
    """EMORL's refinement network; its GRU state is carried across steps.

    :param slot_dim: Dz.
    :param hidden: width of the input MLP's hidden layer (EMORL: 128).
    """

    def __init__(self, slot_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.slot_dim = slot_dim
        self.encoding = nn.Sequential(nn.Linear(4 * slot_dim, hidden), nn.ELU(), nn.Linear(hidden, slot_dim))
        self.gru = nn.GRUCell(slot_dim, slot_dim)
        self.delta_mu = nn.Linear(slot_dim, slot_dim)
        self.delta_scale = nn.Linear(slot_dim, slot_dim)

    def initial_state(self, mu: Tensor) -> Tensor:
        """Zero GRU state ``(B·K, Dz)`` for posterior means ``mu (B, K, Dz)``."""
        return mu.new_zeros(mu.shape[0] * mu.shape[1], self.slot_dim)

    def forward(self, mu: Tensor, raw_scale: Tensor, grad_mu: Tensor, grad_scale: Tensor,
                state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:param mu, raw_scale: current λ ``(B, K, Dz)``.
        :param grad_mu, grad_scale: gradient of the previous loss w.r.t. them ``(B, K, Dz)``.
        :param state: GRU state ``(B·K, Dz)``.
        :return: ``Δμ, Δs`` ``(B, K, Dz)`` and the next state ``(B·K, Dz)``."""
        b, k, d = mu.shape
        # each half normalised per slot, no affine, and cut from the graph (EMORL)
        g_mu = F.layer_norm(grad_mu, (d,)).detach()
        g_s = F.layer_norm(grad_scale, (d,)).detach()
        inp = self.encoding(torch.cat([mu, raw_scale, g_mu, g_s], dim=-1))                # (B, K, Dz)
        state = self.gru(inp.reshape(b * k, d), state)                              # (BK, Dz)
        h = state.reshape(b, k, d)
        return self.delta_mu(h), self.delta_scale(h), state
