"""Structure accuracy as the paper measures it (§4), by both judges, for shipped models and runs.

For each model: ``--samples`` samples at τ = 0.8 (the paper's), S-Acc by the ``touching``
judge (the paper's criterion, blur allowed) and by the ``sharp`` judge, each with a 95 %
Wilson interval (beside them the ``masks`` judge, which also reads the decoded slot masks),
and the first 100 samples on a numbered sheet a reader can count by hand (``<out>/<name>.png``,
the judges' verdicts beside it in ``<name>.json``). Prints a table
and writes ``<out>/s_acc.json``.

    python benchmarks/s_acc.py stacks32_ar stacks32 benchmarks/results/long/emorl/checkpoint.pt \\
        --out benchmarks/results/s_acc

``--seed K`` draws from another seed than the recorded numbers' (their sampling error);
``--corrector-snr R`` draws diffusion slot priors with a Langevin corrector of ratio R.

``--figure FILE.png`` also writes one row of ``--figure-samples`` samples per model (drawn at
the same τ from the same seed), each row named with its model and both judges' S-Acc.

A model is a shipped pretrained name, a file written by ``lom-pyro export``, or a training
checkpoint (a LOM, or an orderless model alone, which samples its independent slot prior).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lom_pyro.evaluation.assess import EVAL_SEED, evaluation_mode, s_acc_of_samples, sample_images
from lom_pyro.slot_priors.diffusion import check_corrector_snr
from lom_pyro.viz import panel
from lom_pyro.training.build import load_model

PAPER = {"LOM-EMORL": 0.76, "EMORL": 0.0, "GENv2-G": 0.42, "LOM-GENv2-G": 0.82}  # §4, ShapeStacks, by hand


def load(name: str) -> tuple[torch.nn.Module, str]:
    """The model and a short name for it (a checkpoint is named by its run folder)."""
    trained = load_model(name)
    if trained.config.dataset != "stacks":
        raise ValueError(f"{name}: the structure judges need a model of procedural 'stacks'")
    path = Path(name)
    return trained.module, path.parent.name if path.name == "checkpoint.pt" else path.stem


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="pretrained names, exported files or checkpoint.pt files")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=EVAL_SEED,
                        help=f"draw the samples from this seed (default {EVAL_SEED}, the recorded numbers' own)")
    parser.add_argument("--corrector-snr", type=float, metavar="R",
                        help="draw diffusion slot priors with a Langevin corrector step of ratio R before each "
                             "reverse step (default: each prior's own; 0 is the plain chain)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/s_acc")
    parser.add_argument("--figure", metavar="FILE.png", help="a figure with a row of samples per model")
    parser.add_argument("--figure-samples", type=int, default=12)
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples must be >= 1, got {args.samples}")
    if not 0 <= args.temperature <= 10:
        parser.error(f"--temperature must lie in [0, 10], got {args.temperature}")
    if args.corrector_snr is not None:
        try:
            check_corrector_snr(args.corrector_snr)
        except ValueError as err:
            parser.error(f"--corrector-snr: {err}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows, figure = [], {}
    for name in args.models:
        module, short = load(name)
        prior = getattr(module, "slot_prior", None)
        if args.corrector_snr is not None and hasattr(prior, "corrector_snr"):
            prior.corrector_snr = args.corrector_snr
        started = time.perf_counter()
        result = s_acc_of_samples(module, args.samples, args.temperature, out / f"{short}.png", seed=args.seed)
        rows.append({"model": name, "name": short, **result, "seconds": round(time.perf_counter() - started, 1)})
        if args.figure:
            with evaluation_mode(module, seed=args.seed):
                images, _ = sample_images(module, args.figure_samples, args.temperature)
            label = f"{short}: touching {result['touching']['s_acc']:.2f}, sharp {result['sharp']['s_acc']:.2f}"
            figure[label] = images.cpu()
    if args.figure:
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        panel(figure, args.figure, scale=2)
    print(f"{'model':<22}{'touching':>24}{'sharp':>24}{'masks':>24}   (S-Acc of {args.samples} samples at τ = "
          f"{args.temperature:g}, 95 % interval; masks also reads the decoded slot masks)")
    for row in rows:
        cells = [f"{row[j]['s_acc']:.3f} [{row[j]['ci95'][0]:.3f}, {row[j]['ci95'][1]:.3f}]"
                 for j in ("touching", "sharp", "masks")]
        print(f"{row['name']:<22}{cells[0]:>24}{cells[1]:>24}{cells[2]:>24}")
    print("paper (§4, ShapeStacks, 100 samples counted by hand): "
          + ", ".join(f"{k} {v:.0%}" for k, v in PAPER.items()))
    result = {"benchmark": "s_acc", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
              "threads": args.threads, "seed": args.seed, "corrector_snr": args.corrector_snr, "paper": PAPER,
              "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "s_acc.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
