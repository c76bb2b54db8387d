"""MixtureImage is a normalised density (checked by quadrature over one pixel), reduces to a
Gaussian with one slot, factorises over pixels, and image_likelihood's Gaussian has the
mask-weighted mean of Eq. 3."""

import math

import pyro.distributions as dist
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lom_pyro.likelihoods import MixtureImage, image_likelihood

mixtures = st.tuples(st.integers(1, 5), st.floats(0.05, 1.0), st.booleans(), st.integers(0, 2 ** 16))


def _parts(k, c, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(k, c, h, w, generator=g, dtype=torch.float64) * 2 - 1
    logits = torch.randn(k, 1, h, w, generator=g, dtype=torch.float64) * 2
    return rgb, logits


@settings(max_examples=25)
@given(mixtures)
def test_mixture_density_of_a_pixel_integrates_to_one(spec):
    k, sigma, per_channel, seed = spec
    rgb, logits = _parts(k, 2, 1, 1, seed)
    d = MixtureImage(rgb, logits, sigma, per_channel=per_channel)
    # quadrature over both channels of the one pixel, ±9σ around every component
    grid = torch.linspace(-1 - 9 * sigma, 1 + 9 * sigma, 601, dtype=torch.float64)
    u, v = torch.meshgrid(grid, grid, indexing="ij")
    values = torch.stack([u, v], -1).reshape(-1, 2, 1, 1)
    density = d.log_prob(values).exp().reshape(601, 601)
    step = (grid[1] - grid[0]).item()
    assert abs(torch.trapezoid(torch.trapezoid(density, dx=step), dx=step).item() - 1) < 1e-3


@settings(max_examples=25)
@given(mixtures)
def test_mixture_factorises_over_pixels_and_is_a_gaussian_with_one_slot(spec):
    k, sigma, per_channel, seed = spec
    rgb, logits = _parts(k, 3, 2, 3, seed)
    x = torch.rand(3, 2, 3, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    whole = MixtureImage(rgb, logits, sigma, per_channel=per_channel).log_prob(x)
    pixels = sum(MixtureImage(rgb[..., i:i + 1, j:j + 1], logits[..., i:i + 1, j:j + 1], sigma,
                              per_channel=per_channel).log_prob(x[..., i:i + 1, j:j + 1])
                 for i in range(2) for j in range(3))
    assert torch.allclose(whole, pixels)
    one = MixtureImage(rgb[:1], logits[:1], sigma, per_channel=per_channel).log_prob(x)
    assert torch.allclose(one, dist.Normal(rgb[0], sigma).log_prob(x).sum())


@settings(max_examples=25)
@given(mixtures)
def test_gaussian_likelihood_mean_is_the_mask_weighted_sum(spec):
    k, sigma, _, seed = spec
    rgb, logits = _parts(k, 3, 2, 2, seed)
    d = image_likelihood(rgb, logits, sigma, kind="gaussian")
    masks = logits.softmax(0)
    assert torch.allclose(d.mean, (masks * rgb).sum(0))
    assert torch.allclose(MixtureImage(rgb, logits, sigma).mean, d.mean)   # both models share Eq. 3's mean
    x = torch.zeros(3, 2, 2, dtype=torch.float64)
    expected = (-0.5 * (d.mean / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)).sum()
    assert torch.allclose(d.log_prob(x), expected)
