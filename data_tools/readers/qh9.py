"""Readers of the public QH9 files (Yu et al., NeurIPS 2023; divelab/AIRS QHBench).

Formats, as QH9's generation scripts write them and its ``datasets.py`` reads them:

* ``QH9Stable.db`` (SQLite): ``data(id INTEGER PRIMARY KEY, N INTEGER, Z BLOB, pos BLOB,
  Ham BLOB)``; ``Z`` int32, ``pos`` float64 ``(N, 3)`` in Angstrom (QM9 geometries),
  ``Ham`` float64 ``(nao, nao)`` = PySCF B3LYP/def2-SVP ``mf.get_fock()`` in Hartree and
  PySCF AO order (QH9's loader permutes it to its own order only when it loads it).
* ``QH9Dynamic_*.db`` (SQLite): ``data(id, geo_id, N, Z, pos, ekin, epot, etot, time,
  Ham, converged)``; ``id`` is the QM9 molecule index (an int64 blob in the published
  files), ``geo_id`` the MD step, ``pos`` float64 in **Bohr** (``mol.atom_coords()``).
* The processed LMDB (``processed/QH9Stable.lmdb``, ``QH9Dynamic.lmdb``): key = row
  index as 4-byte big-endian int, value = pickled ``dict(id, num_nodes, atoms, pos,
  Ham)`` (+ ``geo_id`` for dynamic) holding the SQLite blobs unchanged; positions stay
  in the units of the SQLite file they came from.

Matrices are copied bit for bit; positions are converted to Angstrom with
``pyscf.data.nist.BOHR`` where the file stores Bohr. Splits are computed as QH9 computes
them (:mod:`data_tools.splits`), over the rows in file order.
"""

from __future__ import annotations

import io
import pickle
import sqlite3
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
from pyscf.data import nist

from data_tools import splits as S
from data_tools.readers.common import ReaderError, import_metadata, nao_of
from hamnet.data import keys as K

STABLE_COLUMNS = ("id", "N", "Z", "pos", "Ham")
DYNAMIC_COLUMNS = ("id", "geo_id", "N", "Z", "pos", "Ham")


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


def _record(sid: str, n: int, z_blob, pos_blob, ham_blob, pos_unit: str, basis) -> dict:
    z = _atoms(z_blob, n, sid)
    pos = np.frombuffer(bytes(pos_blob), dtype="<f8")
    if pos.size != 3 * n:
        raise ReaderError(f"{sid}: pos blob holds {pos.size} numbers, expected {3 * n}")
    pos = pos.reshape(n, 3) * (nist.BOHR if pos_unit == "bohr" else 1.0)
    ham = np.frombuffer(bytes(ham_blob), dtype="<f8")
    nao = nao_of(basis, z)
    if ham.size != nao * nao:
        raise ReaderError(
            f"{sid}: Ham holds {ham.size} numbers; def2-SVP for these {n} atoms has "
            f"{nao} AOs ({nao * nao} numbers) - not a QH9 Hamiltonian"
        )
    return {
        K.Z: z, K.POS: pos, K.F: ham.reshape(nao, nao).copy(),
        K.NOCC: int(z.sum()) // 2, K.SOURCE_ID: sid,
    }


def read_qh9_sqlite(path: Path, add: Callable[[dict], int], progress=None) -> dict:
    """Import a ``QH9Stable.db`` or ``QH9Dynamic_*.db``; returns the metadata."""
    cols = sqlite_columns(path) or ()
    dynamic = all(c in cols for c in DYNAMIC_COLUMNS)
    if not dynamic and not all(c in cols for c in STABLE_COLUMNS):
        raise ReaderError(f"{path}: table 'data' lacks QH9 columns {STABLE_COLUMNS}")
    basis = "def2-svp"
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    n_atoms, groups = [], []
    try:
        if dynamic:
            sql = "SELECT id, geo_id, N, Z, pos, Ham FROM data ORDER BY rowid"
        else:
            sql = "SELECT id, N, Z, pos, Ham FROM data ORDER BY rowid"
        for row in con.execute(sql):
            if dynamic:
                mol, geo = _int(row[0], f"{path} id"), _int(row[1], f"{path} geo_id")
                sid = f"QH9Dynamic/{mol}/{geo}"
                rec = _record(sid, int(row[2]), row[3], row[4], row[5], "bohr", basis)
                groups.append(mol)
            else:
                sid = f"QH9Stable/{_int(row[0], f'{path} id')}"
                rec = _record(sid, int(row[1]), row[2], row[3], row[4], "angstrom", basis)
            add(rec)
            n_atoms.append(len(rec[K.Z]))
            if progress:
                progress(1)
    except sqlite3.DatabaseError as exc:
        raise ReaderError(f"{path}: SQLite error while reading ({exc})") from exc
    finally:
        con.close()
    return qh9_metadata(path, "qh9-sqlite", dynamic, n_atoms, groups)


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


