"""An ``(l1, l2)`` block of an AO matrix <-> a direct sum of irreps (Clebsch-Gordan).

A PySCF-order block ``B`` of angular momenta ``(l1, l2)`` transforms as ``D_l1 B D_l2^T``;
:func:`block_to_irreps` maps it orthonormally to irreps ``L = |l1-l2| .. l1+l2`` of
parity ``(-1)^(l1+l2)`` in e3nn's basis (:func:`block_irreps`), and
:func:`irreps_to_block` maps back.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from e3nn import o3

from hamnet.basis.elements import BasisError
from hamnet.basis.wigner import _change_of_basis

__all__ = ["block_irreps", "block_to_irreps", "irreps_to_block"]


def block_irreps(l1: int, l2: int) -> o3.Irreps:
    """Irreps of an ``(l1, l2)`` block: ``L = |l1-l2| .. l1+l2``, parity ``(-1)^(l1+l2)``."""
    p = (-1) ** (l1 + l2)
    return o3.Irreps([(1, (L, p)) for L in range(abs(l1 - l2), l1 + l2 + 1)])


@functools.lru_cache(maxsize=None)
def _block_matrix(l1: int, l2: int) -> np.ndarray:
    """Orthogonal ``U`` of shape ``[(2l1+1)(2l2+1), dim]``: ``vec(B_pyscf) = U @ x``."""
    q1, q2 = _change_of_basis(l1), _change_of_basis(l2)
    cols = []
    for L in range(abs(l1 - l2), l1 + l2 + 1):
        w = o3.wigner_3j(l1, l2, L, dtype=torch.float64).numpy() * np.sqrt(2 * L + 1)
        # e3nn-basis block for irrep component M is w[:, :, M]; back to PySCF order.
        b = np.einsum("ia,jb,ijm->abm", q1, q2, w)  # Q1^T w[..., M] Q2 per M
        cols.append(b.reshape((2 * l1 + 1) * (2 * l2 + 1), 2 * L + 1))
    u = np.concatenate(cols, axis=1)
    err = np.abs(u.T @ u - np.eye(u.shape[1])).max()
    if err > 1e-10:  # pragma: no cover - would mean e3nn changed its 3j normalization
        raise BasisError(f"Clebsch-Gordan map for ({l1},{l2}) is not orthonormal ({err:.1e})")
    return u


def _u_tensor(l1: int, l2: int, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(_block_matrix(l1, l2), dtype=like.dtype, device=like.device)


def block_to_irreps(block: torch.Tensor, l1: int, l2: int) -> torch.Tensor:
    """PySCF-order ``(l1, l2)`` blocks to irreps in e3nn's basis.

    Parameters
    ----------
    block : torch.Tensor, shape (..., 2l1+1, 2l2+1)
        Transforms as ``D_l1 B D_l2^T`` with :func:`wigner_D_pyscf`.

    Returns
    -------
    torch.Tensor, shape (..., block_irreps(l1, l2).dim)
        Transforms with ``block_irreps(l1, l2).D_from_matrix``; norm-preserving.
    """
    n1, n2 = 2 * l1 + 1, 2 * l2 + 1
    if block.shape[-2:] != (n1, n2):
        raise ValueError(f"expected blocks of shape (..., {n1}, {n2}), got {tuple(block.shape)}")
    u = _u_tensor(l1, l2, block)
    return block.reshape(*block.shape[:-2], n1 * n2) @ u


def irreps_to_block(x: torch.Tensor, l1: int, l2: int) -> torch.Tensor:
    """Inverse of :func:`block_to_irreps`: ``(..., dim)`` -> ``(..., 2l1+1, 2l2+1)``."""
    u = _u_tensor(l1, l2, x)
    if x.shape[-1] != u.shape[1]:
        raise ValueError(f"expected irreps of dim {u.shape[1]}, got {x.shape[-1]}")
    return (x @ u.T).reshape(*x.shape[:-1], 2 * l1 + 1, 2 * l2 + 1)
