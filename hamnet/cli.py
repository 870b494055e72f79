"""Command-line interface: ``hamnet <command> ...``.

The CLI is thin. Each command lives in its own module as two functions,
``add_arguments(parser)`` and ``run(args) -> int``, registered by name in
:data:`COMMANDS` and imported only when used, so ``hamnet --help`` stays fast.
Errors are handled once, here: a :class:`hamnet.errors.HamnetError` (bad input) prints
``hamnet CMD: error: <message>`` and exits with status 2; every other exception is a bug
and keeps its traceback. Progress bars switch themselves off when stderr is not a
terminal; ``--quiet`` turns them off everywhere. Nothing imports this module.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from hamnet import __version__
from hamnet.errors import HamnetError

# name -> (module implementing add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "basis": ("hamnet.commands.basis", "show the orbital layout and block irreps of a PySCF basis"),
    "data": ("hamnet.commands.data", "make, import and inspect benchmark datasets (LMDB)"),
    "guess": ("hamnet.commands.guess", "SCF cycles/time from the prediction vs minao"),
    "train": ("hamnet.commands.train", "train (or resume) a model from a YAML config; no config: the default water job"),
    "eval": ("hamnet.commands.eval", "QH9 metrics of a trained model or of a prediction file on a dataset store"),
    "predict": ("hamnet.commands.predict", "predicted Fock matrices (Hartree, PySCF AO order) of geometry files"),
    "models": ("hamnet.commands.models", "list the pretrained models shipped with hamnet (--card NAME: its model card)"),
    "report": ("hamnet.commands.report", "write RUN/report.md: config, data provenance, metrics, pictures, worst molecules"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hamnet",
        description="Predict Kohn-Sham/Fock Hamiltonians (PySCF AO order, Hartree) "
        "with equivariant TraceGrad models.",
    )
    parser.add_argument("--version", action="version", version=f"hamnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        # Arguments are added lazily (see main) to keep start-up cheap.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    # Find the command, then let its module declare its own arguments.
    cmd = next((a for a in argv if not a.startswith("-")), None)
    if cmd in COMMANDS:
        module = importlib.import_module(COMMANDS[cmd][0])
        sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        module.add_arguments(sub_action.choices[cmd])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(args._module)
    hamnet_log = logging.getLogger("hamnet")
    if hamnet_log.level == logging.NOTSET:  # the application's choice: INFO into run and make logs
        hamnet_log.setLevel(logging.INFO)
    try:
        return int(module.run(args) or 0)
    except HamnetError as exc:  # bad input, named by the message; anything else is a bug
        action = getattr(args, f"{args.command}_command", None)  # e.g. `hamnet data make`
        name = " ".join(x for x in ("hamnet", args.command, action) if x)
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `hamnet data recipes | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
