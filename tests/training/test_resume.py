"""Resume, run folders and faults of ``lom-pyro train`` (tiny configurations, CPU)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from lom_pyro.checkpoint import load_checkpoint
from lom_pyro.cli import main
from lom_pyro.training import config_from_preset, resume, train

pytestmark = pytest.mark.slow

TINY = dict(batch_size=2, eval_scenes=4, eval_every_scenes=4, figure_every=100, threads=1)


def _same_state(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for key in a:
        assert torch.equal(a[key], b[key]), f"{what}: {key} differs"


@pytest.mark.parametrize("two_stage, stop_at", [(False, 3), (True, 2), (True, 4)],
                         ids=["one stage", "stopped in stage 1", "stopped in stage 2"])
def test_a_stopped_and_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path, two_stage, stop_at):
    stages = dict(orderless_steps=3, freeze_orderless=True) if two_stage else {}
    config = lambda out: config_from_preset("quickstart", steps=5, eval_every=2, out=str(tmp_path / out),
                                            checkpoint_every=0, **stages, **TINY)
    whole = train(config("whole"), progress=False)
    stopped = train(config("parts"), progress=False, stop_at=stop_at)
    assert stopped["step"] == stop_at and "stop_at" in stopped["stopped"]
    resumed = resume(tmp_path / "parts", progress=False)
    a, b = load_checkpoint(tmp_path / "whole" / "checkpoint.pt"), load_checkpoint(tmp_path / "parts" / "checkpoint.pt")
    assert a["step"] == b["step"] == 5 + (3 if two_stage else 0)
    _same_state(a["model"], b["model"], "parameters")
    _same_state(a["objective"], b["objective"], "GECO state")
    for pa, pb in zip(a["optimiser"]["state"].values(), b["optimiser"]["state"].values()):
        _same_state(pa, pb, "Adam state")
    assert a["data_position"] == b["data_position"] == a["step"] * 2
    # the log continues where it stopped: same steps and the same held-out numbers
    curves = [json.loads((tmp_path / run / "curves.json").read_text()) for run in ("whole", "parts")]
    assert curves[0]["step"] == curves[1]["step"] and curves[0]["eval/step"] == curves[1]["eval/step"]
    assert curves[0]["err/x_orderless"] == curves[1]["err/x_orderless"]
    assert whole["ari_fg_orderless"] == resumed["ari_fg_orderless"]


def test_resume_extends_a_finished_run_and_refuses_to_change_what_it_trains(tmp_path):
    out = tmp_path / "run"
    train(config_from_preset("quickstart", lom=False, steps=2, out=str(out), keep_checkpoints=2,
                             checkpoint_every=1, **TINY), progress=False)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000000001.pt", "step_000000002.pt"]
    with pytest.raises(ValueError, match="cannot change batch_size"):
        resume(out, batch_size=4)
    resume(out, progress=False, steps=3)
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 3
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000000002.pt", "step_000000003.pt"]
    assert json.loads((out / "config.json").read_text())["steps"] == 3


def test_a_new_run_refuses_a_used_folder_and_a_failed_start_leaves_no_files(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ["train", "--no-lom", "--steps", "1", "--batch-size", "2", "--eval-scenes", "4", "--threads", "1",
            "--out", str(out)]
    assert main(args) == 0
    before = sorted(p.name for p in out.iterdir())
    assert main(args) == 2
    assert "is not empty" in capsys.readouterr().err and sorted(p.name for p in out.iterdir()) == before
    (out / "notes.txt").write_text("mine")
    assert main([*args, "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine"          # --overwrite removes only a run's own files

    # a crash inside the first step (here: a network that fails) leaves nothing behind
    import lom_pyro.training.distributed as distributed

    def broken(module):
        def fail(*args, **kwargs):
            raise RuntimeError("out of memory")
        return fail, fail

    monkeypatch.setattr(distributed, "programs", broken)
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError, match="out of memory"):
        train(config_from_preset("quickstart", lom=False, steps=1, out=str(fresh), **TINY), progress=False)
    assert not fresh.exists()


def test_non_finite_steps_are_skipped_and_too_many_in_a_row_stop_the_run(tmp_path, monkeypatch):
    import lom_pyro.training.loop as loop

    real = loop.TrainingBatches

    class Poisoned(real):
        """Batches 2 and 3 carry a NaN pixel; the rest are the real stream."""

        def __next__(self):
            x = super().__next__()
            if self.position in (4, 6):
                x = x.clone()
                x[0, 0, 0, 0] = float("nan")
            return x

    monkeypatch.setattr(loop, "TrainingBatches", Poisoned)
    out = tmp_path / "run"
    metrics = train(config_from_preset("quickstart", lom=False, steps=4, out=str(out), **TINY), progress=False)
    assert metrics["steps"] == 4
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("skipped_nonfinite")] == [1, 2]
    assert all(torch.isfinite(v).all() for v in load_checkpoint(out / "checkpoint.pt")["model"].values())

    stopped = train(config_from_preset("quickstart", lom=False, steps=4, max_bad_steps=2, out=str(tmp_path / "b"),
                                       **TINY), progress=False)
    assert "2 non-finite losses in a row" in stopped["stopped"]
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 3


def test_config_file_and_flags(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text('lom = false\nsteps = 1\nbatch_size = 2\neval_scenes = 4\nthreads = 1\n'
                    '[orderless_kwargs]\nnum_slots = 3\nslot_dim = 8\nstochastic_layers = 1\nrefinement_steps = 0\n'
                    'encoder_width = 8\ndecoder_hidden = 8\nprior_hidden = 8\nrefinement_hidden = 8\nsigma = 0.1\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(toml), "--batch-size", "3", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["batch_size"] == 3 and saved["orderless_kwargs"]["num_slots"] == 3 and saved["lom"] is False
    toml.write_text("stepz = 3\n")
    assert main(["train", "--config", str(toml), "--out", str(tmp_path / "x")]) == 2
    assert "unknown keys ['stepz']" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["train", "--image-size", "16", "--out", str(tmp_path / "y")]) == 2
    assert "image_size must be >= 32" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no readable checkpoint" in capsys.readouterr().err


def test_sigterm_checkpoints_and_exits_cleanly_then_resume_finishes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lom_pyro.cli", "train", "--no-lom", "--steps", "100000", "--batch-size", "2",
           "--eval-scenes", "4", "--threads", "1", "--checkpoint-every", "0", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    while not (out / "log.jsonl").exists() and time.time() < deadline:   # training has started
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "stopped by a signal" in err
    step = load_checkpoint(out / "checkpoint.pt")["step"]
    assert step >= 1
    resume(out, progress=False, steps=step + 1)
    assert load_checkpoint(out / "checkpoint.pt")["step"] == step + 1


def test_bf16_autocast_and_compile_touch_only_the_networks(tmp_path):
    from lom_pyro.training.speed import autocast_networks, compile_networks, network_parts

    lom, _ = build_tiny()
    parts = {type(p).__name__ for p in network_parts(lom)}
    assert {"SpatialBroadcastDecoder", "CausalTransformer", "SetEncoder", "ConvTokenEncoder"} <= parts
    keys = set(lom.state_dict())
    autocast_networks(lom, torch.bfloat16, "cpu")
    z = torch.randn(2, lom.num_slots, lom.slot_dim)
    rgb, logits = lom.decoder(z)
    assert rgb.dtype == logits.dtype == torch.float32          # the Pyro program sees float32
    compile_networks(lom, backend="eager")                      # wiring only; inductor on a GPU (benchmarks/gpu.sh)
    assert set(lom.state_dict()) == keys                        # checkpoints are unchanged
    metrics = train(config_from_preset("quickstart", steps=2, amp="bf16", out=str(tmp_path / "amp"), **TINY),
                    progress=False)
    assert metrics["steps"] == 2 and all(torch.isfinite(v).all()
                                         for v in load_checkpoint(tmp_path / "amp" / "checkpoint.pt")["model"].values())


def build_tiny():
    from lom_pyro.training import build

    torch.manual_seed(0)
    return build(config_from_preset("quickstart"))


KILLED_WRITER = """
import sys, torch
from lom_pyro.training.state import RunFolder
folder = RunFolder(sys.argv[1], keep=2)
step = 0
while True:
    step += 1
    folder.save({"step": step, "model": {"w": torch.full((4_000_000,), float(step))}})
    print(step, flush=True)
