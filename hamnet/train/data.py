"""Data for training: the store of a config, its split, and molecules as graphs.

* :func:`resolve_store` turns ``data: {path: ...}`` or ``data: {recipe:, n:}`` into an
  open :class:`hamnet.data.HamiltonianDataset`, generating a recipe's store on first use
  (with the code of ``hamnet data make``, so an interrupted generation resumes).
* :func:`split_indices` picks the record indices of ``split.name`` / part.
* :class:`GraphDataset` turns records into graphs with target blocks
  (:func:`hamnet.graph.molecule_graph`), optionally cached in memory.
* :func:`check_compatible` refuses a model whose basis or functional differs from the
  store's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

from hamnet.basis import OrbitalBasis
from hamnet.data import HamiltonianDataset, IncompleteDatasetError, open_dataset
from hamnet.data import keys as DK
from hamnet.graph import molecule_graph

__all__ = [
    "DataError",
    "resolve_store",
    "recipe_store_path",
    "split_indices",
    "run_split",
    "random_split",
    "store_elements",
    "check_compatible",
    "GraphDataset",
]

log = logging.getLogger("hamnet.train")


class DataError(ValueError):
    """The data of a run cannot be used (missing store, unknown split, basis/xc mismatch)."""


def recipe_store_path(recipe: str, n: int, root) -> Path:
    """Where a recipe's store of ``n`` structures lives: ``<root>/<recipe>-<n>``."""
    return Path(root).expanduser() / f"{recipe}-{n}"


def _make_recipe(recipe: str, n: int, out: Path, workers: int) -> None:
    """Generate a recipe store by calling ``hamnet data make``'s implementation directly."""
    try:
        from data_tools import make as make_mod  # type: ignore
    except ImportError as exc:  # pragma: no cover - data_tools ships with hamnet
        raise DataError(f"cannot generate recipe {recipe!r}: data_tools.make is not importable ({exc})") from exc
    from data_tools.recipes import RecipeError  # type: ignore

    try:
        make_mod.make_dataset(recipe, out, n, workers=workers, progress=True)
    except RecipeError as exc:
        raise DataError(f"data: {exc}") from exc


def resolve_store(data_cfg, *, make: bool = True) -> HamiltonianDataset:
    """Open the store a ``data`` config section names (generating a recipe if needed).

    Parameters
    ----------
    data_cfg : hamnet.train.config.DataConfig
    make : bool
        Generate a missing recipe store; ``False`` raises :class:`DataError` instead.
    """
    if data_cfg.path is not None:
        path = Path(data_cfg.path).expanduser()
        if not path.exists():
            raise DataError(f"data.path: no dataset store at {path}")
        return open_dataset(path)
    path = recipe_store_path(data_cfg.recipe, data_cfg.n, data_cfg.root)
    if path.exists():
        try:
            return open_dataset(path)
        except IncompleteDatasetError:
            pass  # an interrupted make: resumed below
    if not make:
        raise DataError(f"no finished store for recipe {data_cfg.recipe!r} at {path}")
    log.info("generating %s (n=%d) into %s", data_cfg.recipe, data_cfg.n, path)
    _make_recipe(data_cfg.recipe, data_cfg.n, path, data_cfg.workers)
    return open_dataset(path)


def random_split(n: int, fractions, seed: int) -> dict:
    """``{"train", "val", "test"}`` index lists: a seeded permutation cut at ``fractions``."""
    perm = np.random.RandomState(seed).permutation(n)
    n_tr = max(1, int(round(fractions[0] * n)))
    n_va = max(1 if n - n_tr > 1 else 0, int(round(fractions[1] * n)))
    parts = (perm[:n_tr], perm[n_tr : n_tr + n_va], perm[n_tr + n_va :])
    return {k: sorted(int(i) for i in p) for k, p in zip(("train", "val", "test"), parts)}


def run_split(ds: HamiltonianDataset, split_cfg, seed: int) -> tuple[str, dict]:
    """``(name, {"train"|"val"|"test": indices})`` of a run's ``split`` config section."""
    if split_cfg.fractions is not None:
        f = split_cfg.fractions
        return f"random-{f[0]:g}-{f[1]:g}-seed{seed}", random_split(len(ds), f, seed)
    name, _ = split_indices(ds, split_cfg.name, "train")
    return name, {p: ds.split(name, p) for p in ("train", "val", "test")}


