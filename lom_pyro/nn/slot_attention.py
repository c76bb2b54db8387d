"""Stochastic slot attention: the bottom-up layers of EfficientMORL (Emami et al. 2021, §3.1).

Each layer refines the parameters λ = (μ, s) of a diagonal Gaussian per slot from the
previous layer's *sample*: slot-normalised attention over the image tokens, a dual GRU
(one for μ, one for s) and residual MLPs. The variance is ``softplus(min(s, 80)) + 1e-5``
(:func:`softplus_to_std` returns its square root), as in the reference code.

Sampling is left to the caller (the Pyro guide draws each layer's sample at a site).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["softplus_to_std", "DualGRU", "StochasticSlotAttention"]


def softplus_to_std(raw: Tensor) -> Tensor:
    """EMORL's scale map: ``sqrt(softplus(min(raw, 80)) + 1e-5)``.

    The reference treats ``softplus(raw) + 1e-5`` as the *variance* (``_softplus_to_std``),
    so the standard deviation is its square root. The clamp at 80 keeps ``exp`` finite.
    """
    return torch.sqrt(F.softplus(raw.clamp(max=80.0)) + 1e-5)


class DualGRU(nn.Module):
    """Two independent GRU cells sharing one input: ``μ' = GRU_μ(u, μ)``, ``s' = GRU_s(u, s)``.

    Equals EMORL's block-diagonal ``DualGRU`` (its gates for μ and s never mix).

    :param input_dim: width of the update ``u``.
    :param hidden_dim: width of μ and s.
    """

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.mu = nn.GRUCell(input_dim, hidden_dim)
        self.raw_scale = nn.GRUCell(input_dim, hidden_dim)

    def forward(self, update: Tensor, mu: Tensor, raw_scale: Tensor) -> tuple[Tensor, Tensor]:
        """:param update: ``(..., input_dim)``. :param mu, raw_scale: hidden states ``(..., hidden_dim)``.
        :return: new ``(mu, raw_scale)``, same shapes."""
        lead = mu.shape[:-1]
        u = update.reshape(-1, update.shape[-1])
        new_mu = self.mu(u, mu.reshape(-1, mu.shape[-1]))
        new_s = self.raw_scale(u, raw_scale.reshape(-1, raw_scale.shape[-1]))
        return new_mu.reshape(*lead, -1), new_s.reshape(*lead, -1)


class StochasticSlotAttention(nn.Module):
    """One bottom-up layer of EMORL (weights shared across the L layers).

    Given the previous layer's sample ``z`` and parameters ``(μ, s)``::

        q      = Linear(LayerNorm(z)) · Dz^-½
        a      = softmax_K(q kᵀ) + 1e-8,  renormalised over pixels      (B, K, N)
        u      = a v                                                     (B, K, Dz)
        μ, s   = DualGRU(u, (μ, s))
        μ     += MLP_μ(LayerNorm(μ));   s += MLP_s(LayerNorm(s))

    :param slot_dim: Dz.
    :param token_dim: width of the image tokens (EMORL: 64).
    :param mlp_hidden: hidden width of the residual MLPs (EMORL: 2·Dz).
    """

    def __init__(self, slot_dim: int, token_dim: int = 64, mlp_hidden: int | None = None,
                 eps: float = 1e-8) -> None:
        super().__init__()
        hidden = mlp_hidden or 2 * slot_dim
        self.scale = slot_dim ** -0.5
        self.eps = eps
        self.norm_slots = nn.LayerNorm(slot_dim)
        self.to_q = nn.Linear(slot_dim, slot_dim, bias=False)
        self.to_k = nn.Linear(token_dim, slot_dim, bias=False)
        self.to_v = nn.Linear(token_dim, slot_dim, bias=False)
        self.gru = DualGRU(slot_dim, slot_dim)
        self.norm_mu = nn.LayerNorm(slot_dim)
        self.norm_scale = nn.LayerNorm(slot_dim)
        self.mlp_mu = nn.Sequential(nn.Linear(slot_dim, hidden), nn.ReLU(), nn.Linear(hidden, slot_dim))
        self.mlp_scale = nn.Sequential(nn.Linear(slot_dim, hidden), nn.ReLU(), nn.Linear(hidden, slot_dim))

    def project(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values, computed once for all layers.

        :param tokens: ``(B, N, token_dim)``. :return: ``keys, values`` ``(B, N, Dz)``."""
        return self.to_k(tokens), self.to_v(tokens)

    def attention(self, z: Tensor, keys: Tensor) -> Tensor:
        """Attention weights ``(B, K, N)``: softmax over slots, then normalised over pixels."""
        q = self.to_q(self.norm_slots(z)) * self.scale                     # (B, K, Dz)
        attn = torch.einsum("bkd,bnd->bkn", q, keys).softmax(dim=1) + self.eps
        return attn / attn.sum(dim=-1, keepdim=True)

    def forward(self, z: Tensor, mu: Tensor, raw_scale: Tensor, keys: Tensor,
                values: Tensor) -> tuple[Tensor, Tensor]:
        """:param z: previous sample ``(B, K, Dz)``.
        :param mu, raw_scale: previous parameters ``(B, K, Dz)`` (the GRU hidden states).
        :param keys, values: ``(B, N, Dz)`` from :meth:`project`.
        :return: new ``(mu, raw_scale)`` ``(B, K, Dz)``."""
        updates = torch.einsum("bkn,bnd->bkd", self.attention(z, keys), values)   # (B, K, Dz)
        mu, raw_scale = self.gru(updates, mu, raw_scale)
        mu = mu + self.mlp_mu(self.norm_mu(mu))
        raw_scale = raw_scale + self.mlp_scale(self.norm_scale(raw_scale))
        return mu, raw_scale
