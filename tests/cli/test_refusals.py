"""Every bad input gets one sentence, and nothing written is lost (issue 25): each refusal
of docs/training.md, "What is refused, and how", on tiny configurations."""

import dataclasses
import json
import shutil
import warnings

import pytest
import torch

from lom_pyro.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lom_pyro.cli import main
from lom_pyro.training import config_from_preset, train
from lom_pyro.training.config import read_config_file
from lom_pyro.training.state import RunFolder

pytestmark = pytest.mark.slow

TINY = dict(batch_size=2, eval_scenes=4, eval_every_scenes=4, figure_every=100, threads=1)
TINY_FLAGS = ["--no-lom", "--steps", "1", "--batch-size", "2", "--eval-scenes", "4", "--threads", "1"]


def one_sentence(err: str) -> str:
    """The message of a refusal: exactly one line on stderr, with no exception class name."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Error:" not in lines[0] and "Traceback" not in err, err
    return lines[0]


def files_of(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-step run of EMORL alone, two checkpoints kept."""
    out = tmp_path_factory.mktemp("finished") / "run"
    torch.set_num_threads(1)
    train(config_from_preset("quickstart", lom=False, steps=2, checkpoint_every=1, out=str(out), **TINY),
          progress=False)
    return out


@pytest.fixture
def run(finished, tmp_path):
    """A copy of the finished run to change."""
    return shutil.copytree(finished, tmp_path / "run")


# -- 1. TOML values ---------------------------------------------------------------------------
@pytest.mark.parametrize("line, expected", [
    ('lom = "no"', "lom must be true or false, got str 'no'"),
    ("steps = true", "steps must be a whole number, got bool True"),
    ('steps = "ten"', "steps must be a whole number, got str 'ten'"),
    ('lr = "1e-3"', "lr must be a number, got str '1e-3'"),
    ("lom_kwargs = 5", "lom_kwargs must be a table (JSON object), got int 5"),
    ("batch_size = 2.5", "batch_size must be a whole number, got float 2.5"),
])
def test_toml_values_are_checked_against_their_fields_type(tmp_path, capsys, line, expected):
    toml = tmp_path / "run.toml"
    toml.write_text(line + "\n")
    assert main(["train", "--config", str(toml), "--out", str(tmp_path / "out")]) == 2
    assert one_sentence(capsys.readouterr().err) == f"lom-pyro train: --config {toml}: {expected}"
    assert not (tmp_path / "out").exists()
    toml.write_text("lr = 1\nmax_minutes = 2\n")            # an integer is a number
    assert read_config_file(toml) == {"lr": 1, "max_minutes": 2}
    with pytest.raises(ValueError, match="steps must be a whole number, got bool True"):
        config_from_preset("quickstart", steps=True)     # the Python API too


