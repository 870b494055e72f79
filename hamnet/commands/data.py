"""``hamnet data make|info|import|recipes``: benchmark datasets (thin CLI).

    hamnet data make RECIPE --out DIR --n N [--workers K | --scheduler ADDRESS] [--device cpu|cuda]
    hamnet data info DIR [--runs RUNS_DIR]
    hamnet data import INPUT --out DIR [--format auto|qh9-sqlite|qh9-lmdb|schnorb] [--xc XC]
    hamnet data recipes
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hamnet.commands import add_quiet

    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = sub.add_parser("make", help="generate geometries, label them with PySCF, write the store")
    p.add_argument("recipe", help="recipe name (see 'hamnet data recipes')")
    p.add_argument("--out", required=True, help="dataset directory (rerun to resume)")
    p.add_argument("--n", type=int, default=None,
                   help="number of structures (QM9 recipes: the first N of the priority "
                   "order; a larger N on the same --out grows the store)")
    p.add_argument("--reuse", action="append", default=None, metavar="STORE",
                   help="copy structures already labeled in this store (same level of "
                   "theory, identical geometry) instead of relabeling them; repeatable")
    p.add_argument("--ids", default=None, metavar="ID,ID,...|@FILE",
                   help="QM9 recipes: label exactly these QM9 indices (comma-separated, or "
                   "@FILE with one per line)")
    p.add_argument("--workers", type=int, default=1, help="labeling processes (default 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS|FILE",
                   help="label on this Dask scheduler (tcp://host:port or a scheduler file), "
                   "one task per structure, instead of local processes")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cpu: PySCF (default); cuda: gpu4pyscf on the labeling machines' GPU")
    add_quiet(p)
    p = sub.add_parser("info", help="print provenance, counts and splits of a dataset, and the splits runs used")
    p.add_argument("path", help="dataset directory")
    p.add_argument("--runs", default="runs", metavar="RUNS_DIR",
                   help="also list the exact splits (RUN/split.json) of the runs in RUNS_DIR, or of "
                   "RUNS_DIR itself, that trained on this store (default: runs)")
    p = sub.add_parser("import", help="import a public QH9 / SchNOrb file into a new dataset")
    p.add_argument("input", help="QH9 SQLite file, QH9 processed LMDB, or SchNOrb ASE db")
    p.add_argument("--out", required=True, help="new dataset directory")
    p.add_argument("--format", default="auto", help="auto (default), qh9-sqlite, qh9-lmdb, schnorb")
    p.add_argument("--xc", default=None,
                   help="level of theory where the file does not tell it: b3lyp5 or b3lyp "
                   "(QH9), pbe or hf (SchNOrb); refused if it contradicts the file")
    add_quiet(p)
    sub.add_parser("recipes", help="list the recipes with their provenance")


def _make(args) -> int:
    from data_tools.make import make_dataset

    from data_tools.recipes import RecipeError

    ids = _parse_ids(args.ids) if args.ids is not None else None
    if ids is None and args.n is None:
        raise RecipeError("give --n N (or --ids for a QM9 recipe)")
    try:
        report = make_dataset(
            args.recipe, args.out, args.n, ids=ids, workers=args.workers,
            progress=not args.quiet, scheduler=args.scheduler, device=args.device,
            reuse=args.reuse,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished structures are saved in {args.out}; rerun the same "
            "command to continue",
            file=sys.stderr,
        )
        return 130
    print(report)
    return 0


def _parse_ids(text: str) -> list:
    from data_tools.recipes import RecipeError

    if text.startswith("@"):
        try:
            text = open(text[1:]).read().replace("\n", ",")
        except OSError as exc:
            raise RecipeError(f"--ids {text}: cannot read ({exc.strerror})") from None
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return [int(t) for t in items]
    except ValueError:
        raise RecipeError(f"--ids must be comma-separated QM9 indices, got {text[:60]!r}") from None


def _import(args) -> int:
    from data_tools.readers import import_dataset

    path = import_dataset(args.input, args.out, args.format, progress=not args.quiet,
                          xc=args.xc)
    from hamnet.data.info import describe

    print(describe(path))
    return 0


def _recipes(args) -> int:
    from data_tools.recipes import RECIPES

    for r in RECIPES.values():
        s = r.settings
        print(f"{r.name}: {s.xc}/{s.basis}, grid level {s.grid_level}, conv_tol {s.conv_tol}")
        print(f"  provenance: {r.provenance}")
        print(f"  deviations: {r.deviations}")
    return 0


def run(args: argparse.Namespace) -> int:
    # Errors (RecipeError, DatasetError, ReaderError, GeometryError, BackendError: all
    # hamnet.errors.HamnetError) are reported by hamnet.cli.main as `hamnet data ACTION: error: ...`.
    if args.data_command == "make":
        return _make(args)
    if args.data_command == "import":
        return _import(args)
    if args.data_command == "recipes":
        return _recipes(args)
    from hamnet.data.info import describe

    print(describe(args.path, runs=args.runs))
    return 0
