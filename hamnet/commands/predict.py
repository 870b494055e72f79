"""``hamnet predict MOLECULE.xyz [...] --model MODEL --out F.npy``: predicted Fock matrices.

Writes the model's prediction (Hartree, PySCF AO order of the model's basis, float64):
one molecule to ``.npy``, several to ``.npz`` keyed by the input file name. The file is
written atomically. Exit status 0 on success, 2 on bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("molecules", nargs="+", help="geometry files in Angstrom (xyz, or any format ASE reads)")
    parser.add_argument("--model", required=True, help="model file or training checkpoint (.pt)")
    parser.add_argument("--out", required=True, help="output: .npy (one molecule) or .npz")
    parser.add_argument("--batch-size", type=int, default=8, help="molecules per forward pass (default 8)")


def _write(path: Path, arrays: dict) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        if path.suffix == ".npy":
            (value,) = arrays.values()
            np.save(tmp, value)
        else:
            np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def run(args: argparse.Namespace) -> int:
    from ase.io import read
    from tqdm import tqdm

    from hamnet.basis import BasisError
    from hamnet.model import ModelFileError, load_model

    out = Path(args.out)
    if out.suffix not in (".npy", ".npz"):
        print(f"hamnet predict: error: --out must end in .npy or .npz, got {out.name}", file=sys.stderr)
        return 2
    if out.suffix == ".npy" and len(args.molecules) != 1:
        print("hamnet predict: error: several molecules need an .npz output", file=sys.stderr)
        return 2
    if args.batch_size < 1:
        print("hamnet predict: error: --batch-size must be >= 1", file=sys.stderr)
        return 2
    try:
        model = load_model(args.model)
        model.eval()
        atoms = [read(p) for p in args.molecules]
        arrays = {}
        bar = tqdm(total=len(atoms), desc="predict", unit="mol", disable=len(atoms) < 2)
        for start in range(0, len(atoms), args.batch_size):
            chunk = atoms[start : start + args.batch_size]
            for path, F in zip(args.molecules[start : start + args.batch_size], model.predict_batch(chunk)):
                arrays[Path(path).name if Path(path).name not in arrays else path] = F
            bar.update(len(chunk))
        bar.close()
    except (BasisError, ModelFileError, ValueError, FileNotFoundError) as exc:
        print(f"hamnet predict: error: {exc}", file=sys.stderr)
        return 2
    _write(out, arrays)
    sizes = ", ".join(f"{k}: {v.shape[0]} AOs" for k, v in arrays.items())
    print(f"wrote {out} ({model.basis.basis}, Hartree, PySCF AO order; {sizes})")
    return 0
