"""Small tensor operations shared by the model, handlers and metrics (no pyro)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["compose", "pairwise_sq_dist", "greedy_match", "hungarian_match", "permute_slots", "segment_distance",
           "slerp"]


def compose(rgb: Tensor, logits: Tensor) -> tuple[Tensor, Tensor]:
    """The scene a set of decoded slots shows: masks, the softmax of ``logits (N, K, 1, H, W)``
    over the K slots, and the image, each pixel the mask-weighted mean of the slots'
    ``rgb (N, K, C, H, W)``. :return: ``(image (N, C, H, W), masks (N, K, 1, H, W))``."""
    masks = logits.softmax(dim=1)
    return (masks * rgb).sum(1), masks


def pairwise_sq_dist(a: Tensor, b: Tensor) -> Tensor:
    """``cost[b, i, j] = ‖a[b, i] − b[b, j]‖²`` for ``a (B, K, D)``, ``b (B, K, D)``."""
    return (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(-1)


def _check_cost(cost: Tensor) -> None:
    if cost.dim() != 3 or cost.shape[-1] != cost.shape[-2]:
        raise ValueError(f"cost must have shape (B, K, K), got {tuple(cost.shape)}")


def greedy_match(cost: Tensor) -> Tensor:
    """Greedy matching, Algorithm 1 of the paper: for k = 1..K, ordered slot k takes the
    cheapest orderless slot j not yet taken.

    Batched, pure torch, no host synchronisation (traces and compiles).

    :param cost: ``(B, K, K)``, ``cost[b, k, j]`` = cost of giving ordered slot k the
        orderless slot j.
    :return: ``perm (B, K)`` long, ``perm[b, k] = j``; each row is a permutation.
    """
    _check_cost(cost)
    b, k, _ = cost.shape
    taken = torch.zeros(b, k, dtype=torch.bool, device=cost.device)
    columns = []
    for i in range(k):
        row = cost[:, i].masked_fill(taken, float("inf"))
        j = row.argmin(dim=-1)                                             # (B,)
        taken = taken | torch.nn.functional.one_hot(j, k).bool()
        columns.append(j)
    return torch.stack(columns, dim=-1)


def hungarian_match(cost: Tensor) -> Tensor:
    """Exact minimum-cost matching (Hungarian, via scipy); same convention as
    :func:`greedy_match`. Runs on the host: one device sync per call."""
    _check_cost(cost)
    from scipy.optimize import linear_sum_assignment

    rows = cost.detach().to("cpu", torch.float64).numpy()
    perm = np.stack([linear_sum_assignment(c)[1] for c in rows]) if len(rows) else np.zeros((0, cost.shape[1]))
    return torch.as_tensor(perm, dtype=torch.long, device=cost.device)


def permute_slots(x: Tensor, perm: Tensor) -> Tensor:
    """``out[b, k] = x[b, perm[b, k]]`` for ``x (B, K, ...)`` and ``perm (B, K)``."""
    index = perm.view(*perm.shape, *([1] * (x.dim() - 2))).expand(*perm.shape, *x.shape[2:])
    return torch.gather(x, 1, index)


def slerp(a: Tensor, b: Tensor, steps: int, *, normalise: bool = True) -> Tensor:
    """Spherical linear interpolation from ``a`` to ``b`` (appendix A.7).

    With ``normalise=True`` (the paper) both ends are scaled to norm ``sqrt(D)`` first —
    the typical norm of a standard-normal sample, so the path stays where an N(0, I)
    scene prior puts its mass (for another prior pass ``normalise=False``).

    :param a, b: ``(D,)``. :param steps: number of points including both ends (≥ 2).
    :return: ``(steps, D)``.
    """
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if a.shape != b.shape or a.dim() != 1:
        raise ValueError(f"a and b must be vectors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if normalise:
        scale = math.sqrt(a.shape[-1])
        a = a / a.norm() * scale
        b = b / b.norm() * scale
    t = torch.linspace(0.0, 1.0, steps, dtype=a.dtype, device=a.device).unsqueeze(-1)
    cos = (a @ b / (a.norm() * b.norm())).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:  # parallel ends: linear interpolation is exact in the limit
        return (1 - t) * a + t * b
    if (torch.pi - omega).abs() < 1e-4:
        raise ValueError("slerp: a and b point in opposite directions; the great circle between them is not unique")
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def segment_distance(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance from colours ``c (..., 3)`` to the segment ``[a, b]`` (broadcastable):
    how far a colour lies from every blend of two others (the procedural scenes' wall and floor)."""
    ab = b - a
    t = np.clip(((c - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(c - (a + t[..., None] * ab), axis=-1)