def read_qh9_lmdb(path: Path, add: Callable[[dict], int], progress=None) -> dict:
    """Import QH9's processed LMDB (``QH9Stable.lmdb`` or ``QH9Dynamic.lmdb``)."""
    from hamnet.data.store import Store

    store = Store(path)
    n_atoms, groups, dynamic = [], [], None
    try:
        expect = 0
        for key, d in _lmdb_values(store):
            if len(key) != 4 or int.from_bytes(key, "big") != expect:
                raise ReaderError(
                    f"{path}: key {key!r} is not the 4-byte big-endian row index {expect}"
                )
            if not isinstance(d, dict) or not {"id", "num_nodes", "atoms", "pos", "Ham"} <= set(d):
                raise ReaderError(f"{path}: row {expect} is not a QH9 record dict")
            is_dyn = "geo_id" in d
            if dynamic is None:
                dynamic = is_dyn
            elif dynamic != is_dyn:
                raise ReaderError(f"{path}: row {expect} mixes QH9-stable and -dynamic records")
            if dynamic:
                mol = _int(d["id"], "id")
                sid = f"QH9Dynamic/{mol}/{_int(d['geo_id'], 'geo_id')}"
                groups.append(mol)
            else:
                sid = f"QH9Stable/{_int(d['id'], 'id')}"
            rec = _record(sid, int(d["num_nodes"]), d["atoms"], d["pos"], d["Ham"],
                          "bohr" if dynamic else "angstrom", "def2-svp")
            add(rec)
            n_atoms.append(len(rec[K.Z]))
            expect += 1
            if progress:
                progress(1)
    finally:
        store.close()
    if not n_atoms:
        raise ReaderError(f"{path}: the LMDB holds no records")
    return qh9_metadata(path, "qh9-lmdb", bool(dynamic), n_atoms, groups)


def qh9_metadata(path: Path, fmt: str, dynamic: bool, n_atoms, groups) -> dict:
    """Provenance and QH9's splits for an imported QH9 file."""
    if dynamic:
        sp = {"geometry": S.geometry_split(groups), "mol": S.mol_split(groups)}
        name = "QH9-dynamic"
    else:
        sp = {"random": S.random_split(len(n_atoms)), "size_ood": S.size_ood_split(n_atoms)}
        name = "QH9-stable"
    return import_metadata(
        path, fmt,
        **{
            K.META_XC: "b3lyp",
            K.META_BASIS: "def2-svp",
            K.META_GRID_LEVEL: 3,
            K.META_CONV_TOL: 1e-9,
            K.META_PYSCF_VERSION: "unrecorded (QH9 used the PySCF of 2023)",
            K.META_PROVENANCE: (
                f"{name} (Yu et al., NeurIPS 2023 Datasets and Benchmarks), imported from "
                f"{Path(path).name}: Ham = PySCF B3LYP/def2-SVP mf.get_fock() with PySCF's "
                "default grid (level 3) and conv_tol (1e-9), copied unchanged (Hartree, PySCF "
                "AO order); positions converted to Angstrom where the file has Bohr."
            ),
            K.META_DEVIATIONS: "none in the numbers; energies and overlaps are not in the file",
            K.META_SPLITS: sp,
        },
    )
