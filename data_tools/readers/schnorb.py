"""Reader of SchNOrb's MD17 Hamiltonian ASE databases (``schnorb_hamiltonian_*.db``).

Schema (SchNOrb ``HamiltonianParser`` + schnetpack ``AtomsData``; read by QHNet and
PhiSNet with ``ase.db.connect``): one ASE row per structure with ``numbers`` and
``positions`` (Angstrom) and ``row.data`` holding

* ``hamiltonian`` ``(nao, nao)``: ORCA def2-SVP Fock matrix, Hartree, ORCA AO order
  (float32 in the published files); PBE, except ``schnorb_hamiltonian_ethanol_hf.db``,
  which is Hartree-Fock;
* ``overlap`` ``(nao, nao)``: the AO overlap, ORCA order;
* ``energy`` ``(1,)``: Hartree, minus ``metadata["energy_offset"]`` when SchNOrb's parser
  was given one and minus ``metadata["mean_energy"]`` when its post-processing subtracted
  the mean (both are added back here, and the result must be a plausible total energy
  for the molecule: :func:`data_tools.readers.common.check_energy`);
* ``forces`` (not imported).

Level of theory (``xc``: ``"pbe"`` or ``"hf"``): from the file name (``..._hf.db``,
``..._dft.db``/``..._pbe.db``) or a metadata entry (``xc``, ``functional``, ``method``,
``level_of_theory``, ``theory``); else PBE for water, malondialdehyde and uracil, which
SchNOrb published at PBE only. Ethanol (published at both) or an unknown molecule
without such a hint is refused unless ``xc`` is stated.

Old schnetpack files store each array base64-encoded with ``_shape_<name>`` and
``_dtype_<name>`` entries; both encodings are read. ``metadata["basisdef"]`` (SchNOrb's
``(idx, type, n, l, m)`` per AO and element, ORCA order) is checked against hamnet's
layout when present. Matrices are converted to PySCF order with
:mod:`data_tools.orca`.
"""

from __future__ import annotations

import re
from base64 import b64decode
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from data_tools import splits as S
from data_tools.orca import orca_basisdef, orca_to_pyscf
from data_tools.readers.common import (
    ReaderError,
    check_energy,
    import_metadata,
    layout_of,
    normalize_xc,
    radial_ls_of,
    xc_definition,
)
from hamnet.data import keys as K

#: Composition (sorted Z) -> MD17 molecule, for QHNet's split counts.
_MD17_BY_FORMULA = {
    (1, 1, 8): "water",
    (1, 1, 1, 1, 1, 1, 6, 6, 8): "ethanol",
    (1, 1, 1, 1, 6, 6, 6, 8, 8): "malondialdehyde",
    (1, 1, 1, 1, 6, 6, 6, 6, 7, 7, 8, 8): "uracil",
}

XC_CHOICES = ("pbe", "hf")
#: Molecules SchNOrb published at PBE/def2-SVP only (ethanol is at PBE and at HF).
_PBE_ONLY = ("water", "malondialdehyde", "uracil")
_NAME_TOKENS = {"hf": "hf", "dft": "pbe", "pbe": "pbe"}
_META_KEYS = ("xc", "functional", "method", "level_of_theory", "theory")
_LABEL = {"pbe": "PBE", "hf": "HF"}


def _meta_theory(value, path: Path) -> str:
    v = re.sub(r"[\s_]", "", str(value).lower()).split("/")[0]
    if v in ("hf", "rhf", "hartree-fock", "hartreefock", "scf"):
        return "hf"
    if v in ("pbe", "dft", "pbepbe", "pbe,pbe"):
        return "pbe"
    raise ReaderError(
        f"{path}: metadata names the level of theory {value!r}; SchNOrb's files are PBE or HF"
    )


