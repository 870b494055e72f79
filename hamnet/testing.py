"""Equivariance checks for any model of AO matrices (reusable by every architecture).

A model of a one-electron AO matrix ``F`` (Fock, Kohn-Sham, overlap) must satisfy, for
an orthogonal ``R`` (rotation or improper rotation), a translation ``t`` and an atom
permutation ``P``::

    F(R x + t) = D(R) F(x) D(R)^T         D = hamnet.basis.ao_rotation(mol, R)
    F(P x)     = F(x)[p][:, p]            p = AO order of the permuted molecule

:func:`equivariance_errors` measures all of these for a ``predict(Z, pos) -> (nao, nao)``
callable; :func:`assert_equivariant` turns them into a test. Run them in float64, where
an exact model reaches ~1e-12.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from pyscf import gto

from hamnet.basis import OrbitalBasis, ao_rotation, wigner_D_e3nn

__all__ = [
    "random_rotation",
    "irreps_rotation",
    "ao_permutation",
    "molecule_mole",
    "equivariance_errors",
    "assert_equivariant",
]

Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (Z, pos Angstrom) -> (nao, nao)


def random_rotation(rng: np.random.Generator, improper: bool = False) -> np.ndarray:
    """Haar-random ``(3, 3)`` rotation (det +1), or times ``-1`` (det -1) if ``improper``."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return -q if improper else q


def irreps_rotation(irreps, R) -> np.ndarray:
    """Float64-exact ``(dim, dim)`` representation of ``R`` on e3nn ``irreps``.

    For each irrep ``(l, p)``: ``wigner_D_e3nn(l, det(R) R)`` times ``p`` if ``R`` is
    improper, i.e. what ``irreps.D_from_matrix(R)`` gives, without its ~1e-7 error.
    Use it to test single modules (``f(D x) = D f(x)``) in float64.
    """
    from e3nn import o3

    R = np.asarray(R, dtype=np.float64)
    det = np.sign(np.linalg.det(R))
    blocks = []
    for mul, ir in o3.Irreps(irreps):
        d = wigner_D_e3nn(ir.l, det * R) * (ir.p if det < 0 else 1)
        blocks += [d] * mul
    dim = sum(b.shape[0] for b in blocks)
    D = np.zeros((dim, dim))
    k = 0
    for b in blocks:
        D[k : k + len(b), k : k + len(b)] = b
        k += len(b)
    return D


def ao_permutation(basis: OrbitalBasis, Z, perm) -> np.ndarray:
    """AO indices ``p`` with ``F(permuted molecule) = F[p][:, p]``.

    The permuted molecule has atoms ``Z[perm]`` (atom ``k`` of it is atom ``perm[k]``).
    """
    lay = basis.layout(Z)
    off = lay.atom_offsets
    return np.concatenate([np.arange(off[a], off[a + 1]) for a in np.asarray(perm)])


def molecule_mole(basis: OrbitalBasis, Z, pos) -> gto.Mole:
    """A built PySCF Mole of ``(Z, pos in Angstrom)`` in ``basis`` (charge 0, lowest spin)."""
    Z = [int(z) for z in Z]
    return gto.M(
        atom=[(z, tuple(p)) for z, p in zip(Z, np.asarray(pos, dtype=float))],
        basis=basis.basis,
        unit="Angstrom",
        spin=sum(Z) % 2,
        verbose=0,
    )


def equivariance_errors(
    predict: Predict,
    basis: OrbitalBasis,
    Z,
    pos,
    *,
    seed: int = 0,
    n_rotations: int = 2,
) -> dict:
    """Largest absolute deviation (Hartree) from exact equivariance, per transformation.

    Parameters
    ----------
    predict : callable
        ``predict(Z, pos) -> (nao, nao)`` array in PySCF AO order of ``basis``.
    basis : OrbitalBasis
    Z : (n,) int
    pos : (n, 3) float, Angstrom
    seed : int
        Seed of the random transformations.
    n_rotations : int
        Random proper rotations (and as many improper ones) to try.

    Returns
    -------
    dict
        Keys ``rotation``, ``improper``, ``inversion``, ``translation``, ``permutation``,
        ``combined`` (all at once) and ``scale`` (max |F|, to judge the others).
    """
    rng = np.random.default_rng(seed)
    Z = np.asarray(Z, dtype=np.int64)
    pos = np.asarray(pos, dtype=np.float64)
    mol = molecule_mole(basis, Z, pos)
    F0 = np.asarray(predict(Z, pos), dtype=np.float64)
    errors = {"scale": float(np.abs(F0).max())}

    def rotated(R: np.ndarray) -> float:
        D = ao_rotation(mol, R)
        return float(np.abs(predict(Z, pos @ R.T) - D @ F0 @ D.T).max())

    errors["rotation"] = max(rotated(random_rotation(rng)) for _ in range(n_rotations))
    errors["improper"] = max(rotated(random_rotation(rng, improper=True)) for _ in range(n_rotations))
    errors["inversion"] = rotated(-np.eye(3))
    t = rng.normal(scale=3.0, size=3)
    errors["translation"] = float(np.abs(predict(Z, pos + t) - F0).max())
    perm = rng.permutation(len(Z))
    p = ao_permutation(basis, Z, perm)
    errors["permutation"] = float(np.abs(predict(Z[perm], pos[perm]) - F0[np.ix_(p, p)]).max())
    R = random_rotation(rng, improper=bool(rng.integers(2)))
    D = ao_rotation(mol, R)[np.ix_(p, p)]
    expected = D @ F0[np.ix_(p, p)] @ D.T
    errors["combined"] = float(np.abs(predict(Z[perm], pos[perm] @ R.T + t) - expected).max())
    return errors


def assert_equivariant(
    predict: Predict,
    basis: OrbitalBasis,
    Z,
    pos,
    atol: float = 1e-9,
    min_scale: Optional[float] = 1e-3,
    **kwargs,
) -> dict:
    """Raise ``AssertionError`` unless every :func:`equivariance_errors` entry is <= ``atol``.

    ``min_scale`` guards against a vacuous pass: the prediction's largest entry must be
    at least that (Hartree). Returns the errors.
    """
    errors = equivariance_errors(predict, basis, Z, pos, **kwargs)
    if min_scale is not None and errors["scale"] < min_scale:
        raise AssertionError(f"prediction too small to test equivariance (max |F| = {errors['scale']:.2e})")
    bad = {k: v for k, v in errors.items() if k != "scale" and not v <= atol}
    if bad:
        raise AssertionError(f"equivariance errors above {atol:g} Hartree: {bad} (max |F| = {errors['scale']:.3g})")
    return errors
