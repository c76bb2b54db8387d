"""``lom-pyro fit-prior``: fit a slot prior to a trained LOM's aggregate posterior and write a
new pretrained file (the job; the pieces are in :mod:`lom_pyro.training.fit_prior`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lom_pyro.cli import refuse
from lom_pyro.training.fit_prior import CACHE_SEED, check_ema, fit_slot_prior, load_source, prior_report

__all__ = ["configure", "fit", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    from lom_pyro import registry

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("source", help="a trained LOM: a shipped name (stacks32_ar), a pretrained file or a "
                        "checkpoint.pt of lom-pyro train")
    parser.add_argument("--prior", required=True, choices=registry.fitted_slot_priors(),
                        help="the slot prior to fit (lom_pyro.registry's fitted slot priors)")
    parser.add_argument("--out", required=True, help="the pretrained file to write: a .pt path, or a name to ship "
                        "inside the package")
    parser.add_argument("--options", type=json.loads, default={}, metavar="JSON",
                        help='the prior\'s constructor options, e.g. \'{"width": 512, "depth": 4}\'')
    parser.add_argument("--scenes", type=int, default=16_384, help="procedural scenes to cache (fitted + held out)")
    parser.add_argument("--held-out", type=int, default=1024, help="cached scenes kept out of the fit for the report")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0, help="seeds the prior's initial weights and the fit")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: torch's)")
    parser.add_argument("--cache", metavar="FILE", help="read the posterior cache from FILE if it holds the same "
                        "scenes, else write it there")
    parser.add_argument("--state", metavar="FILE", help="the fit's resumable state (default: OUT with .state.pt)")
    parser.add_argument("--report-samples", type=int, default=500, help="samples per temperature in the report")
    parser.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                        help="end with a moving average of the prior's weights with this decay (0: the last weights)")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop (resumably) after this long, counted "
                        "from this command's start (a resumed fit gets the whole span again)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def _check(args: argparse.Namespace) -> Path:
    from lom_pyro.models.pretrained import PRETRAINED_DIR

    for name in ("scenes", "held_out", "steps", "batch_size", "report_samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.held_out >= args.scenes:
        raise ValueError(f"--held-out {args.held_out} must be smaller than --scenes {args.scenes}")
    check_ema(args.ema)
    if not isinstance(args.options, dict):
        raise ValueError(f"--options must be a JSON object, got {args.options!r}")
    out = Path(args.out) if Path(args.out).suffix == ".pt" else PRETRAINED_DIR / f"{args.out}.pt"
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out} exists; give --overwrite to replace it")
    return out


def fit(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The whole job: load, cache, fit, report, write. :return: the file and its report."""
    from lom_pyro.models.assemble import Architecture
    from lom_pyro.models.pretrained import save_pretrained
    from lom_pyro import registry
    from lom_pyro.slot_priors import trained_prior
    from lom_pyro.training.posterior_cache import posterior_cache

    out = _check(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    lom, arch, info = load_source(args.source, args.device)
    config = info.get("config", {})
    if str(config.get("dataset", "")) not in ("stacks", "room", "sprites"):
        raise ValueError(f"{args.source}: was trained on {config.get('dataset')!r}; fit-prior caches procedural "
                         "scenes of the dataset the LOM was trained on (stacks, room or sprites)")
    reference = trained_prior(lom.slot_prior)   # refitting a fitted model starts from its reference
    torch.manual_seed(args.seed)   # the prior is built before the cache, so its options are checked first
    prior = registry.build("slot_prior", args.prior, lom.num_slots, lom.slot_dim, lom.scene_dim,
                           reference=reference, **args.options).to(args.device)
    started = time.monotonic()
    cache = posterior_cache(lom, config["dataset"], int(config["image_size"]), args.scenes, CACHE_SEED,
                            source=str(args.source), path=args.cache, progress=True)
    cache_seconds = time.monotonic() - started
    fit_index, held_index = torch.arange(args.scenes - args.held_out), torch.arange(args.scenes - args.held_out,
                                                                                     args.scenes)
    prior.standardise_like(cache["slots"][fit_index].to(args.device))
    device_cache = {k: v.to(args.device) for k, v in cache.items() if isinstance(v, Tensor)}
    state_path = Path(args.state) if args.state else out.with_name(out.stem + ".state.pt")
    if out.exists() and state_path.exists():   # --overwrite of a finished fit: fit anew
        state_path.unlink()
    key = {"source": str(args.source), "prior": args.prior, "options": args.options, "scenes": args.scenes,
           "held_out": args.held_out, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
           **({"ema": args.ema} if args.ema else {})}   # absent when off, so fits stored before it still resume
    torch.manual_seed(args.seed + 1)   # the fit draws the same batches whether the cache was read or made
    fitting = fit_slot_prior(prior, device_cache, fit_index.to(args.device), held_index.to(args.device),
                             steps=args.steps, batch_size=args.batch_size, lr=args.lr, state_path=state_path,
                             state_key=key, max_minutes=args.max_minutes, ema=args.ema)
    if fitting["steps_done"] < args.steps:
        return state_path, {"unfinished": fitting}
    lom.use_slot_prior(prior)
    # the fitted prior's weights are stored in float16 (a 768-wide diffusion prior is 22 MB in
    # float32, over what ships); rounded here, so that the report is of the file
    half = frozenset(f"slot_prior.{n}" for n, _ in prior.named_parameters() if not n.startswith("reference."))
    with torch.no_grad():
        for name, value in prior.named_parameters():
            if f"slot_prior.{name}" in half:
                value.copy_(value.half().float())
    print(f"fitted in {fitting['seconds']:.0f} s; judging {args.report_samples} samples per temperature",
          file=sys.stderr)
    report = prior_report(lom, device_cache, fit_index.to(args.device), held_index.to(args.device),
                          args.report_samples)
    record = {"prior": args.prior, "options": args.options, "source": str(args.source), "scenes": args.scenes,
              "held_out": args.held_out, "cache_seed": CACHE_SEED, "cache_seconds": round(cache_seconds, 1),
              "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "ema": args.ema,
              "alignment": "held fixed: the source LOM's own prior (the fitted prior's reference)",
              "fit": fitting, "report": report}
    architecture = Architecture(**{**arch, "fitted_slot_prior": {"name": args.prior, "options": args.options}})
    info = {**info, "slot_prior_fit": record}
    path = save_pretrained(out, lom, architecture, info, half=half)
    return path, record


def run(args: argparse.Namespace) -> int:
    from lom_pyro.checkpoint import CheckpointError

    try:
        path, record = fit(args)
    except (CheckpointError, ValueError, OSError) as err:
        return refuse("fit-prior", err)
    if "unfinished" in record:
        print(f"the fit is unfinished ({record['unfinished']['steps_done']}/{args.steps} steps); its state is in "
              f"{path}: run the same command again to go on")
        return 0
    print(json.dumps(record["report"], indent=1))
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return 0
