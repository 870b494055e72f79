"""Named splits, checked against the benchmark definitions by hand."""

import numpy as np
import pytest

from data_tools import splits as S


def _check_partition(sp, n):
    allidx = sp["train"] + sp["val"] + sp["test"]
    assert sorted(allidx) == list(range(n))


def test_md17_counts():
    assert S.md17_counts(4999, "water") == (500, 500, 3999)  # QHNet on SchNOrb water
    assert S.md17_counts(30000, "uracil") == (25000, 500, 4500)
    assert S.md17_counts(26978, "malondialdehyde") == (25000, 500, 1478)
    assert S.md17_counts(1001, "water") == (500, 500, 1)
    assert S.md17_counts(20, "water") == (2, 2, 16)  # 20 * 500/4999 = 2.0
    assert S.md17_counts(20, "ethanol") == (17, 1, 2)  # 20 * 25000/30000 = 16.7
    assert S.md17_counts(2, "water") == (2, 0, 0)
    with pytest.raises(ValueError, match="unknown MD17"):
        S.md17_counts(10, "aspirin")


def test_md17_split_is_qhnet_permutation():
    sp = S.md17_split(1200, "water")
    perm = np.random.RandomState(42).permutation(1200)  # QHNet: split_seed 42
    assert sp["train"] == sorted(perm[:500].tolist())
    assert sp["val"] == sorted(perm[500:1000].tolist())
    _check_partition(sp, 1200)


def test_random_split_80_10_10():
    sp = S.random_split(25)
    assert (len(sp["train"]), len(sp["val"]), len(sp["test"])) == (20, 2, 3)  # int() truncation
    assert sp["val"] == sorted(np.random.RandomState(43).permutation(25)[20:22].tolist())
    _check_partition(sp, 25)


def test_size_ood_by_atom_count():
    sp = S.size_ood_split([20, 21, 22, 23, 5, 29])
    assert sp == {"train": [0, 4], "val": [1, 2], "test": [3, 5]}


def test_geometry_split_per_trajectory():
    groups = [7] * 10 + [3] * 10 + [9] * 5
    sp = S.geometry_split(groups)
    _check_partition(sp, 25)
    for lo, hi, (tr, va) in [(0, 10, (8, 1)), (10, 20, (8, 1)), (20, 25, (4, 0))]:
        assert sum(lo <= i < hi for i in sp["train"]) == tr
        assert sum(lo <= i < hi for i in sp["val"]) == va
    # QH9 seeds each trajectory with the global index of its last frame
    first = np.random.RandomState(9).permutation(10)
    assert sp["val"][0] == first[8]


def test_mol_split_keeps_molecules_together():
    groups = np.repeat(np.arange(10), 4).tolist()
    sp = S.mol_split(groups)
    _check_partition(sp, 40)
    for part, count in [("train", 8), ("val", 1), ("test", 1)]:
        mols = {groups[i] for i in sp[part]}
        assert len(mols) == count and len(sp[part]) == 4 * count
    import random

    order = list(range(10))
    random.seed(43)  # QH9: random.seed(43); random.shuffle(index_list)
    random.shuffle(order)
    assert {groups[i] for i in sp["val"]} == {order[8]}
