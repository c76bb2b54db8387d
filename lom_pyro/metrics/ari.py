"""Adjusted Rand index on foreground pixels (ARI-FG).

Per image, pixels whose ground-truth label is a background channel are
dropped; the remaining pixels' true labels and predicted labels (argmax over
slots) are counted in a contingency table, and the Hubert–Arabie adjusted
Rand index is computed from it exactly as ``sklearn.metrics.adjusted_rand_score``
does (pair-confusion form, int64 counts, float64 arithmetic), including its
conventions for degenerate partitions (e.g. one pixel, or both partitions a
single cluster → 1.0).

**Empty foreground** (an image with no foreground pixel) has no partition
to score: its ARI is ``empty_value``, NaN by default, and NaN entries are
left out of ``reduction="mean"``. Pass ``empty_value=1.0`` to follow
scikit-learn's convention for empty input, or ``0.0`` for the EMORL code's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["ari_fg", "labels_from_masks"]


def labels_from_masks(masks: Tensor, name: str = "masks") -> tuple[Tensor, int]:
    """Integer label map ``(B, H, W)`` and number of labels from masks.

    :param masks: ``(B, K, H, W)`` one-hot or probabilities (argmax over
        ``K``; ties go to the lowest index), or an integer label map
        ``(B, H, W)`` with values in ``[0, K)``.
    :returns: ``(labels, K)``; for a label map ``K = max + 1``.
    """
    if masks.ndim == 4:
        return masks.argmax(dim=1), masks.shape[1]
    if masks.ndim == 3 and not masks.dtype.is_floating_point and masks.dtype != torch.bool:
        labels = masks.long()
        if labels.numel() and int(labels.min()) < 0:
            raise ValueError(f"{name} label map must be non-negative")
        return labels, int(labels.max()) + 1 if labels.numel() else 1
    raise ValueError(f"{name} must be (B, K, H, W) masks or an integer (B, H, W) label map, got {tuple(masks.shape)}")


def _ari_from_contingency(table: Tensor, empty_value: float) -> Tensor:
    """ARI for a batch of contingency tables ``(B, Kt, Kp)`` (int64) -> ``(B,)`` float64."""
    n = table.sum(dim=(1, 2)).double()
    sum_sq = table.double().pow(2).sum(dim=(1, 2))
    rows = table.sum(dim=2).double()  # (B, Kt) true-class sizes
    cols = table.sum(dim=1).double()  # (B, Kp) predicted-cluster sizes
    # Ordered pair counts as in sklearn.metrics.cluster.pair_confusion_matrix.
    tp = sum_sq - n
    fp = (table.double() * cols[:, None, :]).sum(dim=(1, 2)) - sum_sq  # same true, different pred
    fn = (table.double() * rows[:, :, None]).sum(dim=(1, 2)) - sum_sq  # same pred, different true
    tn = n * n - fp - fn - sum_sq
    denom = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    perfect = (fn == 0) & (fp == 0)  # includes n <= 1: no disagreeing pair at all
    ari = torch.where(perfect, torch.ones_like(n), 2.0 * (tp * tn - fn * fp) / torch.where(perfect, 1.0, denom))
    return torch.where(n == 0, torch.full_like(n, empty_value), ari)


def ari_fg(
    true_masks: Tensor,
    pred_masks: Tensor,
    background_channels: Sequence[int] = (0,),
    reduction: str = "none",
    empty_value: float = float("nan"),
) -> Tensor:
    """Adjusted Rand index of predicted segments on ground-truth foreground pixels.

    :param true_masks: ``(B, Kt, H, W)`` one-hot (or soft, argmax is taken)
        ground-truth masks, or an integer label map ``(B, H, W)``.
    :param pred_masks: ``(B, Kp, H, W)`` predicted mask probabilities
        (argmax over slots), or an integer label map ``(B, H, W)``.
    :param background_channels: true labels (channels) excluded from the
        score; ``()`` scores every pixel (plain ARI).
    :param reduction: ``"none"`` for per-image values ``(B,)``, ``"mean"``
        for their mean over images with foreground (NaN if there is none).
    :param empty_value: the value of an image without foreground pixels.
    :returns: float64 ARI per image ``(B,)``, or a scalar.

    >>> t = torch.tensor([[[0, 1, 1, 2, 2]]])  # label maps (B=1, H=1, W=5)
    >>> p = torch.tensor([[[3, 0, 0, 1, 1]]])
    >>> ari_fg(t, p).tolist()
    [1.0]
    """
    if reduction not in ("none", "mean"):
        raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}")
    t, kt = labels_from_masks(true_masks, "true_masks")
    p, kp = labels_from_masks(pred_masks, "pred_masks")
    if t.shape != p.shape:
        raise ValueError(
            f"true_masks and pred_masks must agree in batch and pixel shape, got {tuple(t.shape)} and {tuple(p.shape)}"
        )
    bg = [int(c) for c in background_channels]
    if true_masks.ndim == 4 and any(not 0 <= c < kt for c in bg):
        raise ValueError(f"background_channels must lie in [0, {kt}), got {tuple(bg)}")
    b = t.shape[0]
    t, p = t.reshape(b, -1).to(pred_masks.device), p.reshape(b, -1)
    foreground = torch.ones_like(t, dtype=torch.bool)
    for c in bg:
        foreground &= t != c
    kt = max(kt, max(bg, default=-1) + 1)
    # One bincount for the whole batch: cell index = image, true label, pred label.
    image = torch.arange(b, device=t.device)[:, None].expand_as(t)
    cell = (image * kt + t) * kp + p
    table = torch.bincount(cell[foreground], minlength=b * kt * kp).reshape(b, kt, kp)
    ari = _ari_from_contingency(table, empty_value)
    if reduction == "mean":
        return ari.nanmean()
    return ari
