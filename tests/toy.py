"""A tiny orderless slot VAE satisfying :class:`lom_pyro.orderless.OrderlessModel`.

Tests of the LOM core use it so they do not depend on EMORL.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule, pyro_method
from torch import nn
from torch.nn import functional as F

from lom_pyro.likelihoods import image_likelihood
from lom_pyro.nn.decoders import SpatialBroadcastDecoder
from lom_pyro.orderless.base import OrderlessDefaults, SlotPosterior
from lom_pyro.sites import ORDERLESS_OBS, ORDERLESS_SLOTS


class ToyOrderless(OrderlessDefaults, PyroModule):
    def __init__(self, num_slots: int = 3, slot_dim: int = 4, image_shape=(3, 8, 8), sigma: float = 0.3,
                 free_bits: float | None = None) -> None:
        super().__init__()
        self.num_slots, self.slot_dim, self.image_shape = num_slots, slot_dim, tuple(image_shape)
        self.sigma = sigma
        self.free_bits = free_bits
        numel = int(torch.tensor(image_shape).prod())
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(numel, 32), nn.ELU(), nn.Linear(32, 2 * num_slots * slot_dim)
        )
        self.decoder = self.make_decoder()

    def make_decoder(self) -> nn.Module:
        return SpatialBroadcastDecoder(self.slot_dim, self.image_shape, hidden=8, num_layers=1, padded=True)

    def decode(self, z):
        return self.decoder(z)

    @pyro_method
    def model(self, x, plates) -> None:
        b = x.shape[0]
        loc = x.new_zeros(b, self.num_slots, self.slot_dim)
        with plates.batch:
            with plates.slots:
                o = pyro.sample(ORDERLESS_SLOTS, dist.Normal(loc, 1.0).to_event(1),
                                infer={"geco_group": ORDERLESS_OBS})
            rgb, logits = self.decoder(o)
            pyro.sample(ORDERLESS_OBS, image_likelihood(rgb.unsqueeze(1), logits.unsqueeze(1), self.sigma),
                        obs=x.unsqueeze(1))

    @pyro_method
    def guide(self, x, plates) -> SlotPosterior:
        out = self.encoder(x).view(x.shape[0], self.num_slots, 2 * self.slot_dim)
        loc, scale = out[..., : self.slot_dim], F.softplus(out[..., self.slot_dim:]) + 1e-3
        with plates.batch, plates.slots:
            o = pyro.sample(ORDERLESS_SLOTS, dist.Normal(loc, scale).to_event(1),
                            infer={"geco_group": ORDERLESS_OBS, "free_bits": self.free_bits})
        return SlotPosterior(loc, scale, o)
