"""``hamnet basis NAME --elements H C N O F``: print an orbital layout."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="PySCF basis name, e.g. def2-svp")
    parser.add_argument(
        "--elements", nargs="+", default=["H", "C", "N", "O", "F"], help="element symbols"
    )


def run(args: argparse.Namespace) -> int:
    from hamnet.basis import OrbitalBasis

    print(OrbitalBasis(args.name, args.elements).describe())
    return 0
