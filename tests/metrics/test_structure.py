"""Structure accuracy: ground-truth stacks pass, broken or blurry ones fail, input conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from lom_pyro.data.procedural import ProceduralScenes, generate
from lom_pyro.metrics.structure import (
    JUDGES,
    TouchingCriterion,
    analyse_stack,
    analyse_touching,
    s_acc_by_judge,
    sharp_flags,
    stack_is_structured,
    structure_accuracy,
    structure_flags,
    structure_report,
    touching_flags,
    wilson_interval,
)

SIZES = (32, 48, 64)
N = 30


@pytest.fixture(scope="module")
def scenes() -> dict[int, ProceduralScenes]:
    return {s: generate("stacks", N, image_size=s, seed=11) for s in SIZES}


# ----------------------------------------------------------------------------- scene surgery


def _background(img: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, int]:
    """The scene without its blocks, and the horizon row."""
    horizon = int(np.flatnonzero(masks[1].any(1))[0])
    bg = np.empty_like(img)
    bg[:horizon] = img[masks[0].astype(bool)][0]
    bg[horizon:] = img[masks[1].astype(bool)][0]
    return bg, horizon


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(a)
    h, w = a.shape[:2]
    src = a[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = src
    return out


def _move(
    img: np.ndarray, masks: np.ndarray, channels: list[int], dy: int, dx: int, copy: bool = False
) -> np.ndarray | None:
    """Move (or copy) the given blocks by ``(dy, dx)``; None if they would leave the frame."""
    bg, _ = _background(img, masks)
    m = masks[channels].any(0)
    moved = _shift(m, dy, dx)
    if moved.sum() != m.sum():
        return None
    out = img if copy else np.where(m[..., None], bg, img)
    return np.where(moved[..., None], _shift(np.where(m[..., None], img, 0), dy, dx), out)


def _blocks(masks: np.ndarray) -> list[int]:
    return [k for k in range(2, masks.shape[0]) if masks[k].any()]


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


def floating(img: np.ndarray, masks: np.ndarray) -> np.ndarray | None:
    """The top block lifted, leaving a gap of wall above its support."""
    return _move(img, masks, _blocks(masks)[-1:], -max(2, img.shape[0] // 16), 0)


def lifted(img: np.ndarray, masks: np.ndarray) -> np.ndarray | None:
    """The whole stack raised until wall shows beneath it."""
    b = _blocks(masks)
    _, horizon = _background(img, masks)
    dy = _box(masks[b[0]])[1] + 1 - horizon + max(2, img.shape[0] // 16)
    return None if _box(masks[b[-1]])[0] - dy < 1 else _move(img, masks, b, -dy, 0)


def displaced(img: np.ndarray, masks: np.ndarray, clear: bool) -> np.ndarray | None:
    """The top block pushed sideways: its centre 2 px past its support's edge, or (clear) off it entirely."""
    b = _blocks(masks)
    up, lo = _box(masks[b[-1]]), _box(masks[b[-2]])
    centre = (up[2] + up[3]) / 2
    if clear:
        shifts = (lo[3] + 3 - up[2], lo[2] - 3 - up[3])
    else:
        shifts = (int(np.ceil(lo[3] + 2 - centre)), int(np.floor(lo[2] - 2 - centre)))
    for dx in shifts:
        out = _move(img, masks, b[-1:], 0, dx)
        if out is not None:
            return out
    return None


def two_piles(img: np.ndarray, masks: np.ndarray) -> np.ndarray | None:
    """A copy of the stack standing beside it, 3 px away."""
    b = _blocks(masks)
    cols = np.flatnonzero(masks[b].any(0).any(0))
    step = cols[-1] - cols[0] + 4
    for dx in (step, -step):
        out = _move(img, masks, b, 0, dx, copy=True)
        if out is not None:
            return out
    return None


def single_block(img: np.ndarray, masks: np.ndarray) -> np.ndarray:
    bg, _ = _background(img, masks)
    return np.where(masks[_blocks(masks)[1:]].any(0)[..., None], bg, img)


def empty(img: np.ndarray, masks: np.ndarray) -> np.ndarray:
    return _background(img, masks)[0]


def colour_blob(img: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """A smooth blob the size and colours of the stack (top colour fading into the bottom one), blurred."""
    b = _blocks(masks)
    ys, xs = np.nonzero(masks[b].any(0))
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    ry, rx = (ys.max() - ys.min()) / 2 + 1, (xs.max() - xs.min()) / 2 + 1
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]] + 0.5
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    top, bottom = (img[masks[k].astype(bool)][0].astype(float) for k in (b[-1], b[0]))
    t = np.clip((yy - cy + ry) / (2 * ry), 0, 1)[..., None]
    out = np.where(inside[..., None], top * (1 - t) + bottom * t, _background(img, masks)[0])
    return _to_uint8(ndimage.gaussian_filter(out, (1.5, 1.5, 0)))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def box_blur(img: np.ndarray) -> np.ndarray:
    """A 3 x 3 box blur ("1 px"), like a slightly soft generated image."""
    return _to_uint8(ndimage.uniform_filter(img.astype(float), (3, 3, 1), mode="nearest"))


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return _to_uint8(ndimage.gaussian_filter(img.astype(float), (sigma, sigma, 0), mode="nearest"))


