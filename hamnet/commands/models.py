"""``hamnet models``: the pretrained models shipped with hamnet.

Prints each model's name, functional, basis and elements, and where its model card is.
Any of the names works wherever a model is asked for (``--model NAME``,
``hamnet.load_model(NAME)``); without ``--model``, ``hamnet guess`` and ``hamnet predict``
use the one that fits the molecule.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--card", metavar="NAME", default=None, help="print this model's card")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hamnet.pretrained import PretrainedError, find_pretrained, pretrained_models

    if args.card is not None:
        entry = find_pretrained(args.card)
        if entry is None:
            raise PretrainedError(f"no shipped model named {args.card!r}; see 'hamnet models'")
        print(Path(entry["card"]).read_text(), end="")
        return 0
    models = pretrained_models()
    if not models:
        print("no pretrained models are shipped with this hamnet")
        return 0
    for m in models:
        print(f"{m['name']}: {m['xc']}/{m['basis']}, elements {' '.join(m['elements'])}")
        print(f"  {m['description']}")
        print(f"  card: {m['card']}")
    return 0
