"""Fréchet Inception Distance (FID) and Kernel Inception Distance (KID).

Images enter as floats in ``[0, 1]`` (or ``uint8``), shape ``(N, 3, H, W)``,
from a tensor, an iterable of batches or a sampling function. By default
they are clamped to ``[0, 1]`` and rounded to 8 bits (as if saved to PNG,
which is how real data sets are stored), then handed to the feature
extractor: the FID InceptionV3 (:func:`lom_pyro.metrics.inception.load_inception`,
local weights only) or any callable ``(N, 3, H, W) -> (N, D)``.

The distances themselves are computed in float64 from the features:
:func:`frechet_distance` and :func:`polynomial_mmd`. Real-set features are
cached on disk in an ``.npz`` keyed by a hash of the data source, the number
of images, the preprocessing and the feature source.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lom_pyro.metrics.inception import load_inception

__all__ = [
    "FIDResult",
    "KIDResult",
    "ImageSource",
    "FeatureExtractor",
    "frechet_distance",
    "gaussian_statistics",
    "polynomial_mmd",
    "extract_features",
    "fid",
    "kid",
]

#: A tensor ``(N, 3, H, W)``, an iterable of such batches, or a function
#: ``batch_size -> (batch_size, 3, H, W)`` (e.g. a model's sampler). Batches
#: may also be ``(images, ...)`` tuples, dicts with an ``"image"`` entry, or
#: channels-last ``(B, H, W, 3)``; values are floats in ``[0, 1]`` or ``uint8``.
ImageSource = Tensor | Iterable[Tensor] | Callable[[int], Tensor]
#: ``(N, 3, H, W)`` float in ``[0, 1]`` -> ``(N, D)`` features.
FeatureExtractor = Callable[[Tensor], Tensor]

_CACHE_ENV = "LOM_PYRO_CACHE"
_CACHE_VERSION = 1


@dataclass(frozen=True)
class FIDResult:
    """An FID value with what it was computed from.

    :ivar value: the Fréchet distance.
    :ivar n_real: real images used (or recorded in a statistics file).
    :ivar n_fake: generated images used.
    :ivar preprocessing: how images were turned into network inputs.
    :ivar feature_source: the feature network (weights file or callable).
    :ivar cache_path: the real-feature cache read or written, if any.
    """

    value: float
    n_real: int
    n_fake: int
    preprocessing: dict[str, object] = field(default_factory=dict)
    feature_source: str = ""
    cache_path: Path | None = None

    def __float__(self) -> float:
        return self.value


@dataclass(frozen=True)
class KIDResult:
    """A KID value (mean over subsets) with its spread and provenance.

    :ivar value: mean of the unbiased MMD² estimates over the subsets.
    :ivar std: their standard deviation.
    :ivar subset_size: images per subset (capped by the sample sizes).
    :ivar num_subsets: number of subsets drawn.
    """

    value: float
    std: float
    n_real: int
    n_fake: int
    subset_size: int
    num_subsets: int
    preprocessing: dict[str, object] = field(default_factory=dict)
    feature_source: str = ""
    cache_path: Path | None = None

    def __float__(self) -> float:
        return self.value


def _as_float64(x: Tensor | np.ndarray, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    # Symmetric square root; tiny negative eigenvalues are rounding noise.
    w, v = np.linalg.eigh(0.5 * (sigma + sigma.T))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(
    mu1: Tensor | np.ndarray,
    sigma1: Tensor | np.ndarray,
    mu2: Tensor | np.ndarray,
    sigma2: Tensor | np.ndarray,
) -> float:
    """Squared Fréchet (2-Wasserstein) distance between two Gaussians, in float64.

    .. math:: \\|\\mu_1-\\mu_2\\|^2 + \\operatorname{tr}\\Sigma_1 + \\operatorname{tr}\\Sigma_2
              - 2 \\operatorname{tr}\\big(\\Sigma_1^{1/2}\\Sigma_2\\Sigma_1^{1/2}\\big)^{1/2}

    The last trace is the sum of square roots of the eigenvalues
    (``eigvalsh``) of the symmetric matrix :math:`\\Sigma_1^{1/2}\\Sigma_2\\Sigma_1^{1/2}`,
    which avoids the complex round-off of ``sqrtm(Σ1 Σ2)``.

    :param mu1: mean ``(D,)``.
    :param sigma1: covariance ``(D, D)``.
    :param mu2: mean ``(D,)``.
    :param sigma2: covariance ``(D, D)``.
    :returns: the distance (a Python float, ``>= 0`` up to round-off).

    >>> round(frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]), 12)
    2.0
    """
    m1, m2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    s1, s2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    if m1.ndim != 1 or m2.shape != m1.shape:
        raise ValueError(f"mu1 and mu2 must be vectors of equal length, got {m1.shape} and {m2.shape}")
    d = m1.shape[0]
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must have shape ({d}, {d}), got {s.shape}")
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def gaussian_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``(N, D)`` features, float64."""
    f = _as_float64(features, "features")
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (N >= 2, D), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def polynomial_mmd(
    features_x: Tensor | np.ndarray,
    features_y: Tensor | np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    degree: int = 3,
    coef0: float = 1.0,
) -> tuple[float, float, int]:
    """Unbiased MMD² with the kernel :math:`k(x, y) = (x^\\top y / D + c)^{p}`.

    For each subset, ``m`` rows are drawn without replacement from each set
    and

    .. math:: \\frac{\\sum_{i\\ne j} k(x_i,x_j) + \\sum_{i\\ne j} k(y_i,y_j)}{m(m-1)}
              - \\frac{2}{m^2}\\sum_{i,j} k(x_i, y_j).

    When ``m`` equals both sample sizes the full sets are used once (no
    sampling), so the estimate is deterministic and symmetric in its inputs.

    :param features_x: ``(N1, D)``.
    :param features_y: ``(N2, D)``.
    :param num_subsets: number of subsets averaged.
    :param subset_size: ``m``, capped by ``min(N1, N2)``.
    :returns: ``(mean, std, m)`` over the subsets.
    """
    x, y = _as_float64(features_x, "features_x"), _as_float64(features_y, "features_y")
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features_x and features_y must be (N, D) with equal D, got {x.shape} and {y.shape}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"need at least 2 samples per set for KID, got subset_size={m}")
    gamma = 1.0 / x.shape[1]
    rng = np.random.default_rng(seed)
    full = m == x.shape[0] == y.shape[0]
    values = []
    for _ in range(1 if full else num_subsets):
        xs = x if full else x[rng.choice(x.shape[0], m, replace=False)]
        ys = y if full else y[rng.choice(y.shape[0], m, replace=False)]
        kxx = (gamma * xs @ xs.T + coef0) ** degree
        kyy = (gamma * ys @ ys.T + coef0) ** degree
        kxy = (gamma * xs @ ys.T + coef0) ** degree
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(within - 2.0 * kxy.sum() / (m * m))
    arr = np.asarray(values)
    return float(arr.mean()), float(arr.std()), m