def _apply(s: ProceduralScenes, fn) -> np.ndarray:
    out = [fn(img, m) for img, m in zip(s.images, s.masks)]
    out = [o for o in out if o is not None]
    assert len(out) >= 5, "too few scenes admit this perturbation"
    return np.stack(out)


# ----------------------------------------------------------------------------- good scenes pass


@pytest.mark.parametrize("size", SIZES)
def test_ground_truth_stacks_pass(scenes: dict[int, ProceduralScenes], size: int) -> None:
    assert structure_accuracy(scenes[size].images) >= 0.95


@pytest.mark.parametrize("size", SIZES)
def test_slightly_blurred_stacks_pass(scenes: dict[int, ProceduralScenes], size: int) -> None:
    blurred = np.stack([box_blur(x) for x in scenes[size].images])
    assert structure_accuracy(blurred) >= 0.9


def test_finds_the_ground_truth_blocks(scenes: dict[int, ProceduralScenes]) -> None:
    s = scenes[64]
    for img, masks in zip(s.images[:10], s.masks[:10]):
        a = analyse_stack(img)
        assert a.structured and a.reason == "ok"
        want = [_box(masks[k]) for k in reversed(_blocks(masks))]  # top to bottom
        assert [(t, b, l, r) for t, b, l, r in a.blocks] == want


# ----------------------------------------------------------------------------- broken scenes fail


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "perturb",
    [
        floating,
        lifted,
        pytest.param(lambda i, m: displaced(i, m, clear=False), id="overhang"),
        pytest.param(lambda i, m: displaced(i, m, clear=True), id="off-support"),
        two_piles,
        single_block,
        empty,
        colour_blob,
    ],
    ids=lambda f: getattr(f, "__name__", None),
)
def test_broken_stacks_fail(scenes: dict[int, ProceduralScenes], size: int, perturb) -> None:
    assert structure_accuracy(_apply(scenes[size], perturb)) <= 0.05


@pytest.mark.parametrize(("size", "sigma"), [(32, 3.0), (48, 2.0), (64, 2.0), (64, 3.0)])
def test_blurry_blobs_fail(scenes: dict[int, ProceduralScenes], size: int, sigma: float) -> None:
    blurred = np.stack([gaussian_blur(x, sigma) for x in scenes[size].images])
    assert structure_accuracy(blurred) <= 0.05


def test_other_datasets_are_not_stacks() -> None:
    for name in ("room", "sprites"):
        assert structure_accuracy(generate(name, 20, image_size=64, seed=0).images) <= 0.1


# ----------------------------------------------------------------------------- conventions


