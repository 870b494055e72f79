"""One module per CLI command: ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """The one quiet flag of every command: ``--quiet`` (old spelling ``--no-progress``).

    Without it, progress bars show on a terminal and switch themselves off when stderr is
    redirected (see :mod:`hamnet.progress`).
    """
    parser.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                        help="no progress bars (they are off anyway when stderr is not a terminal)")
