"""The committed judge-calibration record still describes the judges: on the labelled images
that are committed, the pixel judges' verdicts give the agreement written in each set's
``calibration.json``. A change to a judge that moves its agreement with the blind labels
fails here until the calibration is scored again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark_scripts import load
from lom_pyro.metrics.structure import sharp_flags, touching_flags

JUDGES = Path(__file__).parents[2] / "benchmarks" / "results" / "judges"
SETS = {"first": JUDGES, **{name: JUDGES / name for name in ("diffusion", "default", "corrector", "ceiling")}}
majority = load("judge_calibration").majority   # the label of record, as the scoring script makes it


@pytest.mark.parametrize("name", sorted(SETS))
def test_recorded_agreement_matches_the_judges(name: str) -> None:
    folder = SETS[name]
    images = np.load(folder / "images.npz")["images"]
    labellers = json.loads((folder / "labels.json").read_text())["labellers"]
    sources = json.loads((folder / "key.json").read_text())["sources"]
    record = json.loads((folder / "calibration.json").read_text())
    assert len(sources) == len(images) == record["images"]
    assert all(len(letters) == len(images) and set(letters) <= set("PBF") for letters in labellers.values())
    labels = np.array([majority("".join(v[i] for v in labellers.values())) for i in range(len(images))])
    assert {k: int((labels == k).sum()) for k in "PBF"} == record["labels"]
    held_out = np.arange(len(images)) % 2 == 1 if name == "first" else np.ones(len(images), bool)
    verdicts = {"touching": (touching_flags(images), np.isin(labels, ["P", "B"])),
                "sharp": (sharp_flags(images), labels == "P")}
    for judge, (flags, truth) in verdicts.items():
        agreement = float((flags[held_out] == truth[held_out]).mean())
        assert agreement == pytest.approx(record[judge]["held_out"]["all"]["agreement"], abs=1e-9), judge
