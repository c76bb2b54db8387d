"""The ``masks`` judge: real stacks with their own masks pass; broken stacks, split or
one-colour blocks fail; masks must fit the images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lom_pyro.data.procedural import ProceduralScenes, generate
from lom_pyro.metrics.mask_structure import MaskCriterion, analyse_masks, mask_flags

SIZES = (32, 48, 64)


@pytest.fixture(scope="module")
def scenes() -> dict[int, ProceduralScenes]:
    return {s: generate("stacks", 30, image_size=s, seed=11) for s in SIZES}


def _blocks(masks: np.ndarray) -> list[int]:
    """Block channels, bottom to top (channels 0 and 1 are the wall and the floor)."""
    return [k for k in range(2, masks.shape[0]) if masks[k].any()]


def _lift_top(img: np.ndarray, masks: np.ndarray, dy: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The top block moved up ``dy`` rows, wall (or floor) filling where it was; its mask moves with it."""
    top = _blocks(masks)[-1]
    m = masks[top].astype(bool)
    ys, xs = np.nonzero(m)
    if ys.min() - dy < 0:
        return None
    wall = img[masks[0].astype(bool)][0]
    img, masks = img.copy(), masks.copy()
    colour = img[m][0]
    img[m] = wall
    masks[0][m], masks[top][m] = 1, 0
    img[ys - dy, xs] = colour
    masks[:, ys - dy, xs] = 0
    masks[top, ys - dy, xs] = 1
    return img, masks


def _judge_all(pairs) -> np.ndarray:
    pairs = [p for p in pairs if p is not None]
    assert len(pairs) >= 5, "too few scenes admit this change"
    return mask_flags(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))


@pytest.mark.parametrize("size", SIZES)
def test_real_stacks_with_their_masks_pass(size: int) -> None:
    scenes = generate("stacks", 100, image_size=size, seed=23)
    assert mask_flags(scenes.images, scenes.masks).mean() >= 0.98


@pytest.mark.parametrize("size", SIZES)
def test_a_floating_top_block_fails(scenes: dict[int, ProceduralScenes], size: int) -> None:
    # lifted by a few rows of wall: close enough to count as touching by distance alone, but
    # background lies between, so the blocks are in separate piles
    dy = max(2, size // 16)   # the pixel judges' floating gap
    assert _judge_all(_lift_top(i, m, dy) for i, m in zip(scenes[size].images, scenes[size].masks)).mean() <= 0.05


@pytest.mark.parametrize("size", SIZES)
def test_a_single_block_and_an_empty_scene_fail(scenes: dict[int, ProceduralScenes], size: int) -> None:
    s = scenes[size]
    one = [(i, np.where(np.isin(np.arange(len(m)), _blocks(m)[1:])[:, None, None], 0, m)) for i, m in
           zip(s.images, s.masks)]
    for k, (i, m) in enumerate(one):   # the removed blocks' pixels go to the wall slot
        one[k] = (i, np.concatenate([np.maximum(m[:1], 1 - m.sum(0, keepdims=True)), m[1:]]))
    assert not mask_flags(np.stack([p[0] for p in one]), np.stack([p[1] for p in one])).any()
    background_only = np.zeros_like(s.masks)
    background_only[:, 0] = 1
    assert not mask_flags(s.images, background_only).any()


def test_a_stack_painted_by_one_slot_or_split_slots_fails(scenes: dict[int, ProceduralScenes]) -> None:
    s = scenes[32]
    merged = s.masks.copy()
    for m in merged:   # every block's pixels given to the lowest block's slot: one blob, not a stack
        b = _blocks(m)
        m[b[0]] = m[b].max(0)
        m[b[1:]] = 0
    assert not mask_flags(s.images, merged).any()
    i = next(i for i, m in enumerate(s.masks) if len(_blocks(m)) >= 3)   # a stack of three blocks or more
    img, masks = s.images[i], s.masks[i]
    a = analyse_masks(img, masks)
    assert a.structured and len(a.blocks) == len(_blocks(masks))
    split = masks.copy()   # one slot holding two blocks that do not touch: in pieces
    b = _blocks(masks)
    split[b[0]] = split[b[0]] | split[b[2]]
    split[b[2]] = 0
    assert "in pieces" in analyse_masks(img, split).reason


def test_soft_masks_in_the_models_layout_and_value_ranges() -> None:
    s = generate("stacks", 8, image_size=32, seed=4)
    soft = torch.softmax(torch.from_numpy(s.masks).float() * 3.0, dim=1).unsqueeze(2)   # (N, K, 1, H, W)
    k = s.masks.shape[1]
    clear = float(np.exp(3.0) / (np.exp(3.0) + k - 1))    # each pixel's own slot's mask value
    assert MaskCriterion().confidence < clear < 0.9
    x = torch.from_numpy(s.images).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert np.array_equal(mask_flags(x, soft, value_range=(-1, 1)), mask_flags(s.images, s.masks))
    # the same masks are unclear by a confidence of 0.9
    assert not mask_flags(x, soft, value_range=(-1, 1), criterion=MaskCriterion(confidence=0.9)).any()


@pytest.mark.parametrize(("masks", "message"), [
    (np.zeros((2, 5, 32, 32)), r"masks: expected shape \(N, K, H, W\) = \(3, K, 32, 32\)"),
    (np.zeros((3, 5, 16, 16)), r"masks: expected shape"),
    (np.zeros((3, 32, 32)), r"masks: expected shape"),
])
def test_masks_that_do_not_fit_the_images_are_refused(masks: np.ndarray, message: str) -> None:
    images = generate("stacks", 3, image_size=32, seed=0).images
    with pytest.raises(ValueError, match=message):
        mask_flags(images, masks)
    with pytest.raises(ValueError, match="MaskCriterion.distinct"):
        MaskCriterion(distinct=0.0)
