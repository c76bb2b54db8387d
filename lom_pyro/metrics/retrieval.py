"""Scene retrieval with the LOM's two-level latents (paper appendix A.6).

A database of scenes stores each scene latent ``s`` and its slot latents
``z``. Scene latents are projected by PCA fitted on the database (6
components in the paper, chosen from the explained variances) and queried
by Euclidean nearest neighbours in that space; the retrieved scenes can
then be re-ranked by one query slot: a scene's distance is the smallest
Euclidean distance between the query slot and any of its slots.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from torch import Tensor

__all__ = ["Retrieval", "SceneDatabase"]


class Retrieval(NamedTuple):
    """Indices into the database, best first, with their distances (same shape)."""

    indices: np.ndarray
    distances: np.ndarray


def _numpy(x: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


class SceneDatabase:
    """Nearest-neighbour scene retrieval in PCA space, re-ranked by a slot.

    :param s: scene latents ``(N, Ds)``.
    :param z: slot latents ``(N, K, Dz)``.
    :param n_components: PCA dimension (``<= min(N, Ds)``).

    :ivar mean: ``(Ds,)`` database mean of ``s``.
    :ivar components: ``(n_components, Ds)`` principal axes (rows).
    :ivar explained_variance_ratio: ``(min(N, Ds),)`` of every component,
        to choose ``n_components`` as the paper did.
    :ivar projected: ``(N, n_components)`` the database in PCA space.

    >>> rng = np.random.default_rng(0)
    >>> db = SceneDatabase(rng.normal(size=(50, 16)), rng.normal(size=(50, 4, 8)))
    >>> int(db.query(db.s[7], k=3).indices[0])
    7
    """

    def __init__(self, s: np.ndarray | Tensor, z: np.ndarray | Tensor, n_components: int = 6) -> None:
        self.s, self.z = _numpy(s), _numpy(z)
        if self.s.ndim != 2:
            raise ValueError(f"s must have shape (N, Ds), got {self.s.shape}")
        if self.z.ndim != 3 or self.z.shape[0] != self.s.shape[0]:
            raise ValueError(f"z must have shape (N={self.s.shape[0]}, K, Dz), got {self.z.shape}")
        n, ds = self.s.shape
        if not 1 <= n_components <= min(n, ds):
            raise ValueError(f"n_components must lie in [1, min(N, Ds) = {min(n, ds)}], got {n_components}")
        self.mean = self.s.mean(axis=0)
        _, sv, vt = np.linalg.svd(self.s - self.mean, full_matrices=False)
        var = sv**2
        self.explained_variance_ratio = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
        self.components = vt[:n_components]
        self.projected = self.project(self.s)

    def __len__(self) -> int:
        return self.s.shape[0]

    def project(self, s: np.ndarray | Tensor) -> np.ndarray:
        """PCA coordinates ``(..., n_components)`` of scene latents ``(..., Ds)``."""
        x = _numpy(s)
        if x.shape[-1] != self.s.shape[1]:
            raise ValueError(f"s must end in Ds={self.s.shape[1]}, got shape {x.shape}")
        # einsum (no BLAS) computes each row identically whether alone or in a
        # batch, so a stored scene queried again lands at distance exactly 0.
        return np.einsum("...d,kd->...k", x - self.mean, self.components)

    def query(self, s_q: np.ndarray | Tensor, k: int = 5) -> Retrieval:
        """The ``k`` scenes nearest to ``s_q`` in PCA space.

        :param s_q: one scene latent ``(Ds,)`` or a batch ``(M, Ds)``.
        :returns: indices and distances ``(k,)`` or ``(M, k)``, nearest first
            (ties broken by lower index, so a stored query comes first).
        """
        if not 1 <= k <= len(self):
            raise ValueError(f"k must lie in [1, {len(self)}], got {k}")
        q = self.project(s_q)
        single = q.ndim == 1
        q = np.atleast_2d(q)  # (M, d)
        idx = np.empty((q.shape[0], k), dtype=np.int64)
        out = Retrieval(idx, np.empty((q.shape[0], k)))
        # Exact differences (not |a|²+|b|²-2ab) so a stored query is at distance 0;
        # chunks bound the (chunk, N, d) temporary.
        for start in range(0, q.shape[0], 64):
            diff = q[start : start + 64, None, :] - self.projected[None, :, :]
            dist = np.sqrt((diff**2).sum(-1))  # (chunk, N)
            top = np.argsort(dist, axis=1, kind="stable")[:, :k]
            out.indices[start : start + 64] = top
            out.distances[start : start + 64] = np.take_along_axis(dist, top, axis=1)
        return Retrieval(out.indices[0], out.distances[0]) if single else out

    def rerank(self, indices: np.ndarray | Tensor | Retrieval, query_slot: np.ndarray | Tensor) -> Retrieval:
        """Re-order retrieved scenes by their closest slot to ``query_slot``.

        :param indices: ``(k,)`` database indices (e.g. from :meth:`query`).
        :param query_slot: the chosen query slot latent ``(Dz,)``.
        :returns: the same indices re-ordered, with distances
            ``min_j ||z[i, j] - query_slot||`` ``(k,)``, nearest first (stable).
        """
        if isinstance(indices, Retrieval):
            indices = indices.indices
        idx = np.asarray(indices.detach().cpu().numpy() if isinstance(indices, Tensor) else indices, dtype=np.int64)
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= len(self))):
            raise ValueError(f"indices must be a vector of database indices in [0, {len(self)}), got {idx}")
        q = _numpy(query_slot)
        if q.shape != (self.z.shape[2],):
            raise ValueError(f"query_slot must have shape (Dz={self.z.shape[2]},), got {q.shape}")
        dist = np.sqrt(((self.z[idx] - q) ** 2).sum(-1)).min(axis=1)  # (k,)
        order = np.argsort(dist, kind="stable")
        return Retrieval(idx[order], dist[order])
