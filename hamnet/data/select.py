"""Selecting records by what the metadata says about them (no record is decoded)."""

from __future__ import annotations

from typing import Iterable, Optional

from hamnet.data import keys as K
from hamnet.data.errors import DatasetError


def unconverged_indices(ds) -> Optional[list[int]]:
    """Indices of the records of ``ds`` whose source SCF did not converge.

    ``[]`` for a set that ``hamnet data make`` labeled (it stores converged SCFs only);
    ``None`` when the set was imported from a source that does not record convergence
    (QH9's processed LMDB, or an import by an older hamnet).
    """
    meta = ds.metadata
    if K.META_UNCONVERGED in meta:
        value = meta[K.META_UNCONVERGED]
        if value is None:
            return None
        if not isinstance(value, list) or not all(
            isinstance(i, int) and 0 <= i < len(ds) for i in value
        ):
            raise DatasetError(
                f"{ds.path}: metadata {K.META_UNCONVERGED!r} must list record indices in "
                f"0..{len(ds) - 1}"
            )
        return sorted(value)
    if str(meta.get(K.META_RECIPE, "")).startswith("import:"):
        return None
    return []


def converged_indices(ds, indices: Optional[Iterable[int]] = None) -> list[int]:
    """``indices`` (default: all records) without the records whose SCF did not converge.

    Order is kept. Raises :class:`DatasetError` when ``ds`` does not record which of its
    records converged, since then they cannot be excluded.
    """
    bad = unconverged_indices(ds)
    if bad is None:
        raise DatasetError(
            f"{ds.path} does not record which SCFs converged (imported from "
            f"{ds.metadata.get(K.META_SOURCE, {}).get('format', 'a source')} that lacks it); "
            "import QH9's SQLite file to flag unconverged frames, or keep them all"
        )
    idx = range(len(ds)) if indices is None else indices
    drop = set(bad)
    return [int(i) for i in idx if int(i) not in drop]
