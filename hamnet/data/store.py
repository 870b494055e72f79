"""LMDB dataset store: one LMDB environment (a directory) per dataset.

Inside the environment (keys are bytes):

* ``__meta__``   JSON metadata (:mod:`hamnet.data.keys`, ``META_*``);
* ``__index__``  int64 little-endian array: the record slot of dataset item ``i``;
* ``rec/<slot>`` one encoded record (:mod:`hamnet.data.codec`), slot = 12 digits;
* anything else (``plan/``, ``fail/``) is bookkeeping of ``hamnet data make``.

Every write is an LMDB transaction, so a crash (even ``kill -9``) leaves either the
old or the new state, never a torn record. A store becomes readable through
:func:`open_dataset` only after :meth:`Store.finalize` wrote the index and set
``complete``; :class:`DatasetWriter` builds a new store in a hidden sibling
directory and renames it into place, so a failed write leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

import lmdb
import numpy as np

from hamnet import __version__
from hamnet.data import record_keys as RK
from hamnet.data.codec import decode
from hamnet.data.errors import (
    UnknownSplitError,
    CorruptDatasetError,
    DatasetError,
    IncompleteDatasetError,
    SchemaVersionError,
)
from hamnet.data.metadata import complete_metadata

META_KEY = b"__meta__"
INDEX_KEY = b"__index__"
REC_PREFIX = b"rec/"
PLAN_PREFIX = b"plan/"  # geometry planned by `hamnet data make` (JSON)
FAIL_PREFIX = b"fail/"  # a planned structure whose SCF failed (JSON; never a record)
_INITIAL_MAP = 1 << 28  # 256 MiB of address space; grows by doubling when full


def slot_key(prefix: bytes, slot: int) -> bytes:
    """LMDB key ``prefix + 12-digit slot`` (sorts numerically)."""
    return prefix + b"%012d" % int(slot)


class Store:
    """Thin transactional wrapper around one LMDB environment.

    Parameters
    ----------
    path : str or Path
        Directory of the environment (``data.mdb`` inside).
    write : bool
        Open for writing (takes LMDB's lock); otherwise read-only and lock-free.
    create : bool
        Create the directory when it does not exist (``write`` only).
    """

    def __init__(self, path, *, write: bool = False, create: bool = False):
        self.path = Path(path)
        self.write = write
        data = self.path / "data.mdb"
        if not (create and write) and not data.is_file():
            raise CorruptDatasetError(f"{self.path} is not a hamnet dataset (no data.mdb inside)")
        if create and write:
            try:
                self.path.mkdir(exist_ok=True)
            except OSError as exc:
                reason = exc.strerror or exc
                raise DatasetError(f"cannot create a dataset at {self.path}: {reason}") from exc
        try:
            self.env = lmdb.open(
                str(self.path),
                subdir=True,
                readonly=not write,
                lock=write,
                create=create and write,
                map_size=_INITIAL_MAP,
                readahead=False,
                meminit=False,
                max_dbs=0,
            )
        except lmdb.Error as exc:
            if "already open" in str(exc):
                raise DatasetError(
                    f"{self.path} is already open for writing in this process; close it first"
                ) from exc
            if create and write:
                raise DatasetError(f"cannot create a dataset at {self.path}: {exc}") from exc
            raise CorruptDatasetError(f"{self.path}: cannot open as LMDB ({exc})") from exc
        self._check_size()

    def _check_size(self) -> None:
        # A truncated data.mdb would make LMDB touch pages past the end of the file
        # (SIGBUS); compare with the last page the header claims before reading.
        data = self.path / "data.mdb"
        need = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]
        have = data.stat().st_size
        if have < need:
            self.env.close()
            raise CorruptDatasetError(
                f"{self.path}: data.mdb is truncated ({have} bytes, its header needs {need})"
            )

    # ---- raw access ----------------------------------------------------------------

    def get(self, key: bytes) -> Optional[bytes]:
        with self.env.begin() as txn:
            value = txn.get(key)
        return None if value is None else bytes(value)

    def put_many(self, items: Iterable[tuple[bytes, bytes]], delete: Iterable[bytes] = ()) -> None:
        """Write all ``items`` (and delete keys) in ONE transaction, growing the map if full."""
        items, delete = list(items), list(delete)
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for k in delete:
                        txn.delete(k)
                    for k, v in items:
                        txn.put(k, v)
                return
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def put(self, key: bytes, value: bytes) -> None:
        self.put_many([(key, value)])

    def keys(self, prefix: bytes) -> Iterator[bytes]:
        """All keys starting with ``prefix``, in sorted order."""
        with self.env.begin() as txn:
            cur = txn.cursor()
            if not cur.set_range(prefix):
                return
            for k in cur.iternext(keys=True, values=False):
                k = bytes(k)
                if not k.startswith(prefix):
                    break
                yield k

    def slots(self, prefix: bytes) -> list[int]:
        """Slots of all ``prefix + slot`` keys, sorted."""
        return [int(k[len(prefix) :]) for k in self.keys(prefix)]

    # ---- metadata and finalization -----------------------------------------------

    def read_meta(self) -> dict:
        raw = self.get(META_KEY)
        if raw is None:
            raise CorruptDatasetError(f"{self.path} is not a hamnet dataset (no metadata)")
        try:
            meta = json.loads(raw)
        except ValueError as exc:
            raise CorruptDatasetError(f"{self.path}: metadata is not valid JSON ({exc})") from exc
        if not isinstance(meta, dict) or meta.get(RK.META_FORMAT) != RK.FORMAT_NAME:
            raise CorruptDatasetError(f"{self.path} is not a hamnet dataset (wrong format tag)")
        version = meta.get(RK.META_SCHEMA)
        if version != RK.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path} has dataset schema version {version!r}; this hamnet "
                f"{__version__} reads version {RK.SCHEMA_VERSION} only"
            )
        return meta

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        self.put(META_KEY, json.dumps(meta, sort_keys=True).encode())

    def finalize(self, metadata: Mapping[str, Any], slots: Sequence[int]) -> dict:
        """Write the index (item ``i`` -> record ``slots[i]``) and complete metadata."""
        slots = [int(s) for s in slots]
        missing = set(slots) - set(self.slots(REC_PREFIX))
        if missing:
            raise DatasetError(
                f"{self.path}: index names absent record slots {sorted(missing)[:5]}"
            )
        meta = complete_metadata(metadata, len(slots))
        index = np.asarray(slots, dtype="<i8").tobytes()
        self.put_many(
            [(INDEX_KEY, index), (META_KEY, json.dumps(meta, sort_keys=True).encode())]
        )
        return meta

    def close(self) -> None:
        self.env.close()


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


# One read-only environment per data file and process, shared by all datasets on it
# (LMDB forbids opening the same environment twice in a process). An entry inherited
# through fork() belongs to the parent: the child closes its copy and opens its own.
_READERS: dict[tuple[int, int], list] = {}  # (st_dev, st_ino) -> [Store, users, pid]


def _reader_key(path: Path) -> tuple[int, int]:
    try:
        st = (path / "data.mdb").stat()
    except OSError as exc:
        raise CorruptDatasetError(f"{path} is not a hamnet dataset (no data.mdb inside)") from exc
    return (st.st_dev, st.st_ino)


def _acquire(path: Path) -> tuple[tuple[int, int], Store]:
    key = _reader_key(path)
    entry = _READERS.get(key)
    if entry is not None and entry[2] != os.getpid():
        try:
            entry[0].close()
        finally:
            del _READERS[key]
        entry = None
    if entry is None:
        entry = _READERS[key] = [Store(path), 0, os.getpid()]
    entry[1] += 1
    return key, entry[0]


def _release(key: tuple[int, int]) -> None:
    entry = _READERS.get(key)
    if entry is not None and entry[2] == os.getpid():
        entry[1] -= 1
        if entry[1] <= 0:
            del _READERS[key]
            entry[0].close()


class HamiltonianDataset(Sequence):
    """Random-access, read-only view of a finished dataset.

    ``ds[i]`` is a record dict (keys in :mod:`hamnet.data.keys`); ``ds.metadata`` is the
    metadata dict. Safe in multi-process ``DataLoader`` workers (fork or spawn): the
    LMDB environment is opened lazily once per process and never pickled.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._key, store = _acquire(self.path)
        self._pid = os.getpid()
        try:
            self.metadata = store.read_meta()
            if not self.metadata.get(RK.META_COMPLETE):
                raise IncompleteDatasetError(
                    f"{self.path} is incomplete (an interrupted 'hamnet data make'); rerun "
                    "the same command to finish it"
                )
            raw = store.get(INDEX_KEY)
            count = int(self.metadata.get(RK.META_COUNT, -1))
            if raw is None or len(raw) != 8 * count:
                raise CorruptDatasetError(
                    f"{self.path}: record index is missing or does not match count {count}"
                )
            self._slots = np.frombuffer(raw, dtype="<i8").astype(np.int64)
        except BaseException:
            self.close()
            raise

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_key"] = None  # the unpickled copy acquires its own handle
        return state

    def _store(self) -> Store:
        if self._key is None or self._pid != os.getpid():
            self._key, store = _acquire(self.path)
            self._pid = os.getpid()
            return store
        return _READERS[self._key][0]

    def __len__(self) -> int:
        return len(self._slots)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"record {i} out of range for a dataset of {n}")
        i %= n
        raw = self._store().get(slot_key(REC_PREFIX, self._slots[i]))
        if raw is None:
            raise CorruptDatasetError(f"{self.path}: record {i} is listed but absent")
        return decode(raw, where=f"{self.path} record {i}")

    @property
    def splits(self) -> dict:
        """``{name: {"train"|"val"|"test": [index, ...]}}``."""
        return self.metadata.get(RK.META_SPLITS, {})

    def split(self, name: str, part: str) -> list[int]:
        """Indices of ``part`` (``train``, ``val``, ``test``) of the named split."""
        if name not in self.splits:
            raise UnknownSplitError(f"{self.path} has no split {name!r}; it has {sorted(self.splits)}")
        if part not in RK.SPLIT_PARTS:
            raise UnknownSplitError(f"split part must be one of {RK.SPLIT_PARTS}, got {part!r}")
        return list(self.splits[name].get(part, []))

    def close(self) -> None:
        """Release this dataset's handle (the environment closes with its last user)."""
        if self._key is not None and self._pid == os.getpid():
            _release(self._key)
        self._key = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"HamiltonianDataset({str(self.path)!r}, n={len(self)}, "
            f"recipe={m.get(RK.META_RECIPE)!r}, {m.get(RK.META_XC)}/{m.get(RK.META_BASIS)})"
        )


def open_dataset(path) -> HamiltonianDataset:
    """Open a finished dataset for reading (see :class:`HamiltonianDataset`)."""
    return HamiltonianDataset(path)
