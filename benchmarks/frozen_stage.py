"""A LOM step on a frozen orderless model: both ELBOs vs the LOM's alone (two-stage training).

With the orderless model frozen its ELBO terms are constants; ``LOM.score_orderless =
False`` (what ``lom-pyro train --freeze-orderless`` sets) skips them. Same module, same
batch, the two variants alternating step by step after warm-up; medians and their ratio.
Quickstart shapes by default (32 px, K = 6, EMORL CPU setting, batch 16).

    python benchmarks/frozen_stage.py [--pairs 15] [--batch-size 16] [--threads 2]

Writes ``benchmarks/results/frozen_stage.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import pyro
import torch

from lom_pyro.sites import OBS
from lom_pyro.models import programs
from lom_pyro.training import TrainingBatches, build, config_from_preset

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quickstart")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "frozen_stage.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    warnings.filterwarnings("ignore", message=".*not registered in the param store because requires_grad")
    torch.manual_seed(0)
    config = config_from_preset(args.preset, batch_size=args.batch_size)
    lom, objective = build(config)
    lom.orderless.requires_grad_(False)
    variants = {"both ELBOs": (True, objective), "LOM ELBO alone": (False, objective.restricted(OBS))}
    optimiser = torch.optim.Adam([p for p in lom.parameters() if p.requires_grad], lr=1e-4, foreach=True)
    model, guide = programs(lom)
    x = next(TrainingBatches(config))

    def step(name: str) -> float:
        lom.score_orderless, loss = variants[name]
        start = time.perf_counter()
        value, _ = loss.compute(model, guide, x)
        optimiser.zero_grad(set_to_none=True)
        value.backward()
        optimiser.step()
        return time.perf_counter() - start

    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(args.pairs + 2):   # two warm-up pairs
        for name in (variants if i % 2 == 0 else reversed(list(variants))):
            seconds = step(name)
            if i >= 2:
                times[name].append(seconds)
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratio = medians["LOM ELBO alone"] / medians["both ELBOs"]
    for name, median in medians.items():
        print(f"{name:<16} {median:.4f} s/step (median of {args.pairs})")
    print(f"ratio LOM alone / both: {ratio:.3f}")
    result = {"benchmark": "frozen_stage", "preset": args.preset, "batch_size": args.batch_size,
              "threads": args.threads, "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"),
              "s_per_step": medians, "ratio": ratio, "steps": times}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
