"""Readers of the public QH9 files (Yu et al., NeurIPS 2023; divelab/AIRS QHBench).

Formats, as QH9's generation scripts write them and its ``datasets.py`` reads them:

* ``QH9Stable.db`` (SQLite): ``data(id INTEGER PRIMARY KEY, N INTEGER, Z BLOB, pos BLOB,
  Ham BLOB)``; ``Z`` int32, ``pos`` float64 ``(N, 3)`` in Angstrom (QM9 geometries),
  ``Ham`` float64 ``(nao, nao)`` = PySCF B3LYP/def2-SVP ``mf.get_fock()`` in Hartree and
  PySCF AO order (QH9's loader permutes it to its own order only when it loads it).
* ``QH9Dynamic_100k.db`` / ``QH9Dynamic_300k.db`` (SQLite): ``data(id, geo_id, N, Z, pos,
  ekin, epot, etot, time, Ham, converged)``; ``id`` is the QM9 molecule index (an int64
  blob), ``geo_id`` the MD step, ``pos`` float64 in **Bohr** (``mol.atom_coords()``),
  ``converged`` 0/1 (unconverged frames are in the file and in QH9's splits). Every
  trajectory is one contiguous block of 100 rows: QH9's splits take row ``r`` to belong
  to trajectory ``r // 100``; this reader checks that layout instead of assuming it.
* The processed LMDB (``processed/QH9Stable.lmdb``, ``QH9Dynamic.lmdb``): value = pickled
  ``dict(id, num_nodes, atoms, pos, Ham)`` (+ ``geo_id`` for dynamic) holding the SQLite
  blobs unchanged; the key is a 4-byte big-endian int, the QM9 ``id`` for stable and the
  row index for dynamic. Positions stay in the units of the SQLite file; ``converged`` is
  not carried over, so an LMDB import cannot flag unconverged frames.

Level of theory (QH9's README, divelab/AIRS#11, pyscf/pyscf#1480): QH9-stable and
QH9-dynamic-300k were computed with PySCF 2.2.1, whose ``"b3lyp"`` is B3LYP with VWN5
correlation (``"b3lyp5"`` in PySCF >= 2.3); QH9-dynamic-100k with PySCF 2.3.0, whose
``"b3lyp"`` uses VWN-RPA (``"b3lyp"`` today). The dataset records today's name as
``xc``, QH9's own as ``xc_source`` and the PySCF version as ``source_pyscf_version``.
A dynamic file whose version neither its path (``100k``/``300k``) nor its trajectory
count tells is refused unless ``xc`` is stated. The first QH9Dynamic.db (2023: 2,399
trajectories x 60 frames, a 50/5/5 split) is refused: its PySCF version and position
units are not documented.

Matrices are copied bit for bit; positions are converted to Angstrom with
``pyscf.data.nist.BOHR`` where the file stores Bohr. Splits are computed as QH9 computes
them (:mod:`data_tools.splits`), over the rows in file order.
"""

from __future__ import annotations

import io
import pickle
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from pyscf.data import nist

from data_tools import splits as S
from data_tools.readers.common import (
    ReaderError,
    import_metadata,
    nao_of,
    normalize_xc,
    xc_definition,
)
from hamnet.data import keys as K

STABLE_COLUMNS = ("id", "N", "Z", "pos", "Ham")
DYNAMIC_COLUMNS = ("id", "geo_id", "N", "Z", "pos", "Ham")
BASIS = "def2-svp"
XC_CHOICES = ("b3lyp5", "b3lyp")


@dataclass(frozen=True)
class QH9Version:
    """One published QH9 file: its level of theory and trajectory layout."""

    name: str  # e.g. "QH9-dynamic-300k"
    xc: str  # the functional in today's PySCF name
    pyscf: str  # PySCF version that computed it
    frames: Optional[int] = None  # frames per trajectory (dynamic)
    trajectories: Optional[int] = None  # trajectories in the published file (dynamic)


