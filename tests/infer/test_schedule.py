"""Training schedules (appendix A.3–A.4)."""

import pytest

from lom_pyro.infer.schedule import learning_rate_factor, scene_free_bits


def test_learning_rate_warmup_and_halving():
    assert learning_rate_factor(0, warmup=10) == pytest.approx(0.1)
    assert learning_rate_factor(9, warmup=10) == 1.0
    assert learning_rate_factor(100_000) == 0.5 and learning_rate_factor(250_000) == 0.25
    assert learning_rate_factor(10**6, warmup=0, decay_every=0) == 1.0


def test_scene_free_bits_anneal_only_in_the_last_25k_steps_of_long_runs():
    assert scene_free_bits(0, 400_000, 128) == pytest.approx(32.0)
    assert scene_free_bits(374_999, 400_000, 128) == pytest.approx(32.0)
    assert scene_free_bits(375_000, 400_000, 128) == pytest.approx(0.167 * 128)
    assert scene_free_bits(999, 1000, 128) == pytest.approx(32.0)          # short runs never anneal
    assert scene_free_bits(399_999, 400_000, 128, start=0.0) == 0.0        # off stays off
