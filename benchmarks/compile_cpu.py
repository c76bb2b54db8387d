"""Does ``--compile`` pay on the CPU? Eager vs ``torch.compile``d networks, one training step
at a time, at the quickstart shapes (EMORL alone, 32 px, K = 6), batch 32.

Four variants: eager and compiled steps back to back, and both again with a figure drawn
after every step as the training loop draws them (``lom_pyro.evaluation.assess.write_figure`` on 8
held-out scenes: the networks run in eval mode, without gradients, at batch 8). Each variant
runs in its own child process (a compiled one first takes ``--warmup`` steps to compile);
the children alternate, ``--rounds`` times each, so load from other processes falls on all
alike. A compiled child also reports what dynamo did: frames compiled, recompilations and
graph breaks (``torch._dynamo.utils.counters``), and an error that ended it. The load
average (``os.getloadavg``) is recorded beside each child.

    python benchmarks/compile_cpu.py [--batch 32] [--steps 3] [--warmup 2] [--rounds 2] [--threads 2]
    python benchmarks/compile_cpu.py --variants compiled+figures --rounds 1 --donated-buffer \
        --out benchmarks/results/compile_cpu_donated_buffer.json

``--donated-buffer`` turns ``torch._functorch.config.donated_buffer`` back on after
``compile_networks`` (which turns it off): torch's default, with which the loop failed.

Writes ``benchmarks/results/compile_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("eager", "compiled", "eager+figures", "compiled+figures")


def child(compiled: bool, figures: bool, batch: int, steps: int, warmup: int, threads: int,
          donated_buffer: bool = False) -> dict:
    import tempfile

    import pyro
    import torch

    from lom_pyro.evaluation.assess import write_figure

    from lom_pyro.models import programs
    from lom_pyro.training import build, config_from_preset

    torch.set_num_threads(threads)
    pyro.enable_validation(False)
    torch.manual_seed(0)
    module, objective = build(config_from_preset("quickstart", lom=False, batch_size=batch))
    if compiled:
        from lom_pyro.training.speed import compile_networks

        compile_networks(module)
        import torch._functorch.config

        torch._functorch.config.donated_buffer = donated_buffer
    model, guide = programs(module)
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-3, foreach=True)
    x = torch.rand(batch, 3, 32, 32) * 2 - 1
    times, error = [], None
    png = Path(tempfile.mkdtemp()) / "figure.png"
    try:
        for _ in range(warmup + steps):
            start = time.perf_counter()
            loss, _ = objective.compute(model, guide, x)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if figures:    # as the loop's figures and held-out checks: eval mode, no gradients, batch 8
                write_figure(module, x[:8], png)
            times.append(time.perf_counter() - start)
    except Exception as err:   # recorded: what the loop would have died of
        error = f"{type(err).__name__}: {str(err).splitlines()[0]}"
    dynamo = {}
    if compiled:
        from torch._dynamo.utils import counters

        dynamo = {"frames_compiled": dict(counters["stats"]), "graph_breaks": dict(counters["graph_break"]),
                  "recompiles": dict(counters["recompiles"])}
    timed = times[warmup:]
    return {"compile": compiled, "figures": figures, "batch": batch, "threads": threads, "warmup_s": times[:warmup],
            "s_per_step": statistics.median(timed) if timed else None, "steps_s": timed, "dynamo": dynamo,
            "error": error, "steps_done": len(times), "loadavg_1min_at_end": os.getloadavg()[0]}


def torch_version() -> str:
    import torch

    return torch.__version__


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per child")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation happens here)")
    parser.add_argument("--rounds", type=int, default=2, help="eager and compiled children, alternating")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compile_cpu.json"))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--donated-buffer", action="store_true", help="compiled children: "
                        "torch._functorch.config.donated_buffer = True (torch's default)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child.startswith("compiled"), args.child.endswith("figures"), args.batch,
                               args.steps, args.warmup, args.threads, args.donated_buffer)))
        return {}
    rows = []
    for _ in range(args.rounds):
        for kind in args.variants:
            cmd = [sys.executable, __file__, "--child", kind, "--batch", str(args.batch), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--threads", str(args.threads),
                   *(["--donated-buffer"] if args.donated_buffer else [])]
            load_before = os.getloadavg()[0]
            row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            rows.append({**row, "variant": kind, "loadavg_1min_before": load_before})
            timed = f"{row['s_per_step']:.2f} s/step" if row["s_per_step"] else "no timed step"
            print(f"{kind:>16}: {timed} (warm-up {', '.join(f'{t:.1f}' for t in row['warmup_s'])} s; load "
                  f"{load_before:.2f} → {row['loadavg_1min_at_end']:.2f}){' ' + row['error'] if row['error'] else ''}",
                  flush=True)
    summary = {}
    for kind in args.variants:
        timed = [r["s_per_step"] for r in rows if r["variant"] == kind and r["s_per_step"] is not None]
        summary[kind] = {"s_per_step": statistics.median(timed) if timed else None,
                         "errors": [r["error"] for r in rows if r["variant"] == kind and r["error"]]}
    result = {"benchmark": "compile_cpu", "setting": "quickstart EMORL alone, 32 px, K=6", "batch": args.batch,
              "threads": args.threads, "donated_buffer": args.donated_buffer, "torch": torch_version(),
              "date": time.strftime("%Y-%m-%d"), "summary": summary, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=2))
    return result


if __name__ == "__main__":
    main()
