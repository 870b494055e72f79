"""The statistic of the SCF guard's density check on labeled molecules: ``max |P - P_minao|``.

For each record of a store (a split part, or all), the occupied-orbital density ``P`` of
the stored converged Fock matrix and of each model's prediction, against PySCF's minao
guess density, with the HOMO-LUMO gap of each matrix. The guard
(:func:`hamnet.scf.guard_guess`) keeps a prediction only if this shift is at most
:data:`hamnet.scf.MAX_DENSITY_SHIFT`; this table shows where converged densities and good
and bad predictions lie. No SCF is run (one minao guess and one generalized
eigendecomposition per matrix).

Example::

    python benchmarks/guard_density.py --data data/qm9-train-75 --split random --part test \\
        --model h=runs/b2-qm9/h/seed0/best.pt --model spec=runs/b2-qm9/spec/seed0/best.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np


def _density(mf, fock):
    """Guess density of ``fock`` (as :func:`hamnet.scf.guess_dm`) and its HOMO-LUMO gap, Ha."""
    from hamnet.scf import guess_dm

    dm = guess_dm(mf, fock)
    e = mf.eig(0.5 * (fock + fock.T), mf.get_ovlp())[0]
    nocc = int(np.count_nonzero(dm.mo_occ > 0))
    return dm, float(e[nocc] - e[nocc - 1]) if nocc < len(e) else float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="hamnet data store")
    p.add_argument("--split", default=None, help="named split (default: all records)")
    p.add_argument("--part", default="test", choices=("train", "val", "test"))
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                   help="a model (file, checkpoint or shipped name); repeatable")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)

    from hamnet import load_model
    from hamnet.data import open_dataset
    from hamnet.data import record_keys as RK
    from hamnet.molecule import build_mole
    from hamnet.scf import MAX_DENSITY_SHIFT, make_scf

    ds = open_dataset(args.data)
    meta = ds.metadata
    idx = ds.split(args.split, args.part) if args.split else list(range(len(ds)))
    models = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        models[name] = load_model(path)
    rows = []
    print(f"max |P - P_minao| (electrons) and HOMO-LUMO gap (Ha); the guard keeps <= {MAX_DENSITY_SHIFT}")
    print("| record | atoms | nao | " + " | ".join(f"{n} shift | {n} gap" for n in ["converged", *models]) + " |")
    print("|---|---:|---:|" + "---:|---:|" * (1 + len(models)))
    for i in idx:
        rec = ds[i]
        mol = build_mole(rec[RK.Z], rec[RK.POS], meta[RK.META_BASIS])
        mf = make_scf(mol, meta.get(RK.META_XC))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            minao = mf.get_init_guess(mol, "minao")
        row = {"record": int(i), "natm": mol.natm, "nao": mol.nao_nr()}
        for name, fock in [("converged", np.asarray(rec[RK.F]))] + [(n, m.predict(mol)) for n, m in models.items()]:
            dm, gap = _density(mf, fock)
            row[name] = {"shift": float(np.max(np.abs(dm - minao))), "gap": gap}
        rows.append(row)
        print(f"| {i} | {mol.natm} | {mol.nao_nr()} | "
              + " | ".join(f"{row[n]['shift']:.3f} | {row[n]['gap']:.3f}" for n in ["converged", *models]) + " |",
              flush=True)
    for name in ["converged", *models]:
        s = [r[name]["shift"] for r in rows]
        kept = sum(x <= MAX_DENSITY_SHIFT for x in s)
        print(f"{name}: shift {min(s):.3f}-{max(s):.3f}, kept by the guard {kept} of {len(s)}")
    if args.out:
        Path(args.out).write_text(json.dumps({"data": args.data, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
