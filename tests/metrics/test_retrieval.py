"""Scene retrieval: PCA of scene latents, nearest neighbours, slot re-ranking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lom_pyro.metrics import SceneDatabase


def _db(n: int = 40, seed: int = 0, n_components: int = 6) -> SceneDatabase:
    rng = np.random.default_rng(seed)
    return SceneDatabase(rng.normal(size=(n, 16)), rng.normal(size=(n, 5, 4)), n_components=n_components)


def test_pca_is_centred_and_orthonormal() -> None:
    db = _db()
    assert db.projected.shape == (40, 6) and db.components.shape == (6, 16)
    np.testing.assert_allclose(db.components @ db.components.T, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(db.projected.mean(0), 0.0, atol=1e-12)
    assert db.explained_variance_ratio.sum() == pytest.approx(1.0)
    assert np.all(np.diff(db.explained_variance_ratio) <= 1e-12)


def test_query_in_database_comes_first() -> None:
    db = _db()
    for i in (0, 17, 39):
        res = db.query(db.s[i], k=5)
        assert res.indices[0] == i and res.distances[0] == 0.0
        assert res.indices.shape == res.distances.shape == (5,)
        assert np.all(np.diff(res.distances) >= 0)
    batch = db.query(torch.from_numpy(db.s[[3, 4]]), k=3)
    assert batch.indices.shape == (2, 3) and batch.indices[:, 0].tolist() == [3, 4]


def test_query_uses_pca_space() -> None:
    # Scenes differ along one strong direction and in small noise; with one
    # component only the strong direction matters.
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 20)
    s = np.outer(t, np.ones(8)) * 10 + 0.01 * rng.normal(size=(20, 8))
    db = SceneDatabase(s, rng.normal(size=(20, 2, 3)), n_components=1)
    assert db.query(s[5], k=3).indices.tolist()[0] == 5
    assert sorted(db.query(s[5], k=3).indices.tolist()) == [4, 5, 6]


def test_rerank_orders_by_the_closest_slot() -> None:
    db = _db()
    hits = db.query(db.s[0], k=5)
    target = hits.indices[3]
    query_slot = db.z[target, 2] + 1e-3  # almost exactly one slot of the 4th hit
    res = db.rerank(hits, query_slot)
    assert res.indices[0] == target and sorted(res.indices.tolist()) == sorted(hits.indices.tolist())
    want = [np.linalg.norm(db.z[i] - query_slot, axis=1).min() for i in res.indices]
    np.testing.assert_allclose(res.distances, want)
    assert np.all(np.diff(res.distances) >= 0)
    # Plain index arrays and tensors work too.
    assert db.rerank(torch.from_numpy(hits.indices), torch.from_numpy(query_slot)).indices[0] == target


def test_argument_errors() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_components"):
        SceneDatabase(rng.normal(size=(5, 4)), rng.normal(size=(5, 2, 3)), n_components=5)
    with pytest.raises(ValueError, match="z must"):
        SceneDatabase(rng.normal(size=(5, 4)), rng.normal(size=(4, 2, 3)), n_components=2)
    db = _db()
    with pytest.raises(ValueError, match="k must"):
        db.query(db.s[0], k=0)
    with pytest.raises(ValueError, match="Ds=16"):
        db.query(np.zeros(3))
    with pytest.raises(ValueError, match="query_slot"):
        db.rerank([0, 1], np.zeros(5))
    with pytest.raises(ValueError, match="indices"):
        db.rerank([0, 99], np.zeros(4))
