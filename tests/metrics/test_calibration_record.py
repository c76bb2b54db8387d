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
calibration = load("judge_calibration")
majority = calibration.majority   # the label of record, as the scoring script makes it
SETS = {name: calibration.set_folder(name, JUDGES) for name in calibration.SETS}


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
    held_out = calibration.held_out_of(name, len(images))
    verdicts = {"touching": (touching_flags(images), np.isin(labels, ["P", "B"])),
                "sharp": (sharp_flags(images), labels == "P")}
    for judge, (flags, truth) in verdicts.items():
        agreement = float((flags[held_out] == truth[held_out]).mean())
        assert agreement == pytest.approx(record[judge]["held_out"]["all"]["agreement"], abs=1e-9), judge


def test_pooled_held_out_agreement_is_each_sets_record_put_together(tmp_path) -> None:
    result = calibration.pooled(JUDGES, tmp_path / "pooled.json")
    assert json.loads((tmp_path / "pooled.json").read_text()) == result
    together = result["all_held_out"]
    for judge in ("touching", "sharp"):
        rows = [json.loads((SETS[name] / "calibration.json").read_text())[judge]["held_out"]["all"] for name in SETS]
        for name, row in zip(SETS, rows):
            assert {k: result["per_set"][name][judge][k] for k in row} == pytest.approx(row), (name, judge)
        n = sum(row["n"] for row in rows)
        passed = sum(r["n"] * r["judge_rate"] for r in rows)
        positives = sum(r["n"] * r["label_rate"] for r in rows)
        true_positives = sum(r["n"] * r["judge_rate"] * r["precision"] for r in rows)
        agreed = sum(r["n"] * r["agreement"] for r in rows)
        assert together[judge]["n"] == n
        assert together[judge]["agreement"] == pytest.approx(agreed / n)
        assert together[judge]["precision"] == pytest.approx(true_positives / passed)
        assert together[judge]["recall"] == pytest.approx(true_positives / positives)
        # agreed = true positives + true negatives
        assert together[judge]["specificity"] == pytest.approx((agreed - true_positives) / (n - positives))
