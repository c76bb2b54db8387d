"""``lom-pyro convert``: original dataset formats (or procedural scenes) to lom_pyro HDF5.

Examples::

    lom-pyro convert objects-room objects_room_train.tfrecords objects_room.h5 --test-size 10000
    lom-pyro convert objects-room objects_room_test_six_objects.tfrecords six.h5 --variant six_objects
    lom-pyro convert clevr6 clevr_with_masks_train.tfrecords clevr6_96.h5 --size 96
    lom-pyro convert shapestacks /data/shapestacks shapestacks.h5 --split default
    lom-pyro convert procedural stacks stacks.h5 --n-train 50000 --n-test 1000

Bad input prints one line on stderr and exits with status 2; DST is untouched.
"""

from __future__ import annotations

import argparse
import sys

from lom_pyro.cli import INTERRUPTED, refuse
from lom_pyro.data.errors import DataError

__all__ = ["configure", "run"]

_KINDS = ("objects-room", "clevr6", "shapestacks", "procedural")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``convert`` arguments to ``parser``."""
    parser.description = "Convert an original dataset (or procedural scenes) to the lom_pyro HDF5 layout."
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("Examples::", 1)[1] if __doc__ and "Examples::" in __doc__ else None
    parser.add_argument("kind", choices=_KINDS, help="source format")
    parser.add_argument(
        "src", help="TFRecord file (objects-room, clevr6), ShapeStacks root folder, or procedural dataset name"
    )
    parser.add_argument("dst", help="HDF5 file to write (replaced only on success)")
    parser.add_argument("--variant", default=None, help="objects-room: train, six_objects, identical_color, empty_room")
    parser.add_argument("--size", type=int, default=None,
                        help="clevr6: 96 (default) or 64; procedural: image size (64)")
    parser.add_argument("--split", default=None, help="shapestacks: folder under splits/ (default 'default')")
    parser.add_argument("--limit", type=int, default=None, help="convert only the first N source records")
    parser.add_argument("--test-size", type=int, default=0, help="objects-room, clevr6: first N scenes go to 'test'")
    parser.add_argument("--n-train", type=int, default=10000, help="procedural: training scenes")
    parser.add_argument("--n-test", type=int, default=1000, help="procedural: test scenes")
    parser.add_argument("--seed", type=int, default=0, help="procedural: seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _refuse(args: argparse.Namespace, allowed: dict[str, tuple[str, ...]]) -> None:
    for option in ("variant", "size", "split"):
        if getattr(args, option) is not None and args.kind not in allowed[option]:
            raise ValueError(f"--{option} does not apply to '{args.kind}'")


def _convert(args: argparse.Namespace) -> str:
    from lom_pyro.data import convert  # lazy: keeps `lom-pyro convert --help` fast

    _refuse(args, {"variant": ("objects-room",), "size": ("clevr6", "procedural"), "split": ("shapestacks",)})
    progress = not args.quiet
    if args.kind == "objects-room":
        summary = convert.convert_objects_room(
            args.src, args.dst, variant=args.variant or "train", limit=args.limit, test_size=args.test_size,
            progress=progress,
        )  # fmt: skip
    elif args.kind == "clevr6":
        summary = convert.convert_clevr6(
            args.src, args.dst, size=args.size or 96, limit=args.limit, test_size=args.test_size, progress=progress
        )
    elif args.kind == "shapestacks":
        summary = convert.convert_shapestacks(
            args.src, args.dst, split=args.split or "default", limit=args.limit, progress=progress
        )
    else:
        from lom_pyro.data.h5 import write_procedural

        n_train = args.n_train if args.limit is None else min(args.n_train, args.limit)
        n_test = args.n_test if args.limit is None else min(args.n_test, args.limit)
        path = write_procedural(args.src, args.dst, n_train, n_test, image_size=args.size or 64, seed=args.seed)
        return f"wrote {path} (train: {n_train}, test: {n_test}) from procedural '{args.src}'"
    return str(summary)


def run(args: argparse.Namespace) -> int:
    """Run the conversion; 0 on success, 2 (one line on stderr, no traceback) on bad input."""
    try:
        message = _convert(args)
    except (DataError, ValueError, OSError, ImportError) as err:
        return refuse("convert", err)
    except KeyboardInterrupt:
        print("lom-pyro convert: interrupted; nothing written", file=sys.stderr)
        return INTERRUPTED
    print(message)
    return 0
