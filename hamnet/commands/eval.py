"""``hamnet eval RUN_DIR_OR_CHECKPOINT --data STORE [--split test]`` or
``hamnet eval --predictions PRED.npz --data STORE``: QH9 metrics, printed and saved as JSON.

``--split`` names a part (``train``, ``val``, ``test``) of the store's split (the run's
split, or the store's only one), ``NAME/PART`` for another named split, or ``all``.
A prediction file holds one ``(nao, nao)`` Fock matrix per record (Hartree, PySCF AO
order) keyed by the record index as a string; without ``--split`` every record in the
file is scored. The JSON goes to ``--out``, default ``<run_dir>/eval_<split>.json`` or
``<PRED>.eval_<split>.json`` beside the prediction file, and beside it the parity plot
``parity_<split>.png`` (:mod:`hamnet.plots`), whose worst molecules (record index, source id,
MAE) the JSON lists as ``worst_molecules``; an existing JSON of the same split is
overwritten, and the output line says so. Exit status 0, or 2 on bad input.

A model is not scored on records it was trained on: when the requested records overlap
the run's training records (``split.json`` of the run, or the checkpoint's record of its
split, on the same store), ``hamnet eval`` refuses unless ``--allow-train-overlap``, or the
part asked for is the run's own training part (``--split train``).

Symmetry (models only, :mod:`hamnet.symmetry`): ``--average ORDER`` scores the model
averaged over a rotation grid (Lebedev degree ORDER x ORDER+1 in-plane angles, ``--inversion``
adds improper rotations); ``--symmetry`` also reports the equivariance error
(``--rotations`` random rotations of the first ``--symmetry-molecules`` molecules of the
split), per block type and for the occupied orbital energies, in micro-Hartree, and the
grid spread of an averaged model. Both go into the JSON (``symmetry``, ``average``).

``--guess-energy`` adds ``guess_energy``: the energy of each predicted guess density above
that of the reference density (milli-Hartree), with the store's functional, basis and grid
level (:func:`hamnet.metrics.guess_energy`; two PySCF Fock builds per molecule, so off by
default).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=None, metavar="RUN_DIR_OR_CHECKPOINT",
                        help="a run directory (its best.pt) or a checkpoint / model file")
    parser.add_argument("--predictions", default=None, metavar="PRED.npz",
                        help="score these matrices instead of a model's predictions")
    parser.add_argument("--data", default=None, metavar="STORE",
                        help="dataset store with the reference matrices (default: the run's store)")
    parser.add_argument("--split", default=None,
                        help="PART, NAME/PART or 'all' (default: test for a model, every record in PRED.npz)")
    parser.add_argument("--out", default=None, help="JSON file to write (default: beside the input)")
    parser.add_argument("--batch-size", type=int, default=16, help="molecules per forward pass (default 16)")
    parser.add_argument("--allow-train-overlap", action="store_true",
                        help="score records the run was trained on (refused by default: inflated numbers)")
    parser.add_argument("--guess-energy", action="store_true",
                        help="also E[P_guess] - E[P_ref] in mHa (two PySCF Fock builds per molecule)")
    from hamnet.commands import add_quiet

    add_quiet(parser)
    sym = parser.add_argument_group("symmetry")
    sym.add_argument("--symmetry", action="store_true",
                     help="also report the equivariance error (micro-Hartree, per block type, and of eps_occ)")
    sym.add_argument("--rotations", type=int, default=8, help="random rotations per molecule (default 8)")
    sym.add_argument("--symmetry-molecules", type=int, default=10, metavar="N",
                     help="molecules of the split used for --symmetry (default 10)")
    sym.add_argument("--average", type=int, default=None, metavar="ORDER",
                     help="score the model averaged over a rotation grid of Lebedev degree ORDER (3, 5, 7, ...)")
    sym.add_argument("--inversion", action="store_true", help="with --average: include improper rotations")


def select(ds, split: str | None, run_dataset: dict | None = None):
    """``(label, record indices or None)`` of a ``--split`` value for store ``ds``.

    ``run_dataset`` is the ``dataset`` record of a checkpoint; on the run's own store a
    bare PART means the run's own split (named, or random by ``split.fractions``).
    """
    from hamnet.data import record_keys as RK
    from hamnet.train.data import DataError, split_indices

    if split is None:
        return "all", None
    if split == "all":
        return "all", list(range(len(ds)))
    name, _, part = split.rpartition("/")
    if part not in RK.SPLIT_PARTS:
        raise DataError(f"--split: part {part!r} is not one of train, val, test (or use 'all')")
    run_dataset = run_dataset or {}
    same_store = run_dataset.get("path") and Path(run_dataset["path"]).resolve() == Path(ds.path).resolve()
    if not name and same_store and run_dataset.get("parts"):
        return part, list(run_dataset["parts"][part])
    if not name:
        name = run_dataset.get("split") if run_dataset.get("split") in ds.splits else None
    name, idx = split_indices(ds, name, part)
    return (part if "/" not in split else f"{name}-{part}"), idx


def train_overlap(ds, idx, split: str, run_dir, run_dataset: dict | None) -> tuple[int, str, list]:
    """``(n overlapping, run split name, run training indices)`` of records ``idx`` of ``ds``
    with the training records of a run (0 where the run trained on another store or its
    training records are not known). Asking for the run's own training part is no overlap.
    """
    from hamnet.data.splits import read_run_split

    if split == "train":
        return 0, "", []
    doc = read_run_split(run_dir) if run_dir is not None else None
    if doc is None and run_dataset and run_dataset.get("parts"):  # runs older than split.json
        doc = {"store": run_dataset.get("path", ""), "split": run_dataset.get("split"),
               "parts": run_dataset["parts"]}
    if doc is None or not Path(str(doc.get("store", ""))).exists() \
            or Path(str(doc["store"])).resolve() != Path(ds.path).resolve():
        return 0, "", []
    train = {int(i) for i in doc["parts"].get("train", [])}
    chosen = range(len(ds)) if idx is None else idx
    return sum(1 for i in chosen if int(i) in train), str(doc.get("split")), sorted(train)


def _symmetry(model, ds, idx, args) -> dict:
    from hamnet.data import record_keys as RK
    from hamnet.errors import ConfigError
    from hamnet.symmetry import equivariance_error

    if args.rotations < 1 or args.symmetry_molecules < 1:
        raise ConfigError("--rotations and --symmetry-molecules must be >= 1")
    idx = list(range(len(ds))) if idx is None else list(idx)
    mols = [(rec[RK.Z], rec[RK.POS]) for rec in (ds[i] for i in idx[: args.symmetry_molecules])]
    report = equivariance_error(model, mols, args.rotations, progress=not args.quiet)
    if hasattr(model, "spread"):
        report["spread"] = model.spread(mols)
    return report


def run(args: argparse.Namespace) -> int:
    from hamnet.data import open_dataset
    from hamnet.errors import ConfigError
    from hamnet.metrics import format_table
    from hamnet.plots import ParityCollector, write_eval_parity
    from hamnet.train.checkpoint import find_checkpoint, load_checkpoint_model
    from hamnet.train.data import DataError, check_compatible
    from hamnet.train.evaluate import evaluate_model, evaluate_predictions, write_report

    parity, model = ParityCollector(), None
    if (args.model is None) == (args.predictions is None):
        raise DataError("give a run directory / checkpoint, or --predictions PRED.npz (exactly one)")
    if args.predictions is not None and (args.symmetry or args.average is not None):
        raise DataError("--symmetry and --average need a model, not --predictions")
    if args.predictions is not None:
        if args.data is None:
            raise DataError("--predictions needs --data STORE with the reference matrices")
        ds = open_dataset(args.data)
        label, idx = select(ds, args.split)
        results, n = evaluate_predictions(args.predictions, ds, idx, on_molecule=parity.add,
                                          guess_energy=getattr(args, "guess_energy", False))
        pred = Path(args.predictions)
        out = Path(args.out) if args.out else pred.with_name(f"{pred.stem}.eval_{label}.json")
        source = str(pred)
    else:
        path = find_checkpoint(args.model)
        model, info = load_checkpoint_model(path)
        data = args.data or info.get("dataset", {}).get("path")
        if data is None:
            raise DataError(f"{path} does not record its dataset; give --data STORE")
        ds = open_dataset(data)
        check_compatible(model.basis.basis, model.xc, ds)
        label, idx = select(ds, args.split or "test", info.get("dataset"))
        run_dir = Path(args.model) if Path(args.model).is_dir() else path.parent
        n_over, run_split, _ = train_overlap(ds, idx, args.split or "test", run_dir, info.get("dataset"))
        if n_over and not args.allow_train_overlap:
            n_sel = len(ds) if idx is None else len(idx)
            raise DataError(
                f"--split {args.split}: {n_over} of its {n_sel} records are training records of {path} "
                f"(split {run_split}), so its numbers would be inflated; use --split test (the run's own "
                "test part), or --allow-train-overlap to score them anyway")
        extra = {"train_overlap": n_over} if n_over else {}
        if args.average is not None:
            from hamnet.symmetry import RotationAveraged

            try:
                model = RotationAveraged(model, args.average, inversion=args.inversion)
            except ConfigError as exc:
                raise ConfigError(f"--average: {exc}") from exc
            extra["average"] = {"order": model.grid.order, "n_inplane": model.grid.n_inplane,
                                "inversion": model.grid.inversion, "n_rotations": model.n_rotations}
            label = f"{label}_avg{args.average}"
        t0 = time.perf_counter()
        results, n = evaluate_model(model, ds, idx, args.batch_size, progress=not args.quiet,
                                    on_molecule=parity.add, guess_energy=getattr(args, "guess_energy", False))
        extra["seconds_per_molecule"] = (time.perf_counter() - t0) / max(n, 1)
        if args.symmetry:
            extra["symmetry"] = _symmetry(model, ds, idx, args)
        base = Path(args.model) if Path(args.model).is_dir() else path.parent
        out = Path(args.out) if args.out else base / f"eval_{label}.json"
        source = str(path)
    print(format_table(results, title=f"{source} on {ds.path} ({label})", n=n))
    info = {"source": source, "data": str(ds.path), "split": label}
    if args.predictions is None:
        info.update(extra)
        if "symmetry" in extra:
            from hamnet.symmetry import format_report

            print(format_report(extra["symmetry"]))
            if "spread" in extra["symmetry"]:
                sp = extra["symmetry"]["spread"]
                print(f"grid spread of the averaged model: mean {sp['mean_uHa']:.4g}, max {sp['max_uHa']:.4g} uHa")
    info.update(write_eval_parity(parity, out, source, ds, label, model))  # parity_<split>.png, worst molecules
    existed = out.exists()
    write_report(out, results, n, info)
    print(f"wrote {out}" + (" (overwrote the previous one)" if existed else ""))
    return 0