def split_indices(ds: HamiltonianDataset, name: Optional[str], part: str) -> tuple[str, list]:
    """``(split name, record indices)`` of ``part`` of split ``name`` (None: the only split)."""
    splits = ds.splits
    if name is None:
        if len(splits) != 1:
            raise DataError(
                f"{ds.path} has splits {sorted(splits) or 'none'}; choose one with split.name"
            )
        name = next(iter(splits))
    if name not in splits:
        raise DataError(f"split.name: {ds.path} has no split {name!r}; allowed: {', '.join(sorted(splits))}")
    return name, ds.split(name, part)


def store_elements(ds: HamiltonianDataset, indices: Optional[Iterable[int]] = None) -> list[int]:
    """Sorted atomic numbers occurring in the records (all records by default)."""
    seen: set[int] = set()
    for i in range(len(ds)) if indices is None else indices:
        seen.update(int(z) for z in np.asarray(ds[i][DK.Z]).tolist())
    return sorted(seen)


def _norm_xc(xc) -> Optional[str]:
    return None if xc is None else str(xc).strip().lower().replace(" ", "")


def check_compatible(model_basis: str, model_xc: Optional[str], elements, ds: HamiltonianDataset) -> None:
    """Raise :class:`DataError` when a model (basis, xc, elements) does not fit a store.

    Basis names are compared as PySCF normalizes them (case, ``-``/``_``); the
    functional case-insensitively. A model without a recorded xc passes the xc check.
    """
    from pyscf.gto.basis import _format_basis_name

    meta = ds.metadata
    b_store = meta.get(DK.META_BASIS)
    if not isinstance(model_basis, str) or not isinstance(b_store, str):
        if model_basis != b_store:
            raise DataError(f"the model's basis {model_basis!r} is not the store's basis {b_store!r} ({ds.path})")
    elif _format_basis_name(model_basis) != _format_basis_name(b_store):
        raise DataError(
            f"the model was trained in basis {model_basis!r} but {ds.path} is labeled in {b_store!r}; "
            "a model only predicts matrices in its own basis"
        )
    xc_store = meta.get(DK.META_XC)
    if model_xc is not None and _norm_xc(model_xc) != _norm_xc(xc_store):
        raise DataError(
            f"the model was trained on {model_xc!r} data but {ds.path} is labeled with {xc_store!r}"
        )


class GraphDataset(torch.utils.data.Dataset):
    """Records ``indices`` of a store as graphs with target blocks (keys in :mod:`hamnet.keys`).

    Parameters
    ----------
    ds : HamiltonianDataset
    indices : sequence of int
        Record indices; item ``k`` is record ``indices[k]``.
    basis : OrbitalBasis
        The model's basis (splits F into padded blocks).
    dtype : torch.dtype
        Floating dtype of positions and targets.
    cache : bool
        Keep the graphs in memory after their first use.
    """

    def __init__(self, ds: HamiltonianDataset, indices: Sequence[int], basis: OrbitalBasis,
                 dtype: torch.dtype = torch.float32, cache: bool = True):
        self.ds = ds
        self.indices = [int(i) for i in indices]
        self.basis = basis
        self.dtype = dtype
        self._cache: Optional[dict] = {} if cache else None

    def __len__(self) -> int:
        return len(self.indices)

    def graph(self, k: int) -> dict:
        if self._cache is not None and k in self._cache:
            return self._cache[k]
        i = self.indices[k]
        rec = self.ds[i]
        try:
            g = molecule_graph(rec[DK.Z], rec[DK.POS], basis=self.basis, fock=rec[DK.F], dtype=self.dtype)
        except ValueError as exc:
            raise DataError(f"{self.ds.path} record {i}: {exc}") from exc
        if self._cache is not None:
            self._cache[k] = g
        return g

    def __getitem__(self, k: int) -> dict:
        return self.graph(k)
