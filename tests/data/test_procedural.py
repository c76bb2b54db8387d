"""Procedural scenes: determinism, mask/factor consistency, physical layout, streaming."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lom_pyro.data.procedural import (
    BACKGROUND_CHANNELS,
    CHUNK_SIZE,
    DATASETS,
    FACTOR_NAMES,
    NUM_CHANNELS,
    ProceduralDataset,
    ProceduralScenes,
    generate,
)

SIZES = (32, 48, 64)


@pytest.fixture(scope="module")
def stacks() -> dict[int, ProceduralScenes]:
    return {s: generate("stacks", 40, image_size=s, seed=3) for s in SIZES}


def _object_channels(name: str) -> list[int]:
    return [k for k in range(NUM_CHANNELS[name]) if k not in BACKGROUND_CHANNELS[name]]


def _check_scenes(s: ProceduralScenes, name: str, n: int, size: int) -> None:
    k, f = NUM_CHANNELS[name], len(FACTOR_NAMES[name])
    assert s.name == name and len(s) == n
    assert s.images.shape == (n, size, size, 3) and s.images.dtype == np.uint8
    assert s.masks.shape == (n, k, size, size) and s.masks.dtype == np.uint8
    assert s.factors.shape == (n, k, f) and s.factors.dtype == np.float32
    assert s.factor_names == FACTOR_NAMES[name] and "visible" in s.factor_names
    assert s.background_channels == BACKGROUND_CHANNELS[name]
    # masks partition the image: every pixel in exactly one channel
    assert set(np.unique(s.masks)) <= {0, 1}
    assert (s.masks.sum(1) == 1).all()
    # background rows are zero; an object is visible exactly when its channel is non-empty
    assert (s.factors[:, list(s.background_channels)] == 0).all()
    vis = s.factors[..., s.factor_names.index("visible")]
    assert set(np.unique(vis)) <= {0.0, 1.0}
    obj = _object_channels(name)
    nonempty = s.masks[:, obj].reshape(n, len(obj), -1).any(-1)
    np.testing.assert_array_equal(vis[:, obj] == 1, nonempty)
    assert (s.factors[:, obj][vis[:, obj] == 0] == 0).all()
    assert (vis[:, obj].sum(1) >= 1).all()
    # the colour factors are the colours of the pixels (blocks are shaded by at most 10 %)
    rgb = [s.factor_names.index(c) for c in "rgb"]
    for i, j in zip(*np.nonzero(vis[:, obj])):
        pix = s.images[i][s.masks[i, obj[j]].astype(bool)].astype(np.float32) / 255
        assert np.abs(pix.max(0) - s.factors[i, obj[j], rgb]).max() <= 0.11


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("size", SIZES)
def test_shapes_partition_and_factors(name: str, size: int) -> None:
    _check_scenes(generate(name, 12, image_size=size, seed=1), name, 12, size)


@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(DATASETS), size=st.integers(32, 80), seed=st.integers(0, 2**31 - 1))
def test_any_size_and_seed(name: str, size: int, seed: int) -> None:
    _check_scenes(generate(name, 3, image_size=size, seed=seed), name, 3, size)


@pytest.mark.parametrize("name", DATASETS)
def test_deterministic_by_seed(name: str) -> None:
    a, b, c = (generate(name, 6, image_size=32, seed=s) for s in (5, 5, 6))
    for field in ("images", "masks", "factors"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.factors, c.factors)
    # scenes within a batch differ too
    assert len({x.tobytes() for x in a.images}) == len(a)


def test_prefix_stable_across_chunks() -> None:
    long = generate("sprites", CHUNK_SIZE + 6, image_size=32, seed=2)
    short = generate("sprites", CHUNK_SIZE + 2, image_size=32, seed=2)
    np.testing.assert_array_equal(long.images[: len(short)], short.images)
    np.testing.assert_array_equal(long.masks[: len(short)], short.masks)
    assert generate("room", 0, image_size=32).images.shape == (0, 32, 32, 3)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        (dict(name="cubes", n=2), "name"),
        (dict(name="stacks", n=-1), "n"),
        (dict(name="stacks", n=2, image_size=16), "image_size"),
        (dict(name="stacks", n=2, seed=-3), "seed"),
    ],
)
def test_invalid_arguments(kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        generate(**kwargs)


# ----------------------------------------------------------------------------- stacks


def _col(s: ProceduralScenes, name: str) -> int:
    return s.factor_names.index(name)


@pytest.mark.parametrize("size", SIZES)
def test_stacks_physical_from_factors(stacks: dict[int, ProceduralScenes], size: int) -> None:
    s = stacks[size]
    names = ("x", "y_bottom", "width", "height", "level", "visible")
    x, yb, w, h, lvl, vis = (s.factors[..., _col(s, c)] for c in names)
    for i in range(len(s)):
        blocks = [k for k in range(2, 6) if vis[i, k]]
        assert 2 <= len(blocks) <= 4 and blocks == list(range(2, 2 + len(blocks)))  # no gaps in levels
        assert [lvl[i, k] for k in blocks] == list(range(len(blocks)))
        horizon = np.flatnonzero(s.masks[i, 1].any(1))[0] / size
        assert yb[i, 2] > horizon  # the lowest block's bottom edge is on the floor
        mass = w[i] * h[i]
        for lo, up in zip(blocks, blocks[1:]):
            assert yb[i, up] == pytest.approx(yb[i, lo] - h[i, lo], abs=1e-6)  # edge to edge
            # the block above, and everything above, has its centre over this block
            above = [k for k in blocks if k >= up]
            com = (mass[above] * x[i, above]).sum() / mass[above].sum()
            for c in (x[i, up], com):
                assert x[i, lo] - w[i, lo] / 2 < c < x[i, lo] + w[i, lo] / 2
        rgb = s.factors[i, blocks][:, [_col(s, "r"), _col(s, "g"), _col(s, "b")]]
        assert (np.linalg.norm(np.diff(rgb, axis=0), axis=1) >= 0.34).all()  # distinct from the block beneath


@pytest.mark.parametrize("size", SIZES)
def test_stacks_physical_from_masks(stacks: dict[int, ProceduralScenes], size: int) -> None:
    s = stacks[size]
    for i in range(len(s)):
        m = s.masks[i].astype(bool)
        # wall above floor, split by one horizontal line
        horizon = np.flatnonzero(m[1].any(1))[0]
        assert not m[0, horizon:].any() and not m[1, :horizon].any()
        boxes = []
        for k in range(2, 6):
            if not m[k].any():
                continue
            ys, xs = np.nonzero(m[k])
            top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
            assert m[k, top : bottom + 1, left : right + 1].all()  # a filled axis-aligned rectangle
            assert m[k].sum() == (bottom - top + 1) * (right - left + 1)
            boxes.append((top, bottom, left, right))
            np.testing.assert_allclose(
                s.factors[i, k, [_col(s, "x"), _col(s, "y_bottom"), _col(s, "width"), _col(s, "height")]] * size,
                [(left + right + 1) / 2, bottom + 1, right - left + 1, bottom - top + 1],
                atol=1e-4,
            )
        low = boxes[0]
        assert low[1] >= horizon and low[1] + 1 < size  # bottom row on the floor, inside the frame
        assert m[1, low[1] + 1, low[2] : low[3] + 1].all()  # floor right under it
        for lo, up in zip(boxes, boxes[1:]):
            assert up[1] + 1 == lo[0]  # touching: no gap, no overlap
            assert max(lo[2], up[2]) <= min(lo[3], up[3])  # horizontal overlap
        assert boxes[-1][0] >= 1  # nothing cut at the top


# ----------------------------------------------------------------------------- room, sprites


def test_room_objects_stand_on_the_floor() -> None:
    s = generate("room", 150, image_size=32, seed=4)
    vis = s.factors[..., _col(s, "visible")]
    floor_or_object = {3, 4, 5, 6}
    for i in range(len(s)):
        label = s.masks[i].argmax(0)
        assert (label[-1] == 3).any()  # the floor reaches the bottom of the image
        for k in range(4, 7):
            if not vis[i, k]:
                continue
            ys, xs = np.nonzero(s.masks[i, k])
            y = ys.max()
            if y + 1 < 32:  # whatever is right below the object's lowest pixels is floor or a nearer object
                assert set(label[y + 1, xs[ys == y]].tolist()) <= floor_or_object
    depth, size = (s.factors[..., _col(s, c)][vis == 1] for c in ("depth", "size"))
    assert ((depth >= 0) & (depth <= 1)).all()
    assert np.corrcoef(depth, size)[0, 1] < -0.5  # further back, smaller


def test_sprites_inside_the_frame() -> None:
    s = generate("sprites", 40, image_size=32, seed=0)
    vis = s.factors[..., _col(s, "visible")] == 1
    x, y, size = (s.factors[..., _col(s, c)][vis] for c in ("x", "y", "size"))
    assert ((x - size / 2 >= -1e-6) & (x + size / 2 <= 1 + 1e-6)).all()
    assert ((y - size / 2 >= -1e-6) & (y + size / 2 <= 1 + 1e-6)).all()


# ----------------------------------------------------------------------------- streaming


def _as_uint8(images: torch.Tensor, low: float, high: float) -> np.ndarray:
    return ((images - low) / (high - low) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_stream_matches_generate_and_value_range() -> None:
    ds = ProceduralDataset("stacks", image_size=32, seed=9, value_range=(0.0, 1.0), n=CHUNK_SIZE + 3)
    items = list(ds)
    assert len(items) == len(ds) == CHUNK_SIZE + 3
    ref = generate("stacks", CHUNK_SIZE + 3, image_size=32, seed=9)
    images = torch.stack([x["image"] for x in items])
    assert images.dtype == torch.float32 and images.shape == (CHUNK_SIZE + 3, 3, 32, 32)
    assert 0.0 <= images.min() and images.max() <= 1.0
    np.testing.assert_array_equal(_as_uint8(images, 0.0, 1.0), ref.images)
    masks = torch.stack([x["masks"] for x in items])
    assert masks.dtype == torch.uint8
    np.testing.assert_array_equal(masks.numpy(), ref.masks)
    # endless stream: the same scenes, on and on
    endless = ProceduralDataset("stacks", image_size=32, seed=9)
    first = [x["image"] for x in itertools.islice(iter(endless), CHUNK_SIZE + 3)]
    np.testing.assert_array_equal(_as_uint8(torch.stack(first), -1.0, 1.0), ref.images)
    # the held-out form: the stream's default range to within float32 rounding, on its own bytes
    model = ref.model_images()
    assert model.dtype == torch.float32 and model.shape == images.shape
    torch.testing.assert_close(model, torch.stack(first), rtol=0, atol=2e-7)
    np.testing.assert_array_equal(_as_uint8(model, -1.0, 1.0), ref.images)
    with pytest.raises(TypeError):
        len(endless)


def test_stream_with_two_workers_is_disjoint_and_reproducible() -> None:
    n = 2 * CHUNK_SIZE + 5
    ds = ProceduralDataset("sprites", image_size=32, seed=1, n=n)

    def run() -> torch.Tensor:
        loader = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=2)
        return torch.cat([b["image"] for b in loader])

    first, second = run(), run()
    assert first.shape == (n, 3, 32, 32)
    torch.testing.assert_close(first, second)  # reproducible
    got = {x.tobytes() for x in _as_uint8(first, -1.0, 1.0)}
    want = {x.tobytes() for x in generate("sprites", n, image_size=32, seed=1).images}
    assert len(got) == n and got == want  # every scene exactly once: the workers never repeat each other


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        (dict(name="blocks"), "name"),
        (dict(name="stacks", value_range=(1.0, -1.0)), "value_range"),
        (dict(name="stacks", n=-2), "n"),
        (dict(name="stacks", image_size=31), "image_size"),
    ],
)
def test_dataset_invalid_arguments(kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        ProceduralDataset(**kwargs)
