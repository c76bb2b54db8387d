"""Builders for small files in the real source formats (TFRecord Examples, ShapeStacks tree)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLEVR_H, CLEVR_W, CLEVR_E = 240, 320, 11


def objects_room_example(rng: np.random.Generator, k: int = 7) -> dict[str, np.ndarray]:
    """image (64, 64, 3) uint8, mask (k, 64, 64, 1) in {0, 255}, one channel per pixel."""
    labels = rng.integers(0, k, size=(64, 64))
    mask = (np.arange(k)[:, None, None] == labels).astype(np.uint8) * 255
    return {"image": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "mask": mask[..., None]}


def clevr_example(
    rng: np.random.Generator, n_objects: int, boxes: list[tuple[int, int, int, int]] | None = None
) -> dict[str, np.ndarray]:
    """A CLEVR-with-masks record: entity 0 background, entities 1..n_objects visible at
    entity slots spread over 1..10 (odd slots first), each a box (top, bottom, left, right)."""
    slots = [j for j in (1, 3, 5, 7, 9, 2, 4, 6, 8, 10)][:n_objects]
    labels = np.zeros((CLEVR_H, CLEVR_W), dtype=np.int64)
    if boxes is None:
        boxes = [(40 + 20 * i, 55 + 20 * i, 70 + 25 * i, 90 + 25 * i) for i in range(n_objects)]
    for slot, (t, b, l, r) in zip(slots, boxes, strict=True):
        labels[t:b, l:r] = slot
    mask = (np.arange(CLEVR_E)[:, None, None] == labels).astype(np.uint8) * 255
    visibility = np.zeros(CLEVR_E, np.float32)
    visibility[[0, *slots]] = 1.0
    codes = np.zeros((4, CLEVR_E), np.uint8)
    codes[:, slots] = rng.integers(1, 3, size=(4, len(slots)))
    return {
        "image": rng.integers(0, 256, (CLEVR_H, CLEVR_W, 3), dtype=np.uint8),
        "mask": mask[..., None],
        "x": rng.normal(size=CLEVR_E).astype(np.float32),
        "y": rng.normal(size=CLEVR_E).astype(np.float32),
        "z": rng.normal(size=CLEVR_E).astype(np.float32),
        "rotation": rng.uniform(0, 360, size=CLEVR_E).astype(np.float32),
        "pixel_coords": rng.normal(size=(CLEVR_E, 3)).astype(np.float32),
        "size": codes[0],
        "material": codes[1],
        "shape": codes[2],
        "color": codes[3],
        "visibility": visibility,
    }


def write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, format="PNG")


def make_shapestacks(
    root: Path, rng: np.random.Generator, size: int = 224
) -> dict[str, list[tuple[np.ndarray, np.ndarray, str, int]]]:
    """A fake ShapeStacks tree; returns split -> [(rgb, labels, scenario, camera)] in file order."""
    scenarios = {
        "train": ["env_ccs-easy-h=2-vcom=0-vpsf=0-v=1", "env_ccs-hard-h=4-vcom=1-vpsf=0-v=2"],
        "eval": ["env_blocks-easy-h=3-vcom=0-vpsf=0-v=3"],
        "test": ["env_blocks-hard-h=6-vcom=0-vpsf=2-v=4"],
    }
    (root / "splits" / "default").mkdir(parents=True)
    out: dict[str, list[tuple[np.ndarray, np.ndarray, str, int]]] = {}
    for split, names in scenarios.items():
        (root / "splits" / "default" / f"{split}.txt").write_text("".join(n + "\n" for n in names))
        out[split] = []
        for scenario in names:
            folder = root / "recordings" / scenario
            folder.mkdir(parents=True)
            height = int(scenario.split("h=")[1].split("-")[0])
            for cam in (1, 12):  # sorted by name: cam_1 < cam_12
                rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                labels = np.zeros((size, size), np.uint8)
                for level in range(1, height + 1):
                    top = size - 20 - 25 * level
                    labels[top : top + 25, 80 + 3 * level : 140 - 3 * level] = level
                stem = f"w=1-f=2-l=3-c=original-cam_{cam}-mono-0"
                write_png(folder / f"rgb-{stem}.png", rgb)
                write_png(folder / f"iseg-{stem}.map", labels * 32)
                out[split].append((rgb, labels, scenario, cam))
    return out
