"""LOM-GENv2-G on ShapeStacks, the paper's best ShapeStacks model (Table 2: FID 91.6,
S-Acc 82 %), through the Python API: GENESIS-v2 as the orderless model (appendix A.4.1).

    lom-pyro convert shapestacks /data/shapestacks shapestacks.h5 --split default
    python examples/shapestacks_genesis_v2.py --data shapestacks.h5                         # 500K steps, batch 32
    python examples/shapestacks_genesis_v2.py --procedural --small --steps 500 --batch-size 8  # offline, on CPU

The same through the command line: ``lom-pyro train --preset shapestacks --orderless genesis_v2``.
For the authors' later SRI variant give ``LOM(...)`` below the ``"sri"`` bundle's networks,
``**registry.build_networks(9, genesis.slot_dim, scene_dim, registry.networks("sri"))``, and a
mixture likelihood to both models (``likelihood="mixture"`` for GENESIS-v2,
``likelihood=MixtureLikelihood(0.7, per_channel=True)`` for the LOM: SRI's per-channel mixture).
"""

from __future__ import annotations

from _common import Schedule, run

from lom_pyro import GECO, LOM, GECOConfig, GenesisV2, LOMELBO
from lom_pyro.sites import OBS, ORDERLESS_OBS

#: A.4.1: LOM-GENv2-G trains with Adam at 1e-4 and no learning-rate schedule
GENESIS_V2_SCHEDULE = Schedule(lr=1e-4, warmup=0, decay_every=0)


def build(image_size: int, small: bool) -> tuple[LOM, GECO]:
    """K = 9 slots, Gaussian likelihood with σ = 0.7 for both models; Dz = 64, Ds = 128 (A.4.1)."""
    genesis = GenesisV2.preset("cpu" if small else "reference", num_slots=9, image_size=image_size, sigma=0.7)
    lom = LOM(genesis, scene_dim=32 if small else 128, sigma=0.7)
    # A.4.2: GENESIS-v2's own GECO (the multiplicative form) on both observation sites: goal
    # −0.353 per pixel·channel, step 1e-6, ×10 once the goal is met, β back up to 1 at most
    constraint = GECOConfig(goal=-0.353, step_size=1e-6, speedup=10.0, beta_max=1.0)
    return lom, GECO(LOMELBO(), {ORDERLESS_OBS: constraint, OBS: constraint})


def main(argv: list[str] | None = None) -> LOM:
    return run(argv, build, "stacks", __doc__, schedule=GENESIS_V2_SCHEDULE, steps=500_000, batch_size=32,
               image_size=64, out="runs/example_shapestacks_genesis_v2")


if __name__ == "__main__":
    main()
