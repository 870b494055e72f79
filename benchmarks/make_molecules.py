"""Write geometry files (xyz, Angstrom) for the SCF benchmarks of the shipped model.

Two sets, chosen so that neither overlaps the shipped model's training data:

* ``--qm9 N``: N QM9 molecules drawn (seeded) from the *test* part of QH9's ``random``
  split over all 130,831 molecules, excluding every molecule in ``--exclude STORE``
  (the labeled store the model was trained on), with ``--heavy`` heavy atoms (default
  7-9, QM9's typical sizes). Geometries are QM9's own.
* ``--smiles NAME=SMILES ...``: larger molecules outside the training sizes, embedded
  with RDKit ETKDGv3 + MMFF94 (:func:`data_tools.geometry.embed_smiles`, seed 0).

Example::

    python benchmarks/make_molecules.py --qm9 12 --exclude data/qh9-stable-snap --out runs/mols/qm9
    python benchmarks/make_molecules.py --drug-like --out runs/mols/large
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

#: H/C/N/O/F drug-like molecules with 10-16 heavy atoms (larger than any QM9 molecule).
DRUG_LIKE = {
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",  # 11 heavy atoms
    "nicotine": "CN1CCCC1c1cccnc1",  # 12
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",  # 13
    "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",  # 14
    "ibuprofen": "CC(C)Cc1ccc(cc1)C(C)C(=O)O",  # 15
    "flucytosine-benzyl": "Nc1nc(=O)n(Cc2ccccc2)cc1F",  # 16
}


def write_xyz(path: Path, Z, pos, comment: str) -> None:
    from pyscf.data.elements import ELEMENTS

    lines = [str(len(Z)), comment]
    lines += [f"{ELEMENTS[int(z)]:<2} {x:.10f} {y:.10f} {w:.10f}" for z, (x, y, w) in zip(Z, pos)]
    path.write_text("\n".join(lines) + "\n")


def qm9_test_molecules(n: int, exclude, heavy, seed: int = 0) -> list:
    """Rows of ``n`` QM9 molecules from QH9's random-split test part, not in ``exclude``."""
    from data_tools import qm9
    from data_tools import splits as S

    table = qm9.qm9_table()
    test = np.asarray(S.random_split(qm9.QM9_SIZE)["test"])
    test = test[np.isin(table.n_heavy[test], heavy)]
    taken = set()
    if exclude:
        from hamnet.data import keys as K
        from hamnet.data import open_dataset

        with open_dataset(exclude) as ds:
            taken = {ds[i][K.SOURCE_ID] for i in range(len(ds))}
    rng = np.random.RandomState(seed)
    out = []
    for row in test[rng.permutation(len(test))]:
        if qm9.source_id(table.qm9_id[row]) not in taken:
            out.append(int(row))
        if len(out) == n:
            break
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the .xyz files")
    p.add_argument("--qm9", type=int, default=0, metavar="N", help="held-out QM9 test molecules")
    p.add_argument("--heavy", type=int, nargs="+", default=[7, 8, 9], help="heavy-atom counts")
    p.add_argument("--exclude", help="store whose molecules are excluded (the training data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drug-like", action="store_true", help="the DRUG_LIKE set (10-16 heavy atoms)")
    p.add_argument("--only", nargs="+", help="with --drug-like: just these names")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.qm9:
        from data_tools import qm9

        rows = qm9_test_molecules(args.qm9, args.exclude, args.heavy, args.seed)
        geoms = qm9.qm9_geometries(rows)
        ids = qm9.qm9_table().qm9_id
        for row in rows:
            name = qm9.source_id(ids[row])
            write_xyz(out / f"{name}.xyz", *geoms[row], f"{name} (QM9 geometry; QH9 random/test)")
    if args.drug_like:
        from data_tools.geometry import embed_smiles

        for name, smi in DRUG_LIKE.items():
            if args.only and name not in args.only:
                continue
            Z, pos = embed_smiles(smi, 0)
            write_xyz(out / f"{name}.xyz", Z, pos, f"{name} {smi} (RDKit ETKDGv3 + MMFF94)")
    print(f"wrote {len(list(out.glob('*.xyz')))} xyz files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
