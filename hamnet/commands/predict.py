"""``hamnet predict MOLECULE.xyz [...] [--model MODEL] --out F.npy``: predicted Fock matrices.

Writes the model's prediction (Hartree, PySCF AO order of the model's basis, float64):
one molecule to ``.npy``, several to ``.npz`` keyed by the input file name. The file is
written atomically. Exit status 0 on success, 2 on bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hamnet.commands import add_quiet

    parser.add_argument("molecules", nargs="+", help="geometry files in Angstrom (xyz, or any format ASE reads)")
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


def run(args: argparse.Namespace) -> int:
    from hamnet.errors import ConfigError
    from hamnet.model import load_model
    from hamnet.molecule import read_geometry
    from hamnet.progress import progress_bar

    out = Path(args.out)
    if out.suffix not in (".npy", ".npz"):
        raise ConfigError(f"--out must end in .npy or .npz, got {out.name}")
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
