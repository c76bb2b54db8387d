"""Steps per second of ``lom-pyro train`` in one process vs two gloo processes (torchrun).

The quickstart config (32 px, K = 6, batch 16 = the global batch), EMORL alone or
LOM-EMORL, on the CPU: one process with ``--threads 2`` against ``torchrun
--nproc-per-node 2`` with one thread each (the same two cores, each rank taking 8 scenes
of every batch). Runs alternate (1, 2, 1, 2, ...); the rate of each is measured from its
``log.jsonl`` between the first and last logged step, so start-up and the final
evaluation are left out. Medians and their ratio are printed and written to
``benchmarks/results/scaling.json``. On 2 cores this says what DDP costs, not what it
gains: the gain needs a core (or GPU) per rank.

    python benchmarks/scaling.py [--pairs 3] [--steps 60] [--lom]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rate(log: Path) -> float:
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    rows = [r for r in rows if r["kind"] == "train" and "seconds" in r]
    first, last = rows[0], rows[-1]
    return (last["step"] - first["step"]) / (last["seconds"] - first["seconds"])


def one_run(processes: int, steps: int, lom: bool, folder: Path) -> float:
    out = folder / f"run_{processes}_{time.time_ns()}"
    args = ["--preset", "quickstart", "--steps", str(steps), "--batch-size", "16", "--eval-scenes", "8",
            "--figure-every", "100000", "--checkpoint-every", "0", "--threads", str(2 // processes),
            "--out", str(out), *([] if lom else ["--no-lom"])]
    if processes == 1:
        cmd = [sys.executable, "-m", "lom_pyro.cli", "train", *args]
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes), "--master-addr",
               "127.0.0.1", "--master-port", str(port), "-m", "lom_pyro.cli", "train", *args]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": str(2 // processes)})
    return rate(out / "log.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lom", action="store_true", help="LOM-EMORL (default: EMORL alone)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scaling.json"))
    args = parser.parse_args()
    rates: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            for processes in (1, 2):
                rates[processes].append(one_run(processes, args.steps, args.lom, Path(tmp)))
                print(f"pair {pair + 1}: {processes} process(es): {rates[processes][-1]:.3f} steps/s", flush=True)
    medians = {p: statistics.median(r) for p, r in rates.items()}
    result = {"benchmark": "scaling", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
              "cpus": os.cpu_count(), "model": "LOM-EMORL" if args.lom else "EMORL alone", "steps": args.steps,
              "global_batch": 16, "steps_per_s": rates, "median_steps_per_s": medians,
              "ratio_2_over_1": medians[2] / medians[1]}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"{'processes':>10}{'median steps/s':>16}")
    for p, m in medians.items():
        print(f"{p:>10}{m:>16.3f}")
    print(f"ratio 2/1: {result['ratio_2_over_1']:.3f}  (wrote {args.out})")


if __name__ == "__main__":
    main()
