"""Plain-torch networks: shapes, invariances and the decoder's factorised first conv."""

import pytest
import torch
from einops import rearrange

from lom_pyro.nn import CausalTransformer, SetEncoder, SpatialBroadcastDecoder


def test_causal_transformer_is_causal_and_shapes():
    f = CausalTransformer(5, 4, num_slots=3, depth=2)
    s = torch.randn(2, 5)
    assert f(s).shape == (2, 3, 4)
    scale_net = CausalTransformer(5, 4, num_slots=3, learned_tokens=False)
    tokens = torch.randn(2, 2, 4)
    out = scale_net(s, tokens)
    assert out.shape == (2, 3, 4)
    changed = tokens.clone()
    changed[:, 1] += 1.0                       # a later token cannot change earlier outputs
    out2 = scale_net(s, changed)
    assert torch.allclose(out[:, :2], out2[:, :2]) and not torch.allclose(out[:, 2], out2[:, 2])
    with pytest.raises(ValueError, match="tokens must be given"):
        scale_net(s)


def test_set_encoder_is_permutation_invariant():
    for pooling in (True, False):
        g = SetEncoder(4, 6, depth=3, sum_pooling=pooling).double()
        x = torch.randn(3, 5, 4, dtype=torch.float64)
        assert torch.allclose(g(x), g(x[:, torch.randperm(5)]))


def test_decoder_factorised_first_conv_matches_broadcast():
    torch.manual_seed(0)
    dec = SpatialBroadcastDecoder(6, (3, 12, 10), hidden=8, num_layers=2).double()
    z = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    rgb, logits = dec(z)
    assert rgb.shape == (2, 3, 3, 12, 10) and logits.shape == (2, 3, 1, 12, 10)
    pos = rearrange(dec.position(rearrange(dec.ramps, "c h w -> h w c")), "h w d -> 1 d h w")
    naive = rearrange(dec.net(rearrange(z, "b k d -> (b k) d 1 1") + pos), "(b k) c h w -> b k c h w", b=2)
    assert torch.allclose(torch.cat([rgb.atanh(), logits], 2), naive, atol=1e-8)
    (g1,) = torch.autograd.grad(logits.sum() + rgb.sum(), z)
    (g2,) = torch.autograd.grad(naive[:, :, -1:].sum() + naive[:, :, :-1].tanh().sum(), z)
    assert torch.allclose(g1, g2)
