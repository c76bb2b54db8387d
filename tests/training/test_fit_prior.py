"""lom-pyro fit-prior: cache, fit, resume, report, write a pretrained file that loads."""

import json

import pytest
import torch

from lom_pyro import LOM
from lom_pyro.checkpoint import load_checkpoint, save_checkpoint
from lom_pyro.cli import main
from lom_pyro.slot_priors import MixtureDensityPrior
from lom_pyro.training.fit_prior import fit_slot_prior, novelty

pytestmark = pytest.mark.slow

SMALL = ["--scenes", "48", "--held-out", "16", "--batch-size", "8", "--report-samples", "4", "--threads", "1",
         "--options", '{"components": 2, "hidden": 8, "layers": 1}']


def test_fit_prior_writes_a_model_that_generates_with_the_fitted_prior(tmp_path, capsys):
    out, cache = tmp_path / "fitted.pt", tmp_path / "cache.pt"
    args = ["fit-prior", "stacks32", "--prior", "mdn", "--out", str(out), "--steps", "6", "--cache", str(cache),
            *SMALL]
    assert main(args) == 0
    lom = LOM.from_pretrained(out)
    assert isinstance(lom.slot_prior, MixtureDensityPrior)
    fit = lom.pretrained_info["slot_prior_fit"]
    assert fit["fit"]["steps_done"] == 6 and fit["prior"] == "mdn" and "held fixed" in fit["alignment"]
    report = fit["report"]
    assert set(report) >= {"ceiling", "tau_0.6", "tau_0.8", "tau_1", "novelty", "held_out_log_density_per_scene"}
    assert set(report["tau_0.8"]) == {"touching", "sharp"}
    assert lom.sample(2, temperature=0.8).images.shape == (2, 3, 32, 32)
    # the alignment is the source's: encodings are unchanged
    source = LOM.from_pretrained("stacks32")
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    torch.manual_seed(1)
    before = source.encode(x).permutation
    torch.manual_seed(1)
    assert torch.equal(before, lom.encode(x).permutation)
    assert main(args) == 2                                             # no silent replacement
    assert "exists; give --overwrite" in capsys.readouterr().err
    assert load_checkpoint(cache)["slots"].shape == (48, 6, 32)


@pytest.mark.parametrize("ema", [[], ["--ema", "0.9"]])
def test_an_interrupted_fit_resumes_to_the_same_weights(tmp_path, capsys, ema):
    cache = tmp_path / "cache.pt"
    whole, parts = tmp_path / "whole.pt", tmp_path / "parts.pt"
    common = ["fit-prior", "stacks32", "--prior", "mdn", "--steps", "5", "--cache", str(cache), *SMALL, *ema]
    assert main([*common, "--out", str(whole)]) == 0
    assert main([*common, "--out", str(parts), "--max-minutes", "0"]) == 0      # stops after one step
    assert "unfinished (1/5 steps)" in capsys.readouterr().out and not parts.exists()
    # --max-minutes counts this command's time, not the fit's: an hour already spent does not stop it
    state_path = tmp_path / "parts.state.pt"
    save_checkpoint(state_path, {**load_checkpoint(state_path), "seconds": 3600.0})
    assert main([*common, "--out", str(parts), "--max-minutes", "1"]) == 0
    a, b = load_checkpoint(whole)["model"], load_checkpoint(parts)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("flags, message", [
    (["--held-out", "48"], "--held-out 48 must be smaller than --scenes 48"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--options", "[1]"], "--options must be a JSON object"),
    (["--ema", "1"], "--ema 1.0 must be in [0, 1)"),
    (["--options", '{"colours": 3}'], "does not take the options"),
])
def test_bad_arguments_get_one_sentence(tmp_path, capsys, flags, message):
    out = tmp_path / "x.pt"
    assert main(["fit-prior", "stacks32", "--prior", "mdn", "--out", str(out), *SMALL, "--steps", "2", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


def test_the_moving_average_is_of_the_weights_before_and_after_each_step():
    torch.manual_seed(0)
    cache = {"scene_loc": torch.randn(64, 3), "scene_scale": torch.full((64, 3), 0.1), "slots": torch.randn(64, 2, 4)}
    index = torch.arange(64)

    def fitted(ema):
        torch.manual_seed(1)
        prior = MixtureDensityPrior(2, 4, 3, components=2, hidden=8, layers=1)
        start = {k: v.clone() for k, v in prior.state_dict().items()}
        fit_slot_prior(prior, cache, index, index[:8], steps=1, batch_size=16, ema=ema, progress=False)
        return start, prior.state_dict()

    start, last = fitted(0.0)
    _, averaged = fitted(0.25)   # one step: 0.25 · the start + 0.75 · the weights after it
    assert any(not torch.equal(start[k], last[k]) for k in start)
    for k in start:
        torch.testing.assert_close(averaged[k], 0.25 * start[k] + 0.75 * last[k])


def test_novelty_separates_copies_from_new_scenes():
    torch.manual_seed(0)
    fitted, held = torch.randn(200, 3, 2), torch.randn(50, 3, 2)
    spread = fitted.std(0)
    copies = novelty(fitted[:50] + 1e-3, fitted, held, spread)
    fresh = novelty(torch.randn(50, 3, 2), fitted, held, spread)
    assert copies["ratio"] < 0.01 and 0.7 < fresh["ratio"] < 1.4
    assert json.dumps(fresh)     # plain numbers for the report