def level_of_theory(path: Path, meta: dict, molecule: Optional[str],
                    xc: Optional[str] = None) -> tuple[str, str]:
    """``(xc, how it was known)`` of a SchNOrb file; :class:`ReaderError` if ambiguous."""
    xc = normalize_xc(xc, XC_CHOICES, "SchNOrb's files")
    said: dict[str, set] = {"file name": set(), "metadata": set()}
    for token in re.split(r"[^a-z0-9]+", Path(path).stem.lower()):
        if token in _NAME_TOKENS:
            said["file name"].add(_NAME_TOKENS[token])
    for key in _META_KEYS:
        if key in meta:
            said["metadata"].add(_meta_theory(meta[key], path))
    found = set().union(*said.values())
    if len(found) > 1:
        detail = "; ".join(f"{k} says {'/'.join(sorted(v))}" for k, v in said.items() if v)
        raise ReaderError(f"{path}: contradictory level of theory ({detail}); state it with --xc")
    if found:
        how = " and ".join(k for k, v in said.items() if v)
        (theory,) = found
        if xc is not None and xc != theory:
            raise ReaderError(f"{path}: its {how} says {theory}, so --xc {xc} contradicts it")
        return theory, f"from the {how}"
    if xc is not None:
        return xc, "stated with --xc"
    if molecule in _PBE_ONLY:
        return "pbe", f"SchNOrb published {molecule} at PBE only"
    what = (
        "SchNOrb published ethanol at PBE (schnorb_hamiltonian_ethanol_dft.db) and at "
        "Hartree-Fock (schnorb_hamiltonian_ethanol_hf.db)"
        if molecule == "ethanol" else "its molecule is not one of SchNOrb's"
    )
    raise ReaderError(
        f"{path}: cannot tell its level of theory: {what}, and neither the file name nor "
        "its metadata says which; state it: hamnet data import FILE --xc pbe (or --xc hf)"
    )


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


def _offsets(meta: dict, path: Path) -> tuple[float, str]:
    """Constant SchNOrb subtracted from every energy, and a note saying which."""
    total, notes = 0.0, []
    for key in ("energy_offset", "mean_energy"):
        if meta.get(key) is not None:
            try:
                value = float(np.asarray(meta[key], dtype=np.float64).reshape(()))
            except (TypeError, ValueError) as exc:
                raise ReaderError(f"{path}: metadata {key}={meta[key]!r} is not a number") from exc
            total += value
            notes.append(f"{key} {value!r}")
    return total, " + ".join(notes)


def read_schnorb(path: Path, add: Callable[[dict], int], progress=None, basis="def2-svp",
                 xc: Optional[str] = None) -> dict:
    """Import a SchNOrb ASE database; returns the metadata (QHNet's MD17 split).

    ``xc`` ("pbe" or "hf") states the level of theory where the file does not tell it.
    """
    from ase.db import connect

    db = connect(str(path), type="db")
    meta = db.metadata or {}
    offset, offset_note = _offsets(meta, path)
    hint = (f"metadata {offset_note} added back" if offset_note
            else "the metadata has no mean_energy or energy_offset to add back")
    count, formula, checked, theory = 0, None, False, None
    for row in db.select(sort="id"):
        where = f"{path} row {row.id}"
        data = row.get("data") or {}
        ham, ovl = _array(data, "hamiltonian", where), _array(data, "overlap", where)
        if ham is None:
            raise ReaderError(f"{where}: no 'hamiltonian' in row.data; not a SchNOrb database")
        z = np.asarray(row.numbers, dtype=np.int64)
        if theory is None:
            formula = tuple(sorted(z.tolist()))
            theory = level_of_theory(path, meta, _MD17_BY_FORMULA.get(formula), xc)
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
            check_energy(rec[K.ENERGY], z, where, hint)
        add(rec)
        count += 1
        if progress:
            progress(1)
    if count == 0:
        raise ReaderError(f"{path}: the ASE database holds no rows")
    molecule = _MD17_BY_FORMULA.get(formula)
    xc_name, how = theory
    label = _LABEL[xc_name]
    sp = {"qhnet": S.md17_split(count, molecule)} if molecule else {}
    return import_metadata(
        path, "schnorb",
        **{
            K.META_XC: xc_name,
            K.META_XC_DEFINITION: xc_definition(xc_name),
            K.META_BASIS: basis,
            K.META_PYSCF_VERSION: "not used (ORCA)",
            K.META_PROVENANCE: (
                f"SchNOrb MD17 Hamiltonians (Schuett et al., Nat. Commun. 10, 5024 (2019)) "
                f"imported from {Path(path).name}: ORCA {label}/{basis} Fock and overlap "
                f"matrices (level of theory {how}), converted from ORCA to PySCF AO order "
                "(m order 0,+1,-1,...; sign of |m|=3 f and |m|=3,4 g functions) without "
                "changing any value"
                + (f"; energies + {offset_note}" if offset_note else "")
                + (f"; QHNet {molecule} split (RandomState(42))" if molecule else "")
            ),
            K.META_DEVIATIONS: (
                ("ORCA's integration grid and SCF settings" if xc_name != "hf"
                 else "ORCA's SCF settings") + ", not PySCF's: compare with PySCF "
                "labels only to the accuracy of the two programs"
                + ("" if checked else "; basisdef metadata absent, AO layout not cross-checked")
            ),
            K.META_SPLITS: sp,
        },
    )
