"""Where a LOM's samples lose the structure its reconstructions have (docs/benchmarks.md).

For each LOM checkpoint, the structure accuracy (procedural ``stacks`` only) of images
decoded from: the ordered posterior slot means (reconstructions); the prior slot means
given each scene's *posterior* scene latent; prior samples at τ = 0.8. Plus how far the
slot posterior sits from the prior (σ_q/σ_p, |μ_q − μ_p|/σ_p) and where the scene
posterior means lie (their norm; p(s) samples at τ have norm ≈ τ·sqrt(Ds)).

    python benchmarks/prior_check.py benchmarks/results/quality/lom_emorl/checkpoint.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lom_pyro.assess import unit_frame
from lom_pyro.metrics.structure import structure_accuracy
from lom_pyro.training import held_out, load_trained


@torch.no_grad()
def check(path: str, scenes: int, temperature: float = 0.8) -> dict:
    module, config = load_trained(path)
    if config.dataset != "stacks":
        raise ValueError(f"{path}: structure accuracy needs the procedural 'stacks' dataset, not {config.dataset!r}")
    x = held_out(config, scenes)["images"]
    torch.manual_seed(0)
    enc = module.encode(x)
    acc = lambda generated: structure_accuracy(unit_frame(module, generated.images), value_range=(0.0, 1.0))
    prior_loc, prior_scale = module.prior_slots(enc.scene_loc)
    return {
        "checkpoint": path, "scenes": scenes,
        "s_acc_reconstructions": acc(module.reconstruct(x)),
        "s_acc_prior_means_given_posterior_scene": acc(module.generate(enc.scene_loc, 0.0)),
        "s_acc_samples": acc(module.sample(scenes, temperature)),
        "slot_scale_ratio_q_over_p": float((enc.slots_scale / prior_scale).mean()),
        "slot_mean_gap_over_prior_scale": float(((enc.slots_loc - prior_loc).abs() / prior_scale).mean()),
        "scene_posterior_mean_norm": float(enc.scene_loc.norm(dim=1).mean()),
        "prior_scene_sample_norm": temperature * module.scene_dim ** 0.5,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--scenes", type=int, default=256)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    results = [check(path, args.scenes) for path in args.checkpoints]
    for result in results:
        print(result["checkpoint"])
        for key, value in result.items():
            if key != "checkpoint":
                print(f"  {key:<42}{value:.4g}" if isinstance(value, float) else f"  {key:<42}{value}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