# ---------------------------------------------------------------- features


def _batches(source: ImageSource, n: int, batch_size: int) -> Iterator[Tensor]:
    if isinstance(source, Tensor):
        for start in range(0, min(n, source.shape[0]), batch_size):
            yield source[start : min(start + batch_size, n)]
    elif callable(source):
        done = 0
        while done < n:
            batch = source(min(batch_size, n - done))
            if not isinstance(batch, Tensor) or batch.shape[0] == 0:
                raise ValueError("an image-sampling function must return a non-empty (B, 3, H, W) tensor")
            done += batch.shape[0]
            yield batch
    elif isinstance(source, Iterable):
        yield from source
    else:
        raise ValueError(f"images must be a tensor, an iterable of batches or a sampler, got {type(source).__name__}")


def _to_unit_float(batch: Any, quantize: bool) -> Tensor:
    if isinstance(batch, (tuple, list)):  # (images, labels) from a DataLoader
        batch = batch[0]
    elif isinstance(batch, Mapping):
        key = next((k for k in ("image", "images") if k in batch), None)
        if key is None:
            raise ValueError(f"a dict batch needs an 'image' or 'images' entry, got keys {sorted(batch)}")
        batch = batch[key]
    batch = torch.as_tensor(batch)
    if batch.ndim == 4 and batch.shape[1] != 3 and batch.shape[-1] == 3:
        batch = batch.permute(0, 3, 1, 2)  # channels-last (B, H, W, 3), as stored on disk
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"image batches must have shape (B, 3, H, W), got {tuple(batch.shape)}")
    if batch.dtype == torch.uint8:
        return batch.float() / 255.0
    x = batch.float().clamp(0.0, 1.0)
    # Real sets are stored as 8-bit PNG; round generated images the same way.
    return torch.round(x * 255.0) / 255.0 if quantize else x


def _extractor_device(extractor: FeatureExtractor) -> torch.device | None:
    if isinstance(extractor, torch.nn.Module):
        for p in extractor.parameters():
            return p.device
    return None


