"""How well can the scene encoder g_φ and the prior f_θ predict a trained LOM's slots?

Offline and cheap: the orderless posterior of a trained two-stage LOM (frozen orderless
model) is computed once for N training scenes, with the checkpoint's own ordering and
order-aware scales held fixed. Then g_φ, the scene heads, f_θ and its heads are trained on
the LOM's prior terms alone, ``Σ_k KL(q(z_k) ‖ p(z_k | s)) + max(λ, KL(q(s) ‖ p(s)))``,
at ~10 ms a step (2 idle threads) instead of the ~0.8 s of a LOM step that also decodes. Variants: the
checkpoint's own networks continued (free bits 8 or λ nats), and fresh networks with f_θ
of width Dz or ``--wide``. Reported on held-out scenes: the share of each slot's
posterior-mean variance the prior means explain, the scene KL, and the structure accuracy
of the prior means given the posterior scene (decoded by the checkpoint's decoder).

    python benchmarks/prior_capacity.py benchmarks/results/long/lom/checkpoint.pt
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch import nn

from lom_pyro.evaluation.assess import unit_frame
from lom_pyro.data.procedural import generate
from lom_pyro.metrics.structure import structure_accuracy
from lom_pyro.slot_priors import ChainPrior
from lom_pyro.training import held_out, load_trained


@torch.no_grad()
def cached_posteriors(lom, images: torch.Tensor, chunk: int = 256) -> dict[str, torch.Tensor]:
    """Orderless means, ordered slot means and order-aware scales of each scene."""
    parts = [lom.encode(images[i:i + chunk]) for i in range(0, len(images), chunk)]
    return {"orderless_loc": torch.cat([p.orderless.loc for p in parts]),
            "loc": torch.cat([p.slots_loc for p in parts]), "scale": torch.cat([p.slots_scale for p in parts])}


def scene_prior_copy(lom, width: int | None = None):
    """A copy of the LOM whose g_φ, scene heads, f_θ and f_θ heads are the checkpoint's own
    (``width`` None) or fresh, with f_θ ``width`` wide; with the parameters to train."""
    own = copy.deepcopy(lom)
    if width is not None:
        ds, dz, k = lom.scene_dim, lom.slot_dim, lom.num_slots
        for p in own.scene_encoder.parameters():   # weights anew; norms and biases as they were
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        own.scene_loc, own.scene_scale = nn.Linear(ds, ds), nn.Linear(ds, ds)
        own.use_slot_prior(ChainPrior(k, dz, ds, width=width))
    trained = (own.scene_encoder, own.scene_loc, own.scene_scale, own.slot_prior)
    return own, [p for module in trained for p in module.parameters()]


def scene_kl(loc, scale):
    return (0.5 * (loc ** 2 + scale ** 2 - 1) - scale.log()).sum(-1)


def explained_variance(loc, prior_loc) -> list[float]:
    return (1 - (loc - prior_loc).var(0).sum(-1) / loc.var(0).sum(-1)).tolist()


def train(name, lom, parameters, data, test, steps, free_bits, batch=64, lr=1e-3, reports=4) -> list[dict]:
    optimiser = torch.optim.Adam(parameters, lr)
    n, rows, start = len(data["loc"]), [], time.perf_counter()
    for step in range(1, steps + 1):
        idx = torch.randint(0, n, (batch,))
        loc, scale = lom.scene_posterior(data["orderless_loc"][idx])
        prior_loc, prior_scale = lom.prior_slots(loc + scale * torch.randn_like(scale))
        slot_kl = torch.distributions.kl_divergence(
            torch.distributions.Normal(data["loc"][idx], data["scale"][idx]),
            torch.distributions.Normal(prior_loc, prior_scale)).sum((1, 2))
        loss = (slot_kl + scene_kl(loc, scale).clamp(min=free_bits)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % (steps // reports) == 0:
            with torch.no_grad():
                loc, scale = lom.scene_posterior(test["orderless_loc"])
                prior_loc, _ = lom.prior_slots(loc)
                images = lom.render(prior_loc).images
                row = {"variant": name, "step": step, "train_slot_kl": float(slot_kl.mean()),
                       "heldout_scene_kl": float(scene_kl(loc, scale).mean()),
                       "explained_variance_per_slot": explained_variance(test["loc"], prior_loc),
                       "s_acc_prior_means_given_posterior_scene": structure_accuracy(
                           unit_frame(lom, images), value_range=(0.0, 1.0)),
                       "seconds": time.perf_counter() - start}
            rows.append(row)
            print(f"{name:<28} step {step:>5}  slot KL {row['train_slot_kl']:6.1f}  scene KL "
                  f"{row['heldout_scene_kl']:6.1f}  EV {[round(v, 2) for v in row['explained_variance_per_slot']]}"
                  f"  S-Acc(prior means | posterior s) {row['s_acc_prior_means_given_posterior_scene']:.3f}"
                  f"  {row['seconds']:.0f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--scenes", type=int, default=8192, help="training scenes to cache")
    parser.add_argument("--test-scenes", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--free-bits", type=float, default=128.0, help="λ of the wide variants, nats")
    parser.add_argument("--wide", type=int, default=128, help="width of the wide f_θ")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    lom, config = load_trained(args.checkpoint)
    if config.dataset != "stacks":
        raise ValueError(f"{args.checkpoint}: needs the procedural 'stacks' dataset, not {config.dataset!r}")
    torch.manual_seed(0)   # before caching: the orderless guide samples
    scenes = generate("stacks", args.scenes, config.image_size, seed=777)
    data = cached_posteriors(lom, scenes.model_images())
    test = cached_posteriors(lom, held_out(config, args.test_scenes)["images"])
    dz, fb = lom.slot_dim, args.free_bits
    rows = []
    for name, width, free_bits in ((f"own nets, λ {lom.scene_free_bits:g}", None, lom.scene_free_bits),
                                   (f"own nets, λ {fb:g}", None, fb),
                                   (f"fresh, width {dz}, λ {fb:g}", dz, fb),
                                   (f"fresh, width {args.wide}, λ {fb:g}", args.wide, fb)):
        rows += train(name, *scene_prior_copy(lom, width), data, test, args.steps, free_bits)
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": args.checkpoint, "scenes": args.scenes,
                                               "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
