"""Writing a new dataset in one go, atomically (hidden sibling directory + rename)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import lmdb

from hamnet.data.codec import encode
from hamnet.data.errors import DatasetError
from hamnet.data.metadata import new_metadata
from hamnet.data.store import REC_PREFIX, Store, slot_key


def check_output_path(path, *, overwrite: bool = False) -> Path:
    """Resolve ``path`` for a new dataset, or raise :class:`DatasetError` saying why not."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not overwrite:
        raise DatasetError(f"{path} already exists; choose a new output path")
    parent = path.parent
    existing = next(p for p in [parent, *parent.parents] if p.exists())
    if not existing.is_dir():
        raise DatasetError(f"cannot write {path}: {existing} is a file, not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise DatasetError(f"cannot create output directory {parent}: {reason}") from exc
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DatasetError(f"output directory {parent} is not writable")
    return path


def partial_path(path: Path) -> Path:
    """Hidden sibling directory where a new store is built before it is renamed."""
    return path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"


class DatasetWriter:
    """Build a new dataset: ``add`` records, then ``finalize(metadata)``.

    The store is written in a hidden sibling directory and renamed to ``path`` by
    :meth:`finalize`; leaving the ``with`` block by an exception removes it.
    """

    def __init__(self, path, *, overwrite: bool = False, commit_every: int = 64):
        self.path = check_output_path(path, overwrite=overwrite)
        self.overwrite = overwrite
        self.tmp = partial_path(self.path)
        try:
            self.store = Store(self.tmp, write=True, create=True)
        except (OSError, lmdb.Error, DatasetError) as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise DatasetError(str(exc).replace(str(self.tmp), str(self.path))) from exc
        self.store.write_meta(new_metadata())
        self.count = 0
        self._buffer: list[tuple[bytes, bytes]] = []
        self._commit_every = max(1, int(commit_every))

    def add(self, record: Mapping[str, Any]) -> int:
        """Validate and append one record; returns its index."""
        blob = encode(record, where=f"record {self.count}")
        self._buffer.append((slot_key(REC_PREFIX, self.count), blob))
        self.count += 1
        if len(self._buffer) >= self._commit_every:
            self.flush()
        return self.count - 1

    def flush(self) -> None:
        if self._buffer:
            self.store.put_many(self._buffer)
            self._buffer = []

    def finalize(self, metadata: Mapping[str, Any]) -> Path:
        """Write metadata and index, then move the store to its final path."""
        self.flush()
        self.store.finalize(metadata, range(self.count))
        self.store.close()
        old = None
        if self.path.exists():
            if not self.overwrite:
                self.abort()
                raise DatasetError(f"{self.path} appeared while writing; not overwriting it")
            old = partial_path(self.path)
            os.rename(self.path, old)
        os.rename(self.tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        try:
            self.store.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.tmp.exists():
            self.abort()


def write_dataset(
    path, records: Iterable[Mapping[str, Any]], metadata: Mapping[str, Any], *, overwrite=False
) -> Path:
    """Write ``records`` and ``metadata`` as a new dataset at ``path`` (atomically).

    Parameters
    ----------
    path : str or Path
        New directory; must not exist unless ``overwrite``.
    records : iterable of dict
        Records with the keys of :mod:`hamnet.data.keys` (Z, pos in Angstrom, F in
        Hartree in PySCF AO order, ...). Validated one by one.
    metadata : dict
        At least ``recipe``, ``xc`` and ``basis``; ``splits`` (index lists) optional.

    Returns
    -------
    Path
        The dataset directory; read it with :func:`open_dataset`.
    """
    with DatasetWriter(path, overwrite=overwrite) as writer:
        for rec in records:
            writer.add(rec)
        return writer.finalize(metadata)
