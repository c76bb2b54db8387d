"""Figures: sizes of written images, palette stability, and argument checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lom_pyro import viz


def _images(n: int, h: int = 8, w: int = 10) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(n))


def test_image_grid_size_and_content() -> None:
    grid = viz.image_grid(_images(5), nrow=3, padding=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 10 + 2, 3 * 12 + 2, 3)
    assert (grid[0] == 255).all()  # padding row
    np.testing.assert_array_equal(grid[2:10, 2:12], viz.to_uint8(_images(5)[0]))
    assert viz.image_grid(_images(2), nrow=8, padding=0).shape == (8, 20, 3)


def test_colour_masks_use_fixed_slot_colours() -> None:
    masks = torch.zeros(2, 3, 4, 4)
    masks[:, 0, :2] = 1.0
    masks[:, 2, 2:] = 0.6
    masks[:, 1, 2:] = 0.4
    out = viz.colour_masks(masks)
    assert out.shape == (2, 3, 4, 4)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor(viz.PALETTE[0]) / 255.0)
    torch.testing.assert_close(out[1, :, 3, 3], torch.tensor(viz.PALETTE[2]) / 255.0)
    blended = viz.colour_masks(masks, blend=True)
    torch.testing.assert_close(blended[0, :, 3, 3], 0.6 * torch.tensor(viz.PALETTE[2]) / 255.0)
    # More slots than colours: the palette cycles.
    many = torch.zeros(1, len(viz.PALETTE) + 1, 1, 1)
    many[0, -1] = 1.0
    torch.testing.assert_close(viz.colour_masks(many)[0, :, 0, 0], torch.tensor(viz.PALETTE[0]) / 255.0)


def test_slot_components() -> None:
    rgb = torch.rand(2, 3, 3, 4, 4)
    masks = torch.zeros(2, 3, 4, 4)
    masks[:, 1] = 1.0
    out = viz.slot_components(rgb, masks, background=1.0)
    assert out.shape == (2, 3, 3, 4, 4)
    torch.testing.assert_close(out[:, 1], rgb[:, 1])
    assert (out[:, 0] == 1.0).all()
    with pytest.raises(ValueError, match="masks"):
        viz.slot_components(rgb, masks[:, :2])


def test_save_png_and_gif(tmp_path: Path) -> None:
    path = viz.save_png(_images(1)[0], tmp_path / "a" / "img.png")
    assert Image.open(path).size == (10, 8)
    assert Image.open(viz.save_png(_images(4), tmp_path / "grid.png")).size == (4 * 12 + 2, 12)
    grey = viz.save_png(np.zeros((5, 7)), tmp_path / "grey.png")
    assert Image.open(grey).size == (7, 5)
    frames = [_images(1)[0] * t for t in np.linspace(0, 1, 4)]
    gif = Image.open(viz.save_gif(frames, tmp_path / "slerp.gif", duration=50))
    assert gif.size == (10, 8) and gif.n_frames == 4
    with pytest.raises(ValueError, match="one size"):
        viz.save_gif([_images(1)[0], _images(1, 4, 4)[0]], tmp_path / "bad.gif")
    with pytest.raises(ValueError, match="empty"):
        viz.save_gif([], tmp_path / "bad.gif")


def test_panel_has_labels_on_the_left(tmp_path: Path) -> None:
    masks = torch.rand(3, 4, 8, 10).softmax(1)
    rows = {
        "inputs": _images(3),
        "reconstructions": _images(3),
        "segmentations": viz.colour_masks(masks),
        "samples": _images(2),
    }
    out = viz.panel(rows, tmp_path / "panel.png", padding=2, scale=2)
    png = Image.open(tmp_path / "panel.png")
    assert png.size == (out.shape[1], out.shape[0])
    assert out.shape[0] == 4 * (16 + 2) + 2
    label_w = out.shape[1] - (3 * (20 + 2) + 2)
    assert label_w > 40  # room for "reconstructions"
    assert (out[:, :label_w] < 128).any()  # some dark text pixels in the label column
    with pytest.raises(ValueError, match="height and width"):
        viz.panel({"a": _images(1), "b": _images(1, 4, 4)})
    with pytest.raises(ValueError, match="rows"):
        viz.panel({})


def test_plot_curves(tmp_path: Path) -> None:
    curves = {"elbo": [5.0, 3.0, 2.0, 1.5, float("nan"), 1.2], "kl": [0.1, 0.5, 0.8, 0.9, 1.0, 1.0]}
    out = viz.plot_curves(curves, tmp_path / "curves.png", size=(320, 200), title="training")
    assert out.shape == (200, 320, 3)
    assert Image.open(tmp_path / "curves.png").size == (320, 200)
    # Both series' colours appear in the plot.
    for colour in viz.PALETTE[:2]:
        assert (out == np.array(colour, dtype=np.uint8)).all(-1).any()
    assert viz.plot_curves({"loss": [10.0, 1.0, 0.1]}, logy=True).shape == (400, 640, 3)
    with pytest.raises(ValueError, match="positive"):
        viz.plot_curves({"loss": [1.0, -1.0]}, logy=True)
    with pytest.raises(ValueError, match="non-empty"):
        viz.plot_curves({"loss": []})