QH9_STABLE = QH9Version("QH9-stable", "b3lyp5", "2.2.1")
QH9_DYNAMIC = {
    "300k": QH9Version("QH9-dynamic-300k", "b3lyp5", "2.2.1", 100, 2998),
    "100k": QH9Version("QH9-dynamic-100k", "b3lyp", "2.3.0", 100, 999),
}
DYNAMIC_FRAMES = 100
OLD_DYNAMIC_FRAMES, OLD_DYNAMIC_TRAJECTORIES = 60, 2399
SUPPORTED = (
    "QH9Stable.db, QH9Dynamic_300k.db and QH9Dynamic_100k.db (trajectories of 100 frames, "
    "80/10/10 geometry split) and their processed LMDBs"
)
_XC_NOTE = {
    "b3lyp5": "B3LYP with VWN5 correlation, PySCF 2.2.1's 'b3lyp' and today's 'b3lyp5'",
    "b3lyp": "B3LYP with VWN-RPA correlation, 'b3lyp' since PySCF 2.3",
}


def sqlite_columns(path: Path) -> Optional[tuple[str, ...]]:
    """Columns of table ``data`` of an SQLite file, or None if it has none/is not SQLite."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute("PRAGMA table_info(data)").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return None
    return tuple(r[1] for r in rows) or None


def _int(value, what: str) -> int:
    if isinstance(value, (bytes, memoryview)):  # numpy int64 stored as an 8-byte blob
        value = bytes(value)
        if len(value) != 8:
            raise ReaderError(f"{what}: integer blob of {len(value)} bytes")
        return int(np.frombuffer(value, dtype="<i8")[0])
    return int(value)


def _atoms(blob, n: int, what: str) -> np.ndarray:
    blob = bytes(blob)
    for dtype in ("<i4", "<i8"):  # QH9 writes int32; accept int64 by its length
        if len(blob) == n * np.dtype(dtype).itemsize:
            z = np.frombuffer(blob, dtype=dtype).astype(np.int64)
            if np.all((z >= 1) & (z <= 118)):
                return z
    raise ReaderError(f"{what}: Z blob of {len(blob)} bytes is not {n} int32/int64 atomic numbers")


def _record(sid: str, n: int, z_blob, pos_blob, ham_blob, pos_unit: str) -> dict:
    z = _atoms(z_blob, n, sid)
    pos = np.frombuffer(bytes(pos_blob), dtype="<f8")
    if pos.size != 3 * n:
        raise ReaderError(f"{sid}: pos blob holds {pos.size} numbers, expected {3 * n}")
    pos = pos.reshape(n, 3) * (nist.BOHR if pos_unit == "bohr" else 1.0)
    ham = np.frombuffer(bytes(ham_blob), dtype="<f8")
    nao = nao_of(BASIS, z)
    if ham.size != nao * nao:
        raise ReaderError(
            f"{sid}: Ham holds {ham.size} numbers; def2-SVP for these {n} atoms has "
            f"{nao} AOs ({nao * nao} numbers) - not a QH9 Hamiltonian"
        )
    return {
        K.Z: z, K.POS: pos, K.F: ham.reshape(nao, nao).copy(),
        K.NOCC: int(z.sum()) // 2, K.SOURCE_ID: sid,
    }


# ---- which file, which functional -------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """What an imported QH9 file is: name, functional, PySCF version, trajectory of rows."""

    name: str
    xc: str
    pyscf: str
    groups: tuple = ()  # trajectory index of each row (dynamic)


def stable_source(path: Path, xc: Optional[str]) -> Source:
    """QH9-stable's level of theory; a stated ``xc`` must agree with it."""
    xc = normalize_xc(xc, XC_CHOICES, "QH9")
    _agree(xc, QH9_STABLE, path)
    return Source(QH9_STABLE.name, QH9_STABLE.xc, QH9_STABLE.pyscf)


def _agree(xc: Optional[str], version: QH9Version, path: Path) -> None:
    if xc is not None and xc != version.xc:
        raise ReaderError(
            f"{path} is {version.name}, computed with PySCF {version.pyscf}: its functional is "
            f"{_XC_NOTE[version.xc]}; --xc {xc} contradicts it: omit --xc or state "
            f"--xc {version.xc}"
        )


