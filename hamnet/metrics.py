"""Evaluation metrics exactly as QH9's published evaluation defines them.

For every molecule (all matrices in PySCF AO order, Hartree):

* ``H_mae``: mean ``|H_pred - H_ref|`` over all ``nao * nao`` elements.
* ``H_diag_mae`` / ``H_offdiag_mae``: mean ``|dH|`` over the elements of the atom-diagonal
  blocks (same atom) / the off-diagonal blocks (atom pairs ``i != j``).
* Orbital energies and coefficients come from the generalized eigenproblem
  ``H C = S C eps`` solved by symmetric orthogonalization with the basis overlap ``S``
  (overlap eigenvalues below 1e-8 are clamped, as QH9 does).
* ``eps_occ_mae``: mean ``|eps_pred - eps_ref|`` over the ``nocc`` lowest orbitals.
* ``psi_cos``: mean over occupied orbitals of ``|cos(C_pred[:, k], C_ref[:, k])|``
  (Euclidean cosine over AO coefficients).
* ``homo_mae``, ``lumo_mae``, ``gap_mae``: ``|d eps|`` of orbital ``nocc - 1``, ``nocc``, and
  of their difference.

Guess-quality metrics (not QH9's; they measure what an SCF started from ``H_pred`` sees):

* ``density_mae``: mean ``|P_pred - P_ref|`` over all ``nao * nao`` AO entries of the
  closed-shell density ``P = 2 C_occ C_occ^T`` (dimensionless; ``tr(P S)`` is the electron
  count), reported in micro-units (``ue``, 1e-6).
* ``guess_energy``: ``E[P_pred] - E[P_ref]``, the total energy of the guess density above
  that of the converged one, in Hartree (reported in milli-Hartree). One Fock build per
  density with PySCF (:func:`guess_energy`); computed only on request (``hamnet eval
  --guess-energy``, ``benchmarks/scf_speedup.py``), never during training
  (:data:`EVAL_ONLY`).

Each is averaged over molecules with equal weight (QH9 evaluates with batch size 1).
Reported in micro-Hartree (``*_mae`` of energies and H), percent (``psi_cos``), micro-units
(``density_mae``) and milli-Hartree (``guess_energy``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["METRIC_UNITS", "UNIT_SCALE", "EVAL_ONLY", "molecule_metrics", "MetricAccumulator", "orbitals",
           "density_matrix", "guess_energy", "format_table"]

#: metric name -> unit of the reported value
METRIC_UNITS = {
    "H_mae": "uHa",
    "H_diag_mae": "uHa",
    "H_offdiag_mae": "uHa",
    "eps_occ_mae": "uHa",
    "psi_cos": "%",
    "homo_mae": "uHa",
    "lumo_mae": "uHa",
    "gap_mae": "uHa",
    "density_mae": "ue",
    "guess_energy": "mHa",
}
#: reporting unit -> factor from the value :func:`molecule_metrics` returns
UNIT_SCALE = {"uHa": 1e6, "%": 100.0, "ue": 1e6, "mHa": 1e3}
#: Metrics that cost an SCF-program call per molecule: only computed on request.
EVAL_ONLY = ("guess_energy",)


def orbitals(H: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``H C = S C eps`` by symmetric orthogonalization.

    Parameters
    ----------
    H, S : (..., nao, nao) float arrays
        Hamiltonian (Hartree) and overlap, PySCF AO order.

    Returns
    -------
    eps : (..., nao) ascending orbital energies (Hartree)
    C : (..., nao, nao) AO coefficients, column ``k`` is orbital ``k``.
    """
    s_val, s_vec = np.linalg.eigh(S)
    s_val = np.where(s_val > 1e-8, s_val, 1e-8)
    X = s_vec / np.sqrt(s_val)[..., None, :]  # [..., nao, nao]  S^-1/2 up to rotation
    Xt = np.swapaxes(X, -1, -2)
    eps, U = np.linalg.eigh(Xt @ H @ X)
    return eps, X @ U


def density_matrix(C: np.ndarray, nocc: int) -> np.ndarray:
    """Closed-shell AO density ``P = 2 C_occ C_occ^T`` of ``(..., nao, nao)`` coefficients
    (columns ascending in energy, S-orthonormal); dimensionless, ``tr(P S) = 2 nocc``."""
    c = C[..., :nocc]
    return 2.0 * c @ np.swapaxes(c, -1, -2)


