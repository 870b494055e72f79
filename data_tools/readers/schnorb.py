"""Reader of SchNOrb's MD17 Hamiltonian ASE databases (``schnorb_hamiltonian_*.db``).

Schema (SchNOrb ``HamiltonianParser`` + schnetpack ``AtomsData``; read by QHNet and
PhiSNet with ``ase.db.connect``): one ASE row per structure with ``numbers`` and
``positions`` (Angstrom) and ``row.data`` holding

* ``hamiltonian`` ``(nao, nao)``: ORCA PBE/def2-SVP Fock matrix, Hartree, ORCA AO order
  (float32 in the published files);
* ``overlap`` ``(nao, nao)``: the AO overlap, ORCA order;
* ``energy`` ``(1,)``: Hartree, minus ``metadata["mean_energy"]`` when SchNOrb's
  post-processing subtracted it (it is added back here);
* ``forces`` (not imported).

Old schnetpack files store each array base64-encoded with ``_shape_<name>`` and
``_dtype_<name>`` entries; both encodings are read. ``metadata["basisdef"]`` (SchNOrb's
``(idx, type, n, l, m)`` per AO and element, ORCA order) is checked against hamnet's
layout when present. Matrices are converted to PySCF order with
:mod:`data_tools.orca`.
"""

from __future__ import annotations

from base64 import b64decode
from pathlib import Path
from typing import Callable

import numpy as np

from data_tools import splits as S
from data_tools.orca import orca_basisdef, orca_to_pyscf
from data_tools.readers.common import ReaderError, import_metadata, layout_of, radial_ls_of
from hamnet.data import keys as K

#: Composition (sorted Z) -> MD17 molecule, for QHNet's split counts.
_MD17_BY_FORMULA = {
    (1, 1, 8): "water",
    (1, 1, 1, 1, 1, 1, 6, 6, 8): "ethanol",
    (1, 1, 1, 1, 6, 6, 6, 8, 8): "malondialdehyde",
    (1, 1, 1, 1, 6, 6, 6, 6, 7, 7, 8, 8): "uracil",
}


def is_ase_sqlite(path: Path) -> bool:
    """True for an SQLite file with ASE's database tables (checked read-only)."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return False
    return {"systems", "information"} <= names


def _array(data: dict, name: str, where: str):
    if name not in data:
        return None
    value = data[name]
    if isinstance(value, (str, bytes)):  # old schnetpack: base64 + shape + dtype
        try:
            shape, dtype = data[f"_shape_{name}"], data[f"_dtype_{name}"]
            return np.frombuffer(b64decode(value), dtype=np.dtype(dtype)).reshape(shape)
        except Exception as exc:
            raise ReaderError(f"{where}: cannot decode base64 field {name!r} ({exc})") from exc
    return np.asarray(value)


def _check_basisdef(meta: dict, basis: str, elements) -> bool:
    if "basisdef" not in meta:
        return False
    bd = np.asarray(meta["basisdef"])
    for z in elements:
        rows = bd[z][bd[z][:, 2] != 0]  # SchNOrb counts AOs by nonzero principal n
        have = [(int(l), int(m)) for l, m in rows[:, 3:5]]
        ls = radial_ls_of(basis, z)
        if have != orca_basisdef(ls):
            raise ReaderError(
                f"basisdef of element Z={z} lists (l, m) {have}, but ORCA's order of {basis} is "
                f"{orca_basisdef(ls)}; the file is not ORCA {basis} or not SchNOrb's schema"
            )
    return True


def read_schnorb(path: Path, add: Callable[[dict], int], progress=None, basis="def2-svp") -> dict:
    """Import a SchNOrb ASE database; returns the metadata (QHNet's MD17 split)."""
    from ase.db import connect

    db = connect(str(path), type="db")
    meta = db.metadata or {}
    offset = float(meta.get("mean_energy", 0.0))
    count, formula, checked = 0, None, False
    for row in db.select(sort="id"):
        where = f"{path} row {row.id}"
        data = row.get("data") or {}
        ham, ovl = _array(data, "hamiltonian", where), _array(data, "overlap", where)
        if ham is None:
            raise ReaderError(f"{where}: no 'hamiltonian' in row.data; not a SchNOrb database")
        z = np.asarray(row.numbers, dtype=np.int64)
        if not checked:
            checked = _check_basisdef(meta, basis, sorted(set(z.tolist())))
        lay = layout_of(basis, z)
        if ham.shape != (lay.nao, lay.nao):
            raise ReaderError(
                f"{where}: hamiltonian has shape {ham.shape}; {basis} for these atoms has "
                f"{lay.nao} AOs"
            )
        rec = {
            K.Z: z,
            K.POS: np.asarray(row.positions, dtype=np.float64),
            K.F: orca_to_pyscf(ham, lay),
            K.NOCC: int(z.sum()) // 2,
            K.SOURCE_ID: f"schnorb/{Path(path).stem}/{row.id}",
        }
        if ovl is not None:
            rec[K.S] = orca_to_pyscf(ovl, lay)
        energy = _array(data, "energy", where)
        if energy is not None:
            rec[K.ENERGY] = float(np.asarray(energy, dtype=np.float64).reshape(-1)[0]) + offset
        add(rec)
        formula = formula or tuple(sorted(z.tolist()))
        count += 1
        if progress:
            progress(1)
    if count == 0:
        raise ReaderError(f"{path}: the ASE database holds no rows")
    molecule = _MD17_BY_FORMULA.get(formula)
    sp = {"qhnet": S.md17_split(count, molecule)} if molecule else {}
    return import_metadata(
        path, "schnorb",
        **{
            K.META_XC: "pbe",
            K.META_BASIS: basis,
            K.META_PYSCF_VERSION: "not used (ORCA)",
            K.META_PROVENANCE: (
                f"SchNOrb MD17 Hamiltonians (Schuett et al., Nat. Commun. 10, 5024 (2019)) "
                f"imported from {Path(path).name}: ORCA PBE/{basis} Fock and overlap matrices, "
                "converted from ORCA to PySCF AO order (m order 0,+1,-1,...; sign of |m|=3 "
                "f and |m|=3,4 g functions) without changing any value"
                + (f"; energies + mean_energy {offset}" if offset else "")
                + (f"; QHNet {molecule} split (RandomState(42))" if molecule else "")
            ),
            K.META_DEVIATIONS: (
                "ORCA's integration grid and SCF settings, not PySCF's: compare with PySCF "
                "labels only to the accuracy of the two programs"
                + ("" if checked else "; basisdef metadata absent, AO layout not cross-checked")
            ),
            K.META_SPLITS: sp,
        },
    )
