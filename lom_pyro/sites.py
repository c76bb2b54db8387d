"""Site and plate names: public API.

Users ``condition``, ``block`` and ``replay`` on these names, so they are stable.
Shapes are those of the site's value inside the LOM program (batch plate at
``dim=-2``, slots plate at ``dim=-1``):

==================  ====================  ==========================================
name                value shape           meaning
==================  ====================  ==========================================
``BATCH_PLATE``     plate, size B         images in the mini-batch (``dim=-2``)
``SLOTS_PLATE``     plate, size K         slot index (``dim=-1``)
``SCENE`` "s"       (B, 1, Ds)            scene latent (§3.1)
``OBJECTS`` "z"     (B, K, Dz)            ordered object slots (§3.1)
``OBS`` "x"         (B, 1, C, H, W)       image under the LOM decoder
``ORDERLESS_SLOTS``  (B, K, Dz)           the auxiliary model's slot latent "o" (§3.2)
``ORDERLESS_OBS``   (B, 1, C, H, W)       image under the auxiliary model's decoder
==================  ====================  ==========================================
"""

from __future__ import annotations

__all__ = ["BATCH_PLATE", "SLOTS_PLATE", "SCENE", "OBJECTS", "OBS", "ORDERLESS_SLOTS", "ORDERLESS_OBS"]

BATCH_PLATE = "batch"
SLOTS_PLATE = "slots"
SCENE = "s"
OBJECTS = "z"
OBS = "x"
ORDERLESS_SLOTS = "o"
ORDERLESS_OBS = "x_orderless"
