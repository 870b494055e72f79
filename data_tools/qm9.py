"""QM9's molecules and geometries, read from the ``qm9pack`` package.

``qm9pack`` (PyPI, MIT licence) ships QM9 (Ramakrishnan et al., Sci. Data 1, 140022
(2014)) as CSV: the ``dsgdb9nsd_*`` index, SMILES, elements and the
B3LYP/6-31G(2df,p) geometries in Angstrom of the 130,831 molecules that passed QM9's
consistency check. That is exactly QH9-stable's molecule set, in QH9's row order
(QH9 labels DimeNet's ``qm9_eV.npz``, which holds the same 130,831 molecules sorted by
QM9 index), so QH9's splits computed over these rows are QH9's splits.

Only the CSV files are read (``qm9pack``'s own loader needs pandas and
``pkg_resources``); the package is located without importing it.

* :func:`qm9_table` - every molecule's QM9 index, SMILES, atom and heavy-atom counts
  (parsed once per process, about a second).
* :func:`qm9_geometries` - ``(Z, positions)`` of chosen rows.
* :func:`priority_order` - the order in which the ``qh9-stable`` recipe labels
  molecules: a fixed, seeded, stratified order whose every prefix is a deliberate subset.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hamnet.errors import HamnetError

#: Molecules in QM9 after its consistency check, = QH9-stable's size.
QM9_SIZE = 130_831
_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_SYMBOL_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
_SYMBOL_RE = re.compile(r"'([A-Za-z]{1,2})'")


class QM9Error(HamnetError, RuntimeError):
    """qm9pack is missing, or its files are not the QM9 table hamnet expects."""


@dataclass(frozen=True)
class QM9Table:
    """All QM9 molecules in QH9 row order (row ``i`` is QH9-stable's molecule ``i``).

    Attributes
    ----------
    qm9_id : (130831,) int64
        QM9 index (the number in ``dsgdb9nsd_XXXXXX``), ascending.
    smiles : tuple of str
        QM9's SMILES (GDB-17 relaxed).
    n_atoms : (130831,) int64
        Atoms, hydrogens included (QH9's ``size_ood`` split uses this).
    n_heavy : (130831,) int64
        Non-hydrogen atoms (1 to 9).
    """

    qm9_id: np.ndarray
    smiles: tuple
    n_atoms: np.ndarray
    n_heavy: np.ndarray

    def __len__(self) -> int:
        return len(self.qm9_id)


def source_id(qm9_id: int) -> str:
    """QM9's own name of a molecule, e.g. ``dsgdb9nsd_000001``."""
    return f"dsgdb9nsd_{int(qm9_id):06d}"


def _data_dir() -> Path:
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise QM9Error(
            "the qh9-stable and qh9-dynamic recipes take QM9's molecules from the qm9pack "
            "package, which is not installed: pip install 'hamnet[data]' (or pip install qm9pack)"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    missing = [p for p in _PARTS if not (folder / p).is_file()]
    if missing:
        raise QM9Error(f"qm9pack at {folder.parent} lacks its data files {missing}; reinstall it")
    return folder


def _rows():
    """Yield ``(qm9_id, smiles, elements_text, xyz_text)`` for every CSV row."""
    csv.field_size_limit(1 << 30)
    folder = _data_dir()
    for part in _PARTS:
        with open(folder / part, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            try:
                cols = [header.index(k) for k in ("Index", "SMILES", "Elements", "XYZ_Ang")]
            except ValueError:
                raise QM9Error(
                    f"{folder / part}: unexpected columns {header[:8]}...; this hamnet reads "
                    "qm9pack 1.x"
                ) from None
            for row in reader:
                yield int(row[cols[0]]), row[cols[1]], row[cols[2]], row[cols[3]]


def _symbols(text: str) -> list:
    return _SYMBOL_RE.findall(text)


@functools.lru_cache(maxsize=1)
def qm9_table() -> QM9Table:
    """The whole QM9 table (cached per process). Raises :class:`QM9Error`."""
    ids, smiles, n_atoms, n_heavy = [], [], [], []
    for qid, smi, elements, _ in _rows():
        sym = _symbols(elements)
        ids.append(qid)
        smiles.append(smi)
        n_atoms.append(len(sym))
        n_heavy.append(sum(s != "H" for s in sym))
    table = QM9Table(
        np.asarray(ids, dtype=np.int64), tuple(smiles),
        np.asarray(n_atoms, dtype=np.int64), np.asarray(n_heavy, dtype=np.int64),
    )
    if len(table) != QM9_SIZE or np.any(np.diff(table.qm9_id) <= 0):
        raise QM9Error(
            f"qm9pack holds {len(table)} molecules (expected {QM9_SIZE}, in ascending QM9 "
            "index order); this is not the QM9 set QH9 was built from"
        )
    return table


def qm9_geometries(rows: Sequence[int]) -> dict:
    """``{row: (Z (n,) int64, positions (n, 3) float64 Angstrom)}`` for the given rows."""
    want = {int(r) for r in rows}
    bad = [r for r in want if not 0 <= r < QM9_SIZE]
    if bad:
        raise QM9Error(f"QM9 rows must lie in [0, {QM9_SIZE}); got {sorted(bad)[:5]}")
    out = {}
    for row, (qid, _, elements, xyz) in enumerate(_rows()):
        if row not in want:
            continue
        sym = _symbols(elements)
        try:
            Z = np.asarray([_SYMBOL_Z[s] for s in sym], dtype=np.int64)
        except KeyError as exc:
            raise QM9Error(f"{source_id(qid)}: element {exc.args[0]!r} is not H, C, N, O or F")
        pos = np.asarray(_parse_xyz(xyz), dtype=np.float64)
        if pos.shape != (len(Z), 3) or not np.all(np.isfinite(pos)):
            raise QM9Error(f"{source_id(qid)}: malformed geometry in qm9pack")
        out[row] = (Z, pos)
        if len(out) == len(want):
            break
    return out


def _parse_xyz(text: str) -> list:
    # "[[x,y,z],[x,y,z],...]" (Angstrom); split by hand, faster and stricter than eval.
    inner = text.strip()[2:-2]
    return [[float(v) for v in atom.split(",")] for atom in inner.split("],[")]


#: One round of :func:`priority_order`: heavy-atom strata, 5 standing for "at most 5".
PRIORITY_PATTERN = (5, 6, 5, 7, 5, 8, 5, 9)


def priority_order(n_heavy: np.ndarray, seed: int = 9, pattern: Sequence[int] = PRIORITY_PATTERN):
    """Rows in the order the ``qh9-stable`` recipe labels them.

    The molecules are grouped into strata by heavy atoms: at most 5 (175 molecules,
    written 5 in ``pattern``), 6, 7, 8 and 9. Each stratum is put in its own seeded random
    order, and the strata are interleaved by repeating ``pattern``, one molecule of the
    named stratum per entry (an exhausted stratum is skipped). With the default pattern
    half of every prefix are small, cheap molecules and the other half spread evenly over
    6-9 heavy atoms, QM9's typical sizes; every prefix is a stratified random sample, and
    a longer request extends a shorter one.

    Parameters
    ----------
    n_heavy : (n,) int
        Heavy atoms of every row (:attr:`QM9Table.n_heavy`).
    seed : int
        Seed of the legacy ``RandomState`` (stable across numpy versions).
    pattern : sequence of int
        Strata, one round of the interleaving.

    Returns
    -------
    (n,) int64
        A permutation of ``range(n)``.
    """
    n_heavy = np.minimum(np.asarray(n_heavy), 9)
    stratum = np.maximum(n_heavy, 5)  # 5 stands for "at most 5"
    rng = np.random.RandomState(seed)
    strata = {}
    for k in sorted(set(pattern) | set(np.unique(stratum).tolist())):
        rows = np.where(stratum == k)[0]
        strata[k] = list(rows[rng.permutation(len(rows))])
    pos = {k: 0 for k in strata}
    order = []
    while any(pos[k] < len(strata[k]) for k in pattern):
        for k in pattern:
            if pos[k] < len(strata[k]):
                order.append(strata[k][pos[k]])
                pos[k] += 1
    for k in strata:  # strata the pattern does not name, in order, at the end
        order += strata[k][pos[k]:]
    return np.asarray(order, dtype=np.int64)
