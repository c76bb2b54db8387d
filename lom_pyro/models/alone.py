"""The baseline of §4, "EMORL alone": an orderless model trained and sampled on its own, with
the part of a LOM's interface that training and evaluation use, so they need not ask which
of the two they hold for what both can do.

Its samples draw every slot independently from the orderless prior ``N(0, τ² I)`` (no scene
latent, no order), which is what the paper compares the LOM against.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lom_pyro.models.inputs import check_sampling
from lom_pyro.models.scenes import Generated, decoded
from lom_pyro.orderless.base import OrderlessModel, SlotPosterior
from lom_pyro.plates import make_plates

__all__ = ["OrderlessAlone"]

PREFIX = "orderless."


class OrderlessAlone(nn.Module):
    """``orderless`` trained alone: ``model(x)`` / ``guide(x)`` with their own plates,
    ``sample``, ``reconstruct``, ``decode`` and ``observation``, as a :class:`LOM` has them.

    Its weights are the orderless model's under the orderless model's own keys (no
    ``orderless.`` prefix): checkpoints of the baseline read and write as they always have.
    """

    def __init__(self, orderless: OrderlessModel) -> None:
        super().__init__()
        self.orderless = orderless
        self._register_state_dict_hook(_without_prefix)
        self._register_load_state_dict_pre_hook(_with_prefix)

    @property
    def num_slots(self) -> int:
        return self.orderless.num_slots

    @property
    def slot_dim(self) -> int:
        return self.orderless.slot_dim

    @property
    def sigma(self) -> float:
        return self.orderless.sigma

    def model(self, x: Tensor) -> None:
        self.orderless.model(x, make_plates(x.shape[0], self.orderless.num_slots))

    def guide(self, x: Tensor) -> SlotPosterior:
        return self.orderless.guide(x, make_plates(x.shape[0], self.orderless.num_slots))

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.orderless.decode(z)

    def observation(self, x: Tensor) -> Tensor:
        return self.orderless.observation(x)

    def render(self, z: Tensor) -> Generated:
        """Decode slots ``z (N, K, Dz)``; the scene latent is empty ``(N, 0)``."""
        return decoded(self.decode, z, z.new_zeros(z.shape[0], 0))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 0.8) -> Generated:
        """``n`` scenes whose slots are drawn independently from ``N(0, τ² I)``."""
        check_sampling(n, temperature)
        ref = next(self.parameters())
        return self.render(temperature * torch.randn(n, self.num_slots, self.slot_dim, device=ref.device,
                                                     dtype=ref.dtype))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Generated:
        """Decode the posterior means of ``x`` (in the orderless model's own slot order)."""
        from pyro import poutine

        with poutine.block():
            posterior = self.guide(x)
        return self.render(posterior.loc)


def _without_prefix(module: nn.Module, state: dict, prefix: str, local_metadata: dict) -> dict:
    inner = prefix + PREFIX
    for key in [k for k in state if k.startswith(inner)]:
        state[prefix + key[len(inner):]] = state.pop(key)
    return state


def _with_prefix(state: dict, prefix: str, *args) -> None:
    for key in [k for k in state if k.startswith(prefix) and not k.startswith(prefix + PREFIX)]:
        state[prefix + PREFIX + key[len(prefix):]] = state.pop(key)
