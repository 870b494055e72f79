"""Dataset metadata: the fixed provenance fields, and validation of named splits."""

from __future__ import annotations

import datetime
import json
from typing import Any, Mapping

from hamnet import __version__
from hamnet.data import record_keys as RK
from hamnet.data.errors import DatasetError


def new_metadata() -> dict:
    """The fixed part of every dataset's metadata (format, versions, units)."""
    import pyscf

    return {
        RK.META_FORMAT: RK.FORMAT_NAME,
        RK.META_SCHEMA: RK.SCHEMA_VERSION,
        RK.META_HAMNET_VERSION: __version__,
        RK.META_PYSCF_VERSION: pyscf.__version__,
        RK.META_UNITS: dict(RK.UNITS),
        RK.META_AO_ORDER: "pyscf",
        RK.META_COMPLETE: False,
    }


def check_splits(splits: Any, count: int) -> dict:
    """Validate named splits: ``{name: {"train"|"val"|"test": [index, ...]}}``."""
    if not isinstance(splits, Mapping):
        raise DatasetError(f"splits must be a dict name -> parts, got {type(splits).__name__}")
    out = {}
    for name, parts in splits.items():
        if not isinstance(parts, Mapping) or set(parts) - set(RK.SPLIT_PARTS):
            raise DatasetError(f"split {name!r} must map {list(RK.SPLIT_PARTS)} to index lists")
        seen: set[int] = set()
        out[str(name)] = {}
        for part in RK.SPLIT_PARTS:
            idx = [int(i) for i in parts.get(part, [])]
            bad = [i for i in idx if not 0 <= i < count]
            if bad:
                raise DatasetError(
                    f"split {name!r}/{part} has indices outside 0..{count - 1}: {bad[:5]}"
                )
            if seen.intersection(idx) or len(set(idx)) != len(idx):
                raise DatasetError(f"split {name!r}/{part} repeats or overlaps indices")
            seen.update(idx)
            out[str(name)][part] = idx
    return out


def complete_metadata(metadata: Mapping[str, Any], count: int) -> dict:
    """Metadata of a finished dataset of ``count`` records (validated, with defaults)."""
    meta = new_metadata()
    meta.update({k: v for k, v in metadata.items() if k != RK.META_PYSCF_VERSION or v})
    for key in (RK.META_RECIPE, RK.META_XC, RK.META_BASIS):
        if not meta.get(key):
            raise DatasetError(f"dataset metadata needs {key!r} (got {meta.get(key)!r})")
    meta.setdefault(RK.META_GRID_LEVEL, None)
    meta.setdefault(RK.META_CONV_TOL, None)
    meta.setdefault(RK.META_CONV_TOL_GRAD, None)
    meta[RK.META_SPLITS] = check_splits(meta.get(RK.META_SPLITS, {}), count)
    meta[RK.META_COUNT] = int(count)
    meta[RK.META_COMPLETE] = True
    meta[RK.META_CREATED] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )
    try:
        json.dumps(meta)
    except TypeError as exc:
        raise DatasetError(f"dataset metadata must be JSON-serializable ({exc})") from exc
    return meta
