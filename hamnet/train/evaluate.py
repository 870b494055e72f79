"""Evaluation of predicted Hamiltonians with QH9's metrics (:mod:`hamnet.metrics`).

Two sources of predictions, one scorer:

* :func:`evaluate_model` - a :class:`hamnet.model.HamiltonianModel` on records of a store;
* :func:`evaluate_predictions` - matrices from any program, an ``.npz`` file with one
  ``(nao, nao)`` Fock matrix per record, in Hartree and PySCF AO order, keyed by the
  record index as a string (``"0"``, ``"17"``, ...).

A yardstick for both: :func:`mean_block_baseline`, the error of predicting every atom
block by its mean over the training records (no network).

Both score each molecule with :func:`hamnet.metrics.molecule_metrics` against the store's
``F``, with the store's overlap ``S`` (computed with PySCF from the geometry and the
store's basis when a record has none), ``nocc`` from the record (else ``sum(Z) // 2``,
a neutral closed shell) and ``ao_atom`` from :meth:`hamnet.basis.OrbitalBasis.layout`.
Results are equal-weight means over molecules, in the units of
:data:`hamnet.metrics.METRIC_UNITS`. With ``guess_energy=True`` each molecule also gets
:func:`hamnet.metrics.guess_energy` (two PySCF Fock builds with the store's functional,
basis and grid level: of the predicted and of the reference density).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch

from hamnet.atomic import atomic_write_text
from hamnet.basis import OrbitalBasis
from hamnet.data import HamiltonianDataset
from hamnet.data import record_keys as RK
from hamnet.errors import HamnetError, MissingFileError
from hamnet.graph import collate, molecule_graph, to_device
from hamnet.metrics import METRIC_UNITS, MetricAccumulator, format_table, guess_energy as guess_energy_of
from hamnet.metrics import molecule_metrics
from hamnet.molecule import build_mole
from hamnet.progress import progress_bar
from hamnet.train.data import record_overlap

__all__ = [
    "EvaluationError",
    "predict_records",
    "score",
    "store_scf",
    "evaluate_model",
    "read_predictions",
    "evaluate_predictions",
    "mean_block_baseline",
    "write_report",
    "format_table",
]


class EvaluationError(HamnetError, ValueError):
    """Predictions that cannot be scored (missing records, wrong shapes, NaN)."""


def predict_records(model, ds: HamiltonianDataset, indices: Sequence[int], batch_size: int = 16,
                    progress: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(record index, predicted F (nao, nao) float64 Hartree)`` in batches.

    ``model`` is a :class:`hamnet.model.HamiltonianModel` (not a DDP wrapper); it is run
    in eval mode under ``torch.no_grad()`` and left in the mode it was in.
    """
    was_training = model.training
    model.eval()
    indices = [int(i) for i in indices]
    bar = progress_bar(progress, total=len(indices), desc="evaluate", unit="mol", leave=False)
    try:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            graphs = []
            for i in chunk:
                rec = ds[i]
                graphs.append(molecule_graph(rec[RK.Z], rec[RK.POS], elements=model.basis.elements,
                                             dtype=model.dtype))
            batch = collate(graphs)
            with torch.no_grad():
                out = model(to_device(batch, model.device))
            for i, F in zip(chunk, model.assemble(out, batch)):
                yield i, F.detach().cpu().numpy().astype(np.float64)
            bar.update(len(chunk))
    finally:
        bar.close()
        model.train(was_training)


class _Layouts:
    """``ao_atom`` of a molecule in a store's basis (one OrbitalBasis per element set)."""

    def __init__(self, basis: str, model_basis: Optional[OrbitalBasis] = None):
        self.basis = basis
        self.model_basis = model_basis
        self._by_elements: dict = {}

    def ao_atom(self, Z) -> np.ndarray:
        Z = [int(z) for z in Z]
        if self.model_basis is not None and set(Z) <= set(self.model_basis.elements):
            return np.asarray(self.model_basis.layout(Z).ao_atom)
        key = tuple(sorted(set(Z)))
        if key not in self._by_elements:
            self._by_elements[key] = OrbitalBasis(self.basis, list(key))
        return np.asarray(self._by_elements[key].layout(Z).ao_atom)


