"""Per-molecule occupied-orbital-energy errors of ``benchmarks/arms.py`` runs.

A mean ε_occ MAE can be dominated by a few molecules whose predicted spectrum nearly
closes the HOMO-LUMO gap. For every run ``OUT/ARM/seedS`` this prints, over its test
part (from the run's ``split.json``): the mean, median and largest per-molecule MAE of
the occupied orbital energies (µHa), and in how many molecules the predicted gap is less
than half the reference gap ("gap collapses"). The eigenvalues
are ``scipy.linalg.eigh(F, S)`` of the predicted and stored matrices, apart from
``hamnet.metrics``; the mean is therefore a check of the run's ``eval_test.json``.

    python benchmarks/eps_outliers.py runs/s7/eth data/md17-ethanol-300 off on

Exit status: 0, or 2 with a one-line error (no such run, store or split).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.linalg


def molecule_errors(predict, store, indices) -> tuple[np.ndarray, int]:
    """``(per-molecule ε_occ MAE in Hartree, number of gap collapses)``.

    ``predict(Z, pos)`` returns the predicted Fock matrix of a record; a gap collapse is a
    predicted HOMO-LUMO gap below half the reference one.
    """
    errs, crossed = [], 0
    for i in indices:
        r = store[int(i)]
        e = scipy.linalg.eigh(predict(r["Z"], r["pos"]), r["S"], eigvals_only=True)
        ref = scipy.linalg.eigh(r["F"], r["S"], eigvals_only=True)
        nocc = int(r["nocc"])
        errs.append(float(np.abs(e[:nocc] - ref[:nocc]).mean()))
        if nocc < len(e):
            crossed += int(e[nocc] - e[nocc - 1] < 0.5 * (ref[nocc] - ref[nocc - 1]))
    return np.asarray(errs), crossed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the --out folder of benchmarks/arms.py")
    p.add_argument("store", help="the runs' dataset (hamnet store)")
    p.add_argument("arms", nargs="+", help="arm names (folders of OUT)")
    args = p.parse_args(argv)
    from hamnet.data import open_dataset
    from hamnet.data.splits import read_run_split
    from hamnet.errors import HamnetError
    from hamnet.model import load_model

    try:
        store = open_dataset(args.store)
        runs = [(arm, r) for arm in args.arms for r in sorted((Path(args.out) / arm).glob("seed*"))]
        missing = [arm for arm in args.arms if not any(a == arm for a, _ in runs)]
        if missing:
            raise HamnetError(f"no runs {Path(args.out)}/{missing[0]}/seed*")
        for arm, run in runs:
            sp = read_run_split(run)
            if sp is None or not (run / "best.pt").is_file():
                raise HamnetError(f"{run}: no split.json or best.pt (an unfinished run?)")
            test = sp["parts"]["test"]
            model = load_model(run / "best.pt")
            errs, crossed = molecule_errors(lambda Z, pos: model.predict((Z, pos)), store, test)
            errs = errs * 1e6
            print(f"{arm}/{run.name}: ε_occ MAE per molecule: mean {errs.mean():,.0f}, median "
                  f"{np.median(errs):,.0f}, max {errs.max():,.0f} µHa; gap below half the reference "
                  f"gap in {crossed}/{len(test)}")
    except (HamnetError, OSError, ValueError, KeyError) as exc:
        p.exit(2, f"{p.prog}: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
