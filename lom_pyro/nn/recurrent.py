"""A one-layer LSTM over ``[proj(context), tokens...]``: the recurrent counterpart of
:class:`~lom_pyro.nn.attention.CausalTransformer`, used by the authors' SRI variant of the
LOM for its autoregressive slot prior (fed the *sampled* previous slot) and its posterior
scales (fed the aligned orderless means).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LSTMChain"]


class LSTMChain(nn.Module):
    """``outputs[t]`` depends on the context and ``tokens[:t]`` only, as a causal transformer's.

    :param context_dim: width of the context vector (the scene latent, Ds).
    :param dim: token and output width (Dz).
    :param hidden: LSTM width (default 4·Dz, GENESIS-v2's autoregressive prior).
    """

    def __init__(self, context_dim: int, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or 4 * dim
        self.context_proj = nn.Linear(context_dim, dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, dim)

    def forward(self, context: Tensor, tokens: Tensor) -> Tensor:
        """:param context: ``(B, Ds)``. :param tokens: ``(B, T, D)``.
        :return: ``(B, T + 1, D)``, the outputs after the context and after each token."""
        x = torch.cat([self.first(context).unsqueeze(1), tokens.to(context.dtype)], dim=1)   # (B, T+1, D)
        h, _ = self.lstm(x)
        return self.out(h)

    def first(self, context: Tensor) -> Tensor:
        """The first input, ``proj(context)`` ``(B, D)``, for a step-by-step rollout."""
        return self.context_proj(context)

    def step(self, x: Tensor, state=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One step: input ``(B, D)`` → output ``(B, D)`` and the new LSTM state."""
        h, state = self.lstm(x.unsqueeze(1), state)
        return self.out(h.squeeze(1)), state