def molecule_metrics(
    H_pred: np.ndarray, H_ref: np.ndarray, S: np.ndarray, ao_atom: np.ndarray, nocc: int
) -> dict[str, float]:
    """QH9 metrics of one molecule (see module docstring), in Hartree and fractions.

    Parameters
    ----------
    H_pred, H_ref, S : (nao, nao)
    ao_atom : (nao,) int, atom index of each AO
    nocc : number of doubly occupied orbitals
    """
    H_pred = np.asarray(H_pred, dtype=np.float64)
    H_ref = np.asarray(H_ref, dtype=np.float64)
    if H_pred.shape != H_ref.shape or H_ref.shape != S.shape or H_ref.shape[0] != len(ao_atom):
        raise ValueError(
            f"shape mismatch: prediction {H_pred.shape}, reference {H_ref.shape}, "
            f"overlap {S.shape}, {len(ao_atom)} AOs"
        )
    nao = H_ref.shape[0]
    if not 0 < nocc < nao:
        raise ValueError(f"nocc={nocc} must be between 1 and nao-1={nao - 1}")
    err = np.abs(H_pred - H_ref)
    same_atom = ao_atom[:, None] == ao_atom[None, :]
    out = {
        "H_mae": float(err.mean()),
        "H_diag_mae": float(err[same_atom].mean()),
        "H_offdiag_mae": float(err[~same_atom].mean()) if (~same_atom).any() else float("nan"),
    }
    eps, C = orbitals(np.stack([H_pred, H_ref]), np.stack([S, S]))
    e_p, e_r = eps[0], eps[1]
    out["eps_occ_mae"] = float(np.abs(e_p[:nocc] - e_r[:nocc]).mean())
    c_p, c_r = C[0][:, :nocc], C[1][:, :nocc]
    cos = (c_p * c_r).sum(0) / (np.linalg.norm(c_p, axis=0) * np.linalg.norm(c_r, axis=0))
    out["psi_cos"] = float(np.abs(cos).mean())
    out["homo_mae"] = float(abs(e_p[nocc - 1] - e_r[nocc - 1]))
    out["lumo_mae"] = float(abs(e_p[nocc] - e_r[nocc]))
    out["gap_mae"] = float(abs((e_p[nocc] - e_p[nocc - 1]) - (e_r[nocc] - e_r[nocc - 1])))
    P = density_matrix(C, nocc)  # [2, nao, nao]
    out["density_mae"] = float(np.abs(P[0] - P[1]).mean())
    return out


def guess_energy(mf, F_pred: np.ndarray, F_ref: np.ndarray | None = None, e_ref: float | None = None) -> float:
    """``E[P_pred] - E_ref`` in Hartree: the energy of the guess density of ``F_pred`` above the
    converged energy.

    ``P_pred`` is :func:`hamnet.scf.guess_dm` of ``F_pred`` (PySCF's ``eig``, ``get_occ``,
    ``make_rdm1``) and its energy ``mf.energy_tot(dm=P_pred)``: one Fock build with
    ``mf``'s functional, basis and grid. ``E_ref`` is ``e_ref`` (a converged SCF energy of
    the same ``mf`` settings) or else the energy of the density of ``F_ref`` computed the
    same way (a second Fock build), so both energies share grid and program version.
    """
    from hamnet.scf import guess_dm

    if e_ref is None:
        if F_ref is None:
            raise ValueError("guess_energy needs the reference F_ref or its energy e_ref")
        e_ref = float(mf.energy_tot(dm=guess_dm(mf, F_ref)))
    return float(mf.energy_tot(dm=guess_dm(mf, F_pred))) - float(e_ref)


@dataclass
class MetricAccumulator:
    """Running equal-weight mean of :func:`molecule_metrics` over molecules."""

    def __post_init__(self):
        self._sums: dict[str, float] = {}
        self.count = 0

    def add(self, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self.count += 1

    def result(self) -> dict[str, float]:
        """Means in reporting units (:data:`METRIC_UNITS`): micro-Hartree for energy and H
        ``*_mae``, percent for ``psi_cos``, 1e-6 for ``density_mae``, milli-Hartree for ``guess_energy``."""
        if self.count == 0:
            raise ValueError("no molecules were evaluated")
        return {
            k: self._sums[k] / self.count * UNIT_SCALE[METRIC_UNITS[k]]
            for k in METRIC_UNITS
            if k in self._sums
        }


def format_table(results: dict[str, float], title: str = "", n: int | None = None) -> str:
    """Plain-text table of :meth:`MetricAccumulator.result`."""
    lines = [title] if title else []
    if n is not None:
        lines.append(f"  molecules: {n}")
    for k, v in results.items():
        lines.append(f"  {k:<14} {v:>14.3f} {METRIC_UNITS.get(k, '')}")
    return "\n".join(lines)