"""


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one_readable(tmp_path):
    from lom_pyro.training.state import RunFolder

    for delay in (0.05, 0.3, 0.7):
        folder = tmp_path / f"run{delay}"
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(folder)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "1"           # one checkpoint is complete
        time.sleep(delay)                                       # then die at some point of a later write
        proc.kill()
        proc.wait()
        payload = RunFolder(folder).load_latest()
        assert payload["step"] >= 1 and torch.equal(payload["model"]["w"][:3], torch.full((3,), payload["step"] * 1.0))


def test_a_checkpoint_with_the_right_tag_but_wrong_contents_gets_one_sentence(tmp_path, capsys):
    from lom_pyro.checkpoint import save_checkpoint

    odd = tmp_path / "odd"
    save_checkpoint(odd / "checkpoint.pt", {"model": {"w": torch.ones(2)}, "step": 1})
    assert main(["evaluate", str(odd / "checkpoint.pt")]) == 2
    assert "has no 'config' entry" in capsys.readouterr().err
    assert main(["train", "--resume", str(odd)]) == 2
    assert "has no 'config' entry" in capsys.readouterr().err
    config = dataclasses.asdict(config_from_preset("quickstart"))
    save_checkpoint(odd / "checkpoint.pt", {"config": config, "model": {"w": torch.ones(2)}, "step": 1})
    assert main(["evaluate", str(odd / "checkpoint.pt")]) == 2
    assert "weights do not fit the model of its own config" in capsys.readouterr().err
    save_checkpoint(odd / "checkpoint.pt", {"config": {**config, "colour": 1}, "model": {}, "step": 1})
    assert main(["train", "--resume", str(odd)]) == 2
    assert "its config does not fit this version" in capsys.readouterr().err
