"""DCI disentanglement, completeness and informativeness (Eastwood & Williams, 2018).

One gradient-boosted model per ground-truth factor predicts the factor from
all codes: a classifier for a discrete factor, a regressor for a continuous
one (each factor's kind is given explicitly, never guessed). Their
``feature_importances_`` form the importance matrix ``R`` [codes × factors];

* disentanglement :math:`D = \\sum_i \\rho_i (1 - H_F(R_{i\\cdot}))`, with
  :math:`\\rho_i = \\sum_j R_{ij} / \\sum R` and the entropy taken in base
  ``F`` (number of factors) of the normalised row;
* completeness :math:`C = \\sum_j w_j (1 - H_C(R_{\\cdot j}))`, entropy in
  base ``C`` (number of codes) of the normalised column, :math:`w_j` the
  column's share of :math:`\\sum R` (equal weights when every factor's
  importances sum to one, as for gradient boosting);
* informativeness: held-out accuracy (discrete) or R² (continuous) per factor.

For CLEVR-style scenes, :func:`match_slots_to_objects` pairs slots with
ground-truth objects first, and :func:`matched_pairs` gathers the paired slot
latents and object factors as the ``codes`` and ``factors`` of :func:`dci`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DCIResult",
    "dci",
    "disentanglement",
    "completeness",
    "match_slots_to_objects",
    "matched_pairs",
]


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Entropy in ``base`` of non-negative weights along ``axis`` (normalised; an all-zero line counts as uniform)."""
    total = p.sum(axis=axis, keepdims=True)
    size = p.shape[axis]
    q = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / size)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(q > 0, q * np.log(q), 0.0).sum(axis=axis)
    return h / np.log(base)


def _check_importance(importance: np.ndarray | Tensor) -> np.ndarray:
    r = importance.detach().cpu().double().numpy() if isinstance(importance, Tensor) else np.asarray(importance, float)
    if r.ndim != 2 or 0 in r.shape:
        raise ValueError(f"importance must be a non-empty (codes, factors) matrix, got shape {r.shape}")
    if (r < 0).any():
        raise ValueError("importance must be non-negative")
    return r


def disentanglement(importance: np.ndarray | Tensor) -> float:
    """:math:`D = \\sum_i \\rho_i (1 - H_F(R_{i\\cdot}))` of an importance matrix ``(C, F)``.

    With a single factor every code trivially explains one factor, so D = 1;
    an all-zero matrix (nothing is predictive) gives 0.

    >>> disentanglement(np.eye(3))
    1.0
    """
    r = _check_importance(importance)
    total = r.sum()
    if total == 0:
        return 0.0
    if r.shape[1] == 1:
        return 1.0
    per_code = 1.0 - _entropy(r, base=r.shape[1], axis=1)
    return float((per_code * r.sum(axis=1) / total).sum())


def completeness(importance: np.ndarray | Tensor) -> float:
    """:math:`C = \\sum_j w_j (1 - H_C(R_{\\cdot j}))` of an importance matrix ``(C, F)``.

    With a single code C = 1; an all-zero matrix gives 0.

    >>> completeness(np.ones((2, 2)))
    0.0
    """
    # the same weighted entropy with the roles of codes and factors swapped
    return disentanglement(_check_importance(importance).T)


@dataclass(frozen=True)
class DCIResult:
    """DCI scores and what they were computed from.

    :ivar importance: ``(C, F)`` importance matrix R.
    :ivar disentanglement: D in ``[0, 1]``.
    :ivar completeness: C in ``[0, 1]``.
    :ivar informativeness: ``(F,)`` held-out accuracy (discrete) or R² (continuous).
    :ivar train_informativeness: ``(F,)`` the same on the training split.
    :ivar mse: ``(F,)`` held-out mean squared error of continuous factors, NaN for discrete.
    :ivar discrete: each factor's kind.
    """

    importance: np.ndarray
    disentanglement: float
    completeness: float
    informativeness: np.ndarray
    train_informativeness: np.ndarray
    mse: np.ndarray
    discrete: tuple[bool, ...]

    @property
    def mean_informativeness(self) -> float:
        """Mean held-out score over factors."""
        return float(self.informativeness.mean())


