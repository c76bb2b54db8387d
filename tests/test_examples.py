"""The scripts in examples/: each trains two steps of its --small setting and writes its
outputs; Pyro's Predictive draws the prior and posterior predictive of a LOM."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pyro
import pytest
import torch
from pyro.infer import Predictive

from lom_pyro.checkpoint import load_checkpoint
from lom_pyro.data.h5 import write_procedural
from lom_pyro.training import build, config_from_preset

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TWO_SMALL_STEPS = ["--small", "--steps", "2", "--batch-size", "2", "--device", "cpu"]


@pytest.fixture
def example(monkeypatch):
    """Import a script of examples/ by name (the scripts import their helper, ``_common``)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module


def _initial_parameters(script: ModuleType, image_size: int) -> dict[str, torch.Tensor]:
    pyro.set_rng_seed(0)  # as main does with its default --seed 0, before building
    lom, _ = script.build(image_size, True)
    return {name: p.detach().clone() for name, p in lom.named_parameters()}


def _changed(initial: dict[str, torch.Tensor], trained: dict[str, torch.Tensor], names: list[str]) -> float:
    """The fraction of the parameter tensors ``names`` that training changed."""
    return sum(not torch.equal(initial[n], trained[n]) for n in names) / len(names)


def _check_outputs(out: Path, initial: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    assert (out / "samples.png").stat().st_size > 0
    payload = load_checkpoint(out / "checkpoint.pt")
    assert payload["step"] == 2 and payload["optimiser"]["state"] and "states.x.beta" in payload["objective"]
    trained = payload["model"]
    # the same initialisation (two warm-up steps move a weight by < 1e-4) ...
    assert max(float((initial[n] - trained[n]).abs().max()) for n in initial) < 1e-3
    # ... and both parameter groups trained: the orderless model's and the LOM's own (in two
    # steps a few EMORL tensors stay put: its query/key gradients are ~1e-15, test_train.py)
    orderless = [n for n in initial if n.startswith("orderless.")]
    assert _changed(initial, trained, orderless) > 0.9
    assert _changed(initial, trained, [n for n in initial if n not in orderless]) == 1.0
    return trained


@pytest.mark.parametrize("name", ["objects_room", "clevr6", "shapestacks", "shapestacks_genesis_v2", "custom_prior"])
def test_example_trains_on_procedural_scenes_and_writes_checkpoint_and_samples(name, example, tmp_path, capsys):
    script = example(name)
    initial = _initial_parameters(script, 32)
    lom = script.main(["--procedural", "--image-size", "32", *TWO_SMALL_STEPS, "--out", str(tmp_path)])
    trained = _check_outputs(tmp_path, initial)
    assert all(torch.equal(value, trained[key]) for key, value in lom.state_dict().items())  # what main returns
    if name == "custom_prior":  # the user's prior is among the LOM's parameters, all trained (a Monte-Carlo KL)
        assert [n for n in initial if n.startswith("scene_prior.")] == [
            "scene_prior.logits", "scene_prior.locs", "scene_prior.log_scales"]
        assert "prior predictive: s (3, 4, 1, 32), z (3, 4, 6, 32), x (3, 4, 1, 3, 32, 32)" in capsys.readouterr().out


@pytest.mark.parametrize("name,preset,orderless", [("objects_room", "objects_room", "emorl"),
                                                   ("clevr6", "clevr6", "emorl"),
                                                   ("shapestacks", "shapestacks", "emorl"),
                                                   ("shapestacks_genesis_v2", "shapestacks", "genesis_v2")])
def test_paper_script_builds_the_model_and_objective_of_the_library_preset(name, preset, orderless, example):
    torch.manual_seed(0)
    lom, geco = example(name).build(64, False)
    torch.manual_seed(0)
    preset_lom, preset_geco = build(config_from_preset(preset, orderless=orderless))
    assert lom.state_dict().keys() == preset_lom.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(lom.state_dict().values(), preset_lom.state_dict().values()))
    assert {k: s.config for k, s in geco.states.items()} == {k: s.config for k, s in preset_geco.states.items()}


def test_example_reads_a_converted_hdf5_file_at_its_own_image_size(example, tmp_path):
    data = write_procedural("room", tmp_path / "room.h5", n_train=4, n_test=0, image_size=32)
    script = example("objects_room")
    initial = _initial_parameters(script, 32)
    lom = script.main(["--data", str(data), *TWO_SMALL_STEPS, "--out", str(tmp_path / "run")])  # --image-size 64 unused
    assert lom.image_shape == (3, 32, 32)
    _check_outputs(tmp_path / "run", initial)


def test_predictive_draws_prior_and_posterior_predictive_sites(example):
    script = example("custom_prior")
    lom, _ = script.build(32, True)
    k, dz, ds = lom.num_slots, lom.slot_dim, lom.scene_dim
    expected = {"s": (3, 2, 1, ds), "z": (3, 2, k, dz), "x": (3, 2, 1, 3, 32, 32)}

    prior = script.prior_predictive(lom, num_samples=3, batch_size=2)
    assert {site: tuple(v.shape) for site, v in prior.items()} == expected

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    posterior = script.posterior_predictive(lom, x, num_samples=3)
    assert {site: tuple(v.shape) for site, v in posterior.items()} == expected
    assert not torch.equal(posterior["x"][0], lom.observation(x).unsqueeze(1))  # generated, not the data
    assert not torch.equal(posterior["s"][0], posterior["s"][1])                # a draw per sample

    # the model given x observes it: every site comes back, "x" as the data itself
    observed = Predictive(lom.model, guide=lom.guide, num_samples=3)(x)
    assert {"o", "x_orderless", "s", "z", "x"} <= set(observed)
    assert torch.equal(observed["x"][1], lom.observation(x).unsqueeze(1))