def store_scf(ds: HamiltonianDataset, rec: Mapping):
    """A PySCF SCF object for a record with the store's functional, basis and grid level
    (:func:`hamnet.scf.make_scf`); the charge follows from the record's ``nocc`` (closed shell)."""
    from hamnet.scf import make_scf

    meta = ds.metadata
    charge = 0
    if rec.get(RK.NOCC) is not None:
        charge = int(np.sum(rec[RK.Z])) - 2 * int(rec[RK.NOCC])
    mol = build_mole(rec[RK.Z], rec[RK.POS], meta.get(RK.META_BASIS), charge=charge)
    return make_scf(mol, meta.get(RK.META_XC), grid_level=meta.get(RK.META_GRID_LEVEL))


def score(ds: HamiltonianDataset, predictions: Iterable[tuple[int, np.ndarray]],
          model_basis: Optional[OrbitalBasis] = None, per_record: Optional[dict] = None,
          on_molecule: Optional[Callable] = None, guess_energy: bool = False) -> tuple[dict, int]:
    """QH9 metrics of ``(record index, F_pred)`` pairs against the store.

    Parameters
    ----------
    ds : the store holding the reference ``F`` (and ``S``, ``nocc``)
    predictions : iterable of ``(index, (nao, nao) array in Hartree, PySCF AO order)``
    model_basis : OrbitalBasis, optional
        Layout to take ``ao_atom`` from (default: built from the store's basis).
    per_record : dict, optional
        Filled with ``index -> molecule_metrics(...)`` (Hartree, fractions).
    on_molecule : callable, optional
        Called as ``on_molecule(index, rec, F_pred, S, ao_atom, nocc, metrics)`` for each
        scored molecule (e.g. :meth:`hamnet.plots.ParityCollector.add`).
    guess_energy : bool
        Also ``guess_energy`` (Hartree per molecule; :func:`hamnet.metrics.guess_energy`,
        two Fock builds per molecule with :func:`store_scf`).

    Returns
    -------
    (results, n) : means in reporting units (see :data:`hamnet.metrics.METRIC_UNITS`), molecules
    """
    basis = ds.metadata.get(RK.META_BASIS)
    layouts = _Layouts(basis, model_basis)
    acc = MetricAccumulator()
    for i, F_pred in predictions:
        rec = ds[i]
        F_ref = np.asarray(rec[RK.F], dtype=np.float64)
        F_pred = np.asarray(F_pred, dtype=np.float64)
        if F_pred.shape != F_ref.shape:
            raise EvaluationError(
                f"record {i}: predicted F has shape {F_pred.shape}, the store's F has {F_ref.shape} "
                f"(basis {basis}, PySCF AO order expected)"
            )
        if not np.isfinite(F_pred).all():
            raise EvaluationError(f"record {i}: predicted F contains NaN or inf")
        nocc = rec.get(RK.NOCC)
        nocc = int(nocc) if nocc is not None else int(np.sum(rec[RK.Z])) // 2
        S, ao_atom = record_overlap(rec, basis), layouts.ao_atom(rec[RK.Z])
        m = molecule_metrics(F_pred, F_ref, S, ao_atom, nocc)
        if guess_energy:
            m["guess_energy"] = guess_energy_of(store_scf(ds, rec), F_pred, F_ref)
        acc.add(m)
        if on_molecule is not None:
            on_molecule(int(i), rec, F_pred, S, ao_atom, nocc, m)
        if per_record is not None:
            per_record[int(i)] = m
    if acc.count == 0:
        raise EvaluationError("no molecules to evaluate (empty split or prediction file)")
    return acc.result(), acc.count


def evaluate_model(model, ds: HamiltonianDataset, indices: Sequence[int], batch_size: int = 16,
                   progress: bool = False, on_molecule: Optional[Callable] = None,
                   guess_energy: bool = False) -> tuple[dict, int]:
    """Predict and score records ``indices`` of ``ds``; see :func:`score`."""
    preds = predict_records(model, ds, indices, batch_size=batch_size, progress=progress)
    return score(ds, preds, model_basis=model.basis, on_molecule=on_molecule, guess_energy=guess_energy)


