"""PySCF real spherical AOs <-> e3nn irreps, per angular momentum, and their rotations.

* :func:`change_of_basis` gives, per ``l``, the orthogonal ``Q_l`` with
  ``x_e3nn = Q_l @ x_pyscf``. For ``l >= 2`` it is not a permutation; it is fitted to
  PySCF's own AO values on the sphere and checked to be orthogonal.
* :func:`wigner_D_e3nn` / :func:`wigner_D_pyscf` rotate one ``l``, in float64 precision.
* Under a rotation ``R`` (3x3, proper or improper) of the molecule, every AO matrix
  transforms as ``F(R x) = D F(x) D^T`` with ``D = ao_rotation(mol, R)``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from e3nn import o3
from pyscf import gto

from hamnet.basis.elements import BasisError

__all__ = ["change_of_basis", "wigner_D_e3nn", "wigner_D_pyscf", "ao_rotation"]


@functools.lru_cache(maxsize=None)
def _change_of_basis(l: int) -> np.ndarray:
    if l == 0:
        return np.ones((1, 1))
    # A single normalized primitive of angular momentum l, evaluated on the unit sphere:
    # PySCF's AO values there are a constant times PySCF's real spherical harmonics.
    mol = gto.M(atom="H 0 0 0", basis={"H": [[l, [1.0, 1.0]]]}, spin=None, unit="Bohr")
    rng = np.random.default_rng(1234)
    pts = rng.normal(size=(8 * (2 * l + 1), 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    y_pyscf = mol.eval_gto("GTOval_sph", pts)  # [n_pts, 2l+1]
    y_e3nn = o3.spherical_harmonics(
        l, torch.from_numpy(pts), normalize=True, normalization="component"
    ).numpy()  # [n_pts, 2l+1]
    # y_pyscf = y_e3nn @ M with M = s Q, Q orthogonal.
    m, *_ = np.linalg.lstsq(y_e3nn, y_pyscf, rcond=None)
    scale = np.sqrt(np.mean(np.sum(m * m, axis=0)))
    q = m / scale
    err = np.abs(q.T @ q - np.eye(2 * l + 1)).max()
    fit = np.abs(y_e3nn @ m - y_pyscf).max() / np.abs(y_pyscf).max()
    if err > 1e-10 or fit > 1e-10:
        raise BasisError(
            f"PySCF's l={l} real spherical harmonics are not an orthogonal transform of "
            f"e3nn's (orthogonality error {err:.1e}, fit error {fit:.1e})"
        )
    q[np.abs(q) < 1e-14] = 0.0
    return q


def change_of_basis(l: int) -> np.ndarray:
    """Orthogonal ``(2l+1, 2l+1)`` matrix ``Q_l`` with ``x_e3nn = Q_l @ x_pyscf``.

    ``x_pyscf`` are coefficients over PySCF's real spherical AOs of angular momentum
    ``l`` (PySCF order); ``x_e3nn`` transforms with ``o3.Irrep(l, (-1)**l).D_from_matrix``.
    """
    if l < 0:
        raise BasisError(f"angular momentum must be >= 0, got {l}")
    return _change_of_basis(int(l)).copy()


@functools.lru_cache(maxsize=None)
def _sphere_points(l: int) -> np.ndarray:
    rng = np.random.default_rng(4321 + l)
    pts = rng.normal(size=(4 * (2 * l + 1), 3))
    return pts / np.linalg.norm(pts, axis=1, keepdims=True)


def wigner_D_e3nn(l: int, R) -> np.ndarray:
    """``(2l+1, 2l+1)`` matrix with ``Y_l(R u) = D Y_l(u)`` for e3nn's spherical harmonics.

    Equal to ``o3.Irrep(l, (-1)**l).D_from_matrix(R)`` but accurate to float64 round-off
    (e3nn's Euler-angle route loses ~1e-7): it is solved by least squares from e3nn's
    polynomial spherical harmonics, which also gives the parity ``(-1)^l`` of improper
    ``R`` for free.
    """
    R = _check_rotation(R)
    pts = _sphere_points(int(l))
    y = o3.spherical_harmonics(int(l), torch.from_numpy(pts), normalize=False).numpy()
    y_rot = o3.spherical_harmonics(int(l), torch.from_numpy(pts @ R.T), normalize=False).numpy()
    dT, *_ = np.linalg.lstsq(y, y_rot, rcond=None)  # y_rot = y @ D^T
    return dT.T


def wigner_D_pyscf(l: int, R) -> np.ndarray:
    """``(2l+1, 2l+1)`` rotation of PySCF's real spherical AOs of angular momentum ``l``.

    ``R`` is a 3x3 orthogonal matrix (det +1 or -1; improper ones carry parity ``(-1)^l``).
    ``D_pyscf = Q^T D_e3nn Q`` with ``Q = change_of_basis(l)``.
    """
    q = _change_of_basis(int(l))
    return q.T @ wigner_D_e3nn(l, R) @ q


def _check_rotation(R) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3):
        raise ValueError(f"rotation must be a 3x3 matrix, got shape {R.shape}")
    if not np.all(np.isfinite(R)) or np.abs(R @ R.T - np.eye(3)).max() > 1e-8:
        raise ValueError("rotation matrix is not orthogonal (R R^T != I to 1e-8)")
    return R


def _check_spherical(mol: gto.Mole) -> None:
    if getattr(mol, "cart", False):
        raise BasisError(
            "Cartesian AOs (mol.cart=True) are not supported: hamnet works in PySCF's "
            "real spherical AO basis; build the Mole with cart=False"
        )


def ao_rotation(mol: gto.Mole, R) -> np.ndarray:
    """Block-diagonal ``(nao, nao)`` AO rotation ``D`` in PySCF AO order.

    For the molecule rotated by ``R`` (positions ``x -> R x``), every one-electron AO
    matrix ``M`` (Fock, overlap, core Hamiltonian) satisfies ``M(R x) = D M(x) D^T``.

    Parameters
    ----------
    mol : pyscf.gto.Mole
        Built molecule with a spherical basis.
    R : array_like, shape (3, 3)
        Orthogonal matrix; improper rotations include inversion parity ``(-1)^l``.
    """
    _check_spherical(mol)
    R = _check_rotation(R)
    nao = mol.nao_nr()
    D = np.zeros((nao, nao))
    ao_loc = mol.ao_loc_nr()
    blocks = {}
    for ib in range(mol.nbas):
        l = mol.bas_angular(ib)
        if l not in blocks:
            blocks[l] = wigner_D_pyscf(l, R)
        d = 2 * l + 1
        for c in range(mol.bas_nctr(ib)):
            p0 = ao_loc[ib] + c * d
            D[p0 : p0 + d, p0 : p0 + d] = blocks[l]
    return D
