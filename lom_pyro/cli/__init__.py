"""The ``lom-pyro`` command line: one sub-command per job.

Each sub-command is a module of this package exposing two functions, ``configure(parser)``
(adds its arguments) and ``run(args) -> int`` (exit status); the work itself is the
library's. Modules are imported lazily, so ``lom-pyro convert`` never imports the model code.
Nothing in the library imports this package.
Errors are one line on stderr; ``--debug`` (anywhere on the line) shows the traceback. Every
sub-command exits with the same statuses: 0 done, 2 bad input refused before anything was
written (:func:`refuse`), 1 an unexpected failure, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys

DONE, FAILED, BAD_INPUT, INTERRUPTED = 0, 1, 2, 130


def refuse(command: str, err: BaseException) -> int:
    """Print ``err`` as one line, ``lom-pyro COMMAND: ...``, on stderr; :return: ``BAD_INPUT``."""
    text = " ".join(str(err).split()) or type(err).__name__   # one line, whatever the message
    print(f"lom-pyro {command}: {text}", file=sys.stderr)
    return BAD_INPUT


#: sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("lom_pyro.cli.train", "train a LOM (or an orderless model alone)"),
    "convert": ("lom_pyro.cli.convert", "convert a dataset from its original format to lom_pyro HDF5"),
    "evaluate": ("lom_pyro.cli.evaluate", "evaluate a checkpoint: metrics to eval.json and eval.md"),
    "visualize": ("lom_pyro.cli.evaluate", "write sample, interpolation and retrieval figures"),
    "sample": ("lom_pyro.cli.evaluate",
               "the same figures from a pretrained model: lom-pyro sample --pretrained stacks32"),
    "export": ("lom_pyro.cli.export", "write a run's checkpoint as a pretrained model file"),
    "fit-prior": ("lom_pyro.cli.fit_prior", "fit a slot prior to a trained LOM's posterior: a new model file"),
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in ``--help``, except where there is none to show (``None``, an off switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """A bad command line is one sentence, not the usage block before it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} ({self.prog} --help lists the options)\n")


def _build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="lom-pyro", description=__doc__.splitlines()[0].replace("``", ""),
                     formatter_class=_HelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks (anywhere on the command line)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_HelpFormatter)
        # only import the module whose sub-command is asked for
        if argv and argv[0] == name:
            mod = importlib.import_module(module)
            configure = getattr(mod, f"configure_{name}", None) or mod.configure
            configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv            # a traceback instead of the one-line error
    argv = [a for a in argv if a != "--debug"]
    args = _build_parser(argv).parse_args(argv)
    mod = importlib.import_module(COMMANDS[args.command][0])
    runner = getattr(mod, f"run_{args.command}", None) or mod.run
    try:
        return int(runner(args) or 0)
    except Exception as err:   # anything a sub-command did not turn into its own message
        if debug:
            raise
        print(f"lom-pyro {args.command}: {type(err).__name__}: {err} (--debug shows the traceback)", file=sys.stderr)
        return FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