def read_predictions(path, n_records: int) -> dict[int, np.ndarray]:
    """Read an ``.npz`` of predicted matrices keyed by record index (as strings).

    Raises :class:`EvaluationError` for keys that are not record indices of the store.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no prediction file at {path}")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises several kinds
        raise EvaluationError(f"{path} is not a readable .npz file: {exc}") from exc
    out = {}
    with npz:
        for key in npz.files:
            if not key.isdigit():
                raise EvaluationError(
                    f"{path}: key {key!r} is not a record index; keys must be record indices as "
                    "strings ('0', '1', ...)"
                )
            i = int(key)
            if i >= n_records:
                raise EvaluationError(f"{path}: key {key!r} is beyond the store's {n_records} records")
            out[i] = np.asarray(npz[key])
            if out[i].ndim != 2 or out[i].shape[0] != out[i].shape[1]:
                raise EvaluationError(f"{path}: entry {key!r} has shape {out[i].shape}, expected (nao, nao)")
    return out


def evaluate_predictions(path, ds: HamiltonianDataset, indices: Optional[Sequence[int]] = None,
                         per_record: Optional[dict] = None, on_molecule: Optional[Callable] = None,
                         guess_energy: bool = False) -> tuple[dict, int]:
    """Score the matrices of ``path`` (``.npz``) against ``ds``.

    Parameters
    ----------
    indices : records to score (default: every record in the file); each must be present.
    """
    preds = read_predictions(path, len(ds))
    if indices is None:
        indices = sorted(preds)
    missing = [int(i) for i in indices if int(i) not in preds]
    if missing:
        raise EvaluationError(
            f"{path} has no prediction for {len(missing)} record(s) of the evaluated set, e.g. {missing[:10]}"
        )
    return score(ds, ((int(i), preds[int(i)]) for i in indices), per_record=per_record, on_molecule=on_molecule,
                 guess_energy=guess_energy)


def mean_block_baseline(ds: HamiltonianDataset, train: Sequence[int], indices: Sequence[int],
                        max_train: Optional[int] = None) -> tuple[dict, int]:
    """QH9 metrics of the trivial baseline on records ``indices``: no network, every atom block
    predicted by the mean training block of its kind.

    A diagonal block ``(i, i)`` is the mean of the training blocks of atom ``i``'s element; an
    off-diagonal block ``(i, j)`` the mean of the training blocks of the ordered element pair
    ``(Z_i, Z_j)`` (over every pair of atoms, bonded or not, so the prediction is symmetric).
    A block kind absent from the training records is predicted as zero. ``max_train`` caps
    the training records used (the first ones). Scored with :func:`score`.
    """
    train = [int(i) for i in train][: max_train or None]
    if not train:
        raise EvaluationError("the baseline needs at least one training record")
    records = {i: ds[i] for i in train}
    elements = sorted({int(z) for i in (*train, *[int(k) for k in indices]) for z in
                       np.asarray((records.get(i) or ds[i])[RK.Z]).tolist()})
    ob = OrbitalBasis(ds.metadata.get(RK.META_BASIS), elements)
    n_el, n_pad = len(elements), ob.n_pad
    col = {z: k for k, z in enumerate(elements)}
    d_sum, d_n = np.zeros((n_el, n_pad, n_pad)), np.zeros(n_el)
    o_sum, o_n = np.zeros((n_el, n_el, n_pad, n_pad)), np.zeros((n_el, n_el))
    for rec in records.values():
        Z = [int(z) for z in np.asarray(rec[RK.Z])]
        e = np.array([col[z] for z in Z])
        diag, off = ob.split(np.asarray(rec[RK.F], dtype=np.float64), Z)  # [n_at, n_pad, n_pad], [n_pairs, ...]
        np.add.at(d_sum, e, diag)
        np.add.at(d_n, e, 1.0)
        ii, jj = ob.pair_index(len(Z))
        np.add.at(o_sum, (e[ii], e[jj]), off)
        np.add.at(o_n, (e[ii], e[jj]), 1.0)
    d_mean = d_sum / np.maximum(d_n, 1.0)[:, None, None]
    o_mean = o_sum / np.maximum(o_n, 1.0)[:, :, None, None]

    def predictions():
        for i in indices:
            Z = [int(z) for z in np.asarray(ds[int(i)][RK.Z])]
            e = np.array([col[z] for z in Z])
            ii, jj = ob.pair_index(len(Z))
            yield int(i), ob.assemble(d_mean[e], o_mean[e[ii], e[jj]], Z)

    return score(ds, predictions(), model_basis=ob)


def write_report(path, results: dict, n: int, info: Optional[dict] = None) -> Path:
    """Write ``{"metrics": ..., "units": ..., "n_molecules": n, **info}`` as JSON, atomically."""
    path = Path(path)
    doc = {"metrics": results, "units": {k: METRIC_UNITS[k] for k in results}, "n_molecules": int(n)}
    doc.update(info or {})
    return atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")
