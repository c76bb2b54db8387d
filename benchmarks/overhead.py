"""Pyro overhead: one LOM training step through LOMELBO vs a hand-written torch loss.

Both paths compute the same quantities with the same modules (orderless posterior,
scene posterior, greedy alignment, order-aware scales, decoders, analytic KLs, free
bits, Gaussian likelihoods) and take the same Adam step; only the Pyro machinery
(traces, replay, handlers, plates) differs. Steps alternate A/B in pairs; we report
medians and the ratio of medians. Target: Pyro ≤ 1.05× hand-written at batch 16.

    python benchmarks/overhead.py [--reps 15] [--batches 2 16]

Writes ``benchmarks/results/overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import kl_divergence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the small orderless VAE of the core's tests

from lom_pyro import LOM, LOMELBO  # noqa: E402
from lom_pyro.likelihoods import image_likelihood  # noqa: E402
from lom_pyro.ops import greedy_match, pairwise_sq_dist, permute_slots  # noqa: E402


def build() -> LOM:
    from toy import ToyOrderless

    return LOM(ToyOrderless(num_slots=7, slot_dim=64, image_shape=(3, 64, 64), sigma=0.7), scene_dim=128, sigma=0.7)


def hand_written_loss(lom: LOM, x: torch.Tensor) -> torch.Tensor:
    """The negative ELBO of the toy LOM, summed over the batch, without Pyro."""
    toy = lom.orderless
    b, k, d = x.shape[0], lom.num_slots, lom.slot_dim
    out = toy.encoder(x).view(b, k, 2 * d)
    o_loc, o_scale = out[..., :d], torch.nn.functional.softplus(out[..., d:]) + 1e-3
    o = o_loc + o_scale * torch.randn_like(o_loc)
    rgb, logits = toy.decoder(o)
    loss = -image_likelihood(rgb, logits, toy.sigma).log_prob(x).sum()
    loss = loss + kl_divergence(dist.Normal(o_loc, o_scale), dist.Normal(0.0, 1.0)).sum()
    mu = o_loc.detach()                                               # stop_grad(o)
    s_loc, s_scale = lom.scene_posterior(mu)
    s = s_loc + s_scale * torch.randn_like(s_loc)
    p_s = kl_divergence(dist.Normal(s_loc, s_scale), dist.Normal(0.0, 1.0)).sum(-1)
    loss = loss + p_s.clamp(min=lom.scene_free_bits).sum()
    prior_loc, prior_scale = lom.prior_slots(s)
    perm = greedy_match(pairwise_sq_dist(prior_loc.detach(), mu))
    z_loc = permute_slots(mu, perm)
    z_scale = lom.order_aware_scales(s, z_loc)
    z = z_loc + z_scale * torch.randn_like(z_loc)
    loss = loss + kl_divergence(dist.Normal(z_loc, z_scale), dist.Normal(prior_loc, prior_scale)).sum()
    rgb, logits = lom.decode(z)
    return loss - image_likelihood(rgb, logits, lom.sigma).log_prob(x).sum()


def timed_step(fn, params, opt) -> float:
    start = time.perf_counter()
    loss = fn()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--batches", type=int, nargs="+", default=[2, 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "overhead.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    torch.manual_seed(0)
    lom = build()
    params = list(lom.parameters())
    opt = torch.optim.Adam(params, lr=1e-4, foreach=True)
    elbo = LOMELBO()
    rows = []
    for batch in args.batches:
        x = torch.rand(batch, 3, 64, 64)
        pyro_fn = lambda x=x: elbo.differentiable_loss(lom.model, lom.guide, x)
        torch_fn = lambda x=x: hand_written_loss(lom, x)
        for _ in range(2):  # warm-up
            timed_step(pyro_fn, params, opt), timed_step(torch_fn, params, opt)
        a, b = [], []
        for rep in range(args.reps):  # alternate which goes first in each pair
            first, second = (pyro_fn, torch_fn) if rep % 2 == 0 else (torch_fn, pyro_fn)
            t1, t2 = timed_step(first, params, opt), timed_step(second, params, opt)
            (a.append(t1), b.append(t2)) if rep % 2 == 0 else (b.append(t1), a.append(t2))
        ratios = [p / t for p, t in zip(a, b)]
        row = {"batch": batch, "pyro_ms": 1e3 * statistics.median(a), "torch_ms": 1e3 * statistics.median(b),
               "ratio_of_medians": statistics.median(a) / statistics.median(b),
               "median_pair_ratio": statistics.median(ratios), "reps": args.reps}
        rows.append(row)
    print(f"{'batch':>5} {'pyro ms':>9} {'torch ms':>9} {'ratio':>7} {'pair-ratio':>10}")
    for r in rows:
        print(f"{r['batch']:>5} {r['pyro_ms']:>9.1f} {r['torch_ms']:>9.1f} {r['ratio_of_medians']:>7.3f} "
              f"{r['median_pair_ratio']:>10.3f}")
    result = {"benchmark": "overhead", "config": "64x64x3, K=7, Dz=64, Ds=128, toy orderless VAE",
              "threads": args.threads, "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "pyro": pyro.__version__, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
