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

from hamnet.errors import HamnetError
from hamnet.basis import OrbitalBasis
from hamnet.data import HamiltonianDataset, IncompleteDatasetError, open_dataset
from hamnet.data import record_keys as RK
from hamnet.data.splits import random_split
from hamnet.graph import molecule_graph

__all__ = [
    "DataError",
    "resolve_store",
    "recipe_store_path",
    "split_indices",
    "run_split",
    "store_elements",
    "check_compatible",
    "GraphDataset",
]

log = logging.getLogger("hamnet.train")


class DataError(HamnetError, ValueError):
    """The data of a run cannot be used (missing store, unknown split, basis/xc mismatch)."""


def recipe_store_path(recipe: str, n: int, root) -> Path:
    """Where a recipe's store of ``n`` structures lives: ``<root>/<recipe>-<n>``."""
    return Path(root).expanduser() / f"{recipe}-{n}"


def _make_recipe(recipe: str, n: int, out: Path, workers: int, progress: bool) -> None:
    """Generate a recipe store by calling ``hamnet data make``'s implementation directly."""
    try:
        from data_tools import make as make_mod  # type: ignore
    except ImportError as exc:  # pragma: no cover - data_tools ships with hamnet
        raise DataError(f"cannot generate recipe {recipe!r}: data_tools.make is not importable ({exc})") from exc
    from data_tools.recipes import RecipeError  # type: ignore

    try:
        make_mod.make_dataset(recipe, out, n, workers=workers, progress=progress)
    except RecipeError as exc:
        raise DataError(f"data: {exc}") from exc


def resolve_store(data_cfg, *, make: bool = True, progress: bool = True) -> HamiltonianDataset:
    """Open the store a ``data`` config section names (generating a recipe if needed).

    Parameters
    ----------
    data_cfg : hamnet.train.config.DataConfig
    make : bool
        Generate a missing recipe store; ``False`` raises :class:`DataError` instead.
    progress : bool
        Progress bars of the generation (off anyway where stderr is not a terminal).
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
    _make_recipe(data_cfg.recipe, data_cfg.n, path, data_cfg.workers, progress)
    return open_dataset(path)


def run_split(ds: HamiltonianDataset, split_cfg, seed: int,
              exclude_unconverged: bool = False) -> tuple[str, dict]:
    """``(name, {"train"|"val"|"test": indices})`` of a run's ``split`` config section.

    With ``exclude_unconverged`` (config ``data.exclude_unconverged``) the records whose
    source SCF did not converge are dropped from the parts the run trains and validates
    on (``split.train``, ``split.val``); the test part stays as the benchmark defines it.
    """
    if split_cfg.fractions is not None:
        f = split_cfg.fractions
        name, parts = f"random-{f[0]:g}-{f[1]:g}-seed{seed}", random_split(len(ds), f, seed)
    else:
        name, _ = split_indices(ds, split_cfg.name, "train")
        parts = {p: ds.split(name, p) for p in RK.SPLIT_PARTS}
    if exclude_unconverged:
        from hamnet.data.select import converged_indices

        for part in {split_cfg.train, split_cfg.val}:
            kept = converged_indices(ds, parts[part])
            if len(kept) < len(parts[part]):
                log.info("data.exclude_unconverged: %d of %d %s records dropped",
                         len(parts[part]) - len(kept), len(parts[part]), part)
            parts[part] = kept
    return name, parts


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
        seen.update(int(z) for z in np.asarray(ds[i][RK.Z]).tolist())
    return sorted(seen)


def check_compatible(model_basis: str, model_xc: Optional[str], ds: HamiltonianDataset) -> None:
    """Raise :class:`DataError` when a model (basis, xc) does not fit a store.

    Basis names are compared as PySCF normalizes them (case, ``-``/``_``); functionals as
    PySCF's libxc parser reads them (:func:`hamnet.scf.same_functional`: ``pbe`` is
    ``pbe,pbe``), the rule :func:`hamnet.scf.predict_guess` applies too. A model without a
    recorded xc passes the xc check. (Elements are checked per molecule when graphs are
    built, :func:`hamnet.molecule.validate_geometry`.)
    """
    from pyscf.gto.basis import _format_basis_name

    from hamnet.scf import same_functional

    meta = ds.metadata
    b_store = meta.get(RK.META_BASIS)
    if not isinstance(model_basis, str) or not isinstance(b_store, str):
        if model_basis != b_store:
            raise DataError(f"the model's basis {model_basis!r} is not the store's basis {b_store!r} ({ds.path})")
    elif _format_basis_name(model_basis) != _format_basis_name(b_store):
        raise DataError(
            f"the model was trained in basis {model_basis!r} but {ds.path} is labeled in {b_store!r}; "
            "a model only predicts matrices in its own basis"
        )
    xc_store = meta.get(RK.META_XC)
    if model_xc is not None and (xc_store is None or not same_functional(str(model_xc), str(xc_store))):
        raise DataError(
            f"the model was trained on {model_xc!r} data but {ds.path} is labeled with {xc_store!r}"
        )


def record_overlap(rec, basis: str) -> np.ndarray:
    """``(nao, nao)`` AO overlap of a record: its ``S``, else PySCF's ``int1e_ovlp`` of its geometry."""
    if rec.get(RK.S) is not None:
        return np.asarray(rec[RK.S], dtype=np.float64)
    from hamnet.molecule import build_mole

    return build_mole(rec[RK.Z], rec[RK.POS], basis).intor("int1e_ovlp")


class GraphDataset(torch.utils.data.Dataset):
    """Records ``indices`` of a store as graphs with target blocks (keys in :mod:`hamnet.graph_keys`).

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
    spectral : bool
        Also the inputs of the spectral losses (:data:`hamnet.graph_keys.SPECTRAL_KEYS`):
        ``S^-1/2`` from the record's ``S`` (from PySCF's ``int1e_ovlp`` of the geometry where a
        record has none), ``nocc`` from the record (else a neutral closed shell). Computed
        once per structure with ``cache``.
    """

    def __init__(self, ds: HamiltonianDataset, indices: Sequence[int], basis: OrbitalBasis,
                 dtype: torch.dtype = torch.float32, cache: bool = True, spectral: bool = False):
        self.ds = ds
        self.indices = [int(i) for i in indices]
        self.basis = basis
        self.dtype = dtype
        self.spectral = bool(spectral)
        self._cache: Optional[dict] = {} if cache else None

    def __len__(self) -> int:
        return len(self.indices)

    def graph(self, k: int) -> dict:
        if self._cache is not None and k in self._cache:
            return self._cache[k]
        i = self.indices[k]
        rec = self.ds[i]
        extra = {}
        if self.spectral:
            extra = {"overlap": record_overlap(rec, self.basis.basis), "nocc": rec.get(RK.NOCC)}
        try:
            g = molecule_graph(rec[RK.Z], rec[RK.POS], basis=self.basis, fock=rec[RK.F], dtype=self.dtype,
                               **extra)
        except ValueError as exc:
            raise DataError(f"{self.ds.path} record {i}: {exc}") from exc
        if self._cache is not None:
            self._cache[k] = g
        return g

    def __getitem__(self, k: int) -> dict:
        return self.graph(k)
