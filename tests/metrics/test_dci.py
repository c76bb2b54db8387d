"""DCI check values, the per-factor model kind, and slot-to-object matching."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch

from lom_pyro.metrics import completeness, dci, disentanglement, match_slots_to_objects, matched_pairs


def test_importance_check_values() -> None:
    assert disentanglement(np.eye(4)) == pytest.approx(1.0)
    assert completeness(np.eye(4)) == pytest.approx(1.0)
    assert disentanglement(np.ones((4, 4))) == pytest.approx(0.0, abs=1e-12)
    assert completeness(np.ones((4, 4))) == pytest.approx(0.0, abs=1e-12)
    one_code_two_factors = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert disentanglement(one_code_two_factors) == pytest.approx(0.0, abs=1e-12)
    assert completeness(one_code_two_factors) == pytest.approx(1.0)
    # A permuted identity is just as good; torch input works.
    assert disentanglement(torch.eye(3)[[2, 0, 1]]) == pytest.approx(1.0)


def test_importance_edge_cases() -> None:
    assert disentanglement(np.zeros((3, 2))) == 0.0 and completeness(np.zeros((3, 2))) == 0.0
    assert disentanglement(np.array([[0.2], [0.8]])) == 1.0  # a single factor
    assert completeness(np.array([[0.2, 0.8]])) == 1.0  # a single code
    # An unused code (zero row) has zero weight and does not lower D.
    assert disentanglement(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-negative"):
        disentanglement(-np.eye(2))
    with pytest.raises(ValueError, match="codes, factors"):
        completeness(np.ones(3))


def _toy(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 3, n)  # discrete factor
    size = rng.uniform(0, 1, n)  # continuous factor
    codes = np.stack([colour + 0.05 * rng.normal(size=n), size, rng.normal(size=n)], axis=1)
    return codes, np.stack([colour, size], axis=1)


def test_dci_on_a_disentangled_toy_code() -> None:
    codes, factors = _toy()
    res = dci(codes, factors, discrete=[True, False], model_kwargs={"n_estimators": 20, "max_depth": 2})
    assert res.importance.shape == (3, 2) and res.discrete == (True, False)
    assert res.disentanglement > 0.9 and res.completeness > 0.9
    assert res.informativeness[0] == pytest.approx(1.0)  # held-out accuracy
    assert res.informativeness[1] > 0.9  # held-out R²
    assert np.isnan(res.mse[0]) and res.mse[1] < 0.01
    assert res.importance[:, 0].argmax() == 0 and res.importance[:, 1].argmax() == 1


def test_dci_uses_a_classifier_only_for_discrete_factors(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn import ensemble

    fitted: list[str] = []
    for name in ("GradientBoostingClassifier", "GradientBoostingRegressor"):
        cls = getattr(ensemble, name)

        def fit(self, x, y, _name=name, _cls=cls):  # type: ignore[no-untyped-def]
            fitted.append(_name)
            return _cls.fit(self, x, y)

        monkeypatch.setattr(ensemble, name, type(name, (cls,), {"fit": fit}))
    codes, factors = _toy(120)
    factors = factors[:, ::-1]  # (size: continuous, colour: discrete)
    test = dci(codes[:90], factors[:90], [False, True], codes_test=codes[90:], factors_test=factors[90:],
               model_kwargs={"n_estimators": 5})
    assert fitted == ["GradientBoostingRegressor", "GradientBoostingClassifier"]
    assert test.discrete == (False, True)


def test_dci_argument_errors() -> None:
    codes, factors = _toy(40)
    with pytest.raises(ValueError, match="one flag per factor"):
        dci(codes, factors, [True])
    with pytest.raises(ValueError, match="same number of rows"):
        dci(codes[:10], factors, [True, False])
    with pytest.raises(ValueError, match="together"):
        dci(codes, factors, [True, False], codes_test=codes)
    with pytest.raises(ValueError, match="single value"):
        dci(codes, np.zeros((40, 1)), [True])


def test_dci_missing_sklearn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("sklearn"):
            raise ImportError("no sklearn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    codes, factors = _toy(40)
    with pytest.raises(ImportError, match=r"lom_pyro\[metrics\]"):
        dci(codes, factors, [True, False])


def _one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, k).permute(0, 3, 1, 2).float()


def test_match_slots_to_objects() -> None:
    true = torch.zeros(1, 8, 8, dtype=torch.long)
    true[0, :4, :4] = 1  # object 1: 16 px
    true[0, 4:, 4:] = 2  # object 2: 16 px
    true[0, 0, 7] = 3  # object 3: 1 px, too small
    pred = torch.zeros(1, 8, 8, dtype=torch.long)  # slot 0 covers the background
    pred[0, :4, :4] = 2
    pred[0, 4:, 4:] = 4
    pred[0, 0, 7] = 1
    got = match_slots_to_objects(_one_hot(pred, 5), _one_hot(true, 5), min_object_pixels=4)
    assert got.tolist() == [[-1, 2, 4, -1, -1]]  # background, too small and absent objects unmatched
    # More objects than slots: the best-overlapping objects win, the rest stay -1.
    got = match_slots_to_objects(_one_hot(pred.clamp(max=2), 3), _one_hot(true, 4), min_object_pixels=1)
    assert got[0, 1].item() == 2 and got[0, 0].item() == -1


def test_match_slots_batches_and_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    true = torch.randint(0, 4, (3, 6, 6), generator=g)
    perm = torch.tensor([3, 0, 2, 1, 4])  # true label t is slot perm[t]
    pred = perm[true]
    match = match_slots_to_objects(_one_hot(pred, 5), _one_hot(true, 4), min_object_pixels=1)
    for b in range(3):
        for t in range(1, 4):
            assert match[b, t].item() == (perm[t].item() if (true[b] == t).any() else -1)
    latents = torch.arange(3 * 5 * 2, dtype=torch.float).reshape(3, 5, 2)
    factors = torch.arange(3 * 4, dtype=torch.float).reshape(3, 4, 1)
    codes, facts = matched_pairs(latents, factors, match)
    assert codes.shape[0] == facts.shape[0] == int((match >= 0).sum())
    b, t = torch.nonzero(match >= 0, as_tuple=True)
    torch.testing.assert_close(codes, latents[b, perm[t]])
    with pytest.raises(ValueError, match="assignment"):
        matched_pairs(latents, factors, match[:, :2])


def test_match_slots_argument_errors() -> None:
    with pytest.raises(ValueError, match="true_masks"):
        match_slots_to_objects(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))
    with pytest.raises(ValueError, match="background_channels"):
        match_slots_to_objects(torch.rand(1, 3, 4, 4), torch.rand(1, 2, 4, 4), background_channels=(2,))
