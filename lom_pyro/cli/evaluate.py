"""``lom-pyro evaluate`` and ``lom-pyro visualize``: a trained run's checkpoint → metrics
(``eval.json``, ``eval.md``) and figures (:mod:`lom_pyro.evaluation` computes them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from lom_pyro.cli import refuse
from lom_pyro.evaluation.assess import evaluate_module, s_acc_of_samples, sample_images
from lom_pyro.evaluation.report import dci_of_slots, fid_of_samples, markdown_table, visualize
from lom_pyro.models.lom import LOM

__all__ = ["configure_evaluate", "run_evaluate", "configure_visualize", "run_visualize", "configure_sample",
           "run_sample"]


def _evaluation_config(config, data: str | None, scenes: int | None):
    """The run's config with the dataset the user asked for (default the run's own) and
    the number of held-out scenes (default the run's own)."""
    import dataclasses

    return dataclasses.replace(config, dataset=data or config.dataset, eval_scenes=scenes or config.eval_scenes)


def configure_evaluate(parser) -> None:
    parser.add_argument("checkpoint", help="checkpoint.pt written by lom-pyro train, or its run folder")
    parser.add_argument("--data", help="HDF5 file or procedural name (default: the run's dataset)")
    parser.add_argument("--n", type=int, help="held-out scenes for ARI, ELBO and DCI (default: the run's eval_scenes, "
                        "so the numbers match its metrics.json)")
    parser.add_argument("--temperature", type=float, default=0.8, help="temperature of the prior samples "
                        "(S-Acc, FID/KID)")
    parser.add_argument("--iwae-k", type=int, default=16, help="samples of the importance-weighted bound")
    parser.add_argument("--iwae-n", type=int, default=32, help="scenes for the importance-weighted bound")
    parser.add_argument("--fid-n", type=int, default=10_000, help="real and generated images for FID/KID")
    parser.add_argument("--inception", help="InceptionV3 weights file (else $LOM_PYRO_INCEPTION, hub cache, ...)")
    parser.add_argument("--s-acc-samples", type=int, default=500, help="samples judged for S-Acc by the touching "
                        "and sharp judges (and the masks judge beside them) on procedural stacks (the first 100 "
                        "also go on s_acc_sheet.png)")
    parser.add_argument("--s-acc-export", metavar="DIR", help="write 100 samples as a labelling sheet here")
    parser.add_argument("--s-acc-labels", metavar="CSV", help="read a filled-in labelling sheet back")
    parser.add_argument("--out", help="folder for eval.json and eval.md (default: the checkpoint's)")
    parser.add_argument("--device", default="cpu", help="torch device to evaluate on: cpu, cuda or cuda:N")


def _at_least_one(args, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def _check_inception(path: str | None) -> None:
    """Load ``--inception`` once up front: a wrong file is refused before minutes of work."""
    from lom_pyro.checkpoint import load_error
    from lom_pyro.metrics.inception import load_inception

    if path is None:
        return
    try:
        load_inception(path)
    except FileNotFoundError as err:
        raise ValueError(f"--inception {path}: {str(err).splitlines()[0]}") from None
    except Exception as err:   # torch raises several types for a file that is not InceptionV3 weights
        raise ValueError(f"--inception {path}: cannot be loaded as InceptionV3 weights ({load_error(err)})") from None


def _checked(args, command: str):
    """Every option checked before any work: the module, its config for the data asked for,
    and the checkpoint file it came from (a run folder stands for its checkpoint.pt)."""
    from lom_pyro.checkpoint import checkpoint_file
    from lom_pyro.training.data import check_data
    from lom_pyro.training.device import check_device

    check_device(args.device)
    if getattr(args, "checkpoint", None):
        args.checkpoint = str(checkpoint_file(args.checkpoint))
    module, config = _load_for_figures(args)
    config = _evaluation_config(config, args.data, args.n if command == "evaluate" else args.database)
    try:
        check_data(config)
    except ValueError as err:
        raise ValueError(f"--data {args.data}: {err}" if args.data else str(err)) from None
    return module, config


def run_evaluate(args) -> int:
    import json

    from lom_pyro.checkpoint import CheckpointError
    from lom_pyro.infer.iwae import iwae_bound
    from lom_pyro.models import programs
    from lom_pyro.training import held_out

    try:
        _at_least_one(args, "s_acc_samples", "n", "iwae_k", "iwae_n", "fid_n")
        module, config = _checked(args, "evaluate")
        _check_inception(args.inception)
    except (CheckpointError, ValueError) as err:
        return refuse("evaluate", err)
    out = Path(args.out or Path(args.checkpoint).parent)
    out.mkdir(parents=True, exist_ok=True)
    evaluation = held_out(config)
    from lom_pyro.infer import LOMELBO

    metrics = evaluate_module(module, evaluation, LOMELBO(), config.dataset, args.temperature, progress=True)
    if isinstance(module, LOM):
        print(f"importance-weighted bound, k={args.iwae_k} on {args.iwae_n} scenes ...", file=sys.stderr)
        model, guide = programs(module)
        x = evaluation["images"][: args.iwae_n].to(args.device)
        metrics[f"iwae_k{args.iwae_k}_per_image"] = float(iwae_bound(model, guide, x, args.iwae_k).mean())
        metrics["iwae_k1_per_image"] = float(iwae_bound(model, guide, x, 1).mean())
        if "factors" in evaluation:
            try:
                metrics["dci"] = dci_of_slots(module, evaluation)
            except ImportError as err:
                metrics["dci"] = {"skipped": str(err)}
    print(f"FID/KID on {args.fid_n} images, if InceptionV3 weights are found ...", file=sys.stderr)
    metrics["fid"] = fid_of_samples(module, evaluation, args.fid_n, args.temperature, args.inception)
    print(f"S-Acc of {args.s_acc_samples} samples ...", file=sys.stderr)
    metrics["s_acc"] = s_acc_of_samples(module, args.s_acc_samples, args.temperature, out / "s_acc_sheet.png",
                                        judged=config.dataset == "stacks")
    if args.s_acc_export:
        from lom_pyro.metrics.labels import write_labelling_sheet

        samples, _ = sample_images(module, 100, args.temperature)
        metrics["s_acc_sheet"] = str(write_labelling_sheet(samples.cpu(), args.s_acc_export))
    if args.s_acc_labels:
        from lom_pyro.metrics.labels import read_labelling_sheet

        metrics["s_acc_labelled"] = read_labelling_sheet(args.s_acc_labels)
    (out / "eval.json").write_text(json.dumps(metrics, indent=2, default=str))
    (out / "eval.md").write_text(markdown_table(metrics))
    print(markdown_table(metrics))
    return 0


# -- lom-pyro visualize -----------------------------------------------------------------------
def configure_visualize(parser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="checkpoint.pt written by lom-pyro train, or its run folder")
    parser.add_argument("--pretrained", metavar="NAME", help="a shipped pretrained model (e.g. stacks32) or a file "
                        "written by lom-pyro export, instead of a checkpoint")
    parser.add_argument("--data", help="HDF5 file or procedural name (default: the run's dataset)")
    parser.add_argument("--n", type=int, default=8, help="images per row")
    parser.add_argument("--database", type=int, default=512, help="scenes in the retrieval database")
    parser.add_argument("--pca", type=int, default=6, help="PCA dimension of the retrieval scene space")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples drawn for the figures")
    parser.add_argument("--out", help="folder for the figures (default: <checkpoint folder>/visualize)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N")


def _load_for_figures(args):
    """The module and its training config, from ``--pretrained`` or a checkpoint."""
    from lom_pyro.training.build import load_model

    source = getattr(args, "pretrained", None) or args.checkpoint
    if not source:
        raise ValueError("give a checkpoint or --pretrained NAME")
    trained = load_model(source, args.device)
    return trained.module, trained.config


def run_visualize(args) -> int:
    from lom_pyro.checkpoint import CheckpointError
    from lom_pyro.training import held_out

    try:
        _at_least_one(args, "n", "pca")
        if args.database < 2:
            raise ValueError(f"--database must be >= 2 (a query and at least one scene to retrieve), "
                             f"got {args.database}")
        module, config = _checked(args, "visualize")
        if not isinstance(module, LOM):
            raise ValueError("the checkpoint holds an orderless model alone; these figures need a LOM")
        if not (args.out or args.checkpoint):
            raise ValueError("give --out DIR for the figures of a pretrained model")
    except (CheckpointError, ValueError) as err:
        return refuse(args.command, err)
    torch.manual_seed(args.seed)
    out = Path(args.out or Path(args.checkpoint).parent / "visualize")
    for path in visualize(module, held_out(config), out, n=args.n, pca=args.pca):
        print(f"wrote {path}")
    return 0


#: ``lom-pyro sample`` is ``visualize`` under the name a user of a pretrained model looks for
configure_sample, run_sample = configure_visualize, run_visualize
