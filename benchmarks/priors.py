"""Every slot prior on one posterior cache, in one table (the sharp-stacks question).

Each model is a LOM on the same trained decoder and alignment: the source LOM with the
prior it was trained with, and models written by ``lom-pyro fit-prior`` from it. For each:
S-Acc of ``--samples`` samples by both judges at τ = 0.6 / 0.8 / 1.0 (samples drawn through
s ~ p(s)), the ceiling (the held-out scenes' own decoded posterior means: no prior on this
decoder can do better), novelty (median distance of a τ = 0.8 sample's slots to the nearest
fitted scene, against a held-out scene's), the held-out log-density of the aligned slots
where the prior has one, and the fit's time on the machine that fitted it. A diffusion prior
is judged with its own Langevin corrector setting, or once per ``--corrector-snr`` value.
Prints a table and writes ``<out>/priors.json``.

    python benchmarks/priors.py stacks32_ar benchmarks/results/priors/stacks32_mdn.pt \\
        lom_pyro/pretrained/stacks32_diffusion.pt --cache /tmp/cache16k.pt --out benchmarks/results/priors

The cache is the one ``lom-pyro fit-prior`` makes (same seed): give the same ``--scenes``
and ``--held-out`` as the fits, so the held-out scenes were fitted by none of them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lom_pyro import LOM, registry
from lom_pyro.slot_priors.diffusion import check_corrector_snr
from lom_pyro.training.fit_prior import CACHE_SEED, TEMPERATURES, prior_report
from lom_pyro.training.posterior_cache import posterior_cache


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="the source LOM first (a shipped name or file), then fitted files")
    parser.add_argument("--scenes", type=int, default=16_384)
    parser.add_argument("--held-out", type=int, default=1024)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--cache", help="the posterior cache file (read if it matches, else written)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--corrector-snr", type=float, nargs="+", metavar="R",
                        help="judge each diffusion prior once per R, its Langevin corrector's signal-to-noise "
                             "ratio (0: the plain reverse chain), instead of once at its own")
    parser.add_argument("--out", default="benchmarks/results/priors")
    args = parser.parse_args(argv)
    if not 0 < args.held_out < args.scenes or args.samples < 1:
        parser.error("need 0 < --held-out < --scenes and --samples >= 1")
    try:
        for r in args.corrector_snr or ():
            check_corrector_snr(r)
    except ValueError as err:
        parser.error(f"--corrector-snr: {err}")
    torch.set_num_threads(args.threads)
    source = LOM.from_pretrained(args.models[0])
    config = source.pretrained_info["config"]
    if config.get("dataset") != "stacks":
        parser.error(f"{args.models[0]}: the structure judges need a model of procedural 'stacks'")
    cache = posterior_cache(source, "stacks", int(config["image_size"]), args.scenes, CACHE_SEED,
                            source=args.models[0], path=args.cache, progress=True)
    fit_index = torch.arange(args.scenes - args.held_out)
    held_index = torch.arange(args.scenes - args.held_out, args.scenes)
    rows = []
    for name in args.models:
        lom = source if name == args.models[0] else LOM.from_pretrained(name)
        fit = lom.pretrained_info.get("slot_prior_fit")
        if fit is not None and (fit["scenes"], fit["held_out"]) != (args.scenes, args.held_out):
            parser.error(f"{name} was fitted on {fit['scenes']} scenes holding out {fit['held_out']}; give those")
        own = getattr(lom.slot_prior, "corrector_snr", None)
        for snr in args.corrector_snr if args.corrector_snr and own is not None else [own]:
            if snr is not None:
                lom.slot_prior.corrector_snr = snr
            started = time.perf_counter()
            report = prior_report(lom, cache, fit_index, held_index, args.samples)
            rows.append({"model": name, "prior": registry.name_of("slot_prior", lom.slot_prior),
                         "options": fit["options"] if fit else {}, "corrector_snr": snr,
                         "fit_seconds": fit["fit"]["seconds"] if fit else None,
                         "fit_steps": fit["fit"]["steps_done"] if fit else None, **report,
                         "seconds": round(time.perf_counter() - started, 1)})
    header = "".join(f"{f'τ {t:g} touch/sharp':>20}" for t in TEMPERATURES)
    print(f"{'model':<40}{'prior':<15}{header}{'novelty':>9}{'log p':>9}{'fit s':>8}")
    for row in rows:
        cells = "".join(f"{row[f'tau_{t:g}']['touching']:>12.3f}/{row[f'tau_{t:g}']['sharp']:.3f}"
                        for t in TEMPERATURES)
        logp, seconds = row["held_out_log_density_per_scene"], row["fit_seconds"]
        named = Path(row["model"]).stem + ("" if row["corrector_snr"] is None else f" r={row['corrector_snr']:g}")
        print(f"{named:<40}{row['prior']:<15}{cells}{row['novelty']['ratio']:>9.3f}"
              f"{'—' if logp is None else f'{logp:.0f}':>9}{'—' if seconds is None else seconds:>8}")
    ceiling = rows[0]["ceiling"]
    print(f"ceiling (held-out posterior means decoded): touching {ceiling['touching']:.3f}, "
          f"sharp {ceiling['sharp']:.3f}")
    result = {"benchmark": "priors", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
              "threads": args.threads, "scenes": args.scenes, "held_out": args.held_out, "cache_seed": CACHE_SEED,
              "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "priors.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
