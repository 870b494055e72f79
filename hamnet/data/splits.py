"""Splits: the one random train/val/test split of hamnet, and the split a run used.

* :func:`random_split` - QH9's published ``random`` split (``data_tools.splits``: seed 43,
  80/10/10) and a run's ``split.fractions`` (:mod:`hamnet.train.data`).
* :func:`write_run_split` / :func:`read_run_split` / :func:`runs_of_store` - ``RUN/split.json``,
  the exact record indices a training run used (written by :mod:`hamnet.train.loop`), read
  by ``hamnet data info STORE --runs DIR`` and by ``hamnet eval`` (which refuses to score a
  part that overlaps the run's training records).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from hamnet.data.record_keys import SPLIT_PARTS

__all__ = ["random_split", "SPLIT_FILE", "write_run_split", "read_run_split", "runs_of_store"]

#: ``RUN/split.json``: ``{"store": absolute path, "split": name, "parts": {part: [index, ...]}}``
SPLIT_FILE = "split.json"


def random_split(n: int, fractions=(0.8, 0.1), seed: int = 43) -> dict:
    """``{"train", "val", "test"}`` sorted record indices: a ``RandomState(seed)`` permutation
    of ``range(n)``, the first ``int(f_train n)`` train, the next ``int(f_val n)`` val, the
    rest test (QH9's definition, with ``int()`` truncation; a part may be empty for tiny n).
    """
    f_train, f_val = fractions
    perm = np.random.RandomState(seed).permutation(n)
    n_tr, n_va = int(n * f_train), int(n * f_val)
    parts = (perm[:n_tr], perm[n_tr : n_tr + n_va], perm[n_tr + n_va :])
    return {k: sorted(int(i) for i in p) for k, p in zip(SPLIT_PARTS, parts)}


def write_run_split(run_dir, store, name: str, parts: dict) -> Path:
    """Write ``run_dir/split.json`` (atomically): the store and the exact record indices per part."""
    from hamnet.atomic import atomic_write_text

    doc = {"store": str(Path(store).resolve()), "split": name,
           "parts": {p: [int(i) for i in parts.get(p, [])] for p in SPLIT_PARTS}}
    return atomic_write_text(Path(run_dir) / SPLIT_FILE, json.dumps(doc) + "\n")


def read_run_split(run_dir) -> Optional[dict]:
    """The ``split.json`` of a run directory, or None when it has none (or an unreadable one)."""
    path = Path(run_dir) / SPLIT_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("parts"), dict):
        return None
    return doc


def runs_of_store(store, runs_root) -> list:
    """``[(run_dir, split.json doc)]`` of the runs under ``runs_root`` (itself or its direct
    subdirectories) that trained on ``store``, sorted by run directory."""
    store, root = Path(store).resolve(), Path(runs_root)
    if not root.is_dir():
        return []
    found = []
    for run in sorted([root, *[d for d in root.iterdir() if d.is_dir()]]):
        doc = read_run_split(run)
        if doc is not None and Path(str(doc.get("store", ""))).resolve() == store:
            found.append((run, doc))
    return found
