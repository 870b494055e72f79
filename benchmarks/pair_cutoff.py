"""Error of a pair cutoff: PySCF's converged F with the blocks of distant atom pairs set to zero (not a test).

For a water cluster (:mod:`water_clusters`) labelled with PySCF, every off-diagonal atom
block ``F_ij`` with ``|r_ij| >= r_c`` is zeroed, which is exactly what a model with
``pair_cutoff = r_c`` cannot predict (the best such a model can do). Reported per cutoff:

* kept: fraction of ordered atom pairs inside the cutoff;
* max |dF|: largest dropped entry (Hartree -> micro-Hartree);
* mean |dF|: mean absolute error over all ``nao^2`` entries (QH9's H MAE definition);
* max |d eps_occ|: largest change of an occupied orbital energy, from ``F c = S c eps``.

SCF runs with density fitting (PySCF's default auxiliary basis), which changes F by far
less than the cutoffs of interest.

    OMP_NUM_THREADS=1 python benchmarks/pair_cutoff.py --waters 40 --method hf --basis sto-3g
    OMP_NUM_THREADS=1 python benchmarks/pair_cutoff.py --waters 16 --method pbe --basis def2-svp
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from water_clusters import water_cluster  # noqa: E402

CUTOFFS = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0)


def reference_fock(Z, pos, method: str, basis: str):
    """``(F, S, n_occ, seconds)`` of a converged RHF/RKS calculation (Hartree, PySCF AO order)."""
    from pyscf import dft, scf

    from hamnet.molecule import build_mole

    mol = build_mole(Z, pos, basis)
    mf = (scf.RHF(mol) if method == "hf" else dft.RKS(mol, xc=method)).density_fit()  # RI: minutes, not hours
    mf.conv_tol = 1e-10
    mf.verbose = 0
    t0 = time.perf_counter()
    mf.kernel()
    if not mf.converged:
        raise RuntimeError(f"{method}/{basis} did not converge")
    return mf.get_fock(), mf.get_ovlp(), mol.nelectron // 2, time.perf_counter() - t0, mol.aoslice_by_atom()[:, 2:]


def cutoff_errors(F, S, n_occ, pos, ao_ranges, cutoffs=CUTOFFS) -> list:
    """One row of errors per cutoff (see the module docstring); energies in micro-Hartree."""
    ao_atom = np.concatenate([np.full(b - a, k) for k, (a, b) in enumerate(ao_ranges)])
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)  # [n_atoms, n_atoms] Angstrom
    eps = scipy.linalg.eigh(F, S, eigvals_only=True)[:n_occ]
    n = len(pos)
    rows = []
    for rc in cutoffs:
        far = d[np.ix_(ao_atom, ao_atom)] >= rc  # [nao, nao]: entries of dropped blocks
        Ft = np.where(far, 0.0, F)
        eps_t = scipy.linalg.eigh(Ft, S, eigvals_only=True)[:n_occ]
        rows.append({
            "cutoff_A": rc,
            "kept_pairs": float(((d < rc).sum() - n) / max(n * (n - 1), 1)),
            "max_dF_uHa": 1e6 * float(np.abs(F[far]).max()) if far.any() else 0.0,
            "mean_dF_uHa": 1e6 * float(np.abs(F - Ft).mean()),
            "max_deps_occ_uHa": 1e6 * float(np.abs(eps_t - eps).max()),
        })
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--waters", type=int, default=40)
    p.add_argument("--method", default="hf", help="hf or a PySCF functional (pbe, b3lyp, ...)")
    p.add_argument("--basis", default="sto-3g")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    Z, pos = water_cluster(args.waters, args.seed)
    F, S, n_occ, secs, ao_ranges = reference_fock(Z, pos, args.method, args.basis)
    diam = float(np.linalg.norm(pos[:, None] - pos[None], axis=-1).max())
    print(f"{args.waters} waters ({len(Z)} atoms, {len(F)} AOs, diameter {diam:.1f} A), "
          f"{args.method}/{args.basis}, SCF {secs:.0f} s; blocks of pairs at or beyond r_c set to zero:")
    print("| r_c (A) | pairs kept | max abs dF (uHa) | mean abs dF (uHa) | max abs d eps_occ (uHa) |")
    print("|---|---|---|---|---|")
    rows = cutoff_errors(F, S, n_occ, pos, ao_ranges)
    for r in rows:
        print(f"| {r['cutoff_A']:g} | {100 * r['kept_pairs']:.0f} % | {r['max_dF_uHa']:.3g} | "
              f"{r['mean_dF_uHa']:.3g} | {r['max_deps_occ_uHa']:.3g} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "atoms": len(Z), "nao": len(F), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