def trajectory_groups(mol_ids: Sequence[int], path: Path) -> tuple[int, list[int]]:
    """``(frames per trajectory, trajectory index of each row)`` of a QH9-dynamic file.

    Checks what QH9's splits assume (row ``r`` is in trajectory ``r // frames``): every
    molecule's frames are one contiguous block and all blocks have the same length,
    100 frames. The 2023 layout of 60 frames per trajectory is refused.
    """
    if not mol_ids:
        raise ReaderError(f"{path}: the file holds no rows")
    runs: list[list[int]] = []  # [mol id, first row, n rows]
    for row, mol in enumerate(mol_ids):
        if runs and runs[-1][0] == mol:
            runs[-1][2] += 1
        else:
            runs.append([mol, row, 1])
    first: dict[int, int] = {}
    for mol, start, _ in runs:
        if mol in first:
            raise ReaderError(
                f"{path}: the frames of QM9 molecule {mol} are not one contiguous block (rows "
                f"from {first[mol]} and again from {start}); QH9's splits assume each "
                "trajectory is one block of rows"
            )
        first[mol] = start
    lengths = [n for _, _, n in runs]
    if len(set(lengths)) > 1:
        common = max(set(lengths), key=lengths.count)
        mol, start, n = next(r for r in runs if r[2] != common)
        raise ReaderError(
            f"{path}: trajectories of different lengths (molecule {mol} has {n} frames at rows "
            f"{start}..{start + n - 1}, most have {common}); QH9's splits assume every "
            f"trajectory is one block of {DYNAMIC_FRAMES} rows"
        )
    frames = lengths[0]
    if frames == OLD_DYNAMIC_FRAMES:
        raise ReaderError(
            f"{path} has the layout of the first QH9Dynamic.db (2023: trajectories of "
            f"{OLD_DYNAMIC_FRAMES} frames, 50/5/5 geometry split), whose PySCF version and "
            f"position units are not documented; hamnet does not import it. Supported: "
            f"{SUPPORTED}"
        )
    if frames != DYNAMIC_FRAMES:
        raise ReaderError(
            f"{path}: every trajectory has {frames} frames, but QH9-dynamic trajectories have "
            f"{DYNAMIC_FRAMES} (QH9's splits take row r to trajectory r // {DYNAMIC_FRAMES}); "
            f"supported: {SUPPORTED}"
        )
    return frames, [row // frames for row in range(len(mol_ids))]


def _version_from_path(path: Path) -> Optional[QH9Version]:
    for part in reversed(Path(path).absolute().parts):  # the nearest name decides
        found = [v for k, v in QH9_DYNAMIC.items() if re.search(rf"qh9dynamic[_-]?{k}", part, re.I)]
        if len(found) == 1:
            return found[0]
    return None


def dynamic_source(path: Path, mol_ids: Sequence[int], xc: Optional[str]) -> Source:
    """Layout check, version and functional of a QH9-dynamic file (see module docstring)."""
    xc = normalize_xc(xc, XC_CHOICES, "QH9")
    _, groups = trajectory_groups(mol_ids, path)
    n_traj = groups[-1] + 1
    named = _version_from_path(path)
    counted = next((v for v in QH9_DYNAMIC.values() if v.trajectories == n_traj), None)
    if named is not None and counted is not None and named != counted:
        if xc is None:
            raise ReaderError(
                f"{path}: its path says {named.name} but it has the {n_traj} trajectories of "
                f"{counted.name}; state the functional: --xc {named.xc} ({named.name}) or "
                f"--xc {counted.xc} ({counted.name})"
            )
        named = counted = None  # the stated xc decides
    version = named or counted
    if version is not None:
        _agree(xc, version, path)
        return Source(version.name, version.xc, version.pyscf, tuple(groups))
    if xc is None:
        v3, v1 = QH9_DYNAMIC["300k"], QH9_DYNAMIC["100k"]
        raise ReaderError(
            f"{path}: cannot tell which QH9-dynamic version this is (its path names neither "
            f"100k nor 300k and it has {n_traj} trajectories, not {v3.trajectories} or "
            f"{v1.trajectories}), so not which B3LYP it holds: QH9-dynamic-300k is "
            f"{_XC_NOTE['b3lyp5']}, QH9-dynamic-100k is {_XC_NOTE['b3lyp']}. State it: "
            f"hamnet data import FILE --xc b3lyp5 (300k) or --xc b3lyp (100k)"
        )
    return Source("QH9-dynamic (version stated with --xc)", xc, "unknown (xc stated by the user)",
                  tuple(groups))


# ---- SQLite -----------------------------------------------------------------------------


def read_qh9_sqlite(path: Path, add: Callable[[dict], int], progress=None,
                    xc: Optional[str] = None) -> dict:
    """Import a ``QH9Stable.db`` or ``QH9Dynamic_*.db``; returns the metadata.

    ``xc`` states the functional ("b3lyp5" or "b3lyp") where the file does not tell it.
    """
    cols = sqlite_columns(path) or ()
    dynamic = all(c in cols for c in DYNAMIC_COLUMNS)
    if not dynamic and not all(c in cols for c in STABLE_COLUMNS):
        raise ReaderError(f"{path}: table 'data' lacks QH9 columns {STABLE_COLUMNS}")
    has_conv = dynamic and "converged" in cols
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    n_atoms, unconverged = [], []
    try:
        if dynamic:  # check the layout and resolve the functional before reading matrices
            id_rows = con.execute("SELECT id FROM data ORDER BY rowid")
            ids = [_int(r[0], f"{path} id") for r in id_rows]
            source = dynamic_source(path, ids, xc)
            conv = (", converged" if has_conv else "")
            sql = f"SELECT id, geo_id, N, Z, pos, Ham{conv} FROM data ORDER BY rowid"
        else:
            source = stable_source(path, xc)
            sql = "SELECT id, N, Z, pos, Ham FROM data ORDER BY rowid"
        for row in con.execute(sql):
            if dynamic:
                mol, geo = _int(row[0], f"{path} id"), _int(row[1], f"{path} geo_id")
                rec = _record(f"QH9Dynamic/{mol}/{geo}", int(row[2]), row[3], row[4], row[5],
                              "bohr")
                if has_conv:
                    rec[K.CONVERGED] = bool(int(row[6]))
            else:
                sid = f"QH9Stable/{_int(row[0], f'{path} id')}"
                rec = _record(sid, int(row[1]), row[2], row[3], row[4], "angstrom")
            index = add(rec)
            if rec.get(K.CONVERGED) is False:
                unconverged.append(int(index))
            n_atoms.append(len(rec[K.Z]))
            if progress:
                progress(1)
    except sqlite3.DatabaseError as exc:
        raise ReaderError(f"{path}: SQLite error while reading ({exc})") from exc
    finally:
        con.close()
    if not n_atoms:
        raise ReaderError(f"{path}: the file holds no rows")
    if dynamic and not has_conv:
        unconverged = None
    return qh9_metadata(path, "qh9-sqlite", source, n_atoms, unconverged if dynamic else [])


# ---- processed LMDB ---------------------------------------------------------------------


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles dicts, ints, strings and bytes only; any class is refused."""

    def find_class(self, module, name):
        raise ReaderError(
            f"the LMDB value references {module}.{name}; QH9's processed LMDB holds plain "
            "dicts of ints and bytes only, so this is not one"
        )


def _lmdb_values(store) -> Iterator[tuple[bytes, dict]]:
    for key in store.keys(b""):
        raw = store.get(key)
        try:
            value = _PlainUnpickler(io.BytesIO(raw)).load()
        except ReaderError:
            raise
        except Exception as exc:
            raise ReaderError(f"LMDB value of key {key!r} is not a QH9 pickle ({exc})") from exc
        yield key, value


def read_qh9_lmdb(path: Path, add: Callable[[dict], int], progress=None,
                  xc: Optional[str] = None) -> dict:
    """Import QH9's processed LMDB (``QH9Stable.lmdb`` or ``QH9Dynamic.lmdb``).

    Keys are QH9's: the QM9 ``id`` for stable, the row index for dynamic. The layout
    and version of a dynamic LMDB are checked after the pass (the values must be read
    to know the molecules); a refused file leaves no dataset behind.
    """
    from hamnet.data.store import Store

    store = Store(path)
    n_atoms, mols, dynamic = [], [], None
    try:
        row = 0
        for key, d in _lmdb_values(store):
            if not isinstance(d, dict) or not {"id", "num_nodes", "atoms", "pos", "Ham"} <= set(d):
                raise ReaderError(f"{path}: row {row} (key {key!r}) is not a QH9 record dict")
            is_dyn = "geo_id" in d
            if dynamic is None:
                dynamic = is_dyn
            elif dynamic != is_dyn:
                raise ReaderError(f"{path}: row {row} mixes QH9-stable and -dynamic records")
            mol = _int(d["id"], "id")
            expect = row if dynamic else mol
            if len(key) != 4 or int.from_bytes(key, "big") != expect:
                what = "row index" if dynamic else "QM9 id of its record"
                raise ReaderError(
                    f"{path}: key {key!r} of row {row} is not the 4-byte big-endian {what} "
                    f"{expect}, as QH9's processed LMDB has it"
                )
            if dynamic:
                sid = f"QH9Dynamic/{mol}/{_int(d['geo_id'], 'geo_id')}"
                mols.append(mol)
            else:
                sid = f"QH9Stable/{mol}"
            rec = _record(sid, int(d["num_nodes"]), d["atoms"], d["pos"], d["Ham"],
                          "bohr" if dynamic else "angstrom")
            add(rec)
            n_atoms.append(len(rec[K.Z]))
            row += 1
            if progress:
                progress(1)
    finally:
        store.close()
    if not n_atoms:
        raise ReaderError(f"{path}: the LMDB holds no records")
    if dynamic:
        source = dynamic_source(path, mols, xc)
    else:
        source = stable_source(path, xc)
    return qh9_metadata(path, "qh9-lmdb", source, n_atoms, None if dynamic else [])


# ---- metadata ---------------------------------------------------------------------------


def qh9_metadata(path: Path, fmt: str, source: Source, n_atoms,
                 unconverged: Optional[list]) -> dict:
    """Provenance, level of theory, unconverged frames and QH9's splits of an import.

    ``unconverged``: indices of the records whose SCF did not converge, ``None`` when
    the file does not say (QH9's processed LMDB of a dynamic file).
    """
    if source.groups:
        groups = list(source.groups)
        sp = {"geometry": S.geometry_split(groups), "mol": S.mol_split(groups)}
    else:
        sp = {"random": S.random_split(len(n_atoms)), "size_ood": S.size_ood_split(n_atoms)}
    deviations = "none in the numbers; energies and overlaps are not in the file"
    if unconverged is None:
        deviations += (
            "; QH9's processed LMDB does not carry the 'converged' column, so unconverged "
            "frames are not flagged (import the SQLite file to flag them)"
        )
    elif source.groups:
        deviations += (
            f"; {len(unconverged)} frames whose SCF did not converge are kept (as in QH9's "
            "splits) and flagged converged=False"
        )
    return import_metadata(
        path, fmt,
        **{
            K.META_XC: source.xc,
            K.META_XC_SOURCE: "b3lyp",
            K.META_XC_DEFINITION: xc_definition(source.xc),
            K.META_SOURCE_PYSCF_VERSION: source.pyscf,
            K.META_PYSCF_VERSION: source.pyscf,
            K.META_BASIS: BASIS,
            K.META_GRID_LEVEL: 3,
            K.META_CONV_TOL: 1e-9,
            K.META_UNCONVERGED: unconverged,
            K.META_PROVENANCE: (
                f"{source.name} (Yu et al., NeurIPS 2023 Datasets and Benchmarks), imported "
                f"from {Path(path).name}: Ham = PySCF {source.pyscf} B3LYP/def2-SVP "
                f"mf.get_fock() (xc='b3lyp': {_XC_NOTE[source.xc]}) with PySCF's default grid "
                "(level 3) and conv_tol (1e-9), copied unchanged (Hartree, PySCF AO order); "
                "positions converted to Angstrom where the file has Bohr."
            ),
            K.META_DEVIATIONS: deviations,
            K.META_SPLITS: sp,
        },
    )
