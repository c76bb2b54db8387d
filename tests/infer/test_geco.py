"""GECO follows its formula, keeps β in its bounds and moving with the constraint's sign,
round-trips through state_dict, and trains under SVI."""

import math

import pyro
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro.infer import SVI

from lom_pyro import GECO, LOM, LOMELBO, GECOConfig
from lom_pyro.infer import GECOState
from toy import ToyOrderless


def test_geco_follows_formula_on_scripted_errors():
    cfg = GECOConfig(goal=0.5, step_size=1e-3, speedup=10.0, ema_decay=0.9, beta_init=1.0,
                     beta_min=1e-3, beta_max=50.0, warmup_steps=2, log_normaliser=0.0)
    n = 100                                   # elements per image: goal_err = 50
    state = GECOState(cfg)
    beta, ema = 1.0, None
    for step, err in enumerate([80.0, 70.0, 60.0, 45.0, 30.0, 20.0, 20.0, 90.0]):
        state.update(torch.tensor(err), n)
        ema = err if ema is None else 0.9 * ema + 0.1 * err
        c = 50.0 - ema
        if step >= 2:
            rate = 1e-3 * (10.0 if c > 0 else 1.0)
            beta = min(max(beta * math.exp(rate * c), 1e-3), 50.0)
        assert state.err_ema.item() == pytest.approx(ema, rel=1e-6)
        assert state.beta.item() == pytest.approx(beta, rel=1e-5)
    assert state.step.item() == 8


def test_additive_update_follows_emorls_reference_recursion():
    """EMORL: ``ρ ← max(ρ − η·C_ema, ρ_floor)``, the reconstruction weighted by softplus(ρ);
    in the core's form β = 1/softplus(ρ)."""
    cfg = GECOConfig(goal=0.5, step_size=1e-3, speedup=4.0, ema_decay=0.5, beta_max=1.0, warmup_steps=1,
                     log_normaliser=0.0, update="additive")
    state = GECOState(cfg)
    softplus = lambda r: math.log1p(math.exp(r))
    rho_floor = math.log(math.expm1(1.0))            # softplus(ρ_floor) = 1: β = 1
    rho, ema, lowest = rho_floor, None, 1.0
    for step, err in enumerate([80.0, 90.0, 85.0, 70.0, 40.0, 10.0, 10.0, 10.0, 10.0, 10.0]):
        state.update(torch.tensor(err), 100)
        ema = err if ema is None else 0.5 * ema + 0.5 * err
        c = 50.0 - ema
        if step >= 1:
            rho = max(rho - 1e-3 * (4.0 if c > 0 else 1.0) * c, rho_floor)
        assert state.beta.item() == pytest.approx(1.0 / softplus(rho), rel=1e-5)
        lowest = min(lowest, state.beta.item())
    assert lowest < 0.95 and state.beta.item() == pytest.approx(1.0)   # down, then back once the goal is met


def test_out_of_reach_goal_additive_beta_falls_like_one_over_t_multiplicative_to_the_floor():
    configs = {kind: GECOConfig(goal=-1.0, step_size=1e-4, beta_max=1.0, log_normaliser=0.0, update=kind)
               for kind in ("additive", "multiplicative")}
    states = {kind: GECOState(cfg) for kind, cfg in configs.items()}
    for _ in range(3000):                     # error 100 per image above the goal, C = −100
        for state in states.values():
            state.update(torch.tensor(0.0), 100)
    # additive: softplus(ρ) ≈ 1 + 3000·1e-4·100 = 31; multiplicative: exp(−30) ≈ 1e-13 → floor
    assert states["additive"].beta.item() == pytest.approx(1 / 31.0, rel=0.02)
    assert states["multiplicative"].beta.item() == pytest.approx(1e-10)


def test_restricted_objective_shares_its_multipliers():
    geco = GECO(LOMELBO(), {"x": -0.352, "x_orderless": -0.352})
    part = geco.restricted("x")
    assert set(part.states) == {"x"} and part.states["x"] is geco.states["x"]
    with pytest.raises(ValueError, match=r"restricted\(\) names groups \['y'\]"):
        geco.restricted("x", "y")


