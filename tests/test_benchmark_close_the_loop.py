"""The widening that ``benchmarks/close_the_loop.py --widen`` applies keeps the decoder's
images, so its step-0 row is the narrow decoder's, and the copies can still part."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from benchmark_scripts import load
from lom_pyro.nn import SpatialBroadcastDecoder

close_the_loop = load("close_the_loop")


@given(old=st.integers(1, 6), extra=st.integers(0, 9), layers=st.integers(1, 3), padded=st.booleans(),
       seed=st.integers(0, 2**16))
def test_widen_keeps_the_images(old, extra, layers, padded, seed):
    torch.manual_seed(seed)
    narrow = SpatialBroadcastDecoder(3, (3, 6, 5), hidden=old, num_layers=layers, padded=padded).double()
    wide = close_the_loop.widen(narrow, old + extra).double()
    assert [m.out_channels for m in wide.net if isinstance(m, torch.nn.Conv2d)] == [old + extra] * layers + [4]
    z = torch.randn(2, 4, 3, dtype=torch.float64)
    for a, b in zip(narrow(z), wide(z)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_widened_copies_part_under_training():
    torch.manual_seed(0)
    wide = close_the_loop.widen(SpatialBroadcastDecoder(3, (3, 6, 6), hidden=2, num_layers=2), 4)
    rgb, logits = wide(torch.randn(5, 2, 3))
    (rgb.square().sum() + logits.sum()).backward()
    grad = wide.net[0].weight.grad                            # channels 0 and 2 start as copies
    assert not torch.allclose(grad[0], grad[2])


def test_widen_refuses_to_narrow():
    with pytest.raises(ValueError, match="--widen: expected at least the decoder's width 8"):
        close_the_loop.widen(SpatialBroadcastDecoder(3, (3, 6, 6), hidden=8), 4)