@torch.no_grad()
def extract_features(
    images: ImageSource,
    feature_extractor: FeatureExtractor,
    n: int,
    batch_size: int = 50,
    quantize: bool = True,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Features ``(n', D)`` float32 of the first ``n`` images (``n' <= n`` if the source runs out).

    :param images: see :data:`ImageSource`; floats in ``[0, 1]`` or ``uint8``.
    :param quantize: round float images to 8 bits first.
    :param device: where batches are sent; defaults to the extractor's device.
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got n={n}, batch_size={batch_size}")
    target = torch.device(device) if device is not None else _extractor_device(feature_extractor)
    chunks: list[np.ndarray] = []
    count = 0
    for batch in _batches(images, n, batch_size):
        x = _to_unit_float(batch, quantize)[: n - count]
        if target is not None:
            x = x.to(target)
        feats = feature_extractor(x)
        if feats.ndim != 2 or feats.shape[0] != x.shape[0]:
            raise ValueError(f"feature_extractor must return (N, D), got {tuple(feats.shape)} for N={x.shape[0]}")
        chunks.append(feats.detach().float().cpu().numpy())
        count += x.shape[0]
        if count >= n:
            break
    if not chunks:
        raise ValueError("images yielded no batches")
    return np.concatenate(chunks, axis=0)


def _describe(extractor: FeatureExtractor, quantize: bool) -> tuple[str, dict[str, object]]:
    kind = type(extractor)
    source = getattr(extractor, "source", None) or f"callable:{kind.__module__}.{kind.__qualname__}"
    prep: dict[str, object] = {
        "input": "float in [0, 1] (uint8 divided by 255), clamped",
        "quantize": "round to 8 bits" if quantize else "none",
    }
    prep.update(getattr(extractor, "preprocessing", None) or {"network_input": "as given to the callable"})
    return source, prep


def _default_cache_dir() -> Path:
    root = os.environ.get(_CACHE_ENV)
    base = Path(root) if root else Path.home() / ".cache" / "lom_pyro"
    return base / "fid"


def _tensor_digest(images: Tensor, n: int) -> str:
    data = images[:n].detach().cpu().contiguous()
    h = hashlib.sha256(str((tuple(data.shape), str(data.dtype))).encode())
    h.update(data.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _feature_key(feature_key: str | None, source: str) -> str | None:
    if feature_key is not None:
        return feature_key
    if source.startswith(("state_dict:", "torchscript:")):
        path = Path(source.split(":", 1)[1])
        return f"{source}:{path.stat().st_size}" if path.is_file() else None
    return None  # an anonymous callable: its weights are unknown, never cache


@dataclass
class _RealSet:
    features: np.ndarray | None  # (N, D), absent when only statistics were read
    mu: np.ndarray | None
    sigma: np.ndarray | None
    n: int
    cache_path: Path | None


def _real_set(
    real: ImageSource,
    extractor: FeatureExtractor,
    n: int,
    batch_size: int,
    quantize: bool,
    device: torch.device | str | None,
    real_key: str | None,
    feature_key: str | None,
    cache_dir: str | os.PathLike[str] | None,
    cache: bool,
    need_features: bool,
) -> _RealSet:
    source, prep = _describe(extractor, quantize)
    fkey = _feature_key(feature_key, source)
    skey = real_key if real_key is not None else (_tensor_digest(real, n) if isinstance(real, Tensor) else None)
    path: Path | None = None
    meta = ""
    if cache and fkey is not None and skey is not None:
        meta = json.dumps(
            {"v": _CACHE_VERSION, "source": skey, "n": n, "prep": prep, "features": fkey}, sort_keys=True, default=str
        )
        folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        path = folder / f"real-{hashlib.sha256(meta.encode()).hexdigest()[:24]}.npz"
        if path.is_file():
            with np.load(path) as stored:  # NpzFile reads only the arrays asked for
                n_got = int(stored["n"])
                if need_features:
                    return _RealSet(stored["features"], None, None, n_got, path)
                return _RealSet(None, stored["mu"], stored["sigma"], n_got, path)
    feats = extract_features(real, extractor, n, batch_size, quantize, device)
    mu, sigma = gaussian_statistics(feats)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, features=feats, mu=mu, sigma=sigma, n=feats.shape[0], meta=np.asarray(meta))
        tmp.replace(path)  # atomic: a concurrent evaluation never reads half a file
    return _RealSet(feats, mu, sigma, feats.shape[0], path)


def _check_count(name: str, got: int, wanted: int) -> None:
    if got < wanted:
        warnings.warn(f"{name}: asked for {wanted} images, the source gave {got}", stacklevel=3)


def _resolve_extractor(
    feature_extractor: FeatureExtractor | None,
    weights: str | os.PathLike[str] | None,
    device: torch.device | str | None,
) -> FeatureExtractor:
    if feature_extractor is not None:
        return feature_extractor
    return load_inception(weights, device=device)


def _load_stats_file(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    with np.load(path) as stored:
        if "mu" not in stored or "sigma" not in stored:
            raise ValueError(f"real={str(path)!r}: a statistics file needs arrays 'mu' and 'sigma'")
        n = int(stored["n"]) if "n" in stored else -1  # -1: the file does not say
        return stored["mu"], stored["sigma"], n


def fid(
    real: ImageSource | str | os.PathLike[str],
    fake: ImageSource,
    feature_extractor: FeatureExtractor | None = None,
    *,
    n_real: int = 10_000,
    n_fake: int = 10_000,
    batch_size: int = 50,
    weights: str | os.PathLike[str] | None = None,
    device: torch.device | str | None = None,
    quantize: bool = True,
    real_key: str | None = None,
    feature_key: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> FIDResult:
    """Fréchet distance between Gaussians fitted to features of real and generated images.

    :param real: real images (see :data:`ImageSource`), or the path of an
        ``.npz`` holding ``mu`` and ``sigma`` (e.g. pytorch-fid statistics).
    :param fake: generated images; a sampler ``batch_size -> images`` avoids
        holding 10K samples in memory.
    :param feature_extractor: ``(N, 3, H, W)`` in ``[0, 1]`` -> ``(N, D)``;
        default: the FID InceptionV3 from a local file (``weights``, then
        ``$LOM_PYRO_INCEPTION``, then the torch hub cache; see
        :func:`~lom_pyro.metrics.inception.find_inception_weights`).
    :param n_real: real images to use (the first ``n_real`` of the source).
    :param n_fake: generated images to use.
    :param quantize: round float images to 8 bits before feature extraction.
    :param real_key: identifies the real source for the cache (e.g.
        ``"clevr6/train@64px"``); needed to cache an iterable source, a
        tensor is hashed by content instead.
    :param feature_key: identifies a custom ``feature_extractor`` for the
        cache; without it features of an anonymous callable are not cached.
    :param cache_dir: cache folder; default ``$LOM_PYRO_CACHE/fid`` or
        ``~/.cache/lom_pyro/fid``.
    :param cache: set ``False`` to neither read nor write the cache.
    :returns: an :class:`FIDResult`; it records the preprocessing.
    """
    extractor = _resolve_extractor(feature_extractor, weights, device)
    source, prep = _describe(extractor, quantize)
    if isinstance(real, (str, os.PathLike)):
        cache_path: Path | None = Path(real)
        mu1, sigma1, got_real = _load_stats_file(Path(real))
    else:
        ref = _real_set(
            real, extractor, n_real, batch_size, quantize, device, real_key, feature_key, cache_dir, cache, False
        )
        assert ref.mu is not None and ref.sigma is not None
        mu1, sigma1, got_real, cache_path = ref.mu, ref.sigma, ref.n, ref.cache_path
        _check_count("real", got_real, n_real)
    feats_fake = extract_features(fake, extractor, n_fake, batch_size, quantize, device)
    _check_count("fake", feats_fake.shape[0], n_fake)
    mu2, sigma2 = gaussian_statistics(feats_fake)
    value = frechet_distance(mu1, sigma1, mu2, sigma2)
    return FIDResult(value, got_real, feats_fake.shape[0], prep, source, cache_path)


def kid(
    real: ImageSource,
    fake: ImageSource,
    feature_extractor: FeatureExtractor | None = None,
    *,
    n_real: int = 10_000,
    n_fake: int = 10_000,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    batch_size: int = 50,
    weights: str | os.PathLike[str] | None = None,
    device: torch.device | str | None = None,
    quantize: bool = True,
    real_key: str | None = None,
    feature_key: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> KIDResult:
    """Kernel Inception Distance: :func:`polynomial_mmd` (degree 3, γ = 1/D, c = 1) of the features.

    Arguments as in :func:`fid` (the real features share its cache), plus
    ``num_subsets`` subsets of ``subset_size`` images (capped by the sample
    sizes) drawn with a NumPy generator seeded by ``seed``.
    """
    extractor = _resolve_extractor(feature_extractor, weights, device)
    source, prep = _describe(extractor, quantize)
    ref = _real_set(
        real, extractor, n_real, batch_size, quantize, device, real_key, feature_key, cache_dir, cache, True
    )
    assert ref.features is not None
    feats_real, cache_path = ref.features, ref.cache_path
    _check_count("real", feats_real.shape[0], n_real)
    feats_fake = extract_features(fake, extractor, n_fake, batch_size, quantize, device)
    _check_count("fake", feats_fake.shape[0], n_fake)
    mean, std, m = polynomial_mmd(feats_real, feats_fake, num_subsets, subset_size, seed)
    prep = {**prep, "kid_kernel": "(x.y/D + 1)^3", "kid_estimator": "unbiased MMD^2"}
    return KIDResult(
        mean, std, feats_real.shape[0], feats_fake.shape[0], m, num_subsets, prep, source, cache_path
    )