def test_geco_state_dict_round_trip():
    state = GECOState(GECOConfig(goal=-0.352))
    for err in (10.0, 20.0):
        state.update(torch.tensor(err), 12)
    fresh = GECOState(GECOConfig(goal=-0.352))
    fresh.load_state_dict(state.state_dict())
    for key in ("beta", "err_ema", "step"):
        assert torch.equal(getattr(fresh, key), getattr(state, key))


def test_goal_is_the_papers_unnormalised_error_per_pixel_channel():
    cfg = GECOConfig(goal=-0.352)
    assert cfg.goal_error(3 * 64 * 64) == pytest.approx((-0.352 + 0.5 * math.log(2 * math.pi)) * 3 * 64 * 64)


@pytest.mark.parametrize("kwargs", [dict(goal=float("nan")), dict(goal=-1, ema_decay=1.0),
                                    dict(goal=-1, beta_min=2.0), dict(goal=-1, speedup=0.0),
                                    dict(goal=-1, update="sideways")])
def test_geco_config_validates(kwargs):
    with pytest.raises(ValueError, match="GECO"):
        GECOConfig(**kwargs)


def test_geco_loss_is_err_plus_beta_kl_and_trains_with_svi():
    torch.manual_seed(0)
    lom = LOM(ToyOrderless(image_shape=(3, 6, 6)), scene_dim=4)
    geco = GECO(LOMELBO(), goals={"x": -0.3, "x_orderless": -0.3}, step_size=1e-2)
    x = torch.rand(3, 3, 6, 6)
    geco.states["x"].beta.fill_(0.5)
    pyro.set_rng_seed(1)
    loss, logs = geco.eval().compute(lom.model, lom.guide, x)
    expected = logs["err/x"] + 0.5 * logs["kl/x"] + logs["err/x_orderless"] + logs["kl/x_orderless"]
    assert torch.allclose(loss, expected, rtol=1e-6)
    assert geco.states["x"].step.item() == 0           # eval mode: no update
    geco.train()
    svi = SVI(lom.model, lom.guide, pyro.optim.Adam({"lr": 1e-3}), loss=geco)
    for _ in range(2):
        assert math.isfinite(svi.step(x))
    assert geco.states["x"].step.item() == 2 and geco.states["x"].beta.item() != 0.5


def test_geco_rejects_unknown_goal():
    lom = LOM(ToyOrderless(image_shape=(3, 6, 6)), scene_dim=4)
    with pytest.raises(ValueError, match="observes only"):
        GECO(LOMELBO(), goals={"y": -0.3})(lom.model, lom.guide, torch.rand(2, 3, 6, 6))


geco_configs = st.builds(
    GECOConfig, goal=st.floats(-3.0, 1.0), step_size=st.floats(0.0, 0.5), speedup=st.none() | st.floats(0.5, 50.0),
    ema_decay=st.floats(0.0, 0.99), beta_init=st.floats(0.01, 5.0), beta_min=st.just(1e-3), beta_max=st.just(10.0),
    warmup_steps=st.integers(0, 3), log_normaliser=st.just(0.0), update=st.sampled_from(["multiplicative", "additive"]))
error_runs = st.lists(st.floats(-500.0, 500.0), min_size=1, max_size=30)


@settings(max_examples=80)
@given(geco_configs, error_runs)
def test_beta_stays_within_its_bounds_and_moves_with_the_sign_of_the_constraint(cfg, errors):
    """β ∈ [β_min, β_max] always; after warm-up it rises (never falls) while the error's EMA
    beats the goal (C > 0) and falls (never rises) while it does not (C < 0)."""
    state = GECOState(cfg)
    n = 100                                           # elements per image
    for step, err in enumerate(errors):
        before = state.beta.item()
        state.update(torch.tensor(err), n)
        beta = state.beta.item()
        assert cfg.beta_min * (1 - 1e-6) <= beta <= cfg.beta_max * (1 + 1e-6)
        constraint = cfg.goal_error(n) - state.err_ema.item()
        if step < cfg.warmup_steps:
            assert beta == before
        elif constraint > 0:
            assert beta >= before * (1 - 1e-6)
        elif constraint < 0:
            assert beta <= before * (1 + 1e-6)
