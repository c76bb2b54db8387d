"""``benchmarks/ceiling.py`` on a few scenes of the default model (every row judged by block
count, the overall rate the mean of the per-count rates) and of a 3-step EMORL alone."""

import numpy as np

from benchmark_scripts import load

ceiling = load("ceiling")


def test_ceiling_rows_by_block_count():
    result = ceiling.measure("stacks32_slot_diffusion_wide", scenes=12, seed=3, extra_slots=[0, 2])
    assert sum(result["counts"].values()) == 12 and result["trained_slots"] == 6
    assert list(result["rows"]) == ["ceiling (LOM decoder on aligned posterior means)",
                                    "orderless reconstructions, K = 6", "orderless reconstructions, K = 8"]
    for judges in result["rows"].values():
        assert set(judges) == {"touching", "sharp"}
        for rates in judges.values():
            assert set(rates) == {"all", *result["counts"]}
            assert all(0.0 <= v <= 1.0 for v in rates.values())
            # the overall rate is the count-weighted mean of the per-count rates
            weighted = sum(rates[k] * n for k, n in result["counts"].items()) / 12
            assert np.isclose(rates["all"], weighted, atol=2e-3)


def test_an_orderless_model_alone_gets_its_reconstructions_judged(tmp_path):
    from lom_pyro.cli import main
    from runs import TINY

    run = tmp_path / "emorl_run"
    assert main(["train", "--preset", "quickstart", "--no-lom", *TINY, "--out", str(run)]) == 0
    result = ceiling.measure(str(run), scenes=6, seed=3, extra_slots=[0, 1])
    assert result["step"] == 3 and result["trained_slots"] == 6
    assert list(result["rows"]) == ["orderless reconstructions, K = 6", "orderless reconstructions, K = 7"]
    assert ceiling.result_name(str(run), result["step"]) == "emorl_run_step3"
    assert ceiling.result_name(str(run / "checkpoint.pt"), 3) == "emorl_run_step3"
    assert ceiling.result_name("stacks32_slot_diffusion_wide", 0) == "stacks32_slot_diffusion_wide"