# -- 2, 9. weights that do not fit, files that would run code -------------------------------
def test_resume_with_weights_that_do_not_fit_names_the_first_keys(run, capsys):
    payload = load_checkpoint(run / "checkpoint.pt")
    model = dict(payload["model"])
    first = next(iter(model))
    del model[first]
    model["extra.weight"] = torch.ones(1)
    (run / "checkpoint.pt").unlink()     # a hard link to the kept step file: replace, do not rewrite
    save_checkpoint(run / "checkpoint.pt", {**payload, "model": model})
    assert main(["train", "--resume", str(run), "--steps", "3"]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert "weights do not fit" in message and f"missing {first}" in message
    assert "unexpected extra.weight" in message


def test_init_from_a_shipped_name_says_which_lom_kwargs_it_was_trained_with():
    from lom_pyro.training.build import build, load_initial_weights

    module, _ = build(config_from_preset("quickstart"))   # the paper's slot prior; stacks32_ar has SRI's LSTM
    with pytest.raises(CheckpointError) as err:
        load_initial_weights(module, "stacks32_ar")
    message = str(err.value)
    assert message.startswith("--init-from stacks32_ar: its weights do not fit this model (missing ")
    assert "unexpected " in message and "\n" not in message
    assert message.endswith("""stacks32_ar was trained with --lom-kwargs '{"scene_dim": 32, "slot_prior": "lstm"}'""")


def test_a_file_holding_pickled_code_is_refused_saying_why_in_one_line(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "lom_pyro-checkpoint-v1", "config": print}, evil)
    assert main(["evaluate", str(evil)]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert "print" in message and "could run arbitrary code" in message
    assert "weights_only" not in message and "trust" not in message   # none of torch's advice to load it unsafely


# -- 3. export never replaces a file unasked --------------------------------------------------
def test_export_refuses_to_replace_an_existing_file_shipped_or_not(finished, tmp_path, monkeypatch, capsys):
    import lom_pyro.models.pretrained as pretrained

    shipped = tmp_path / "pretrained"
    shipped.mkdir()
    shutil.copy(pretrained.PRETRAINED_DIR / "stacks32.pt", shipped / "stacks32.pt")
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", shipped)
    before = (shipped / "stacks32.pt").read_bytes()
    assert main(["export", str(finished / "checkpoint.pt"), "stacks32"]) == 2
    assert "already exists; give --overwrite" in one_sentence(capsys.readouterr().err)
    assert (shipped / "stacks32.pt").read_bytes() == before
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"keep me")
    assert main(["export", str(finished), str(mine)]) == 2          # a run folder stands for its checkpoint
    assert mine.read_bytes() == b"keep me"
    assert main(["export", str(finished), str(mine), "--overwrite"]) == 0
    assert load_checkpoint(mine)["info"]["step"] == 2


# -- 4. --overwrite leaves nothing of the old run ---------------------------------------------
def test_overwrite_removes_every_output_of_the_old_run(run, capsys):
    for name in ("eval.json", "eval.md", "s_acc_sheet.png", "s_acc_sheet.json"):
        (run / name).write_text("old")
    (run / "visualize").mkdir()
    (run / "visualize" / "samples.png").write_text("old")
    (run / "notes.txt").write_text("mine")
    assert main(["train", *TINY_FLAGS, "--out", str(run), "--overwrite"]) == 0
    names = {p.name for p in run.iterdir()}
    assert not names & {"eval.json", "eval.md", "s_acc_sheet.png", "s_acc_sheet.json", "visualize"}
    assert (run / "notes.txt").read_text() == "mine" and load_checkpoint(run / "checkpoint.pt")["step"] == 1


