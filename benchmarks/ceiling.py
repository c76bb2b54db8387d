"""What sets the ceiling any slot prior meets: the LOM decoder on its aligned posterior means
and the orderless model's own reconstructions, judged by the number of blocks in the scene,
and the orderless model's reconstructions with more slots than it was trained with.

The ceiling of a LOM (its decoder on the aligned posterior means of fresh scenes) bounds what
any prior on it can sample. If the scenes it smears are the ones the orderless model's own
reconstructions smear, the limit is in the orderless slots; if more slots at test time sharpen
the scenes with as many objects as slots, the model is short of a spare slot. Procedural
``stacks`` scenes only (the block count comes from the generator). Prints a table and writes
``<out>/<model>.json``. The model may also be an orderless model trained alone (a checkpoint
of ``lom-pyro train --no-lom``, or its run folder): then only its reconstructions are judged,
and the file is named after its run folder and step.

    python benchmarks/ceiling.py stacks32_slot_diffusion_wide --scenes 1000 --extra-slots 0 1 2 3
    python benchmarks/ceiling.py benchmarks/results/long/emorl_k8 --extra-slots 0
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from lom_pyro import LOM
from lom_pyro.data.procedural import generate
from lom_pyro.evaluation.assess import evaluation_mode, unit_frame
from lom_pyro.metrics.structure import JUDGES
from lom_pyro.models.pretrained import available
from lom_pyro.training.build import load_model

CHUNK = 125


@torch.no_grad()
def _judged(model: torch.nn.Module, images: torch.Tensor) -> dict[str, np.ndarray]:
    """Each judge's flags ``(N,)`` for images in the model's observation frame."""
    unit = unit_frame(model, images)
    return {name: np.asarray(judge(unit, (0.0, 1.0))) for name, judge in JUDGES.items()}


def _by_blocks(flags: dict[str, np.ndarray], blocks: np.ndarray) -> dict[str, dict[str, float]]:
    """Each judge's pass rate over all scenes and over the scenes of each block count."""
    return {name: {"all": round(float(f.mean()), 3),
                   **{f"{b} blocks": round(float(f[blocks == b].mean()), 3) for b in np.unique(blocks)}}
            for name, f in flags.items()}


@torch.no_grad()
def measure(model: str, scenes: int, seed: int, extra_slots: list[int]) -> dict:
    trained_model = load_model(model)
    module = trained_model.module
    data = generate("stacks", scenes, trained_model.config.image_size, seed=seed)
    x = data.model_images()
    visible = data.factors[..., data.factor_names.index("visible")]
    blocks = visible[:, len(data.background_channels):].sum(1).astype(int)
    chunks = range(0, scenes, CHUNK)
    rows = {}
    if isinstance(module, LOM):
        with evaluation_mode(module, seed=1234):
            ceiling = torch.cat([module.render(module.encode(x[i:i + CHUNK]).slots_loc).images for i in chunks])
        rows["ceiling (LOM decoder on aligned posterior means)"] = _by_blocks(_judged(module, ceiling), blocks)
    orderless, trained = module.orderless, module.orderless.num_slots
    try:
        for extra in extra_slots:
            orderless.num_slots = trained + extra          # the slots are drawn i.i.d.: any K runs
            with evaluation_mode(module, seed=1234):
                rec = torch.cat([orderless.reconstruct(x[i:i + CHUNK])["image"] for i in chunks])
            rows[f"orderless reconstructions, K = {trained + extra}"] = _by_blocks(
                _judged(module, module.observation(rec)), blocks)
    finally:
        orderless.num_slots = trained
    counts = {f"{b} blocks": int((blocks == b).sum()) for b in np.unique(blocks)}
    return {"model": model, "step": int(trained_model.info["step"]), "scenes": scenes, "seed": seed,
            "trained_slots": trained, "counts": counts, "rows": rows}


def result_name(model: str, step: int) -> str:
    """The result file's name: a shipped model's name, else its run folder's and the step."""
    if model in available():
        return model
    path = Path(model)
    folder = path if path.is_dir() else path.parent
    return f"{folder.name}_step{step}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="stacks32_slot_diffusion_wide",
                        help="a trained model on procedural stacks whose orderless model can reconstruct: a "
                             "pretrained LOM (name or file), a training checkpoint or run folder, a LOM's or "
                             "an orderless model's alone")
    parser.add_argument("--scenes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=777, help="the procedural scenes' seed")
    parser.add_argument("--extra-slots", type=int, nargs="+", default=[0, 1, 2, 3],
                        help="the orderless model's reconstructions with this many slots more than trained")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/ceiling")
    args = parser.parse_args(argv)
    if args.scenes < 1 or min(args.extra_slots) < 0:
        parser.error(f"--scenes must be >= 1 and --extra-slots >= 0, got {args.scenes} and {args.extra_slots}")
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    result = measure(args.model, args.scenes, args.seed, args.extra_slots)
    result.update({"benchmark": "ceiling", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                   "threads": args.threads, "seconds": round(time.monotonic() - started, 1)})
    columns = ["all", *result["counts"]]
    print(f"{result['model']}: {args.scenes} scenes ({', '.join(f'{v} of {k}' for k, v in result['counts'].items())})")
    print(f"{'decoded':<52}{'judge':<10}" + "".join(f"{c:>10}" for c in columns))
    for row, judges in result["rows"].items():
        for judge, rates in judges.items():
            print(f"{row:<52}{judge:<10}" + "".join(f"{rates[c]:>10.3f}" for c in columns))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result_name(args.model, result['step'])}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
