"""The two plates of every LOM and orderless program: the batch (``dim=-2``) and the slots
(``dim=-1``). The caller builds them once per run and every component re-enters them, so
that one ELBO over the LOM and its orderless model is the sum of both (§3.3)."""

from __future__ import annotations

from typing import NamedTuple

import pyro

from lom_pyro.sites import BATCH_PLATE, SLOTS_PLATE

__all__ = ["Plates", "make_plates"]


class Plates(NamedTuple):
    """The batch plate (``dim=-2``) and the slots plate (``dim=-1``) of one program run.

    Pyro refuses to build the same plate twice in one program, so the caller builds
    them once (:func:`make_plates`) and every component re-enters them.
    """

    batch: pyro.plate
    slots: pyro.plate


def make_plates(batch_size: int, num_slots: int) -> Plates:
    """Build the two plates for one run of a model or guide."""
    return Plates(pyro.plate(BATCH_PLATE, batch_size, dim=-2), pyro.plate(SLOTS_PLATE, num_slots, dim=-1))
