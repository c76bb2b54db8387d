"""LOM-EMORL on Objects Room, the paper's run (§4, appendix A.4), through the Python API.

    lom-pyro convert objects-room objects_room_train.tfrecords objects_room.h5 --test-size 10000
    python examples/objects_room.py --data objects_room.h5                        # 400K steps, batch 32
    python examples/objects_room.py --procedural --small --steps 500 --batch-size 8  # offline, on CPU

--procedural trains on the built-in "room" scenes: sky, two walls, a floor and up to three
objects resting on it (docs/procedural.md).
"""

from __future__ import annotations

from _common import run

from lom_pyro import EMORL, GECO, LOM, LOMELBO
from lom_pyro.sites import OBS, ORDERLESS_OBS


def build(image_size: int, small: bool) -> tuple[LOM, GECO]:
    """K = 7 slots, σ = 0.7; EMORL with I = 2 refinement steps, Dz = 64, and Ds = 128 (A.4.1)."""
    emorl = EMORL.preset("cpu" if small else "lom", num_slots=7, image_size=image_size, sigma=0.7)
    lom = LOM(emorl, scene_dim=32 if small else 128, sigma=0.7)
    # §3.3, A.4.2: a GECO constraint per observation site, both in EMORL's form:
    # goal −0.352 per pixel·channel, step 1e-6, ×5 once the goal is met
    constraint = EMORL.geco_config(-0.352, speedup=5.0, step_size=1e-6)
    return lom, GECO(LOMELBO(), {ORDERLESS_OBS: constraint, OBS: constraint})


def main(argv: list[str] | None = None) -> LOM:
    return run(argv, build, "room", __doc__, steps=400_000, batch_size=32, image_size=64,
               out="runs/example_objects_room")


if __name__ == "__main__":
    main()
