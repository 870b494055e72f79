"""Named train/val/test splits, defined as the published benchmarks define them.

Each function returns ``{"train": [...], "val": [...], "test": [...]}`` of record
indices (0-based, into the dataset in its stored order).

* :func:`md17_split` - QHNet's MD17 protocol: ``np.random.RandomState(42)``
  permutation, the first ``n_train`` train, the next ``n_val`` val, the rest test;
  counts from :data:`MD17_COUNTS`, scaled down for small sets.
* :func:`random_split` - QH9 ``random``: ``RandomState(43)`` permutation, 80/10/10
  with ``int()`` truncation, the remainder in test.
* :func:`size_ood_split` - QH9 ``size_ood``: train <= 20 atoms, val 21-22, test >= 23.
* :func:`geometry_split` - QH9-dynamic ``geometry``: within every trajectory, 80/10/10
  of its frames by ``RandomState(<index of its last frame>)`` permutation.
* :func:`mol_split` - QH9-dynamic ``mol``: molecules shuffled with ``random.seed(43)``,
  80/10/10 of the molecules, every frame follows its molecule.
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np

from hamnet.data.splits import random_split  # noqa: F401  QH9 ``random``: the one random split

#: QHNet's MD17 (train, val) counts and the size of the published SchNOrb set.
MD17_COUNTS = {
    "water": (500, 500, 4999),
    "ethanol": (25000, 500, 30000),
    "malondialdehyde": (25000, 500, 26978),
    "uracil": (25000, 500, 30000),
}


def _parts(train, val, test) -> dict:
    return {
        "train": sorted(int(i) for i in train),
        "val": sorted(int(i) for i in val),
        "test": sorted(int(i) for i in test),
    }


def md17_counts(n: int, molecule: str) -> tuple[int, int, int]:
    """``(n_train, n_val, n_test)`` for ``n`` structures of an MD17 molecule.

    QHNet's counts when ``n`` exceeds ``n_train + n_val``; otherwise both are scaled by
    ``n / published_size`` (rounded, at least 1 each while ``n >= 3``) and the rest
    is test.
    """
    if molecule not in MD17_COUNTS:
        raise ValueError(f"unknown MD17 molecule {molecule!r}; known: {sorted(MD17_COUNTS)}")
    if n < 0:
        raise ValueError(f"number of structures must be >= 0, got {n}")
    n_train, n_val, total = MD17_COUNTS[molecule]
    if n > n_train + n_val:
        return n_train, n_val, n - n_train - n_val
    if n < 3:
        return n, 0, 0
    tr = max(1, round(n * n_train / total))
    va = max(1, round(n * n_val / total))
    tr = min(tr, n - 2)
    va = min(va, n - tr - 1)
    return tr, va, n - tr - va


def md17_split(n: int, molecule: str, seed: int = 42) -> dict:
    """QHNet MD17 split of ``n`` structures (see :func:`md17_counts`)."""
    tr, va, _ = md17_counts(n, molecule)
    perm = np.random.RandomState(seed).permutation(n)
    return _parts(perm[:tr], perm[tr : tr + va], perm[tr + va :])


def restrict(split: dict, rows: Sequence[int]) -> dict:
    """A split of a full set, restricted to the records whose full-set index is ``rows``.

    ``rows[i]`` is the full-set index of record ``i``; the result names record indices.
    This is how QH9's splits of all 130,831 QM9 molecules apply to a labeled subset.
    """
    part_of = {}
    for part, members in split.items():
        for m in members:
            part_of[int(m)] = part
    out = {p: [] for p in split}
    for i, r in enumerate(rows):
        if int(r) in part_of:
            out[part_of[int(r)]].append(i)
    return _parts(out.get("train", []), out.get("val", []), out.get("test", []))


def size_ood_split(n_atoms: Sequence[int]) -> dict:
    """QH9 ``size_ood`` split by total atom count (hydrogens included)."""
    n = np.asarray(n_atoms)
    return _parts(np.where(n <= 20)[0], np.where((n >= 21) & (n <= 22))[0], np.where(n >= 23)[0])


def _groups(mol_ids: Sequence) -> list[list[int]]:
    """Record indices of each molecule, molecules in order of first appearance."""
    order: dict = {}
    for i, m in enumerate(mol_ids):
        order.setdefault(m, []).append(i)
    return list(order.values())


def geometry_split(mol_ids: Sequence, ratio=(0.8, 0.1)) -> dict:
    """QH9-dynamic ``geometry`` split: 80/10/10 of the frames of every trajectory.

    For a trajectory whose frames are records ``idx`` (ascending), the permutation is
    ``RandomState(idx[-1]).permutation(len(idx))``, as QH9 seeds it with the global
    index of the trajectory's last frame.
    """
    train, val, test = [], [], []
    for idx in _groups(mol_ids):
        k = len(idx)
        n_tr, n_va = int(k * ratio[0]), int(k * ratio[1])
        perm = np.random.RandomState(idx[-1]).permutation(k)
        idx = np.asarray(idx)
        train += idx[perm[:n_tr]].tolist()
        val += idx[perm[n_tr : n_tr + n_va]].tolist()
        test += idx[perm[n_tr + n_va :]].tolist()
    return _parts(train, val, test)


def mol_split(mol_ids: Sequence, seed: int = 43, ratio=(0.8, 0.1)) -> dict:
    """QH9-dynamic ``mol`` split: whole molecules to train/val/test (80/10/10)."""
    groups = _groups(mol_ids)
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    n_tr, n_va = int(len(order) * ratio[0]), int(len(order) * ratio[1])
    pick = lambda sel: [i for g in sel for i in groups[g]]  # noqa: E731
    return _parts(pick(order[:n_tr]), pick(order[n_tr : n_tr + n_va]), pick(order[n_tr + n_va :]))
