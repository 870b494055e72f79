"""Human-readable summary of a dataset: provenance, counts, splits and the splits runs used."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from hamnet.data import record_keys as RK
from hamnet.data.store import FAIL_PREFIX, PLAN_PREFIX, REC_PREFIX, _acquire, _release, open_dataset


def _wrap(label: str, text: str) -> list[str]:
    return textwrap.wrap(str(text), 88, initial_indent=f"  {label}: ", subsequent_indent="    ")


def describe(path, runs=None) -> str:
    """Summary of the dataset at ``path`` (finished or an interrupted make).

    ``runs``: a directory of run directories (or one run directory); the exact splits of
    those that trained on this store (their ``split.json``) are listed too.

    Raises the errors of :func:`hamnet.data.open_dataset` for corrupt stores.
    """
    path = Path(path)
    key, store = _acquire(path)  # the process's shared reader: LMDB opens a path once per process
    try:
        meta = store.read_meta()
        complete = bool(meta.get(RK.META_COMPLETE))
        counts = {p: sum(1 for _ in store.keys(p)) for p in (REC_PREFIX, FAIL_PREFIX, PLAN_PREFIX)}
    finally:
        _release(key)
    if complete:
        with open_dataset(path) as ds:  # also checks the index
            meta = ds.metadata
            n = len(ds)
    lines = [f"{path}", f"  recipe: {meta.get(RK.META_RECIPE)}"]
    lines.append(
        f"  level of theory: {meta.get(RK.META_XC)}/{meta.get(RK.META_BASIS)}, grid level "
        f"{meta.get(RK.META_GRID_LEVEL)}, conv_tol {meta.get(RK.META_CONV_TOL)}, conv_tol_grad "
        f"{meta.get(RK.META_CONV_TOL_GRAD)}"
    )
    if meta.get(RK.META_XC_DEFINITION):
        lines.append(f"  xc definition: {meta[RK.META_XC_DEFINITION]}")
    lines.append(
        f"  pyscf {meta.get(RK.META_PYSCF_VERSION)}, hamnet {meta.get(RK.META_HAMNET_VERSION)}, "
        f"schema {meta.get(RK.META_SCHEMA)}, AO order {meta.get(RK.META_AO_ORDER)}"
    )
    lines.append("  units: " + ", ".join(f"{k} {v}" for k, v in meta.get(RK.META_UNITS, {}).items()))
    lines += _wrap("provenance", meta.get(RK.META_PROVENANCE, "-"))
    lines += _wrap("deviations", meta.get(RK.META_DEVIATIONS, "-"))
    if meta.get(RK.META_SOURCE):
        lines += _wrap("source", json.dumps(meta[RK.META_SOURCE], sort_keys=True))
    if complete:
        lines.append(
            f"  records: {n} (failed SCF, not stored: {meta.get(RK.META_FAILED, 0)}); "
            f"created {meta.get(RK.META_CREATED)}"
        )
        if RK.META_UNCONVERGED in meta:
            unconv = meta[RK.META_UNCONVERGED]
            lines.append(
                "  unconverged SCF (kept, flagged converged=False): "
                + ("not recorded by the source" if unconv is None else str(len(unconv)))
            )
        if meta.get(RK.META_XC_SOURCE) or meta.get(RK.META_SOURCE_PYSCF_VERSION):
            lines.append(
                f"  source functional: xc {meta.get(RK.META_XC_SOURCE)!r} in PySCF "
                f"{meta.get(RK.META_SOURCE_PYSCF_VERSION)} (stored as xc {meta.get(RK.META_XC)!r})"
            )
        for name, parts in meta.get(RK.META_SPLITS, {}).items():
            sizes = ", ".join(f"{p} {len(parts.get(p, []))}" for p in RK.SPLIT_PARTS)
            lines.append(f"  split {name}: {sizes}")
        if runs is not None:
            from hamnet.data.splits import SPLIT_FILE, runs_of_store

            for run, doc in runs_of_store(path, runs):
                sizes = ", ".join(f"{p} {len(doc['parts'].get(p, []))}" for p in RK.SPLIT_PARTS)
                lines.append(f"  split {doc.get('split')} of run {run}: {sizes} (indices in {run / SPLIT_FILE})")
    else:
        lines.append(
            f"  INCOMPLETE: {counts[REC_PREFIX]} of {counts[PLAN_PREFIX]} planned structures "
            f"labeled, {counts[FAIL_PREFIX]} failed; rerun the same 'hamnet data make' to finish"
        )
    return "\n".join(lines)