def _as_2d(x: np.ndarray | Tensor, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {a.shape}")
    return a


def _sklearn_ensemble() -> Any:
    try:
        from sklearn import ensemble
    except ImportError as err:  # optional dependency
        raise ImportError(
            "dci() needs scikit-learn; install it with `pip install lom_pyro[metrics]` (or `pip install scikit-learn`)"
        ) from err
    return ensemble


def dci(
    codes: np.ndarray | Tensor,
    factors: np.ndarray | Tensor,
    discrete: Sequence[bool],
    *,
    codes_test: np.ndarray | Tensor | None = None,
    factors_test: np.ndarray | Tensor | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    model_kwargs: dict[str, Any] | None = None,
) -> DCIResult:
    """DCI from one gradient-boosted model per factor (scikit-learn).

    :param codes: learned representations ``(N, C)``.
    :param factors: ground-truth factors ``(N, F)``; discrete ones may be any
        labels (ints, strings), continuous ones floats.
    :param discrete: ``F`` flags: ``True`` fits ``GradientBoostingClassifier``
        and scores accuracy, ``False`` fits ``GradientBoostingRegressor`` and
        scores R² (and MSE).
    :param codes_test: held-out codes ``(M, C)``; if omitted a random
        ``test_fraction`` of the rows is held out.
    :param factors_test: held-out factors ``(M, F)``.
    :param seed: seed of the split and the models.
    :param model_kwargs: keyword arguments for both model classes (e.g.
        ``{"n_estimators": 50}``).
    """
    x, y = _as_2d(codes, "codes").astype(np.float64), _as_2d(factors, "factors")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"codes and factors must have the same number of rows, got {x.shape[0]} and {y.shape[0]}")
    flags = tuple(bool(d) for d in discrete)
    if len(flags) != y.shape[1]:
        raise ValueError(f"discrete must have one flag per factor ({y.shape[1]}), got {len(flags)}")
    if (codes_test is None) != (factors_test is None):
        raise ValueError("codes_test and factors_test must be given together")
    if codes_test is not None and factors_test is not None:
        x_tr, y_tr = x, y
        x_te, y_te = _as_2d(codes_test, "codes_test").astype(np.float64), _as_2d(factors_test, "factors_test")
        if x_te.shape[1] != x.shape[1] or y_te.shape[1] != y.shape[1] or x_te.shape[0] != y_te.shape[0]:
            raise ValueError(f"test arrays must be (M, {x.shape[1]}) and (M, {y.shape[1]})")
    else:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
        order = np.random.default_rng(seed).permutation(x.shape[0])
        n_test = max(1, int(round(test_fraction * x.shape[0])))
        if n_test >= x.shape[0]:
            raise ValueError(f"need more than {n_test} rows to hold out a test split")
        test, train = order[:n_test], order[n_test:]
        x_tr, y_tr, x_te, y_te = x[train], y[train], x[test], y[test]
    ensemble = _sklearn_ensemble()
    kwargs = {"random_state": seed, **(model_kwargs or {})}
    n_codes, n_factors = x.shape[1], y.shape[1]
    importance = np.zeros((n_codes, n_factors))
    score_te, score_tr, mse = np.zeros(n_factors), np.zeros(n_factors), np.full(n_factors, np.nan)
    for j, is_discrete in enumerate(flags):
        if is_discrete:
            if np.unique(y_tr[:, j]).size < 2:
                raise ValueError(f"discrete factor {j} takes a single value in the training split")
            model = ensemble.GradientBoostingClassifier(**kwargs).fit(x_tr, y_tr[:, j])
        else:
            model = ensemble.GradientBoostingRegressor(**kwargs).fit(x_tr, y_tr[:, j].astype(np.float64))
        importance[:, j] = np.abs(model.feature_importances_)
        # score(): accuracy for classifiers, R² for regressors.
        score_tr[j] = model.score(x_tr, y_tr[:, j] if is_discrete else y_tr[:, j].astype(np.float64))
        score_te[j] = model.score(x_te, y_te[:, j] if is_discrete else y_te[:, j].astype(np.float64))
        if not is_discrete:
            mse[j] = float(np.mean((model.predict(x_te) - y_te[:, j].astype(np.float64)) ** 2))
    return DCIResult(
        importance=importance,
        disentanglement=disentanglement(importance),
        completeness=completeness(importance),
        informativeness=score_te,
        train_informativeness=score_tr,
        mse=mse,
        discrete=flags,
    )


