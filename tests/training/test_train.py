"""End-to-end smoke run of ``lom-pyro train`` on a tiny configuration."""

import dataclasses
import json
import warnings

import pytest
import torch

from lom_pyro import registry
from lom_pyro.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lom_pyro.cli import main
from lom_pyro.training import TrainConfig, build, config_from_preset, load_orderless, load_trained
from runs import TINY, still_groups

pytestmark = pytest.mark.slow

def test_cli_train_writes_figures_metrics_and_trains_every_parameter(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--preset", "quickstart", *TINY, "--out", str(out)]) == 0
    # named by steps done: the untrained model, after 2 steps, after the last
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == ["step_000000.png", "step_000002.png",
                                                                       "step_000003.png"]
    assert (out / "curves.png").stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("ari_fg_orderless", "ari_fg_lom", "structure_accuracy_samples", "structure_accuracy_recon_orderless",
                "structure_accuracy_recon_lom", "test_objective_elbo_per_image",
                "test_terms_per_image", "test_lom_kl_per_image", "test_lom_elbo_per_image"):
        assert key in metrics
    assert metrics["structure_accuracy_data"] >= 0.95
    payload = load_checkpoint(out / "checkpoint.pt")
    assert payload["step"] == 3 and payload["optimiser"]["state"]
    # single tensors may not move in 3 steps: EMORL's gain-0.02 init gives query/key gradients
    # ~1e-15, and a GRU run once from a zero state never uses its hidden weights
    expected_still = ("orderless.refine.gru", "orderless.attention.to_q", "orderless.attention.to_k")
    frozen = [g for g in still_groups(out) if g not in expected_still]
    assert not frozen, f"parameter groups not trained: {frozen}"


@pytest.mark.parametrize("likelihood", ["gaussian", "mog"])
def test_cli_trains_lom_genesis_v2_and_every_parameter_group(tmp_path, likelihood):
    out = tmp_path / "run"
    assert main(["train", "--orderless", "genesis_v2", "--likelihood", likelihood, *TINY, "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    # the GENESIS-v2 variant of the quickstart preset
    assert config["orderless"] == "genesis_v2" and config["orderless_kwargs"]["feature_dim"] == 32
    trained, _ = load_trained(str(out / "checkpoint.pt"))
    kind = {"gaussian": "gaussian", "mog": "mixture"}[likelihood]
    assert trained.orderless.likelihood == kind
    assert type(trained.likelihood) is registry.lookup("likelihood", kind)
    assert not still_groups(out), "every parameter group of LOM-GENv2 trains"
    if likelihood == "gaussian":   # evaluation knows nothing EMORL-specific
        assert main(["evaluate", str(out / "checkpoint.pt"), "--iwae-n", "2", "--iwae-k", "2", "--fid-n", "4"]) == 0
        assert "ari_fg_lom" in json.loads((out / "eval.json").read_text())


def test_two_stage_training_freezes_the_orderless_model(tmp_path):
    first = tmp_path / "orderless"
    assert main(["train", "--preset", "quickstart", "--no-lom", *TINY, "--out", str(first)]) == 0
    second = tmp_path / "lom"
    assert main(["train", "--preset", "quickstart", *TINY, "--orderless-checkpoint", str(first / "checkpoint.pt"),
                 "--freeze-orderless", "--out", str(second)]) == 0
    orderless = load_checkpoint(first / "checkpoint.pt")["model"]
    payload = load_checkpoint(second / "checkpoint.pt")
    for name, value in orderless.items():
        assert torch.equal(payload["model"][f"orderless.{name}"], value), name
    # frozen, the orderless terms are constants: only the LOM's are computed while training,
    # yet the run keeps both multipliers and the test ELBO reports both models' terms
    curves = json.loads((second / "curves.json").read_text())
    assert "err/x" in curves and not any(k.endswith("x_orderless") for k in curves)
    assert {"states.x.beta", "states.x_orderless.beta"} <= set(payload["objective"])
    assert "loglik/x_orderless" in json.loads((second / "metrics.json").read_text())["test_terms_per_image"]
    # EMORL's weights load into any K: another K than the checkpoint's is said, not refused;
    # its own K loads without a word
    quickstart = config_from_preset("quickstart", lom=False)
    more_slots, _ = build(dataclasses.replace(quickstart, orderless_kwargs={**quickstart.orderless_kwargs,
                                                                            "num_slots": 7}))
    with pytest.warns(UserWarning, match="trained with 6 slots, loaded into a model with 7"):
        load_orderless(more_slots.orderless, str(first / "checkpoint.pt"))
    same_slots, _ = build(quickstart)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_orderless(same_slots.orderless, str(first / "checkpoint.pt"))


@pytest.mark.filterwarnings("ignore:.*not registered in the param store")
def test_on_a_frozen_emorl_the_lom_objective_alone_gives_the_same_gradients():
    import pyro

    from lom_pyro.models import programs

    torch.manual_seed(0)
    lom, objective = build(config_from_preset("quickstart"))
    lom.orderless.requires_grad_(False)
    objective.eval()                              # no multiplier updates between the two runs
    alone = objective.restricted("x").eval()
    assert alone.states["x"] is objective.states["x"]
    model, guide = programs(lom)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    own = [p for p in lom.parameters() if p.requires_grad]

    def gradients(score_orderless, loss):
        lom.score_orderless = score_orderless
        pyro.set_rng_seed(3)
        value, logs = loss.compute(model, guide, x)
        return logs, torch.autograd.grad(value, own)

    both_logs, both = gradients(True, objective)
    alone_logs, lom_only = gradients(False, alone)
    assert "err/x_orderless" in both_logs and "err/x_orderless" not in alone_logs
    assert torch.equal(both_logs["err/x"], alone_logs["err/x"])
    for a, b in zip(both, lom_only):
        assert torch.equal(a, b)


def test_bad_config_and_checkpoint(tmp_path, capsys):
    assert main(["train", "--preset", "quickstart", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "steps must be >= 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="preset must be one of"):
        config_from_preset("nope")
    with pytest.raises(ValueError, match="orderless must be one of"):
        TrainConfig(orderless="slot-attention")
    # σ = 0.1: a perfect reconstruction's error is log 0.1 = −2.303 per pixel·channel
    with pytest.raises(ValueError, match=r"orderless_goal=-2.5 cannot be reached.*-2.303"):
        build(config_from_preset("quickstart", orderless_goal=-2.5))
    with pytest.raises(ValueError, match=r"goal=-2.31 cannot be reached"):
        build(config_from_preset("quickstart", goal=-2.31))
    build(config_from_preset("quickstart", goal=-2.29, orderless_goal=-2.29))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_is_atomic_and_refuses_pickled_code(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "step": 1})
    before = path.read_bytes()

    class Boom:
        def __reduce__(self):
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        save_checkpoint(path, {"model": Boom()})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
    import pickle

    evil = tmp_path / "evil.pt"
    torch.save({"format": "lom_pyro-checkpoint-v1", "payload": pickle.loads(pickle.dumps(print))}, evil)
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_checkpoint_gets_the_permissions_a_plain_file_would(tmp_path, umask, mode):
    import os
    import stat

    mask = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        path = save_checkpoint(tmp_path / "ck.pt", {"step": 1})
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == mode


def test_parameter_groups_are_clipped_separately_and_mixture_prior_builds():
    from lom_pyro.priors import MixtureScenePrior
    from lom_pyro.training import parameter_groups as _parameter_groups

    config = config_from_preset("quickstart", scene_prior="mixture", scene_prior_components=3)
    lom, _ = build(config)
    assert isinstance(lom.scene_prior, MixtureScenePrior)
    inner, own = _parameter_groups(lom, None)
    assert {id(p) for p in inner} == {id(p) for p in lom.orderless.parameters()}
    assert len(_parameter_groups(lom, lom.orderless)) == 1
    with pytest.raises(ValueError, match="freeze_orderless needs"):
        config_from_preset("quickstart", freeze_orderless=True)


def test_periodic_evaluation_logs_aligned_columns_across_two_stages(tmp_path):
    from lom_pyro.training import train

    config = config_from_preset("quickstart", steps=3, orderless_steps=3, batch_size=2, eval_scenes=4,
                                eval_every=2, eval_every_scenes=4, figure_every=10, threads=1,
                                out=str(tmp_path / "run"))
    train(config, progress=False)
    curves = json.loads((tmp_path / "run" / "curves.json").read_text())
    # stage 1 (orderless alone) evaluates after its steps 2 and 3, stage 2 (the LOM) after 5 and 6
    assert curves["eval/step"] == [2, 3, 5, 6]
    assert all(len(curves[k]) == 4 for k in curves if k.startswith("eval/"))
    lom = curves["eval/ari_fg_lom"]
    assert lom[:2] == [None, None] and all(0.0 <= v <= 1.0 for v in lom[2:])  # null: no LOM yet
    assert all(0.0 <= v <= 1.0 for v in curves["eval/ari_fg_orderless"] + curves["eval/structure_accuracy_samples"])
    assert (tmp_path / "run" / "eval_curves.png").stat().st_size > 0
    with pytest.raises(ValueError, match="eval_every must be >= 0"):
        config_from_preset("quickstart", eval_every=-1)


def test_a_smaller_lom_decoder_keeps_the_architecture_and_rejects_bad_widths():
    from lom_pyro.nn.decoders import SpatialBroadcastDecoder

    full, _ = build(config_from_preset("quickstart"))
    small, _ = build(config_from_preset("quickstart", lom_decoder={"hidden": 8}))
    assert isinstance(small.decoder, SpatialBroadcastDecoder)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(small.decoder) < count(full.decoder) // 4
    assert count(small.orderless.decoder) == count(full.orderless.decoder)   # EMORL's own is untouched
    z = torch.randn(2, small.num_slots, small.slot_dim)
    assert [t.shape for t in small.decoder(z)] == [t.shape for t in full.decoder(z)]
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        build(config_from_preset("quickstart", lom_decoder={"hidden": 0}))
    with pytest.raises(ValueError, match="lom_decoder .*does not take these options"):
        build(config_from_preset("quickstart", lom_decoder={"width": 8}))


def test_evaluate_reports_the_same_ari_fg_as_the_run_for_the_same_checkpoint_and_scenes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "quickstart", *TINY, "--out", str(out)]) == 0
    assert main(["evaluate", str(out / "checkpoint.pt"), "--iwae-n", "2", "--iwae-k", "2", "--fid-n", "4",
                 "--out", str(tmp_path / "eval")]) == 0
    run = json.loads((out / "metrics.json").read_text())
    evaluated = json.loads((tmp_path / "eval" / "eval.json").read_text())
    for key in ("ari_fg_orderless", "ari_fg_lom", "structure_accuracy_samples", "structure_accuracy_samples_touching",
                "test_lom_elbo_per_image"):
        assert evaluated[key] == run[key], key
    # the paper's protocol: both judges on --s-acc-samples samples, 100 of them on a sheet to count
    s_acc = evaluated["s_acc"]
    assert s_acc["samples"] == 500 and set(s_acc) >= {"touching", "sharp"}
    assert (tmp_path / "eval" / "s_acc_sheet.png").exists() and (tmp_path / "eval" / "s_acc_sheet.json").exists()
    assert main(["evaluate", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_scalars_and_figures_also_go_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["train", "--preset", "quickstart", *TINY, "--out", str(out)]) == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"train/err/x", "train/kl/x", "train/beta/x_orderless"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("train/err/x")] == [0, 2]
    assert [e.step for e in events.Images("figures")] == [0, 2, 3]   # by steps done, as the PNGs


@pytest.mark.parametrize("preset,goal,slots", [("objects_room", -0.353, 7), ("shapestacks", -0.353, 9),
                                               ("clevr6", -0.356, 7)])
def test_genesis_v2_presets_carry_the_papers_lom_genv2_settings(preset, goal, slots):
    # A.4.1-A.4.2: Adam 1e-4 without a schedule, Gaussian sigma 0.7, GECO step 1e-6
    config = config_from_preset(preset, orderless="genesis_v2")
    assert (config.lr, config.warmup, config.decay_every, config.geco_step_size) == (1e-4, 0, 0, 1e-6)
    assert config.goal == config.orderless_goal == goal and config.batch_size == 32
    assert config.orderless_kwargs == {"num_slots": slots, "sigma": 0.7}
    assert config_from_preset(preset).orderless == "emorl"
    with pytest.raises(ValueError, match="likelihood"):
        config_from_preset(preset, orderless="genesis_v2", likelihood="poisson")


@pytest.mark.parametrize("frozen_steps", [3, 1])
def test_lom_decoder_starts_as_a_copy_of_the_trained_orderless_decoder(tmp_path, frozen_steps):
    from lom_pyro.training import train

    config = config_from_preset("quickstart", steps=3, orderless_steps=2, batch_size=2, eval_scenes=4,
                                figure_every=10, threads=1, freeze_orderless=True, lom_decoder_init="orderless",
                                lom_decoder_frozen_steps=frozen_steps, out=str(tmp_path / "run"))
    train(config, progress=False)
    model = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    stage1 = load_checkpoint(tmp_path / "run" / "orderless.pt")["model"]
    decoder = {k[len("decoder."):]: v for k, v in model.items() if k.startswith("decoder.")}
    assert decoder and set(decoder) == {k[len("decoder."):] for k in stage1 if k.startswith("decoder.")}
    same = [torch.equal(v, stage1[f"decoder.{k}"]) for k, v in decoder.items()]
    if frozen_steps >= config.steps:   # frozen throughout: still the copy of stage 1's decoder
        assert all(same)
    else:                              # copied, then trained after its frozen steps
        assert not all(same)


def test_lom_decoder_init_refuses_what_it_cannot_copy():
    with pytest.raises(ValueError, match="lom_decoder_init must be one of"):
        config_from_preset("quickstart", lom_decoder_init="emorl")
    with pytest.raises(ValueError, match="needs lom=True and orderless_checkpoint or orderless_steps"):
        config_from_preset("quickstart", lom_decoder_init="orderless")
    with pytest.raises(ValueError, match="lom_decoder=.* makes the LOM decoder differ"):
        config_from_preset("quickstart", lom_decoder_init="orderless", orderless_steps=2, lom_decoder={"hidden": 8})
    with pytest.raises(ValueError, match="lom_decoder_frozen_steps must be >= 0"):
        config_from_preset("quickstart", lom_decoder_frozen_steps=-1)


@pytest.mark.parametrize("form", ["orderless", "genesis"])
def test_lom_beta_max_lets_the_lom_kl_weight_pass_one_once_its_goal_is_met(form):
    from lom_pyro.sites import OBS

    _, paper = build(config_from_preset("quickstart", lom_geco=form))
    _, raised = build(config_from_preset("quickstart", lom_geco=form, lom_beta_max=4.0, geco_warmup=0))
    assert paper.states[OBS].config.beta_max == 1.0   # the default: a valid ELBO once the goal is met
    state = raised.states[OBS]
    assert state.config.beta_max == 4.0 and state.config.update == ("additive" if form == "orderless"
                                                                    else "multiplicative")
    # an error far below the goal: β climbs past 1 and stops at the ceiling
    goal_err = state.config.goal_error(3 * 32 * 32)
    for _ in range(200):
        state.update(torch.tensor(goal_err - 1e6), 3 * 32 * 32)
    assert state.beta.item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="lom_beta_max must be a finite number >= 1"):
        TrainConfig(lom_beta_max=0.5)
