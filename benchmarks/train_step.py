"""Training-step time and peak memory: an orderless model alone vs the LOM on top of it.

The references' settings, so the numbers compare: EMORL (default) at 64×64, K = 7, Dz = 64,
Ds = 128, L = 3, I = 3; GENESIS-v2 (``--orderless genesis_v2``) at 64×64, K = 9 (ShapeStacks),
F = Dz = 64, Ds = 128, Gaussian σ = 0.7. CPU with 2 threads, batch 8 and 32. Each (model,
batch) runs in its own child process (peak RSS is per process), warm-up step first, then the
median of ``--reps`` steps; the two models alternate per batch size. Targets: the LOM ≤ 1.3×
its orderless model alone; EMORL alone at batch 8 well under the reference implementation's
12.9 s/step and 3.1 GB; LOM-GENv2-G ≤ 0.5× the authors' SRI code (2.26 / 11.3 s at batch
8 / 32; their GENESIS-v2 alone 1.52 / 8.55 s), all measured on this machine.

    python benchmarks/train_step.py [--batches 8 32] [--reps 3] [--orderless genesis_v2]
    python benchmarks/train_step.py --device cuda --batches 8 32 64 --reps 20   # GPU: peak = CUDA allocator peak

Writes ``benchmarks/results/train_step.json`` (``train_step_genesis_v2.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the reference implementations on this machine (docs/design.md §10): the orderless
#: model's own code, and for GENESIS-v2 the authors' SRI (their LOM on GENESIS-v2)
REFERENCE = {"emorl": {8: {"s_per_step": 12.9, "peak_gb": 3.1}, 32: {"s_per_step": 66.3, "peak_gb": 11.1}},
             "genesis_v2": {8: {"s_per_step": 1.52, "peak_gb": 1.3, "sri_s_per_step": 2.26, "sri_peak_gb": 1.8},
                            32: {"s_per_step": 8.55, "peak_gb": 3.6, "sri_s_per_step": 11.3, "sri_peak_gb": 4.6}}}
SETTINGS = {"emorl": "64x64, K=7, Dz=64, Ds=128, L=3, I=3", "genesis_v2": "64x64, K=9, F=Dz=64, Ds=128, sigma=0.7"}


def benchmark_config(kind: str, batch: int, lom_decoder: dict | None = None, lom_kwargs: dict | None = None,
                     likelihood: str | None = None):
    """The config of ``kind`` = ``[lom-]emorl`` or ``[lom-]genesis_v2`` at the reference's setting;
    ``lom_decoder``: options of a LOM decoder differing from the orderless model's; ``lom_kwargs``
    added to the preset's (e.g. ``{"variant": "sri"}``); ``likelihood``: both models'."""
    from lom_pyro.training import config_from_preset

    orderless = kind.removeprefix("lom-")
    lom = dict(lom=kind.startswith("lom-"), batch_size=batch, lom_decoder=lom_decoder or {}, likelihood=likelihood)
    if lom_kwargs:
        preset = config_from_preset("objects_room" if orderless == "emorl" else "shapestacks", orderless=orderless)
        lom["lom_kwargs"] = {**preset.lom_kwargs, **lom_kwargs}
    if orderless == "emorl":
        return config_from_preset("objects_room", orderless_kwargs=dict(num_slots=7, refinement_steps=3, sigma=0.7),
                                  **lom)
    return config_from_preset("shapestacks", orderless="genesis_v2", **lom)


def child(kind: str, batch: int, reps: int, threads: int, device: str = "cpu", amp: str = "off",
          compiled: bool = False, warmup: int = 1, lom_decoder: dict | None = None, lom_kwargs: dict | None = None,
          likelihood: str | None = None) -> dict:
    import pyro
    import torch

    from lom_pyro.models import programs
    from lom_pyro.training import build

    torch.set_num_threads(threads)
    pyro.enable_validation(False)
    torch.manual_seed(0)
    module, objective = build(benchmark_config(kind, batch, lom_decoder, lom_kwargs, likelihood))
    module.to(device)
    objective.to(device)
    if amp != "off":
        from lom_pyro.training.speed import AMP_DTYPES, autocast_networks

        autocast_networks(module, AMP_DTYPES[amp], torch.device(device).type)
    if compiled:
        from lom_pyro.training.speed import compile_networks

        compile_networks(module)
    model, guide = programs(module)
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-4, foreach=True)
    x = torch.rand(batch, 3, 64, 64, device=device) * 2 - 1
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = []
    for _ in range(reps + warmup):
        sync()
        start = time.perf_counter()
        loss, _ = objective.compute(model, guide, x)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 5.0)
        optimiser.step()
        sync()
        times.append(time.perf_counter() - start)
    if cuda:
        peak_gb = torch.cuda.max_memory_allocated() / 1024 ** 3
    else:
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    return {"model": kind, "batch": batch, "device": device, "amp": amp, "compile": compiled,
            "s_per_step": statistics.median(times[warmup:]), "steps": times[warmup:], "peak_gb": peak_gb}


def speed_variants(args: argparse.Namespace) -> dict:
    """LOM-EMORL steps/s per batch for (fp32 | bf16) × (eager | compiled), one child each."""
    rows = []
    for batch in args.batches:
        for amp, compiled in (("off", False), ("bf16", False), ("off", True), ("bf16", True)):
            cmd = [sys.executable, __file__, "--child", "lom-emorl", str(batch), "--reps", str(args.reps),
                   "--threads", str(args.threads), "--device", args.device, "--amp", amp, "--warmup",
                   str(args.warmup), *(["--compile"] if compiled else [])]
            rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
            r = rows[-1]
            print(f"  batch {batch:>3} amp {amp:<4} compiled {compiled!s:<5}: {r['s_per_step'] * 1e3:8.1f} ms/step "
                  f"= {1 / r['s_per_step']:6.1f} steps/s, {r['peak_gb']:.2f} GB", flush=True)
    result = {"benchmark": "train_step_speed_variants", "setting": SETTINGS["emorl"],
              "device": args.device, "date": time.strftime("%Y-%m-%d"), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--speed-variants", action="store_true",
                        help="LOM-EMORL only, fp32 vs bf16 autocast and eager vs compiled networks (for a GPU)")
    parser.add_argument("--amp", default="off", help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=1, help="steps before timing (compiled: use several)")
    parser.add_argument("--orderless", default="emorl", choices=sorted(SETTINGS))
    parser.add_argument("--lom-decoder", type=json.loads, default={},
                        help='options of a LOM decoder differing from the orderless one, e.g. \'{"hidden": 32}\'')
    parser.add_argument("--lom-kwargs", type=json.loads, default={},
                        help='added to the preset\'s LOM options, e.g. \'{"variant": "sri"}\' for the SRI networks')
    parser.add_argument("--likelihood", choices=["gaussian", "mog"], default=None, help="both models' likelihood")
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/train_step[_MODEL].json)")
    args = parser.parse_args(argv)
    suffix = "" if args.orderless == "emorl" else f"_{args.orderless}"
    args.out = args.out or str(ROOT / "benchmarks" / "results" / f"train_step{suffix}.json")
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.reps, args.threads, args.device, args.amp,
                               args.compile, args.warmup, args.lom_decoder, args.lom_kwargs, args.likelihood)))
        return {}
    if args.speed_variants:
        return speed_variants(args)
    rows = []
    alone, lom = args.orderless, f"lom-{args.orderless}"
    for batch in args.batches:
        for kind in (alone, lom):
            cmd = [sys.executable, __file__, "--child", kind, str(batch), "--reps", str(args.reps),
                   "--threads", str(args.threads), "--device", args.device,
                   "--lom-decoder", json.dumps(args.lom_decoder), "--lom-kwargs", json.dumps(args.lom_kwargs),
                   *(["--likelihood", args.likelihood] if args.likelihood else [])]
            rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
            print(f"  {kind:<14} batch {batch:>3}: {rows[-1]['s_per_step']:.4f} s/step, {rows[-1]['peak_gb']:.2f} GB",
                  flush=True)
    print(f"\n{'batch':>5} {'alone s':>9} {'LOM s':>9} {'ratio':>7} {'alone GB':>9} {'LOM GB':>8} "
          f"{'ref s':>7} {'ref GB':>7} {'LOM/SRI':>8}")
    table = []
    for batch in args.batches:
        e, l = [r for r in rows if r["batch"] == batch]
        ref = REFERENCE[args.orderless].get(batch, {}) if args.device == "cpu" else {}
        table.append({"batch": batch, f"{alone}_s": e["s_per_step"], f"{lom}_s": l["s_per_step"],
                      "ratio": l["s_per_step"] / e["s_per_step"], f"{alone}_gb": e["peak_gb"],
                      f"{lom}_gb": l["peak_gb"], "reference": ref})
        if "sri_s_per_step" in ref:
            table[-1]["lom_over_sri"] = l["s_per_step"] / ref["sri_s_per_step"]
        print(f"{batch:>5} {e['s_per_step']:>9.4f} {l['s_per_step']:>9.4f} {table[-1]['ratio']:>7.2f} "
              f"{e['peak_gb']:>9.2f} {l['peak_gb']:>8.2f} {ref.get('s_per_step', float('nan')):>7.2f} "
              f"{ref.get('peak_gb', float('nan')):>7.1f} {table[-1].get('lom_over_sri', float('nan')):>8.2f}")
    result = {"benchmark": "train_step", "setting": SETTINGS[args.orderless], "lom_decoder": args.lom_decoder,
              "lom_kwargs": args.lom_kwargs, "likelihood": args.likelihood,
              "threads": args.threads,
              "device": args.device,
              "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"), "rows": rows, "table": table}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
