"""The LMDB dataset store (hamnet.data): round trip, validation, corruption, workers."""

import json
import os

import lmdb
import numpy as np
import pytest

from hamnet.data import (
    CorruptDatasetError,
    DatasetError,
    IncompleteDatasetError,
    RecordError,
    SchemaVersionError,
    keys as K,
    open_dataset,
    write_dataset,
)
from hamnet.data.store import META_KEY, REC_PREFIX, Store, slot_key

META = {K.META_RECIPE: "test", K.META_XC: "pbe", K.META_BASIS: "def2-svp"}


def _record(i, rng):
    nao = 24
    a = rng.normal(size=(nao, nao))
    return {
        K.Z: np.array([8, 1, 1]),
        K.POS: rng.normal(size=(3, 3)),
        K.F: a + a.T,
        K.S: np.eye(nao) + 1e-3 * (a + a.T),
        K.ENERGY: -76.1 - 1e-3 * i,
        K.MO_ENERGY: np.sort(rng.normal(size=nao)),
        K.NOCC: 5,
        K.CONVERGED: True,
        K.CYCLES: 9,
        K.SECONDS: 0.5,
        K.SOURCE_ID: f"test/{i}",
    }


@pytest.fixture
def records():
    rng = np.random.default_rng(0)
    return [_record(i, rng) for i in range(6)]


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_round_trip_is_bitwise(tmp_path, records):
    splits = {"r": {"train": [0, 1, 2], "val": [3], "test": [4, 5]}}
    path = write_dataset(tmp_path / "ds", records, {**META, K.META_SPLITS: splits})
    with open_dataset(path) as ds:
        assert len(ds) == 6
        for rec, got in zip(records, ds):
            for key in (K.Z, K.POS, K.F, K.S, K.MO_ENERGY):
                assert got[key].dtype == np.dtype(K.DTYPES[key])
                assert np.array_equal(got[key], rec[key])
            assert got[K.ENERGY] == rec[K.ENERGY] and isinstance(got[K.CONVERGED], bool)
            assert got[K.SOURCE_ID] == rec[K.SOURCE_ID] and got[K.NOCC] == 5
        assert ds[-1][K.SOURCE_ID] == "test/5"
        assert ds.split("r", "test") == [4, 5]
        m = ds.metadata
        assert m[K.META_SCHEMA] == K.SCHEMA_VERSION and m[K.META_COUNT] == 6
        assert m[K.META_UNITS][K.POS] == "angstrom" and m[K.META_UNITS][K.F] == "hartree"
        assert m[K.META_PYSCF_VERSION] and m[K.META_AO_ORDER] == "pyscf"
        with pytest.raises(IndexError):
            ds[6]
    assert _siblings(path) == ["ds"]  # no partial directory left


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.pop(K.F), "missing required"),
        (lambda r: r.update(foo=1), "unknown field"),
        (lambda r: r.update({K.POS: np.zeros((2, 3))}), "shape"),
        (lambda r: r.update({K.F: np.full((24, 24), np.nan)}), "NaN"),
        (lambda r: r.update({K.Z: [8.5, 1, 1]}), "integers"),
        (lambda r: r.update({K.SOURCE_ID: ""}), "source_id"),
    ],
)
def test_bad_record_leaves_nothing(tmp_path, records, change, message):
    change(records[3])
    with pytest.raises(RecordError, match=message):
        write_dataset(tmp_path / "ds", records, META)
    assert _siblings(tmp_path / "ds") == []


def test_bad_metadata(tmp_path, records):
    with pytest.raises(DatasetError, match="outside"):
        write_dataset(tmp_path / "a", records, {**META, K.META_SPLITS: {"r": {"train": [6]}}})
    overlap = {"r": {"train": [0], "test": [0]}}
    with pytest.raises(DatasetError, match="overlaps"):
        write_dataset(tmp_path / "b", records, {**META, K.META_SPLITS: overlap})
    with pytest.raises(DatasetError, match="xc"):
        write_dataset(tmp_path / "c", records, {K.META_RECIPE: "t", K.META_BASIS: "x"})
    assert _siblings(tmp_path / "a") == []


def test_existing_path_refused(tmp_path, records):
    write_dataset(tmp_path / "ds", records, META)
    with pytest.raises(DatasetError, match="already exists"):
        write_dataset(tmp_path / "ds", records, META)


def _raw_put(path, key, value):
    env = lmdb.open(str(path), subdir=True)
    with env.begin(write=True) as txn:
        txn.put(key, value)
    env.close()


def test_corrupt_record_and_schema_version(tmp_path, records):
    path = write_dataset(tmp_path / "ds", records, META)
    store = Store(path)
    blob = bytearray(store.get(slot_key(REC_PREFIX, 2)))
    meta = json.loads(store.get(META_KEY))
    store.close()
    blob[-5] ^= 0xFF  # one flipped byte in F
    _raw_put(path, slot_key(REC_PREFIX, 2), bytes(blob))
    _raw_put(path, slot_key(REC_PREFIX, 3), bytes(blob[:100]))
    with open_dataset(path) as ds:
        assert ds[1][K.SOURCE_ID] == "test/1"
        with pytest.raises(CorruptDatasetError, match="record 2: checksum"):
            ds[2]
        with pytest.raises(CorruptDatasetError, match="record 3"):
            ds[3]
    meta[K.META_SCHEMA] = 99
    _raw_put(path, META_KEY, json.dumps(meta).encode())
    with pytest.raises(SchemaVersionError, match="version 99"):
        open_dataset(path)


def test_truncated_and_foreign_stores(tmp_path, records):
    path = write_dataset(tmp_path / "ds", records, META)
    data = path / "data.mdb"
    size = data.stat().st_size
    with open(data, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(CorruptDatasetError, match="truncated"):
        open_dataset(path)
    with open(data, "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(CorruptDatasetError):
        open_dataset(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorruptDatasetError, match="not a hamnet dataset"):
        open_dataset(tmp_path / "empty")
    _raw_put(tmp_path / "other", b"k", b"v")
    with pytest.raises(CorruptDatasetError, match="no metadata"):
        open_dataset(tmp_path / "other")


def test_incomplete_store(tmp_path, records):
    path = write_dataset(tmp_path / "ds", records, META)
    store = Store(path)
    meta = json.loads(store.get(META_KEY))
    store.close()
    meta[K.META_COMPLETE] = False
    _raw_put(path, META_KEY, json.dumps(meta).encode())
    with pytest.raises(IncompleteDatasetError, match="rerun"):
        open_dataset(path)


def test_dataloader_workers(tmp_path, records):
    import torch
    path = write_dataset(tmp_path / "ds", records, META)
    ds = open_dataset(path)
    ds[0]  # the parent holds an open environment when the workers fork
    second = open_dataset(path)  # two datasets on one file share it
    loader = torch.utils.data.DataLoader(
        ds, batch_size=None, num_workers=2, collate_fn=lambda r: (r[K.SOURCE_ID], r[K.F].sum())
    )
    got = sorted(loader)
    assert got == sorted((r[K.SOURCE_ID], r[K.F].sum()) for r in records)
    assert second[5][K.SOURCE_ID] == "test/5"
    ds.close()
    second.close()
    assert os.listdir(path)  # still intact
