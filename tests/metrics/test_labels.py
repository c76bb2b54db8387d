"""Hand-labelling sheet for S-Acc: writing, reading back, and errors naming the row."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from lom_pyro.metrics import read_labelling_sheet, write_labelling_sheet
from lom_pyro.metrics.labels import SHEET_PNG, SHEET_README


def _fill(csv_path: Path, labels: list[str]) -> None:
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "index,label" and len(rows) == len(labels) + 1
    csv_path.write_text("\n".join([rows[0], *(f"{i},{lab}" for i, lab in enumerate(labels))]) + "\n")


def test_round_trip(tmp_path: Path) -> None:
    images = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    csv_path = write_labelling_sheet(images, tmp_path / "sheet", ncol=5)
    assert csv_path.name == "labels.csv"
    png = Image.open(csv_path.parent / SHEET_PNG)
    # 16 px images are enlarged 8x; 5 columns, 3 rows with captions.
    assert png.size == (5 * (128 + 4) + 4, 3 * (128 + 16 + 4) + 4)
    readme = (csv_path.parent / SHEET_README).read_text()
    assert "labels.csv" in readme and "touch" in readme
    _fill(csv_path, ["1", "0", "y", "n", "Yes", "no", "1", "1", "0", "1", "TRUE", "0"])
    assert read_labelling_sheet(csv_path) == pytest.approx(7 / 12)
    with pytest.raises(FileExistsError):
        write_labelling_sheet(images, tmp_path / "sheet")


def test_missing_and_invalid_labels_name_the_row(tmp_path: Path) -> None:
    csv_path = write_labelling_sheet(torch.rand(3, 3, 8, 8), tmp_path)
    with pytest.raises(ValueError, match=r"line 2: image 0 has no label"):
        read_labelling_sheet(csv_path)
    _fill(csv_path, ["1", "maybe", "0"])
    with pytest.raises(ValueError, match=r"line 3: image 1 has label 'maybe'"):
        read_labelling_sheet(csv_path)
    csv_path.write_text("index,label\n0,1\n0,0\n")
    with pytest.raises(ValueError, match="labelled twice"):
        read_labelling_sheet(csv_path)
    csv_path.write_text("image,ok\n0,1\n")
    with pytest.raises(ValueError, match="header"):
        read_labelling_sheet(csv_path)
    csv_path.write_text("index,label\nx,1\n")
    with pytest.raises(ValueError, match="not an integer"):
        read_labelling_sheet(csv_path)


def test_write_rejects_bad_images(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="images"):
        write_labelling_sheet(torch.rand(3, 8, 8), tmp_path)
