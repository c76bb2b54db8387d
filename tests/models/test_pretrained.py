"""Pretrained files: export from a run, LOM.from_pretrained, lom-pyro sample, --init-from."""

import pytest
import torch

from lom_pyro import LOM
from lom_pyro.checkpoint import CheckpointError, load_checkpoint
from lom_pyro.cli import main
from lom_pyro.models.pretrained import load_pretrained
from lom_pyro.training import build, config_from_preset, train
from lom_pyro.training.build import load_initial_weights
from lom_pyro.training.export import export

pytestmark = pytest.mark.slow

TINY = dict(steps=2, batch_size=2, eval_scenes=4, figure_every=100, threads=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(config_from_preset("quickstart", out=str(out), **TINY), progress=False)
    return out


def test_export_round_trips_weights_and_records_where_they_came_from(run, tmp_path):
    path = export(run / "checkpoint.pt", tmp_path / "mine.pt")
    payload = load_checkpoint(path)                       # weights_only: plain data and tensors
    assert "optimiser" not in payload and payload["info"]["step"] == 2
    assert payload["info"]["metrics"]["steps"] == 2       # the run's metrics.json came along
    lom = LOM.from_pretrained(path)
    trained = load_checkpoint(run / "checkpoint.pt")["model"]
    for name, value in lom.state_dict().items():
        assert torch.equal(value, trained[name]), name
    assert lom.pretrained_info["config"]["preset"] == "quickstart" and not lom.training
    out = lom.sample(3, temperature=0.8)
    assert out.images.shape == (3, 3, 32, 32)
    with pytest.raises(ValueError, match="not a file and not a shipped name"):
        LOM.from_pretrained("no_such_model")
    with pytest.raises(CheckpointError, match="not a pretrained model"):
        load_pretrained(run / "checkpoint.pt")


def test_sample_command_writes_every_figure(run, tmp_path, capsys):
    path = export(run / "checkpoint.pt", tmp_path / "mine.pt")
    out = tmp_path / "figures"
    assert main(["sample", "--pretrained", str(path), "--out", str(out), "--database", "16", "--n", "4"]) == 0
    assert {p.name for p in out.iterdir()} == {"reconstructions.png", "samples.png", "temperature_sweep.png",
                                               "slerp.png", "slerp.gif", "retrieval.png"}
    assert main(["sample", "--pretrained", str(path)]) == 2
    assert "give --out DIR" in capsys.readouterr().err


def test_init_from_starts_from_the_trained_weights_and_refuses_another_architecture(run, tmp_path):
    path = export(run / "checkpoint.pt", tmp_path / "mine.pt")
    lom, _ = build(config_from_preset("quickstart"))
    load_initial_weights(lom, str(path))
    for name, value in lom.state_dict().items():
        assert torch.equal(value, load_checkpoint(path)["model"][name]), name
    emorl, _ = build(config_from_preset("quickstart", lom=False))   # EMORL alone takes the LOM's orderless part
    load_initial_weights(emorl, str(path))
    for name, value in emorl.state_dict().items():
        assert torch.equal(value, load_checkpoint(path)["model"][f"orderless.{name}"]), name
    wide, _ = build(config_from_preset("quickstart", lom_kwargs={"scene_dim": 64}))
    with pytest.raises(ValueError, match="--init-from .*do not fit this model"):
        load_initial_weights(wide, str(path))
    metrics = train(config_from_preset("quickstart", init_from=str(path), out=str(tmp_path / "tuned"), **TINY),
                    progress=False)
    assert metrics["steps"] == 2


@pytest.mark.parametrize("name", ["stacks32", "stacks32_ar", "stacks32_diffusion", "stacks32_slot_diffusion",
                                  "stacks32_slot_diffusion_wide"])
def test_the_shipped_models_decompose_held_out_stacks_as_their_records_say(name):
    from lom_pyro.evaluation.assess import decomposition_metrics
    from lom_pyro.models.pretrained import MAX_BYTES, available, pretrained_path
    from lom_pyro.training import TrainConfig, held_out

    assert name in available()
    assert pretrained_path(name).stat().st_size <= MAX_BYTES
    lom = LOM.from_pretrained(name)                        # weights_only load of a file lom-pyro export wrote
    info = lom.pretrained_info
    assert info["step"] > 0 and info["config"]["dataset"] == "stacks" and info["config"]["image_size"] == 32
    recorded = info["metrics"]["ari_fg_lom"]
    config = TrainConfig(**info["config"])
    measured = decomposition_metrics(lom, held_out(config, 32), config.dataset)
    # the same model on 32 of the 500 scenes it was measured on: ordered ARI-FG within noise of the record
    assert measured["ari_fg_lom"] > recorded - 0.1 and recorded >= 0.85
    assert lom.sample(4, temperature=0.8).images.shape == (4, 3, 32, 32)


@pytest.mark.parametrize("name, prior", [(None, "slot_diffusion"), ("stacks32_slot_diffusion", "slot_diffusion"),
                                         ("stacks32_diffusion", "diffusion")])
def test_the_default_model_generates_through_s_with_a_diffusion_prior_fitted_to_stacks32_ar(name, prior):
    from lom_pyro.slot_priors import DiffusionChain

    lom = LOM.from_pretrained() if name is None else LOM.from_pretrained(name)
    source = LOM.from_pretrained("stacks32_ar")
    assert isinstance(lom.slot_prior, DiffusionChain)
    fit = lom.pretrained_info["slot_prior_fit"]
    assert fit["source"] == "stacks32_ar" and fit["prior"] == prior
    # everything but generation is stacks32_ar's: encoder, decoder and the reference the guide aligns to
    mine = lom.state_dict()
    for key, value in source.state_dict().items():
        moved = key.replace("slot_prior.", "slot_prior.reference.", 1)
        assert torch.equal(mine[moved], value), key
    torch.manual_seed(0)
    out = lom.sample(3, temperature=0.8)
    assert out.images.shape == (3, 3, 32, 32) and out.s.shape == (3, lom.scene_dim)
    # the slots depend on s: the same noise under another scene latent gives other slots
    torch.manual_seed(1)
    a = lom.slot_prior.sample(torch.zeros(2, lom.scene_dim), 0.8)
    torch.manual_seed(1)
    b = lom.slot_prior.sample(torch.full((2, lom.scene_dim), 2.0), 0.8)
    assert not torch.allclose(a, b)
