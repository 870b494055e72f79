"""Selecting records by convergence (hamnet.data.select)."""

import numpy as np
import pytest

from hamnet.data import DatasetError, keys as K, open_dataset, write_dataset
from hamnet.data.select import converged_indices, unconverged_indices


def _records(flags):
    rng = np.random.default_rng(0)
    out = []
    for i, ok in enumerate(flags):
        f = rng.normal(size=(5, 5))
        out.append({K.Z: np.array([1, 1]), K.POS: np.array([[0, 0, 0], [0, 0, 0.74 + 0.01 * i]]),
                    K.F: f + f.T, K.SOURCE_ID: f"h2/{i}", K.CONVERGED: ok})
    return out


def _meta(recipe, unconverged="absent"):
    meta = {K.META_RECIPE: recipe, K.META_XC: "b3lyp5", K.META_BASIS: "def2-svp"}
    if unconverged != "absent":
        meta[K.META_UNCONVERGED] = unconverged
    return meta


def test_converged_indices(tmp_path):
    flags = [True, False, True, True, False, True]
    path = write_dataset(tmp_path / "a", _records(flags), _meta("import:qh9-sqlite", [1, 4]))
    with open_dataset(path) as ds:
        assert [ds[i][K.CONVERGED] for i in range(6)] == flags  # False is stored and read back
        assert unconverged_indices(ds) == [1, 4]
        assert converged_indices(ds) == [0, 2, 3, 5]
        assert converged_indices(ds, [5, 4, 1, 0]) == [5, 0]  # order kept
    # a store made by `hamnet data make` holds converged SCFs only
    path = write_dataset(tmp_path / "b", _records([True] * 3), _meta("md17-water"))
    with open_dataset(path) as ds:
        assert converged_indices(ds, [2, 0]) == [2, 0]


@pytest.mark.parametrize("unconverged, message", [
    (None, "does not record which SCFs converged"),
    ("absent", "does not record which SCFs converged"),
    ([7], "must list record indices in 0..2"),
])
def test_converged_indices_refuses_unknown(tmp_path, unconverged, message):
    meta = _meta("import:qh9-lmdb", unconverged)
    path = write_dataset(tmp_path / "a", _records([True] * 3), meta)
    with open_dataset(path) as ds, pytest.raises(DatasetError, match=message):
        converged_indices(ds)


def test_training_can_exclude_unconverged_records(tmp_path):
    """data.exclude_unconverged drops flagged records from train and val, never from test."""
    from hamnet.train.config import load_config
    from hamnet.train.data import run_split

    flags = [True, False, True, True, False, True]
    meta = _meta("import:qh9-sqlite", [1, 4])
    meta[K.META_SPLITS] = {"geometry": {"train": [0, 1, 2], "val": [3, 4], "test": [5]},
                           "mol": {"train": [0, 1], "val": [2], "test": [3, 4, 5]}}
    path = write_dataset(tmp_path / "a", _records(flags), meta)
    cfg = load_config({"data": {"path": str(path), "exclude_unconverged": True},
                       "split": {"name": "mol"}})
    with open_dataset(path) as ds:
        name, parts = run_split(ds, cfg.split, 0, cfg.data.exclude_unconverged)
        assert name == "mol" and parts == {"train": [0], "val": [2], "test": [3, 4, 5]}
        _, parts = run_split(ds, cfg.split, 0, False)
        assert parts["train"] == [0, 1]