def test_layouts_and_value_ranges_agree(scenes: dict[int, ProceduralScenes]) -> None:
    s = scenes[48]
    mixed = np.concatenate([s.images[:6], _apply(s, floating)[:6]])
    want = structure_flags(mixed)
    assert want.tolist() == [True] * 6 + [False] * 6
    unit = mixed.astype(np.float32) / 255
    nchw = np.ascontiguousarray(unit.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(structure_flags(unit, value_range=(0, 1)), want)
    np.testing.assert_array_equal(structure_flags(nchw * 2 - 1, value_range=(-1, 1)), want)
    np.testing.assert_array_equal(structure_flags(torch.from_numpy(nchw), value_range=(0.0, 1.0)), want)
    assert [stack_is_structured(x, value_range=(0, 1)) for x in nchw] == want.tolist()


@settings(max_examples=10, deadline=None)
@given(low=st.floats(-5, 5), span=st.floats(0.1, 300))
def test_any_affine_value_range(scenes: dict[int, ProceduralScenes], low: float, span: float) -> None:
    imgs = np.concatenate([scenes[32].images[:3], _apply(scenes[32], empty)[:2]])
    scaled = low + imgs.astype(np.float64) / 255 * span
    assert structure_flags(scaled, value_range=(low, low + span)).tolist() == [True] * 3 + [False] * 2


@pytest.mark.parametrize(
    ("images", "kwargs", "argument"),
    [
        (np.zeros((2, 3, 32, 32), np.float32), {}, "value_range"),
        (np.zeros((2, 32, 32, 3), np.uint8), {"value_range": (1, 0)}, "value_range"),
        (np.zeros((2, 32, 32), np.uint8), {}, "images"),
        (np.zeros((2, 4, 32, 32), np.uint8), {}, "images"),
        (np.zeros((2, 3, 8, 8), np.uint8), {}, "images"),
        (np.zeros((0, 32, 32, 3), np.uint8), {}, "images"),
    ],
)
def test_invalid_arguments(images: np.ndarray, kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        structure_accuracy(images, **kwargs)


# ----------------------------------------------------------------------------- the touching judge
# the paper's criterion (§4): one pile of distinguishable blocks that all touch; blur allowed


@pytest.mark.parametrize("judge", list(JUDGES))
@pytest.mark.parametrize("size", SIZES)
def test_both_judges_pass_real_stacks(judge: str, size: int) -> None:
    images = generate("stacks", 100, image_size=size, seed=23).images
    assert JUDGES[judge](images).mean() >= 0.98


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "perturb",
    [
        floating,
        lifted,
        pytest.param(lambda i, m: displaced(i, m, clear=True), id="off-support"),
        two_piles,
        single_block,
        empty,
    ],
    ids=lambda f: getattr(f, "__name__", None),
)
def test_touching_rejects_broken_stacks(scenes: dict[int, ProceduralScenes], size: int, perturb) -> None:
    assert touching_flags(_apply(scenes[size], perturb)).mean() <= 0.05


@pytest.mark.parametrize("size", SIZES)
def test_touching_mostly_rejects_a_two_colour_blob(scenes: dict[int, ProceduralScenes], size: int) -> None:
    # a smooth blob fading from the top block's colour to the bottom one's shows two flat colour
    # caps; the judge reads a few as two soft blocks (0-10 % when calibrated), never most
    assert touching_flags(_apply(scenes[size], colour_blob)).mean() <= 0.15


@pytest.mark.parametrize(("size", "sigma"), [(32, 4.0), (48, 6.0), (64, 8.0)])
def test_touching_rejects_blur_that_leaves_no_boundary(scenes: dict[int, ProceduralScenes], size: int,
                                                       sigma: float) -> None:
    blurred = np.stack([gaussian_blur(x, sigma) for x in scenes[size].images])
    assert touching_flags(blurred).mean() <= 0.05


@pytest.mark.parametrize(("size", "sigma"), [(32, 0.7), (48, 1.0), (64, 1.0)])
def test_touching_allows_soft_edges(scenes: dict[int, ProceduralScenes], size: int, sigma: float) -> None:
    soft = np.stack([gaussian_blur(x, sigma) for x in scenes[size].images])
    assert touching_flags(soft).mean() >= 0.85


@pytest.mark.parametrize("size", (48, 64))
def test_soft_stacks_pass_touching_not_sharp(scenes: dict[int, ProceduralScenes], size: int) -> None:
    soft = np.stack([gaussian_blur(x, 1.5) for x in scenes[size].images])
    assert touching_flags(soft).mean() >= 0.6 and sharp_flags(soft).mean() <= 0.05


def test_sharp_implies_touching_on_stacks_and_their_perturbations(scenes: dict[int, ProceduralScenes]) -> None:
    # (the known exception: 32-px stacks box-blurred, whose smallest blocks keep no flat inside,
    # pass sharp and may fail touching; docs/metrics.md)
    for size in SIZES:
        s = scenes[size]
        images = np.concatenate([s.images, _apply(s, floating), _apply(s, colour_blob), _apply(s, two_piles)]
                                + ([np.stack([gaussian_blur(x, 1.0) for x in s.images])] if size > 32 else []))
        assert not (sharp_flags(images) & ~touching_flags(images)).any()


def test_touching_reasons_and_blocks(scenes: dict[int, ProceduralScenes]) -> None:
    s = scenes[64]
    for img, masks in zip(s.images[:5], s.masks[:5]):
        a = analyse_touching(img)
        assert a.structured and a.reason == "ok" and len(a.blocks) == len(_blocks(masks))
    assert "at least 2" in analyse_touching(single_block(s.images[0], s.masks[0])).reason


def test_touching_criterion_is_validated() -> None:
    with pytest.raises(ValueError, match="TouchingCriterion.flat"):
        TouchingCriterion(flat=0.0)
    strict = TouchingCriterion(block_area=0.9)   # no block covers 90 % of the image
    assert touching_flags(generate("stacks", 10, 32, seed=1).images, criterion=strict).mean() == 0.0


def test_wilson_interval_by_hand() -> None:
    # p = 0.5, n = 100: centre 0.5, half-width 1.96 sqrt(0.0025 + 0.000096) / 1.0384 = 0.0962
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.40383, abs=1e-5) and high == pytest.approx(0.59617, abs=1e-5)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 2000), data=st.data())
def test_wilson_interval_holds_the_proportion(n: int, data) -> None:
    k = data.draw(st.integers(0, n))
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_structure_report_counts_both_judges(scenes: dict[int, ProceduralScenes]) -> None:
    s = scenes[32]
    images = np.concatenate([s.images[:6], _apply(s, floating)[:4]])
    report = structure_report(images)
    assert report["n"] == 10
    for judge in ("touching", "sharp"):
        assert report[judge]["flags"] == JUDGES[judge](images).tolist()
        assert report[judge]["s_acc"] == 0.6 and report[judge]["ci95"] == list(wilson_interval(6, 10))


def test_s_acc_by_judge_counts_what_each_judge_passes() -> None:
    real = generate("stacks", 12, image_size=32, seed=23).images
    mixed = np.concatenate([real[:9], np.full_like(real[:3], 128)])   # three flat grey images: no stack
    expected = {name: float(judge(mixed).mean()) for name, judge in JUDGES.items()}
    assert set(expected) == {"touching", "sharp"} and s_acc_by_judge(mixed) == expected
    assert all(value <= 0.75 for value in expected.values())           # the grey images fail both
