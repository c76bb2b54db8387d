"""LOM-EMORL on ShapeStacks, the paper's run (§4, appendix A.4), through the Python API.

    lom-pyro convert shapestacks /data/shapestacks shapestacks.h5 --split default
    python examples/shapestacks.py --data shapestacks.h5                         # 400K steps, batch 32
    python examples/shapestacks.py --procedural --small --steps 500 --batch-size 8  # offline, on CPU

--procedural trains on the built-in "stacks" scenes: two to four blocks resting on each
other on a floor, whose structure accuracy lom-pyro evaluate can judge (docs/metrics.md).
"""

from __future__ import annotations

from _common import run

from lom_pyro import EMORL, GECO, LOM, LOMELBO
from lom_pyro.sites import OBS, ORDERLESS_OBS


def build(image_size: int, small: bool) -> tuple[LOM, GECO]:
    """K = 9 slots for the taller stacks, σ = 0.7; Dz = 64, Ds = 128 (A.4.1)."""
    emorl = EMORL.preset("cpu" if small else "lom", num_slots=9, image_size=image_size, sigma=0.7)
    lom = LOM(emorl, scene_dim=32 if small else 128, sigma=0.7)
    # §3.3, A.4.2: EMORL's GECO form on both observation sites: goal −0.351 per
    # pixel·channel, step 1e-6, and a large ×50 once the goal is met
    constraint = EMORL.geco_config(-0.351, speedup=50.0, step_size=1e-6)
    return lom, GECO(LOMELBO(), {ORDERLESS_OBS: constraint, OBS: constraint})


def main(argv: list[str] | None = None) -> LOM:
    return run(argv, build, "stacks", __doc__, steps=400_000, batch_size=32, image_size=64,
               out="runs/example_shapestacks")


if __name__ == "__main__":
    main()
