"""Self-attention blocks and the two transformers of the LOM (Eq. 10–11, appendix A.1).

* :class:`SABlock` — residual single-head self-attention block.
* :class:`CausalTransformer` — ``f_θ`` (prior, §3.1) and ``f'_φ`` (order-aware scales, §3.2).
* :class:`SetEncoder` — the permutation-invariant scene encoder ``g_φ`` (§3.2).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["SABlock", "CausalTransformer", "SetEncoder", "xavier_init"]


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every linear layer (appendix A.1)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SABlock(nn.Module):
    """Residual single-head self-attention block (Eq. 10–11), no dropout.

    ``a = softmax(q(x) k(x)^T / sqrt(D)) v(x)``;  ``x <- x + MLP(LayerNorm(x + a))``.

    :param dim: token width D.
    :param hidden: MLP hidden width (default ``dim``).
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        hidden = hidden or dim
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, causal: bool = False) -> Tensor:
        """:param x: tokens ``(B, T, D)``. :param causal: token t attends to tokens ≤ t only.
        :return: ``(B, T, D)``."""
        # scaled_dot_product_attention scales by 1/sqrt(D) as in Eq. 10
        a = F.scaled_dot_product_attention(self.q(x), self.k(x), self.v(x), is_causal=causal)
        return x + self.mlp(self.norm(x + a))


class CausalTransformer(nn.Module):
    """Causal transformer over ``[proj(context), tokens...]`` with a linear positional code.

    Realises ``f_θ`` of §3.1 (tokens = one shared zero-initialised embedding, outputs
    1..K are ``h_1..h_K``) and ``f'_φ`` of §3.2 (tokens = the permuted orderless means
    ``μ_π(1..K-1)``, outputs 0..K-1). The positional code is ``Linear(1 -> D)`` applied
    to ``t / (K + 1)`` for t = 0..K.

    :param context_dim: width of the context vector (the scene latent, Ds).
    :param dim: token width (Dz).
    :param num_slots: K.
    :param depth: number of :class:`SABlock` s (paper: 2).
    :param learned_tokens: if True, tokens 1..K are one shared trainable embedding
        initialised to zeros (``f_θ``); otherwise tokens are passed to :meth:`forward`.
    """

    def __init__(self, context_dim: int, dim: int, num_slots: int, depth: int = 2,
                 learned_tokens: bool = True) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_slots = num_slots
        self.context_proj = nn.Sequential(nn.Linear(context_dim, dim))  # one-layer MLP
        self.position = nn.Linear(1, dim)
        self.blocks = nn.ModuleList(SABlock(dim) for _ in range(depth))
        xavier_init(self)
        self.token = nn.Parameter(torch.zeros(dim)) if learned_tokens else None
        t = torch.arange(num_slots + 1, dtype=torch.float32).unsqueeze(-1) / (num_slots + 1)
        self.register_buffer("positions", t, persistent=False)

    def forward(self, context: Tensor, tokens: Tensor | None = None) -> Tensor:
        """:param context: ``(B, Ds)``.
        :param tokens: ``(B, T, D)`` with T ≤ K; default the learned embedding (T = K).
        :return: with the learned tokens, ``(B, K, D)`` = outputs at positions 1..K (``f_θ``);
            with given tokens, ``(B, T + 1, D)`` = outputs at positions 0..T (``f'_φ``)."""
        first = self.context_proj(context).unsqueeze(1)                      # (B, 1, D)
        if tokens is None:
            if self.token is None:
                raise ValueError("tokens must be given when learned_tokens=False")
            rest = self.token.expand(context.shape[0], self.num_slots, -1)   # (B, K, D)
        else:
            rest = tokens
        x = torch.cat([first, rest.to(first.dtype)], dim=1)                  # (B, T+1, D)
        x = x + self.position(self.positions[: x.shape[1]].to(x.dtype))
        for block in self.blocks:
            x = block(x, causal=True)
        return x[:, 1:] if tokens is None else x


class SetEncoder(nn.Module):
    """Permutation-invariant scene encoder ``g_φ`` (§3.2).

    The K slot vectors plus one trainable scene token pass through SA blocks with no
    mask and no positional code; global **sum pooling** over the K+1 outputs (or, for
    the "no sum pooling" ablation, the scene token's output) → MLP → Ds.

    :return: the hidden scene vector ``(B, Ds)``; heads for μ and σ live with the caller.
    """

    def __init__(self, slot_dim: int, out_dim: int, depth: int = 3, sum_pooling: bool = True) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.sum_pooling = sum_pooling
        self.blocks = nn.ModuleList(SABlock(slot_dim) for _ in range(depth))
        self.mlp = nn.Sequential(nn.Linear(slot_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        xavier_init(self)
        self.scene_token = nn.Parameter(torch.zeros(slot_dim))

    def forward(self, slots: Tensor) -> Tensor:
        """:param slots: ``(B, K, Dz)``. :return: ``(B, Ds)``."""
        token = self.scene_token.expand(slots.shape[0], 1, -1)
        x = torch.cat([token, slots], dim=1)                                 # (B, K+1, Dz)
        for block in self.blocks:
            x = block(x)
        pooled = x.sum(dim=1) if self.sum_pooling else x[:, 0]               # (B, Dz)
        return self.mlp(pooled)


