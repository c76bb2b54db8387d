"""``lom-pyro train``: one flag per :class:`TrainConfig` field (with its help text), plus
``--config FILE.toml``, ``--resume DIR`` and ``--overwrite``. Precedence: preset, then the
file, then single flags."""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from typing import Any

from lom_pyro.cli import refuse
from lom_pyro import registry
from lom_pyro.training.config import (AMP_MODES, HELP, LIKELIHOOD_CHOICES, LOM_DECODER_INITS, LOM_GECO_FORMS,
                                      PRESETS, RENAMED, SECTIONS, TrainConfig, config_from_preset, read_config_file)

__all__ = ["configure", "run"]

# the options with a fixed set of values
_CHOICES = {"orderless": registry.names("orderless"), "scene_prior": registry.names("scene_prior"),
            "lom_geco": LOM_GECO_FORMS, "lom_decoder_init": LOM_DECODER_INITS, "amp": AMP_MODES,
            "likelihood": tuple(LIKELIHOOD_CHOICES)}
_RUN_FLAGS = ("command", "preset", "config", "resume", "overwrite", "debug")  # not config fields


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({err.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _flag_type(hint: Any):
    """The argparse type of a field's annotation (``X | None`` → ``X``)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    base = hint
    if typing.get_origin(base) is dict:
        return _json_object
    return base


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="named setting the other options start from (default: quickstart)")
    parser.add_argument("--config", metavar="FILE.toml", help="options from a TOML file (keys as the flags, "
                        "with underscores, at the top or in their section's table); single flags override it")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its latest checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace the outputs of a previous run in --out")
    hints = typing.get_type_hints(TrainConfig)
    # flags default to None (so that they override the preset and the file only when given);
    # --help shows the value a run takes without them, the quickstart preset's
    quickstart = config_from_preset("quickstart")
    for section, names in SECTIONS.items():   # --help lists the flags by section
        group = parser.add_argument_group(f"{section} ([{section}] in a --config file)")
        for name in names:
            if name == "preset":
                continue
            flags = ["--" + key.replace("_", "-") for key in (name, *(old for old, new in RENAMED.items()
                                                                      if new == name))]   # old names still work
            kind = _flag_type(hints[name])
            value = getattr(quickstart, name)
            shown = json.dumps(value) if isinstance(value, dict) else value
            help_text = f"{HELP[name]} (quickstart: {shown})".replace("%", "%%")
            if kind is bool:
                group.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                   help=help_text)
            else:
                group.add_argument(*flags, dest=name, type=kind, default=None, choices=_CHOICES.get(name),
                                   help=help_text)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in _RUN_FLAGS and v is not None}


def run(args: argparse.Namespace) -> int:
    from lom_pyro.checkpoint import CheckpointError
    from lom_pyro.training.loop import resume, train

    try:
        if args.resume:
            if args.config or args.overwrite:
                raise ValueError("--resume continues a run as it was configured: it takes no --config or --overwrite")
            result = resume(args.resume, **_flags(args))
        else:
            from_file = read_config_file(args.config) if args.config else {}
            preset = args.preset or from_file.get("preset", "quickstart")
            from_file.pop("preset", None)
            config = config_from_preset(preset, **{**from_file, **_flags(args)})
            result = train(config, overwrite=args.overwrite)
    except (ValueError, CheckpointError, OSError) as err:
        if getattr(args, "debug", False):
            raise
        return refuse("train", err)
    if "rank" in result:   # a rank other than the first of a distributed run: rank 0 reports
        return 0
    if "nothing_to_do" in result:
        print(f"lom-pyro train: {result['nothing_to_do']}", file=sys.stderr)
        return 0
    print(json.dumps(result, indent=2))
    if "stopped" in result:
        print(f"lom-pyro train: {result['stopped']}", file=sys.stderr)
        return 3
    print(f"wrote {args.resume or config.out}/metrics.json, checkpoint.pt and figures/")
    return 0
