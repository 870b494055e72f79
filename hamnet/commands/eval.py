"""``hamnet eval RUN_DIR_OR_CHECKPOINT --data STORE [--split test]`` or
``hamnet eval --predictions PRED.npz --data STORE``: QH9 metrics, printed and saved as JSON.

``--split`` names a part (``train``, ``val``, ``test``) of the store's split (the run's
split, or the store's only one), ``NAME/PART`` for another named split, or ``all``.
A prediction file holds one ``(nao, nao)`` Fock matrix per record (Hartree, PySCF AO
order) keyed by the record index as a string; without ``--split`` every record in the
file is scored. The JSON goes to ``--out``, default ``<run_dir>/eval_<split>.json`` or
``<PRED>.eval_<split>.json`` beside the prediction file. Exit status 0, or 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def select(ds, split: str | None, run_dataset: dict | None = None):
    """``(label, record indices or None)`` of a ``--split`` value for store ``ds``.

    ``run_dataset`` is the ``dataset`` record of a checkpoint; on the run's own store a
    bare PART means the run's own split (named, or random by ``split.fractions``).
    """
    from hamnet.train.data import DataError, split_indices

    if split is None:
        return "all", None
    if split == "all":
        return "all", list(range(len(ds)))
    name, _, part = split.rpartition("/")
    if part not in ("train", "val", "test"):
        raise DataError(f"--split: part {part!r} is not one of train, val, test (or use 'all')")
    run_dataset = run_dataset or {}
    same_store = run_dataset.get("path") and Path(run_dataset["path"]).resolve() == Path(ds.path).resolve()
    if not name and same_store and run_dataset.get("parts"):
        return part, list(run_dataset["parts"][part])
    if not name:
        name = run_dataset.get("split") if run_dataset.get("split") in ds.splits else None
    name, idx = split_indices(ds, name, part)
    return (part if "/" not in split else f"{name}-{part}"), idx


def run(args: argparse.Namespace) -> int:
    from hamnet.data import DatasetError, open_dataset
    from hamnet.metrics import format_table
    from hamnet.train.checkpoint import CheckpointError, find_checkpoint, load_checkpoint_model
    from hamnet.train.data import DataError, check_compatible
    from hamnet.train.evaluate import EvaluationError, evaluate_model, evaluate_predictions, write_report

    try:
        if (args.model is None) == (args.predictions is None):
            raise DataError("give a run directory / checkpoint, or --predictions PRED.npz (exactly one)")
        if args.predictions is not None:
            if args.data is None:
                raise DataError("--predictions needs --data STORE with the reference matrices")
            ds = open_dataset(args.data)
            label, idx = select(ds, args.split)
            results, n = evaluate_predictions(args.predictions, ds, idx)
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
            check_compatible(model.basis.basis, model.xc, model.basis.elements, ds)
            label, idx = select(ds, args.split or "test", info.get("dataset"))
            results, n = evaluate_model(model, ds, idx, args.batch_size, progress=not args.no_progress)
            base = Path(args.model) if Path(args.model).is_dir() else path.parent
            out = Path(args.out) if args.out else base / f"eval_{label}.json"
            source = str(path)
    except (DataError, DatasetError, CheckpointError, EvaluationError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"hamnet eval: error: {msg}", file=sys.stderr)
        return 2
    print(format_table(results, title=f"{source} on {ds.path} ({label})", n=n))
    write_report(out, results, n, {"source": source, "data": str(ds.path), "split": label})
    print(f"wrote {out}")
    return 0
