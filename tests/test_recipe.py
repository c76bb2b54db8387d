"""examples/stacks32_from_scratch.sh, the recipe of the default pretrained model, run end to
end at a few steps a stage: it writes a model that loads and samples, a second call has
nothing to do, a larger step count extends the stage it names, a call out of time stops
before starting anything, and another K than a stage began with is refused."""

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
FEW_STEPS = {"SLOTS": "3", "EMORL_STEPS": "2", "LOM_STEPS": "2", "DECODER_STEPS": "2", "FIT_STEPS": "2",
             "SCENES": "48", "HELD_OUT": "16", "REPORT_SAMPLES": "4", "BATCH": "4", "THREADS": "1",
             "TRAIN_FLAGS": "--eval-scenes 8 --eval-every-scenes 8"}
# what the script reads from the environment: none of the caller's may leak in
SCRIPT_VARIABLES = {*FEW_STEPS, "MINUTES", "EMORL_DIR", "PYTHON"}


def _run(out: Path, **env: str) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARIABLES}
    return subprocess.run(["bash", str(SCRIPT), str(out)], capture_output=True, text=True, timeout=600,
                          env={**inherited, "PYTHON": sys.executable, **FEW_STEPS, **env})


def _steps(folder: Path) -> int:
    return json.loads((folder / "metrics.json").read_text())["steps"]


def test_the_recipe_makes_a_model_that_samples_resumes_extends_and_refuses_another_k(tmp_path):
    out = tmp_path / "recipe"
    out_of_time = _run(out, MINUTES="0")
    assert out_of_time.returncode == 3 and "MINUTES are up" in out_of_time.stderr and not out.exists()

    first = _run(out)
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"done: {out}/slot_diffusion_wide.pt" in first.stdout
    lom = LOM.from_pretrained(str(out / "slot_diffusion_wide.pt"))
    assert lom.num_slots == 3
    assert type(lom.slot_prior).__name__ == "SlotDiffusionPrior"
    assert lom.sample(2, temperature=0.8).images.shape == (2, 3, 32, 32)
    frozen = json.loads((out / "lom_frozen_decoder" / "config.json").read_text())
    thawed = json.loads((out / "lom" / "config.json").read_text())
    assert frozen["lom_decoder_frozen_steps"] > frozen["steps"] and thawed["lom_decoder_frozen_steps"] == 0
    assert thawed["init_from"].endswith("lom_frozen_decoder/checkpoint.pt") and thawed["lr"] == 3e-4
    assert frozen["orderless_kwargs"]["num_slots"] == thawed["orderless_kwargs"]["num_slots"] == 3

    model = (out / "slot_diffusion_wide.pt").stat().st_mtime_ns
    again = _run(out)
    assert again.returncode == 0 and again.stderr.count("nothing to do") == 3, again.stderr[-2000:]
    assert (out / "slot_diffusion_wide.pt").stat().st_mtime_ns == model

    longer = _run(out, DECODER_STEPS="3")
    assert longer.returncode == 0, longer.stderr[-2000:]
    assert [_steps(out / stage) for stage in ("emorl", "lom_frozen_decoder", "lom")] == [2, 2, 3]

    other_k = _run(out, SLOTS="4")
    assert other_k.returncode == 2 and "was started with 3 slots, not SLOTS=4" in other_k.stderr
