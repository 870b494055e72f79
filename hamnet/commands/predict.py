"""``hamnet predict MOLECULE.xyz [...] [--model MODEL] --out F.npy``: predicted Fock matrices.

Writes the model's prediction (Hartree, PySCF AO order of the model's basis, float64):
one molecule to ``.npy``, several to ``.npz`` keyed by the input file name.

``hamnet predict --data STORE [--split PART|NAME/PART|all] [--model MODEL] --out PRED.npz``
predicts records of a dataset store (default: all) and keys the ``.npz`` by record index
(``"0"``, ``"17"``, ...), the format ``hamnet eval --predictions PRED.npz --data STORE``
scores. The file is written atomically. Exit status 0 on success, 2 on bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hamnet.commands import add_quiet

    parser.add_argument("molecules", nargs="*", help="geometry files in Angstrom (xyz, or any format ASE reads)")
    parser.add_argument("--data", default=None, metavar="STORE",
                        help="predict the records of this dataset store instead (keys: record indices)")
    parser.add_argument("--split", default=None, metavar="PART|NAME/PART|all",
                        help="with --data: only these records (default all; PART: of the store's only split)")
    parser.add_argument(
        "--model", default=None,
        help="model file, training checkpoint (.pt) or shipped-model name (default: the "
        "shipped def2-SVP model that covers the molecules' elements; see 'hamnet models')",
    )
    parser.add_argument("--out", required=True, help="output: .npy (one molecule) or .npz")
    parser.add_argument("--batch-size", type=int, default=8, help="molecules per forward pass (default 8)")
    add_quiet(parser)


def _write(path: Path, arrays: dict) -> None:
    import numpy as np

    from hamnet.atomic import atomic_write

    if path.suffix == ".npy":
        (value,) = arrays.values()
        atomic_write(path, lambda fh: np.save(fh, value))
    else:
        atomic_write(path, lambda fh: np.savez(fh, **arrays))


def _run_store(args: argparse.Namespace, out: Path) -> int:
    """``--data STORE``: predict records, keyed by record index."""
    import numpy as np

    from hamnet.commands.eval import select
    from hamnet.data import open_dataset
    from hamnet.data import record_keys as RK
    from hamnet.errors import ConfigError
    from hamnet.model import load_model
    from hamnet.train.data import check_compatible
    from hamnet.train.evaluate import predict_records

    if args.molecules:
        raise ConfigError("give geometry files or --data STORE, not both")
    if out.suffix != ".npz":
        raise ConfigError(f"--data writes an .npz keyed by record index; --out must end in .npz, got {out.name}")
    ds = open_dataset(args.data)
    label, idx = select(ds, args.split or "all")
    if args.model is None:
        from hamnet.pretrained import default_model

        elements = {int(z) for i in idx for z in np.asarray(ds[i][RK.Z]).tolist()}
        model = default_model(ds.metadata.get(RK.META_BASIS), elements)
    else:
        model = load_model(args.model)
    check_compatible(model.basis.basis, model.xc, ds)
    preds = predict_records(model, ds, idx, batch_size=args.batch_size, progress=not args.quiet)
    arrays = {str(i): F for i, F in preds}
    _write(out, arrays)
    print(f"wrote {out} ({len(arrays)} records of {ds.path} ({label}), keyed by record index; "
          f"{model.basis.basis}, Hartree, PySCF AO order)")
    return 0


def run(args: argparse.Namespace) -> int:
    from hamnet.errors import ConfigError
    from hamnet.model import load_model
    from hamnet.molecule import read_geometry
    from hamnet.progress import progress_bar

    out = Path(args.out)
    if out.suffix not in (".npy", ".npz"):
        raise ConfigError(f"--out must end in .npy or .npz, got {out.name}")
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    if args.data is not None:
        return _run_store(args, out)
    if args.split is not None:
        raise ConfigError("--split needs --data STORE")
    if not args.molecules:
        raise ConfigError("give geometry files, or --data STORE")
    if out.suffix == ".npy" and len(args.molecules) != 1:
        raise ConfigError("several molecules need an .npz output")
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    geometries = [read_geometry(p) for p in args.molecules]  # every file checked before any work
    if args.model is None:
        from hamnet.pretrained import default_model

        model = default_model("def2-svp", {int(z) for Z, _ in geometries for z in Z})
    else:
        model = load_model(args.model)
    model.eval()
    arrays = {}
    with progress_bar(not args.quiet and len(geometries) > 1, total=len(geometries), desc="predict",
                      unit="mol") as bar:
        for start in range(0, len(geometries), args.batch_size):
            chunk = geometries[start : start + args.batch_size]
            for path, F in zip(args.molecules[start : start + args.batch_size], model.predict_batch(chunk)):
                arrays[Path(path).name if Path(path).name not in arrays else path] = F
            bar.update(len(chunk))
    _write(out, arrays)
    sizes = ", ".join(f"{k}: {v.shape[0]} AOs" for k, v in arrays.items())
    print(f"wrote {out} ({model.basis.basis}, Hartree, PySCF AO order; {sizes})")
    return 0