# -- 5. paths saved absolute, a moved file reported -------------------------------------------
def test_files_are_saved_as_absolute_paths_and_a_moved_dataset_is_named(finished, run, tmp_path, monkeypatch, capsys):
    from lom_pyro.training.config import with_absolute_paths

    monkeypatch.chdir(finished.parent)
    out = tmp_path / "fine"
    assert main(["train", *TINY_FLAGS, "--init-from", "run/checkpoint.pt", "--out", str(out)]) == 0
    capsys.readouterr()
    assert json.loads((out / "config.json").read_text())["init_from"] == str(finished / "checkpoint.pt")
    assert load_checkpoint(out / "checkpoint.pt")["config"]["init_from"] == str(finished / "checkpoint.pt")
    (tmp_path / "data.h5").write_text("")
    monkeypatch.chdir(tmp_path)
    config = with_absolute_paths(config_from_preset("quickstart", dataset="data.h5", init_from="stacks32"))
    assert config.dataset == str(tmp_path / "data.h5") and config.init_from == "stacks32"   # a name stays a name

    payload = load_checkpoint(run / "checkpoint.pt")
    moved = str(tmp_path / "gone" / "scenes.h5")
    (run / "checkpoint.pt").unlink()
    save_checkpoint(run / "checkpoint.pt", {**payload, "config": {**payload["config"], "dataset": moved}})
    assert main(["train", "--resume", str(run), "--steps", "3"]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert f"the run's dataset {moved} is no longer there" in message


# -- 6. a finished run is left as it is -------------------------------------------------------
def test_resuming_a_finished_run_changes_no_file(run, capsys):
    before = files_of(run)
    assert main(["train", "--resume", str(run)]) == 0
    assert "nothing to do" in one_sentence(capsys.readouterr().err)
    assert files_of(run) == before
    assert main(["train", "--resume", str(run), "--steps", "2", "--max-minutes", "5"]) == 0
    assert files_of(run) == before


# -- 7. options checked before any work -------------------------------------------------------
@pytest.mark.parametrize("flags, expected", [
    (["--device", "foo"], "--device foo: not a device name; expected cpu, cuda or cuda:N"),
    (["--device", "cuda"], "--device cuda: this machine has no CUDA device that torch can use; use cpu"),
    (["--compile"], "--compile is refused on the CPU"),
    (["--dataset", "stackz"], "dataset 'stackz': neither a procedural dataset (stacks, room, sprites) nor an "
                              "existing file"),
])
def test_train_options_are_checked_before_any_work(tmp_path, monkeypatch, capsys, flags, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # the same answer on a GPU machine
    assert main(["train", *TINY_FLAGS, *flags, "--out", str(tmp_path / "out")]) == 2
    assert expected in one_sentence(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_evaluate_and_sample_options_are_checked_before_any_work(finished, tmp_path, capsys):
    from lom_pyro.data.h5 import write_procedural

    for args, expected in [
        (["sample", "--pretrained", "stacks32", "--n", "0", "--out", str(tmp_path / "s")], "--n must be >= 1, got 0"),
        (["evaluate", str(finished), "--n", "0"], "--n must be >= 1, got 0"),
        (["evaluate", str(finished), "--device", "foo"], "--device foo: not a device name"),
    ]:
        assert main(args) == 2
        assert expected in one_sentence(capsys.readouterr().err)
    wide = write_procedural("stacks", tmp_path / "wide.h5", 2, 2, image_size=40)
    assert main(["evaluate", str(finished), "--data", str(wide)]) == 2
    assert (f"--data {wide}: image_size=32 does not match dataset {wide}, whose images are 40x40"
            in one_sentence(capsys.readouterr().err))
    pickled = tmp_path / "inception.pt"
    torch.save({"net": print}, pickled)
    assert main(["evaluate", str(finished), "--inception", str(pickled)]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert message.startswith(f"lom-pyro evaluate: --inception {pickled}: cannot be loaded") and "arbitrary" in message
    assert not (finished / "eval.json").exists() and not (tmp_path / "s").exists()


# -- 8. the Python API's images ---------------------------------------------------------------
def test_lom_refuses_images_it_cannot_take_and_warns_outside_minus_one_one():
    import pyro

    from lom_pyro import LOM
    from toy import ToyOrderless

    lom = LOM(ToyOrderless(num_slots=3, slot_dim=4, image_shape=(3, 8, 8)), scene_dim=4)
    for x, expected in [(torch.zeros(0, 3, 8, 8), "x must hold at least one image, got an empty batch"),
                        (torch.zeros(2, 3, 8, 8, dtype=torch.float64), "x must have the model's dtype torch.float32"),
                        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "x must be a floating-point tensor in")]:
        for program in (lom.model, lom.guide):
            with pytest.raises(ValueError, match=expected):
                program(x)
    with pytest.warns(UserWarning, match=r"x should hold images in \[-1, 1\], got values in \[0, 255\]"):
        lom.guide(torch.linspace(0, 255, 2 * 3 * 64).view(2, 3, 8, 8))
    pyro.enable_validation(False)            # training's setting: no value checks, no host sync
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="x should hold")
        lom.guide(torch.full((2, 3, 8, 8), 5.0))
    lom.guide(torch.rand(2, 3, 8, 8) * 2 - 1)


# -- 10, 11. fallbacks said aloud, orphans removed --------------------------------------------
def test_resume_says_which_unreadable_checkpoint_it_skipped(run, capsys):
    (run / "checkpoint.pt").unlink()
    (run / "checkpoint.pt").write_bytes(b"torn")
    assert main(["train", "--resume", str(run)]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith(f"--resume {run}: skipped checkpoint {run / 'checkpoint.pt'}: cannot be read")
    assert lines[0].endswith(f"resuming from {run / 'checkpoints' / 'step_000000002.pt'} at step 2")


def test_temporary_files_of_killed_writes_are_removed_on_the_next_save(tmp_path):
    folder = RunFolder(tmp_path, keep=2)
    folder.save({"step": 1})
    orphans = [tmp_path / "checkpoints" / ".step_000000001.pt.abc123.tmp", tmp_path / ".checkpoint.pt.xyz.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half")
    mine = tmp_path / "checkpoints" / "notes.tmp"
    mine.write_text("mine")
    folder.save({"step": 2})
    assert not any(o.exists() for o in orphans) and mine.exists()
    assert load_checkpoint(folder.latest)["step"] == 2


# -- 12. messages that name what is expected --------------------------------------------------
def test_evaluate_takes_a_run_folder_and_says_what_a_folder_lacks(finished, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(finished), "--iwae-n", "2", "--iwae-k", "2", "--fid-n", "4", "--s-acc-samples", "2",
                 "--out", str(out)]) == 0
    assert json.loads((out / "eval.json").read_text())["eval_scenes"] == 4
    err = capsys.readouterr().err
    assert "evaluation (4 held-out scenes)" in err          # progress while it works
    assert main(["evaluate", str(tmp_path)]) == 2
    assert one_sentence(capsys.readouterr().err).endswith("a folder without checkpoint.pt; expected a checkpoint "
                                                          "file or a run folder")


# -- 14. what a new user sees -----------------------------------------------------------------
def test_progress_reaches_the_last_step_and_figures_are_named_by_steps_done(tmp_path, capsys):
    out = tmp_path / "run"
    train(config_from_preset("quickstart", lom=False, steps=3, out=str(out), **{**TINY, "figure_every": 2}))
    err = capsys.readouterr().err
    assert "3/3" in err and "evaluation (4 held-out scenes)" in err
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["step_000000.png", "step_000002.png",
                                                                   "step_000003.png"]
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 3


def test_help_shows_defaults_and_a_bad_option_is_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "training steps of the main stage (quickstart: 1000)" in text
    assert """(quickstart: {"scene_dim": 32})""" in text
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "temperature of the prior samples (S-Acc, FID/KID) (default: 0.8)" in text
    assert "torch device to evaluate on: cpu, cuda or cuda:N (default: cpu)" in text
    with pytest.raises(SystemExit):
        main(["visualize", "--help"])
    assert "seed of the samples drawn for the figures (default: 0)" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--preset", "nope"])
    assert exit_.value.code == 2
    message = one_sentence(capsys.readouterr().err)
    assert message.startswith("lom-pyro train: argument --preset: invalid choice: 'nope'")


def test_compile_refusal_cites_its_measurement():
    from pathlib import Path

    from lom_pyro.training.device import check_compile

    with pytest.raises(ValueError, match="docs/benchmarks/compile_cpu.md") as err:
        check_compile(True, torch.device("cpu"))
    assert (Path(__file__).resolve().parents[2] / "docs/benchmarks/compile_cpu.md").is_file()
    check_compile(True, torch.device("cuda"))
    check_compile(False, torch.device("cpu"))
    assert "\n" not in str(err.value)


def test_a_config_from_a_checkpoint_is_type_checked_too():
    from lom_pyro.training.build import config_of

    config = dataclasses.asdict(config_from_preset("quickstart"))
    with pytest.raises(ValueError, match="steps must be a whole number, got str '10'"):
        config_of({"config": {**config, "steps": "10"}}, "x.pt")
