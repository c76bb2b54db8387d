"""examples/stacks32_from_scratch.sh, the recipe of the default pretrained model, run end to
end at a few steps a stage: it writes a model that loads and samples, a second call has
nothing to do, and a larger step count extends the stage it names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lom_pyro import LOM

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "stacks32_from_scratch.sh"
TINY = {"SLOTS": "3", "EMORL_STEPS": "2", "LOM_STEPS": "2", "DECODER_STEPS": "2", "FIT_STEPS": "2", "SCENES": "48",
        "HELD_OUT": "16", "REPORT_SAMPLES": "4", "BATCH": "4", "THREADS": "1",
        "TRAIN_FLAGS": "--eval-scenes 8 --eval-every-scenes 8"}


def _run(out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(out)], env={**os.environ, "PYTHON": sys.executable, **TINY, **env},
                          capture_output=True, text=True, timeout=600)


def _steps(folder: Path) -> int:
    return json.loads((folder / "metrics.json").read_text())["steps"]


def test_the_recipe_writes_a_model_that_samples_and_goes_on_where_it_stopped(tmp_path):
    out = tmp_path / "recipe"
    first = _run(out)
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"done: {out}/slot_diffusion_wide.pt" in first.stdout
    lom = LOM.from_pretrained(str(out / "slot_diffusion_wide.pt"))
    assert lom.num_slots == 3
    assert type(lom.slot_prior).__name__ == "SlotDiffusionPrior"
    assert lom.sample(2, temperature=0.8).images.shape == (2, 3, 32, 32)
    stage_3 = json.loads((out / "lom" / "config.json").read_text())
    assert stage_3["init_from"].endswith("lom_frozen_decoder/checkpoint.pt") and stage_3["lr"] == 3e-4
    assert json.loads((out / "lom_frozen_decoder" / "config.json").read_text())["lom_decoder_frozen_steps"] == 2

    model = (out / "slot_diffusion_wide.pt").stat().st_mtime_ns
    again = _run(out)
    assert again.returncode == 0 and again.stderr.count("nothing to do") == 3, again.stderr[-2000:]
    assert (out / "slot_diffusion_wide.pt").stat().st_mtime_ns == model

    longer = _run(out, DECODER_STEPS="3")
    assert longer.returncode == 0, longer.stderr[-2000:]
    assert [_steps(out / stage) for stage in ("emorl", "lom_frozen_decoder", "lom")] == [2, 2, 3]