# ------------------------------------------------------------ slot matching


def match_slots_to_objects(
    pred_masks: Tensor,
    true_masks: Tensor,
    min_object_pixels: int = 10,
    background_channels: Sequence[int] = (0,),
) -> Tensor:
    """Pair each ground-truth object with at most one slot by IoU + Hungarian matching.

    Both mask sets are made hard (argmax over their channel), IoUs between
    every object and every slot are computed, and
    ``scipy.optimize.linear_sum_assignment`` maximises their sum per image.

    :param pred_masks: ``(B, Kp, H, W)`` slot mask probabilities.
    :param true_masks: ``(B, Kt, H, W)`` ground-truth object masks (one-hot).
    :param min_object_pixels: objects with fewer visible pixels (absent,
        heavily occluded) are left unmatched.
    :param background_channels: true channels never matched (their slot is -1).
    :returns: ``(B, Kt)`` int64 slot index per object, ``-1`` where unmatched
        (background, too small, no slot left, or zero overlap).
    """
    from scipy.optimize import linear_sum_assignment

    if pred_masks.ndim != 4 or true_masks.ndim != 4:
        raise ValueError(
            "pred_masks and true_masks must be (B, K, H, W), "
            f"got {tuple(pred_masks.shape)} and {tuple(true_masks.shape)}"
        )
    b, kp, h, w = pred_masks.shape
    if true_masks.shape[0] != b or true_masks.shape[2:] != (h, w):
        raise ValueError(f"true_masks must be (B={b}, Kt, {h}, {w}), got {tuple(true_masks.shape)}")
    if min_object_pixels < 0:
        raise ValueError(f"min_object_pixels must be >= 0, got {min_object_pixels}")
    kt = true_masks.shape[1]
    pred = torch.nn.functional.one_hot(pred_masks.argmax(1), kp).flatten(1, 2).double()  # (B, HW, Kp)
    true = torch.nn.functional.one_hot(true_masks.argmax(1), kt).flatten(1, 2).double()  # (B, HW, Kt)
    inter = torch.einsum("bnt,bnp->btp", true, pred)  # (B, Kt, Kp)
    area_t, area_p = true.sum(1), pred.sum(1)
    union = area_t[:, :, None] + area_p[:, None, :] - inter
    iou = (inter / union.clamp_min(1.0)).cpu().numpy()
    eligible = (area_t >= max(min_object_pixels, 1)).cpu().numpy()
    for c in background_channels:
        if not 0 <= int(c) < kt:
            raise ValueError(f"background_channels must lie in [0, {kt}), got {tuple(background_channels)}")
        eligible[:, int(c)] = False
    result = np.full((b, kt), -1, dtype=np.int64)
    for i in range(b):
        objects = np.flatnonzero(eligible[i])
        if objects.size == 0:
            continue
        rows, cols = linear_sum_assignment(iou[i, objects], maximize=True)
        keep = iou[i, objects[rows], cols] > 0
        result[i, objects[rows[keep]]] = cols[keep]
    return torch.from_numpy(result).to(pred_masks.device)


def matched_pairs(slot_latents: Tensor, object_factors: Tensor, assignment: Tensor) -> tuple[Tensor, Tensor]:
    """Gather the matched (slot latent, object factors) rows for :func:`dci`.

    :param slot_latents: ``(B, Kp, Dz)``.
    :param object_factors: ``(B, Kt, F)`` aligned with the true mask channels.
    :param assignment: ``(B, Kt)`` from :func:`match_slots_to_objects`.
    :returns: ``codes (M, Dz)`` and ``factors (M, F)``, one row per matched object.
    """
    if assignment.shape != object_factors.shape[:2] or slot_latents.shape[0] != assignment.shape[0]:
        raise ValueError(
            "assignment must be (B, Kt) matching object_factors (B, Kt, F) and slot_latents (B, Kp, Dz), got "
            f"{tuple(assignment.shape)}, {tuple(object_factors.shape)}, {tuple(slot_latents.shape)}"
        )
    batch, obj = torch.nonzero(assignment >= 0, as_tuple=True)
    slots = assignment[batch, obj]
    return slot_latents[batch, slots], object_factors[batch, obj]
