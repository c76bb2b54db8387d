"""How fast does each setting decompose procedural stacks? (issue: LOM-EMORL quality bar).

Trains named variants of the ``quickstart`` preset — EMORL alone, or LOM-EMORL trained
jointly — for a fixed wall time each, logging the held-out ARI-FG of the orderless
posterior (and, for a LOM, of the ordered one and the structure accuracy of τ = 0.8
samples) every ``--eval-every`` steps. Step counts, not minutes, are what carry over
between machines: a GPU sweep tells which setting to spend the CPU budget of
``benchmarks/quality.py`` on. ``--parallel`` runs the variants as concurrent child
processes (one GPU or many cores); otherwise one after another.

    python benchmarks/decomposition.py --variants base mixture --minutes 20
    python benchmarks/decomposition.py --device cuda --parallel --minutes 5

Writes ``<out>/decomposition.json`` and one training folder per variant.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: name -> (train-config overrides, orderless-model overrides) on top of ``quickstart``;
#: learning rates pinned, as the preset's changed (4e-4 → 1e-3) after the first sweep
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "base": (dict(lom=False, lr=4e-4), {}),
    "mixture": (dict(lom=False, lr=4e-4), dict(likelihood="mixture")),
    "mixture_lr1e-3": (dict(lom=False, lr=1e-3), dict(likelihood="mixture")),
    "mixture_K7": (dict(lom=False, lr=4e-4), dict(likelihood="mixture", num_slots=7)),
    "mixture_L1_I0": (dict(lom=False, lr=4e-4), dict(likelihood="mixture", stochastic_layers=1, refinement_steps=0)),
    "base_lr1e-3": (dict(lom=False, lr=1e-3), {}),
    "lom_mixture": (dict(lom=True, lr=4e-4), dict(likelihood="mixture")),
    "lom_base": (dict(lom=True, lr=4e-4), {}),
    "base_lr2e-3": (dict(lom=False, lr=2e-3), {}),
    "base_lr1e-3_K7": (dict(lom=False, lr=1e-3), dict(num_slots=7)),
    "base_lr1e-3_L1_I0": (dict(lom=False, lr=1e-3), dict(stochastic_layers=1, refinement_steps=0)),
    "base_lr1e-3_batch32": (dict(lom=False, lr=1e-3, batch_size=32), {}),
    "base_lr1e-3_seed1": (dict(lom=False, lr=1e-3, seed=1), {}),
    "lom_base_lr1e-3": (dict(lom=True, lr=1e-3), {}),
}


def child(name: str, args: argparse.Namespace) -> None:
    """Train one variant as the command line says."""
    from lom_pyro.training import PRESETS, config_from_preset, train

    overrides, orderless = VARIANTS[name]
    kwargs = {**PRESETS["quickstart"]["orderless_kwargs"], **orderless}
    config = config_from_preset("quickstart", **{**overrides, "orderless_kwargs": kwargs}, steps=args.steps,
                                max_minutes=args.minutes, eval_every=args.eval_every, eval_every_scenes=128,
                                eval_scenes=256, figure_every=max(args.eval_every * 4, 1), checkpoint_every=0,
                                device=args.device, threads=args.threads, out=str(Path(args.out) / name))
    train(config, progress=False)


def summarise(name: str, folder: Path) -> dict[str, Any]:
    if not (folder / "metrics.json").exists():
        return {"variant": name, "error": "no metrics.json (the run failed; see its log)"}
    metrics = json.loads((folder / "metrics.json").read_text())
    curves = json.loads((folder / "curves.json").read_text())
    evals = {k[len("eval/"):]: v for k, v in curves.items() if k.startswith("eval/")}
    clean = lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 4)
    return {"variant": name, "overrides": VARIANTS[name][0], "orderless_overrides": VARIANTS[name][1],
            "steps": metrics["steps"], "train_seconds": metrics["train_seconds"],
            "ms_per_step": round(1000 * metrics["train_seconds"] / max(metrics["steps"], 1), 1),
            "final": {k: metrics.get(k) for k in ("ari_fg_orderless", "ari_fg_lom", "structure_accuracy_samples")},
            "evals": {k: [clean(x) for x in v] for k, v in evals.items()}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--minutes", type=float, default=20.0, help="wall time per variant")
    parser.add_argument("--steps", type=int, default=1_000_000, help="upper bound; time usually binds")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    parser.add_argument("--parallel", action="store_true", help="run the variants concurrently")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "decomposition"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args)
        return {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ["--minutes", str(args.minutes), "--steps", str(args.steps), "--eval-every", str(args.eval_every),
              "--device", args.device, "--threads", str(args.threads), "--out", str(out)]
    started = time.perf_counter()
    procs = []
    for name in args.variants:
        log = open(out / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, __file__, "--child", name, *common], stdout=log,
                                stderr=subprocess.STDOUT)
        procs.append((name, proc, log))
        if not args.parallel:
            proc.wait()
    for _, proc, log in procs:
        proc.wait()
        log.close()
    rows = [summarise(name, out / name) for name in args.variants]
    result = {"benchmark": "decomposition", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
              "device": args.device, "parallel": args.parallel, "threads": args.threads, "minutes": args.minutes,
              "eval_every": args.eval_every, "wall_seconds": round(time.perf_counter() - started, 1), "rows": rows}
    if args.device.startswith("cuda"):
        import torch

        result["device_name"] = torch.cuda.get_device_name()
    (out / "decomposition.json").write_text(json.dumps(result, indent=2))
    print(f"{'variant':<18}{'steps':>7}{'ms/step':>9}{'ARI-FG':>8}{'ARI lom':>8}{'S-Acc':>7}  ARI-FG every "
          f"{args.eval_every} steps")
    for row in rows:
        if "error" in row:
            print(f"{row['variant']:<18} {row['error']}")
            continue
        f = row["final"]
        fmt = lambda v: "-" if v is None else f"{v:.2f}"
        curve = " ".join(fmt(v) for v in row["evals"].get("ari_fg_orderless", []))
        print(f"{row['variant']:<18}{row['steps']:>7}{row['ms_per_step']:>9}{fmt(f['ari_fg_orderless']):>8}"
              f"{fmt(f['ari_fg_lom']):>8}{fmt(f['structure_accuracy_samples']):>7}  {curve}")
    return result


if __name__ == "__main__":
    main()
