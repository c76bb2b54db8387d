"""ARI-FG against scikit-learn, its docstring vectors and the empty-foreground convention."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lom_pyro.metrics import ari_fg

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    """(B, H, W) labels -> (B, K, H, W) one-hot masks."""
    return torch.nn.functional.one_hot(labels, k).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize(
    ("true", "pred", "expected"),
    [
        ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),
        ([0, 0, 1, 1], [1, 1, 0, 0], 1.0),
        ([0, 0, 1, 2], [0, 0, 1, 1], 4 / 7),
        ([0, 0, 0, 0], [0, 1, 2, 3], 0.0),
        ([0, 0, 1, 1], [0, 1, 0, 1], -0.5),
    ],
)
def test_sklearn_docstring_vectors(true: list[int], pred: list[int], expected: float) -> None:
    # Shift true labels by one so that channel 0 (background) is empty: every pixel is scored.
    t = _one_hot(torch.tensor([[true]]) + 1, 4)
    p = _one_hot(torch.tensor([[pred]]), 4)
    got = ari_fg(t, p)
    assert got.dtype == torch.float64 and got.shape == (1,)
    assert got.item() == pytest.approx(expected, abs=1e-12)
    assert got.item() == pytest.approx(sklearn_metrics.adjusted_rand_score(true, pred), abs=1e-12)


def test_background_pixels_are_ignored() -> None:
    true = torch.tensor([[[0, 0, 1, 1, 2, 2]]])
    # Prediction is wrong only on background pixels.
    pred = torch.tensor([[[5, 6, 1, 1, 2, 2]]])
    assert ari_fg(true, pred).item() == 1.0
    assert ari_fg(true, pred, background_channels=()).item() < 1.0


def test_probabilities_use_argmax_and_label_maps_match_one_hot() -> None:
    g = torch.Generator().manual_seed(0)
    true = torch.randint(0, 4, (3, 5, 5), generator=g)
    probs = torch.rand(3, 6, 5, 5, generator=g).softmax(1)
    a = ari_fg(_one_hot(true, 4), probs)
    b = ari_fg(true, probs.argmax(1))
    assert torch.equal(a.isnan(), b.isnan()) and torch.allclose(a.nan_to_num(), b.nan_to_num())


def test_empty_foreground_convention() -> None:
    true = torch.zeros(2, 3, 3, dtype=torch.long)
    true[1, 0, :2] = 1
    true[1, 1, 0] = 2
    pred = torch.zeros(2, 3, 3, dtype=torch.long)
    pred[1, 1, 0] = 1
    per_image = ari_fg(true, pred)
    assert math.isnan(per_image[0].item()) and per_image[1].item() == 1.0
    assert ari_fg(true, pred, reduction="mean").item() == 1.0  # NaN left out of the mean
    assert ari_fg(true, pred, empty_value=1.0)[0].item() == 1.0  # scikit-learn's convention
    assert ari_fg(true[:1], pred[:1], empty_value=0.0, reduction="mean").item() == 0.0
    assert math.isnan(ari_fg(true[:1], pred[:1], reduction="mean").item())


def test_counts_do_not_overflow_on_large_images() -> None:
    # 512x512 pixels: n^4 ~ 5e21 would overflow int64 / lose float32 precision.
    true = torch.zeros(1, 512, 512, dtype=torch.long)
    true[:, :, 256:] = 1
    pred = true.clone()
    pred[:, :8] = 1 - pred[:, :8]
    got = ari_fg(true, pred, background_channels=()).item()
    want = sklearn_metrics.adjusted_rand_score(true.flatten().numpy(), pred.flatten().numpy())
    assert got == pytest.approx(want, rel=1e-9)


def test_invalid_arguments() -> None:
    masks = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="reduction"):
        ari_fg(masks, masks, reduction="sum")
    with pytest.raises(ValueError, match="background_channels"):
        ari_fg(masks, masks, background_channels=(3,))
    with pytest.raises(ValueError, match="agree"):
        ari_fg(masks, torch.rand(2, 3, 4, 5))
    with pytest.raises(ValueError, match="true_masks"):
        ari_fg(torch.rand(2, 4, 4), masks)


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 3),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    kt=st.integers(1, 4),
    kp=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_matches_sklearn_on_foreground_pixels(b: int, h: int, w: int, kt: int, kp: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    true = torch.randint(0, kt, (b, h, w), generator=g)
    probs = torch.rand(b, kp, h, w, generator=g)
    got = ari_fg(_one_hot(true, kt), probs)
    pred = probs.argmax(1)
    for i in range(b):
        fg = true[i] != 0
        if not fg.any():
            assert math.isnan(got[i].item())
            continue
        want = sklearn_metrics.adjusted_rand_score(true[i][fg].numpy(), pred[i][fg].numpy())
        assert got[i].item() == pytest.approx(want, abs=1e-12)
